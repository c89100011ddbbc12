//! What reaches processes and what comes later, as commands and text: `apply --pending` (keys
//! whose module has loaded since, and the `min`/`max` keys held at boot by
//! netprofile.service), what `apply --dry-run --running` would raise, and the sections `apply`
//! and `status` end with: processes that still run with old limits, and keys still pending.
//! The prlimit changes themselves are chosen in transaction/running.rs and the pending keys
//! and bounds replayed in transaction/replay.rs.

use std::fmt::Write as _;

use crate::cli::Config;
use crate::commands::Output;
use crate::error::{Error, Result};
use crate::plan::{Action, Plan};
use crate::profile::{Profile, keys::KeyName};
use crate::render::terminal::{one_line, value};
use crate::system::processes;
use crate::system::root::Root;
use crate::system::{self as live, LiveState};
use crate::transaction::pending;
use crate::transaction::replay::current_pending;
use crate::transaction::state::{self, Change, Generation, Nofile, PendingKey};
use crate::transaction::writer::Writer;

/// What `apply --dry-run --running` would do to processes ("" when nothing).
#[must_use]
pub fn would_raise(changes: &[Change]) -> String {
    let mut out = String::new();
    for change in changes {
        if let Change::Rlimit { before, after, .. } = change {
            let label = one_line(&change.label());
            let _ = writeln!(out, "would set {label}: {before} -> {after}");
        }
    }
    out
}

/// The keys of `plan` that are pending, as recorded in a generation.
pub(super) fn pending_keys(plan: &Plan) -> Vec<PendingKey> {
    plan.sysctl
        .iter()
        .filter(|r| r.action == Action::Pending)
        .filter_map(|r| {
            Some(PendingKey {
                key: r.key.to_string(),
                value: r.target.clone()?,
                module: r.module?.to_string(),
            })
        })
        .collect()
}

/// `netprofile apply --pending` (what netprofile.service runs at boot, after systemd-sysctl):
/// sets the pending keys whose module has loaded since, and raises each `min` key below its
/// bound (lowers each `max` key above it), never the other way, as one generation.
///
/// A writer like every other (`Writer::begin`): after a crash, which is when the boot unit
/// runs it, it first finishes or undoes the interrupted apply and reverts an expired
/// `--confirm`, and it refuses planted or damaged state, before it reads what to hold.
pub fn apply_pending(config: &Config) -> Result<Output> {
    let root = &config.root;
    let writer = Writer::begin(root, "apply --pending")?;
    let stderr = writer.recovered.clone();
    let all = state::generations(root)?;
    let work = pending::changes(root, &all, state::read_pending(root)?.map(|p| p.generation))?;
    if work.changes.is_empty() {
        let doc = pending_document(None, &[], nothing_to_do(&work));
        return Ok(Output {
            code: 0,
            stdout: super::render_doc(config, &doc, pending_text),
            stderr,
        });
    }
    let number = writer.next_generation()?;
    let mut generation = Generation::new(number, "apply-pending", None, work.changes.clone());
    generation.pending = work.still.clone();
    // So that status still reads a later rise above a min as in sync, not drift.
    generation.bounds = work.held();
    writer.run(&generation)?;
    let summary = applied(number, &work, generation.bounds.len());
    let doc = pending_document(Some(number), &work.changes, summary);
    Ok(Output {
        code: 0,
        stdout: super::render_doc(config, &doc, pending_text),
        stderr,
    })
}

