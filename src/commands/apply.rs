//! `netprofile apply PROFILE`: plan, then one transaction (journal, write, read back, persist),
//! recorded as a generation; `--confirm` starts a watcher that reverts unless confirmed.
//!
//! With `--confirm`, the pending record and its watcher exist before the first change: a kill
//! at any later step leaves either an open journal (restored by the next writer or the
//! watcher) or a committed pending generation that the watcher, the next writer after the
//! deadline, or a reboot (files are written only at `confirm`) reverts. If the record cannot be
//! written (a full or symlinked run/), nothing is changed.

use super::require_privileges;
use crate::cli::Config;
use crate::commands::Output;
use crate::error::{Error, Result};
use crate::plan::{self, Plan};
use crate::profile;
use crate::render;
use crate::system::LiveState;
use crate::system::root::Root;
use crate::transaction;
use crate::transaction::state::{self, Change, Generation, Outcome, Pending};
use crate::transaction::writer::Writer;
use crate::transaction::{replay, running};

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

pub(super) fn summary(changes: &[Change]) -> String {
    let keys = changes
        .iter()
        .filter(|c| matches!(c, Change::Sysctl { .. }))
        .count();
    let processes = changes
        .iter()
        .filter(|c| matches!(c, Change::Rlimit { .. }))
        .count();
    let files = changes.len() - keys - processes;
    let mut text = format!(
        "{keys} key{} set, {files} file{} written",
        if keys == 1 { "" } else { "s" },
        if files == 1 { "" } else { "s" }
    );
    if processes > 0 {
        text.push_str(&format!(
            ", {processes} process{} limits changed",
            if processes == 1 { "'s" } else { "es'" }
        ));
    }
    text
}

pub struct ApplyOptions {
    pub dry_run: bool,
    pub confirm: Option<u64>,
    pub no_persist: bool,
    /// Run the connection test before and after, print the gain, keep both reports.
    pub verify: bool,
    /// `--running PATTERN`: raise these running processes' open-files limits (prlimit).
    pub running: Vec<String>,
    /// Apply although other files override managed values; record them as overridden.
    pub allow_override: bool,
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

/// The profile's raise-only and lower-only keys: for status (a rise above a min is not drift)
/// and for netprofile.service, which holds them at boot (`apply --pending`).
fn bounds(profile: &profile::Profile) -> std::collections::BTreeMap<String, String> {
    profile
        .sysctl
        .iter()
        .filter_map(|(key, setting)| match setting.want {
            profile::Want::Min(n) => Some((key.to_string(), format!(">= {n}"))),
            profile::Want::Max(n) => Some((key.to_string(), format!("<= {n}"))),
            profile::Want::Exact(_) => None,
        })
        .collect()
}

/// The `--json` result of an apply that ran (or found nothing to do).
fn apply_result(
    plan: &Plan,
    opts: &ApplyOptions,
    generation: Option<&Generation>,
    changes: &[Change],
    deferred: &[Change],
    warnings: &[String],
    summary: String,
) -> render::json::ApplyResult {
    let (keys, mut files) = render::json::split_changes(changes, false);
    files.extend(render::json::split_changes(deferred, true).1);
    render::json::ApplyResult {
        schema: render::json::Version,
        command: "apply",
        exit_code: 0,
        exit_meaning: render::json::exit_meaning(0),
        dry_run: false,
        changed: generation.is_some(),
        outcome: match generation.map(|g| g.outcome) {
            None => render::json::ApplyOutcome::Unchanged,
            Some(Outcome::Pending) => render::json::ApplyOutcome::Pending,
            Some(_) => render::json::ApplyOutcome::Applied,
        },
        profile: Some(plan.profile.clone()),
        generation: generation.map(|g| g.number),
        keys,
        files,
        confirm: None,
        no_persist: opts.no_persist,
        warnings: warnings
            .iter()
            .map(|w| w.strip_prefix("warning: ").unwrap_or(w).to_string())
            .collect(),
        verify: None,
        summary,
    }
}

/// `apply --verify` measures the kernel this process runs on; with `--root DIR` whose `proc`
/// is not that kernel's, it would change files under DIR and measure the real host.
fn refuse_verify_elsewhere(root: &Root) -> Result<()> {
    if root.is_real() {
        return Ok(());
    }
    let here = std::fs::canonicalize(root.path("proc/sys")).ok();
    let kernel = std::fs::canonicalize(std::path::Path::new(Root::KERNEL_PROC).join("sys")).ok();
    if here.is_some() && here == kernel {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "--verify runs the connection test on this machine's kernel, but --root {} points \
         apply at another tree: the test would measure the real host, not what was applied. \
         Drop --verify, or run `netprofile test churn --sandbox --profile PROFILE` to measure a \
         profile. Nothing was changed",
        root.base().display()
    )))
}

