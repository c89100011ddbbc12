//! The commands that change a system: apply, confirm, rollback, the `--confirm` watcher, and
//! the recovery every command runs first. Each takes the writer lock, builds a list of
//! changes, and hands it to transaction.rs; each success is recorded as a generation.

use std::fmt::Write as _;
use std::time::Duration;

use crate::cli::Config;
use crate::cmd::Output;
use crate::error::{Error, Result};
use crate::keys::KeyName;
use crate::live::{self, LiveState};
use crate::plan::{self, Plan};
use crate::profile;
use crate::render;
use crate::root::Root;
use crate::state::{self, Change, Generation, Lock, Outcome, Pending, ProfileRef};
use crate::transaction;

/// Refuses to write to the real root without privileges, before anything is opened for writing.
pub fn require_privileges(root: &Root, what: &str) -> Result<()> {
    if root.is_real() && !rustix::process::geteuid().is_root() {
        return Err(Error::Privilege {
            message: format!(
                "{what} changes kernel settings and files under /etc: run it as root (or with \
                 --root DIR on a copy). Nothing was changed"
            ),
        });
    }
    Ok(())
}

fn can_write(root: &Root) -> bool {
    !root.is_real() || rustix::process::geteuid().is_root()
}

/// Run by every command first: restores an interrupted transaction and reverts an expired
/// `--confirm` whose watcher is gone. Returns messages for stderr.
pub fn recover(root: &Root) -> Result<Vec<String>> {
    let journal = root.path(state::JOURNAL).exists();
    let pending = state::read_pending(root)?;
    let expired = pending
        .as_ref()
        .is_some_and(|p| state::epoch_millis() > p.deadline_ms + 2000);
    if !journal && !expired {
        return Ok(Vec::new());
    }
    if !can_write(root) {
        return Ok(vec![format!(
            "warning: an interrupted netprofile run left {}; run `netprofile status` as root to \
             restore the state before it",
            Root::display(if journal {
                state::JOURNAL
            } else {
                state::PENDING
            })
        )]);
    }
    let _lock = Lock::take(root)?;
    let mut messages = Vec::new();
    if let Some(text) = transaction::recover(root)? {
        messages.push(format!("netprofile: {text}"));
    }
    if expired && let Some(text) = revert_pending(root)? {
        messages.push(format!("netprofile: {text}"));
    }
    Ok(messages)
}

fn profile_ref(profile: &profile::Profile) -> ProfileRef {
    ProfileRef {
        name: profile.name.clone(),
        source: profile.source.clone(),
        sha256: state::sha256_hex(profile.text.as_bytes()),
    }
}

/// The key changes of a plan, in write order. A key's `before` is the raw text read for the
/// plan, so that undo restores it byte for byte.
fn key_changes(live: &LiveState, plan: &Plan) -> Vec<Change> {
    plan.to_set()
        .into_iter()
        .filter_map(|row| {
            Some(Change::Sysctl {
                key: row.key.to_string(),
                before: live.sysctl.get(&row.key).cloned().flatten()?,
                after: row.target.clone()?,
            })
        })
        .collect()
}

/// The drop-ins a plan writes or removes.
fn file_changes(plan: &Plan) -> Vec<Change> {
    plan.files
        .iter()
        .filter(|f| f.changes())
        .map(|f| Change::File {
            path: f.rel.clone(),
            before: f.old.clone(),
            after: f.new.clone(),
        })
        .collect()
}

fn summary(changes: &[Change]) -> String {
    let keys = changes
        .iter()
        .filter(|c| matches!(c, Change::Sysctl { .. }))
        .count();
    let files = changes.len() - keys;
    format!(
        "{keys} key{} set, {files} file{} written",
        if keys == 1 { "" } else { "s" },
        if files == 1 { "" } else { "s" }
    )
}

pub struct ApplyOptions {
    pub dry_run: bool,
    pub confirm: Option<u64>,
    pub no_persist: bool,
    /// Run the connection test before and after, print the gain, keep both reports.
    pub verify: bool,
}