/// The keys still waiting for their module, as one list.
fn waiting(still: &[PendingKey]) -> String {
    still
        .iter()
        .map(|p| format!("{} (module {})", p.key, p.module))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why `apply --pending` changed nothing.
fn nothing_to_do(work: &pending::Work) -> String {
    if work.pending.is_empty() && work.bounds.is_empty() {
        "nothing to do: no pending keys".to_string()
    } else if work.pending.is_empty() {
        "nothing to do: the min/max keys hold their bounds".to_string()
    } else if work.still.is_empty() {
        "nothing to do: the pending keys already hold their values".to_string()
    } else {
        format!("nothing to do: still pending: {}", waiting(&work.still))
    }
}

/// What `apply --pending` set as generation `number`: the count of pending keys set and of
/// keys brought back to their bound, and the keys still waiting.
fn applied(number: u64, work: &pending::Work, held: usize) -> String {
    let set = work.changes.len() - held;
    let mut line = format!("applied generation {number}: ");
    if set > 0 || held == 0 {
        let _ = write!(
            line,
            "{set} pending key{} set",
            if set == 1 { "" } else { "s" }
        );
    }
    if held > 0 {
        let _ = write!(
            line,
            "{}{held} key{} brought back to its min/max bound",
            if set > 0 { ", " } else { "" },
            if held == 1 { "" } else { "s" }
        );
    }
    if !work.still.is_empty() {
        let _ = write!(line, "; still pending: {}", waiting(&work.still));
    }
    line
}

/// `apply --pending`'s document: the apply document with no profile (it holds what earlier
/// generations recorded).
fn pending_document(
    number: Option<u64>,
    changes: &[Change],
    summary: String,
) -> crate::render::json::ApplyResult {
    use crate::render::json;
    let (keys, files) = json::split_changes(changes, false);
    json::ApplyResult {
        schema: json::Version,
        command: "apply",
        exit_code: 0,
        exit_meaning: json::exit_meaning(0),
        dry_run: false,
        changed: number.is_some(),
        outcome: if number.is_some() {
            json::ApplyOutcome::Applied
        } else {
            json::ApplyOutcome::Unchanged
        },
        profile: None,
        generation: number,
        keys,
        files,
        confirm: None,
        no_persist: false,
        warnings: Vec::new(),
        verify: None,
        summary,
    }
}

/// The text of `apply --pending`'s document: a line per key set, then its summary.
fn pending_text(doc: &crate::render::json::ApplyResult) -> String {
    let mut out = String::new();
    for k in &doc.keys {
        let _ = writeln!(out, "set {} = {}", k.key, k.after);
    }
    out + &doc.summary + "\n"
}

fn pair(p: (u64, u64)) -> String {
    Nofile {
        soft: p.0,
        hard: p.1,
    }
    .to_string()
}

/// What it takes for the changed limits to reach new processes ("" when no limit changed).
#[must_use]
pub fn reach_hints(plan: &Plan) -> String {
    let mut out = String::new();
    let units: Vec<&str> = plan
        .services
        .iter()
        .filter(|r| r.action == Action::Set)
        .map(|r| r.unit.as_str())
        .collect();
    if !units.is_empty() {
        let _ = writeln!(
            out,
            "new LimitNOFILE takes effect after `systemctl daemon-reload` and a restart of {}",
            units.join(", ")
        );
    }
    if plan.systemd.iter().any(|r| r.action == Action::Set) {
        let _ = writeln!(
            out,
            "new DefaultLimitNOFILE takes effect after `systemctl daemon-reexec` (or a reboot) \
             and a restart of each service that does not set LimitNOFILE"
        );
    }
    if plan.limits.iter().any(|r| r.action == Action::Set) {
        let _ = writeln!(
            out,
            "new limits.conf values reach new logins (pam_limits), not running sessions"
        );
    }
    out
}

/// The listening processes that run with less than a fresh start would get, as a section of
/// text ("" when there are none).
pub fn old_limits_section(root: &Root) -> Result<String> {
    Ok(old_limits_text(root, &old_limits(root)?))
}

/// The listening processes that run with less than a fresh start would get: one scan of the
/// processes, which `status` shares between its JSON and its text.
pub fn old_limits(root: &Root) -> Result<Vec<processes::Stale>> {
    let live = LiveState::read(root, &Profile::default())?;
    processes::stale(root, &live)
}

/// `old_limits_section` of a list `old_limits` made.
pub fn old_limits_text(root: &Root, stale: &[processes::Stale]) -> String {
    if stale.is_empty() {
        // Other users' /proc/PID/fd are closed to a non-root reader: say the list is partial.
        return if !root.is_real() || rustix::process::geteuid().is_root() {
            String::new()
        } else {
            "
(processes with old open-files limits: only your own are visible; run as root              to see all)
"
                .to_string()
        };
    }
    let mut out = String::from("\nstill running with old open-files limits (soft:hard):\n");
    for s in stale {
        let p = &s.process;
        let ports: Vec<String> = p.ports.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "  pid {} {}{} port {}: has {}, a fresh start gets {} ({}); needs {}",
            p.pid,
            one_line(&p.comm),
            p.unit
                .as_ref()
                .map_or_else(String::new, |u| format!(" ({})", one_line(u))),
            ports.join(","),
            pair(s.now),
            pair(s.fresh.nofile),
            one_line(&s.fresh.source),
            one_line(&s.fresh.needs),
        );
    }
    let _ = writeln!(
        out,
        "  (`netprofile apply PROFILE --running NAME` raises a running process now, within \
         what the kernel allows)"
    );
    out
}