/// `netprofile apply PROFILE`.
pub fn apply(config: &Config, reference: &str, opts: &ApplyOptions) -> Result<Output> {
    let root = &config.root;
    if opts.verify {
        refuse_verify_elsewhere(root)?;
    }
    let profile = profile::load(reference)?;
    if opts.dry_run {
        return dry_run(config, &profile, opts);
    }
    require_privileges(root, "apply")?;
    // Every plan-time refusal happens here, before the lock: bad input exits 2 with nothing
    // created, not even run/ or the lock file. The plan is made again under the lock, after
    // recovery, from what the machine holds then.
    refuse_waiting_confirm(root, false)?;
    prepare(root, &profile, opts)?;
    let writer = Writer::begin(root, "apply")?;
    refuse_waiting_confirm(root, true)?;
    let prepared = prepare(root, &profile, opts)?;
    let mut stderr = writer.recovered.clone();
    stderr.extend(plan_warnings(&prepared, opts));
    if prepared.changes.is_empty() && prepared.deferred.is_empty() {
        return nothing_to_apply(config, &writer, &profile, &prepared, opts, stderr);
    }
    // Undo is proven before anything changes: before the pending record and its watcher too.
    let all: Vec<Change> = prepared
        .changes
        .iter()
        .chain(&prepared.deferred)
        .cloned()
        .collect();
    writer.prove(&all)?;
    let before_test = if opts.verify {
        Some(crate::conntest::run(root, &verify_options())?)
    } else {
        None
    };
    let mut generation = run_generation(&writer, &profile, &prepared, opts)?;
    // Committed. From here on nothing may turn into "nothing was touched" (exit 2): a step of
    // the report that fails is a warning beside the truth, and the exit stays 0.
    if let Some(before) = before_test {
        verify_after(
            config,
            &writer,
            &profile,
            &mut generation,
            before,
            &mut stderr,
        );
    }
    let doc = applied_document(config, &prepared, opts, &generation, &mut stderr);
    let stdout = super::render_doc(config, &doc, |doc| {
        human_applied(config, &prepared, opts, doc, &mut stderr)
    });
    Ok(Output {
        code: 0,
        stdout,
        stderr,
    })
}

/// The plan's warnings, the note on overrides accepted now, and what --no-persist leaves out.
fn plan_warnings(prepared: &Prepared, opts: &ApplyOptions) -> Vec<String> {
    let plan = &prepared.plan;
    let mut stderr: Vec<String> = plan
        .warnings
        .iter()
        .map(|w| format!("warning: {w}"))
        .collect();
    stderr.extend(prepared.note.clone());
    if opts.no_persist
        && (!plan.limits.is_empty() || !plan.systemd.is_empty() || !plan.services.is_empty())
    {
        stderr.push(
            "warning: limits and systemd settings live only in files; with --no-persist they \
             were not applied"
                .to_string(),
        );
    }
    stderr
}