/// The test `apply --verify` runs on both sides: the seed's pattern over loopback, bounded.
fn verify_options() -> crate::conntest::Options {
    crate::conntest::Options {
        mode: crate::conntest::engine::Mode::Churn,
        connections: 20_000,
        duration_ms: 30_000,
        concurrency: 256,
        payload: 12,
        closer: crate::conntest::engine::Closer::Client,
        backlog: 4096,
        accept_delay_us: 0,
        workers: 1,
        addresses: 1,
        sources: 0,
        nofile: None,
        connect_timeout_ms: 10_000,
        sandbox: false,
        profile: None,
        baseline: None,
        target: None,
        progress: false,
    }
}

/// `netprofile apply PROFILE`.
pub fn apply(config: &Config, reference: &str, opts: &ApplyOptions) -> Result<Output> {
    let root = &config.root;
    let profile = profile::load(reference)?;
    if opts.dry_run {
        let live = LiveState::read(root, &profile)?;
        let plan = plan::plan(&profile, &live)?;
        let mut out = crate::cmd::render_plan(config, &plan, "apply --dry-run");
        out.code = i32::from(plan.differs());
        return Ok(out);
    }
    require_privileges(root, "apply")?;
    let _lock = Lock::take(root)?;
    if let Some(p) = state::read_pending(root)? {
        return Err(Error::State(format!(
            "generation {} is waiting for `netprofile confirm` (or its automatic revert); \
             confirm or roll it back first. Nothing was changed",
            p.generation
        )));
    }
    let live = LiveState::read(root, &profile)?;
    let plan = plan::plan(&profile, &live)?;
    let mut stderr: Vec<String> = plan
        .warnings
        .iter()
        .map(|w| format!("warning: {w}"))
        .collect();
    // Files are written now, at `confirm` (deferred), or not at all (--no-persist).
    let mut changes = key_changes(&live, &plan);
    let files = if opts.no_persist {
        Vec::new()
    } else {
        file_changes(&plan)
    };
    let deferred = if opts.confirm.is_some() {
        files
    } else {
        changes.extend(files);
        Vec::new()
    };
    if opts.no_persist && (!plan.limits.is_empty() || !plan.systemd.is_empty()) {
        stderr.push(
            "warning: limits and systemd settings live only in files; with --no-persist they \
             were not applied"
                .to_string(),
        );
    }
    if changes.is_empty() && deferred.is_empty() {
        return Ok(Output {
            code: 0,
            stdout: format!("nothing to do: {}\n", render::summary(&plan)),
            stderr,
        });
    }
    // A symlinked drop-in or folder is refused before anything changes.
    for change in changes.iter().chain(&deferred) {
        if let Change::File { path, .. } = change {
            crate::persist::refuse_symlinks(root, path)?;
        }
    }
    let before_test = if opts.verify {
        Some(crate::conntest::run(root, &verify_options())?)
    } else {
        None
    };
    let number = state::next_generation(root)?;
    let mut generation = Generation::new(
        number,
        "apply",
        Some(profile_ref(&profile)),
        changes.clone(),
    );
    if let Err(e) = transaction::execute(root, number, &changes) {
        if matches!(e, Error::ApplyFailed { .. }) {
            generation.outcome = Outcome::Failed;
            generation.message = Some(e.to_string());
            state::write_generation(root, &generation)?;
        }
        return Err(e);
    }
    let mut stdout = if config.quiet || config.json {
        String::new()
    } else {
        render::human(&plan, config.paint)
    };
    if let Some(mut before) = before_test {
        let mut after = crate::conntest::run(root, &verify_options())?;
        before.settings.profile = Some("before apply".into());
        after.settings.profile = Some(format!("after apply of {}", profile.name));
        if !config.json {
            stdout.push_str(&crate::conntest::report::compare(&before, &after));
        }
        generation.verify = Some(serde_json::json!({ "before": before, "after": after }));
    }
    if let Some(seconds) = opts.confirm {
        generation.outcome = Outcome::Pending;
        transaction::commit(root, &generation)?;
        let mut pending = Pending {
            generation: number,
            deadline_ms: state::epoch_millis() + seconds.saturating_mul(1000),
            watcher: None,
            files: deferred,
        };
        state::write_pending(root, &pending)?;
        pending.watcher = spawn_watcher(root, number).ok();
        state::write_pending(root, &pending)?;
        let _ = writeln!(
            stdout,
            "applied generation {number} ({}); run `netprofile confirm` within {seconds} s to \
             keep it and write the files, or it reverts by itself",
            summary(&changes)
        );
    } else {
        transaction::commit(root, &generation)?;
        let _ = writeln!(stdout, "applied generation {number}: {}", summary(&changes));
    }
    if config.json {
        stdout = serde_json::to_string_pretty(&serde_json::json!({
            "schema": 1, "command": "apply", "generation": generation,
        }))
        .unwrap_or_default()
            + "\n";
    }
    Ok(Output {
        code: 0,
        stdout,
        stderr,
    })
}