/// The keys still pending, and whether their module has appeared ("" when none).
pub fn pending_section(root: &Root) -> Result<String> {
    let pending = current_pending(&state::generations(root)?);
    if pending.is_empty() {
        return Ok(String::new());
    }
    let mut out = String::from("\npending keys (their module was not loaded at apply):\n");
    for p in &pending {
        let key = KeyName::parse(&p.key).map_err(Error::State)?;
        let state = if live::read_sysctl_raw(root, &key)?.is_some() {
            "module loaded now: run `netprofile apply --pending`".to_string()
        } else {
            format!("waiting for module {}", one_line(&p.module))
        };
        let _ = writeln!(out, "  {} = {}: {state}", one_line(&p.key), value(&p.value));
    }
    Ok(out)
}

/// `status --json`'s `processes`: keys waiting for a module, and the listening processes that
/// still run with older open-files limits than a fresh start would get.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct StatusProcesses {
    pub pending_keys: Vec<PendingKeyRow>,
    pub old_limits: Vec<OldLimits>,
}

#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct PendingKeyRow {
    pub key: String,
    pub value: String,
    pub module: String,
    /// The key exists now: `apply --pending` would set it.
    pub module_loaded: bool,
}

#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct OldLimits {
    pub pid: u32,
    pub comm: String,
    pub unit: Option<String>,
    pub ports: Vec<u16>,
    /// Its open-files limit now.
    pub nofile: SoftHard,
    /// What a fresh start would get, from where, and what it takes (a restart, a new login).
    pub fresh_start: SoftHard,
    pub source: String,
    pub needs: String,
}

#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct SoftHard {
    pub soft: u64,
    pub hard: u64,
}

/// The status sections as a document: pending keys and the listening processes with old limits.
pub fn status_processes(root: &Root, stale: &[processes::Stale]) -> Result<StatusProcesses> {
    let mut pending_keys = Vec::new();
    for p in current_pending(&state::generations(root)?) {
        let key = KeyName::parse(&p.key).map_err(Error::State)?;
        pending_keys.push(PendingKeyRow {
            module_loaded: live::read_sysctl_raw(root, &key)?.is_some(),
            key: p.key,
            value: p.value,
            module: p.module,
        });
    }
    let old_limits = stale
        .iter()
        .map(|s| OldLimits {
            pid: s.process.pid,
            comm: s.process.comm.clone(),
            unit: s.process.unit.clone(),
            ports: s.process.ports.clone(),
            nofile: SoftHard {
                soft: s.now.0,
                hard: s.now.1,
            },
            fresh_start: SoftHard {
                soft: s.fresh.nofile.0,
                hard: s.fresh.nofile.1,
            },
            source: s.fresh.source.clone(),
            needs: s.fresh.needs.clone(),
        })
        .collect();
    Ok(StatusProcesses {
        pending_keys,
        old_limits,
    })
}