/// `apply --dry-run`: the plan and the processes `--running` would raise; exit 1 when either
/// would change anything. Takes no lock and writes nothing.
fn dry_run(config: &Config, profile: &profile::Profile, opts: &ApplyOptions) -> Result<Output> {
    let root = &config.root;
    let live = LiveState::read(root, profile)?;
    let mut plan = plan::plan(profile, &live)?;
    plan::overrides::mark(&mut plan, &replay::accepted_overrides(root)?);
    let mut out = crate::commands::render_plan(config, &plan, "apply --dry-run");
    out.code = i32::from(plan.differs());
    let running = running::running_changes(root, profile, &live, &plan, &opts.running)?;
    if !config.json {
        out.stdout.push_str(&super::running::would_raise(&running));
    }
    out.code = out.code.max(i32::from(!running.is_empty()));
    Ok(out)
}

/// Nothing to write: says so. Overrides accepted now with --allow-override are still recorded
/// as a generation without changes, so that check reports them as accepted.
fn nothing_to_apply(
    config: &Config,
    writer: &Writer,
    profile: &profile::Profile,
    prepared: &Prepared,
    opts: &ApplyOptions,
    stderr: Vec<String>,
) -> Result<Output> {
    let plan = &prepared.plan;
    if prepared.record {
        // Nothing to write, but the operator's acceptance must be on record for check.
        let mut generation = Generation::new(
            writer.next_generation()?,
            "apply",
            Some(profile.reference()),
            Vec::new(),
        );
        generation.overridden = plan::overrides::record(&plan.overrides);
        generation.bounds = bounds(profile);
        generation.message = Some("overrides accepted with --allow-override".into());
        writer.run(&generation)?;
    }
    let summary = format!("nothing to do: {}", render::summary(plan));
    let doc = apply_result(plan, opts, None, &[], &[], &stderr, summary);
    let stdout = super::render_doc(config, &doc, human);
    Ok(Output {
        code: 0,
        stdout,
        stderr,
    })
}

/// Records the generation and runs its transaction (with `--confirm`, after the pending record
/// and its watcher). A failed apply is recorded as failed, for history only.
fn run_generation(
    writer: &Writer,
    profile: &profile::Profile,
    prepared: &Prepared,
    opts: &ApplyOptions,
) -> Result<Generation> {
    let plan = &prepared.plan;
    let number = writer.next_generation()?;
    let mut generation = Generation::new(
        number,
        "apply",
        Some(profile.reference()),
        prepared.changes.clone(),
    );
    generation.pending = super::running::pending_keys(plan);
    if !opts.no_persist {
        generation.overridden = plan::overrides::record(&plan.overrides);
    }
    generation.bounds = bounds(profile);
    generation.no_persist = opts.no_persist;
    if let Some(seconds) = opts.confirm {
        generation.outcome = Outcome::Pending;
        start_pending(writer, number, seconds, prepared.deferred.clone())?;
    }
    if let Err(e) = writer.run(&generation) {
        if opts.confirm.is_some() && !matches!(e, Error::RollbackFailed { .. }) {
            let _ = writer.clear_pending();
        }
        if matches!(e, Error::ApplyFailed { .. }) {
            generation.outcome = Outcome::Failed;
            generation.message = Some(e.to_string());
            // History only: the failure itself is what the user must hear.
            let _ = writer.record(&generation);
        }
        return Err(e);
    }
    Ok(generation)
}

/// The warning for a step of the report that failed after the commit point.
fn after_commit(number: u64, what: &str, e: &Error) -> String {
    format!(
        "warning: generation {number} was applied and recorded, but {what} failed: {e}. \
         The changes are in place (`netprofile rollback` undoes them)"
    )
}