/// Starts `netprofile __watch GEN` detached in its own session, so it outlives the terminal.
fn spawn_watcher(root: &Root, generation: u64) -> std::io::Result<u32> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("--root")
        .arg(root.base())
        .arg("__watch")
        .arg(generation.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: setsid is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            rustix::process::setsid()?;
            Ok(())
        });
    }
    let child = command.spawn()?;
    Ok(child.id())
}

/// `netprofile __watch GEN`: waits for the deadline, then reverts unless confirmed.
pub fn watch(config: &Config, generation: u64) -> Result<Output> {
    let root = &config.root;
    loop {
        let Some(pending) = state::read_pending(root)? else {
            return Ok(Output::default());
        };
        if pending.generation != generation {
            return Ok(Output::default());
        }
        if state::epoch_millis() >= pending.deadline_ms {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Another writer may hold the lock briefly (a `confirm` racing the deadline): retry.
    let lock = loop {
        match Lock::take(root) {
            Ok(lock) => break lock,
            Err(Error::Locked { .. }) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(e),
        }
    };
    let message = revert_pending(root)?;
    drop(lock);
    Ok(Output {
        code: 0,
        stdout: String::new(),
        stderr: message.into_iter().collect(),
    })
}

/// Reverts the pending `--confirm` generation, if there still is one. Caller holds the lock.
fn revert_pending(root: &Root) -> Result<Option<String>> {
    let Some(pending) = state::read_pending(root)? else {
        return Ok(None);
    };
    let Some(mut original) = state::read_generation(root, pending.generation)? else {
        state::clear_pending(root)?;
        return Ok(None);
    };
    let changes: Vec<Change> = original
        .changes
        .iter()
        .rev()
        .map(|c| refresh_before(root, &c.inverse()))
        .collect::<Result<_>>()?;
    let number = state::next_generation(root)?;
    transaction::execute(root, number, &changes)?;
    let mut revert = Generation::new(number, "revert", original.profile.clone(), changes);
    revert.rollback_of = Some(original.number);
    revert.message = Some("--confirm ran out without `netprofile confirm`".into());
    transaction::commit(root, &revert)?;
    original.outcome = Outcome::Reverted;
    state::write_generation(root, &original)?;
    state::clear_pending(root)?;
    Ok(Some(format!(
        "generation {} was not confirmed in time; reverted as generation {number}",
        original.number
    )))
}

/// A change whose `before` is read from the system now, so undo restores what is there.
fn refresh_before(root: &Root, change: &Change) -> Result<Change> {
    Ok(match change {
        Change::Sysctl { key, after, .. } => {
            let name = KeyName::parse(key).map_err(Error::State)?;
            Change::Sysctl {
                key: key.clone(),
                before: live::read_sysctl_raw(root, &name)?.unwrap_or_default(),
                after: after.clone(),
            }
        }
        Change::File { path, after, .. } => Change::File {
            path: path.clone(),
            before: live::read_optional(root, path)?,
            after: after.clone(),
        },
    })
}

/// `netprofile confirm`: keeps a pending `--confirm` and writes its files.
pub fn confirm(config: &Config) -> Result<Output> {
    let root = &config.root;
    require_privileges(root, "confirm")?;
    let _lock = Lock::take(root)?;
    let Some(pending) = state::read_pending(root)? else {
        return Err(Error::State(
            "nothing is waiting for confirmation (`netprofile status` shows pending applies)"
                .into(),
        ));
    };
    let mut original = state::read_generation(root, pending.generation)?
        .ok_or_else(|| Error::State(format!("generation {} is missing", pending.generation)))?;
    let mut stdout = String::new();
    if !pending.files.is_empty() {
        let changes: Vec<Change> = pending
            .files
            .iter()
            .map(|c| refresh_before(root, c))
            .collect::<Result<_>>()?;
        let number = state::next_generation(root)?;
        transaction::execute(root, number, &changes)?;
        let files = Generation::new(number, "confirm", original.profile.clone(), changes);
        transaction::commit(root, &files)?;
        let _ = writeln!(stdout, "wrote the files as generation {number}");
    }
    original.outcome = Outcome::Applied;
    state::write_generation(root, &original)?;
    state::clear_pending(root)?;
    let _ = writeln!(stdout, "confirmed generation {}", original.number);
    Ok(Output {
        code: 0,
        stdout,
        stderr: Vec::new(),
    })
}

/// `netprofile rollback [GEN]`: restores the state before GEN (default: the last generation
/// that changed something), as a transaction of its own.
pub fn rollback(config: &Config, target: Option<u64>) -> Result<Output> {
    let root = &config.root;
    require_privileges(root, "rollback")?;
    let _lock = Lock::take(root)?;
    let all = state::generations(root)?;
    let effective = |g: &&Generation| matches!(g.outcome, Outcome::Applied | Outcome::Pending);
    let target = match target {
        Some(n) => {
            let g = all.iter().find(|g| g.number == n).ok_or_else(|| {
                Error::Usage(format!(
                    "there is no generation {n}; `netprofile history` lists them"
                ))
            })?;
            if !effective(&g) {
                return Err(Error::Usage(format!(
                    "generation {n} changed nothing that is still in place ({:?}); pick \
                     another from `netprofile history`",
                    g.outcome
                )));
            }
            n
        }
        None => all
            .iter()
            .rev()
            .find(effective)
            .map(|g| g.number)
            .ok_or_else(|| Error::Usage("no generation to roll back".into()))?,
    };
    // The state before `target`: for each key or file touched since, the value it had before
    // the first generation that touched it.
    let mut restore: Vec<Change> = Vec::new();
    for g in all.iter().filter(|g| g.number >= target).filter(effective) {
        for change in &g.changes {
            if !restore.iter().any(|r| r.label() == change.label()) {
                restore.push(change.inverse());
            }
        }
    }
    restore.reverse();
    let mut changes = Vec::new();
    for change in &restore {
        let fresh = refresh_before(root, change)?;
        let same = match &fresh {
            Change::Sysctl { key, before, after } => crate::value::same(key, before, after),
            Change::File { before, after, .. } => before == after,
        };
        if !same {
            changes.push(fresh);
        }
    }
    let pending = state::read_pending(root)?;
    let number = state::next_generation(root)?;
    if !changes.is_empty() {
        transaction::execute(root, number, &changes)?;
    }
    let mut generation = Generation::new(number, "rollback", None, changes.clone());
    generation.rollback_of = Some(target);
    transaction::commit(root, &generation)?;
    if let Some(p) = pending
        && p.generation >= target
    {
        if let Some(mut g) = state::read_generation(root, p.generation)? {
            g.outcome = Outcome::Reverted;
            state::write_generation(root, &g)?;
        }
        state::clear_pending(root)?;
    }
    Ok(Output {
        code: 0,
        stdout: format!(
            "rolled back to the state before generation {target} as generation {number}: {}\n",
            summary(&changes)
        ),
        stderr: Vec::new(),
    })
}