/// `apply --verify`: the connection test after the apply, kept in the generation beside the
/// one before (the report compares them).
fn verify_after(
    config: &Config,
    writer: &Writer,
    profile: &profile::Profile,
    generation: &mut Generation,
    mut before: crate::conntest::report::Report,
    stderr: &mut Vec<String>,
) {
    match crate::conntest::run(&config.root, &verify_options()) {
        Ok(mut after) => {
            before.settings.profile = Some("before apply".into());
            after.settings.profile = Some(format!("after apply of {}", profile.name));
            generation.verify = Some(crate::transaction::state::Verify {
                before: Box::new(before),
                after: Box::new(after),
            });
            let _ = writer.record(generation);
        }
        Err(e) => stderr.push(after_commit(
            generation.number,
            "the connection test after it",
            &e,
        )),
    }
}

/// The line that says what a committed apply did (and the `--confirm` deadline): the
/// document's summary.
fn applied_line(number: u64, changes: &[Change], confirm: Option<u64>) -> String {
    match confirm {
        Some(seconds) => format!(
            "applied generation {number} ({}); run `netprofile confirm` within {seconds} s to \
             keep it and write the files, or it reverts by itself",
            summary(changes)
        ),
        None => format!("applied generation {number}: {}", summary(changes)),
    }
}

/// The document of a committed apply: what it changed, the `--confirm` window, the
/// `--verify` reports and the warnings so far.
fn applied_document(
    config: &Config,
    prepared: &Prepared,
    opts: &ApplyOptions,
    generation: &Generation,
    stderr: &mut Vec<String>,
) -> render::json::ApplyResult {
    let mut doc = apply_result(
        &prepared.plan,
        opts,
        Some(generation),
        &prepared.changes,
        &prepared.deferred,
        stderr,
        applied_line(generation.number, &prepared.changes, opts.confirm),
    );
    doc.verify.clone_from(&generation.verify);
    if let Some(seconds) = opts.confirm {
        match state::read_pending(&config.root) {
            Ok(Some(p)) => {
                doc.confirm = Some(render::json::ConfirmWindow {
                    seconds,
                    deadline_ms: p.deadline_ms,
                });
            }
            Ok(None) => {}
            Err(e) => stderr.push(after_commit(
                generation.number,
                "reading the confirmation deadline",
                &e,
            )),
        }
    }
    doc
}

/// The text of an apply's document alone: its summary line.
fn human(doc: &render::json::ApplyResult) -> String {
    format!("{}\n", doc.summary)
}

/// The text of a committed apply: the plan, the `--verify` comparison, the document's
/// summary, then what it takes to reach new processes and the processes still on old limits.
fn human_applied(
    config: &Config,
    prepared: &Prepared,
    opts: &ApplyOptions,
    doc: &render::json::ApplyResult,
    stderr: &mut Vec<String>,
) -> String {
    let mut out = if config.quiet {
        String::new()
    } else {
        render::human(&prepared.plan, config.paint)
    };
    if let Some(verify) = &doc.verify {
        out.push_str(&crate::conntest::report::compare(
            std::slice::from_ref(verify.before.as_ref()),
            std::slice::from_ref(verify.after.as_ref()),
        ));
    }
    out.push_str(&human(doc));
    if config.quiet {
        return out;
    }
    if opts.confirm.is_none() && !opts.no_persist {
        out.push_str(&super::running::reach_hints(&prepared.plan));
    }
    let section = if crate::transaction::fault::fail("report") {
        Err(Error::State("fault injected at report".into()))
    } else {
        super::running::old_limits_section(&config.root)
    };
    match section {
        Ok(text) => out.push_str(&text),
        Err(e) => stderr.push(after_commit(
            doc.generation.unwrap_or_default(),
            "listing the processes with old limits",
            &e,
        )),
    }
    out
}

/// A `--confirm` still waiting for `netprofile confirm` stops another apply. Before the lock,
/// one past its deadline is left for the writer's recovery to revert.
fn refuse_waiting_confirm(root: &Root, locked: bool) -> Result<()> {
    if let Some(p) = state::read_pending(root)?
        && (locked || state::epoch_millis() < p.deadline_ms)
    {
        return Err(Error::State(format!(
            "generation {} is waiting for `netprofile confirm` (or its automatic revert); \
             confirm or roll it back first. Nothing was changed",
            p.generation
        )));
    }
    Ok(())
}

/// What an apply will do, decided from the machine as it is now.
struct Prepared {
    plan: Plan,
    /// Written by this transaction, in order.
    changes: Vec<Change>,
    /// Files written at `confirm` (with `--confirm`).
    deferred: Vec<Change>,
    /// Overrides accepted now with --allow-override, to be recorded.
    record: bool,
    note: Option<String>,
}

/// Plans an apply and makes every check that can refuse it before anything is touched: the
/// plan itself, overrides without --allow-override, drop-ins that would not re-parse to the
/// plan, --running, symlinked drop-ins, names too long to restore. Only reads.
fn prepare(root: &Root, profile: &profile::Profile, opts: &ApplyOptions) -> Result<Prepared> {
    let live = LiveState::read(root, profile)?;
    let mut plan = plan::plan(profile, &live)?;
    // An override makes the applied value not hold at boot or login: refuse before anything
    // is touched unless the operator accepts it (then it is recorded, not reported as drift).
    plan::overrides::mark(&mut plan, &replay::accepted_overrides(root)?);
    let unaccepted = plan::overrides::unaccepted(&plan);
    if !opts.no_persist && !unaccepted.is_empty() && !opts.allow_override {
        return Err(plan::overrides::refusal(&unaccepted));
    }
    let record = !opts.no_persist && !unaccepted.is_empty();
    let mut note = None;
    if record {
        note = Some(format!(
            "note: {} overridden setting{} recorded as accepted (--allow-override); check and \
             status report {} as overridden, not as drift",
            unaccepted.len(),
            if unaccepted.len() == 1 { "" } else { "s" },
            if unaccepted.len() == 1 { "it" } else { "them" }
        ));
        // From here on they are accepted: the summary and the record say so.
        for o in &mut plan.overrides {
            o.accepted = true;
        }
    }
    // Every drop-in must re-parse to exactly this plan before anything changes.
    transaction::verify::check_plan(profile, &plan)?;
    // Files are written now, at `confirm` (deferred), or not at all (--no-persist).
    let mut changes = key_changes(&live, &plan);
    let running = running::running_changes(root, profile, &live, &plan, &opts.running)?;
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
    // Processes last: on the real root fs.nr_open is raised before them.
    changes.extend(running);
    // A symlinked drop-in or folder, or a name too long to restore, is refused now.
    transaction::writer::prove_names(root, changes.iter().chain(&deferred))?;
    Ok(Prepared {
        plan,
        changes,
        deferred,
        record,
        note,
    })
}

/// Writes the pending record of generation `number` and starts its watcher, both before the
/// first change. Either failing stops the apply with nothing changed.
fn start_pending(writer: &Writer, number: u64, seconds: u64, files: Vec<Change>) -> Result<()> {
    let root = writer.root();
    let mut pending = Pending {
        generation: number,
        deadline_ms: state::epoch_millis().saturating_add(seconds.saturating_mul(1000)),
        watcher: None,
        files,
    };
    writer.write_pending(&pending)?;
    crate::transaction::fault::point("pending");
    match spawn_watcher(root, number) {
        Ok(pid) => {
            pending.watcher = Some(pid);
            // Only informative (status shows it): the watcher does not need it.
            let _ = writer.write_pending(&pending);
            Ok(())
        }
        Err(e) => {
            let _ = writer.clear_pending();
            Err(Error::State(format!(
                "cannot start the watcher that reverts an unconfirmed apply ({e}); nothing was                  changed"
            )))
        }
    }
}

/// Starts `netprofile __confirm-watcher GEN` detached in its own session, so it outlives the terminal.
fn spawn_watcher(root: &Root, generation: u64) -> std::io::Result<u32> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("--root")
        .arg(root.base())
        .arg("__confirm-watcher")
        .arg(generation.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        // Test fault points are for this run's steps, not for the watcher's revert.
        .env_remove("NETPROFILE_FAULT");
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
