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
use crate::system::processes;
use crate::system::root::Root;
use crate::system::{self as live, LiveState};
use crate::transaction::replay::{current_pending, held_bounds};
use crate::transaction::state::{self, Change, Generation, Nofile, PendingKey};
use crate::transaction::writer::Writer;

/// What `apply --dry-run --running` would do to processes ("" when nothing).
#[must_use]
pub fn would_raise(changes: &[Change]) -> String {
    let mut out = String::new();
    for change in changes {
        if let Change::Rlimit { before, after, .. } = change {
            let _ = writeln!(out, "would set {}: {before} -> {after}", change.label());
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

/// `>= N` or `<= N`: the value to move `now` to, when it is on the wrong side of the bound.
fn past_bound(bound: &str, now: &str) -> Option<String> {
    state::against_bound(bound, now)?
        .err()
        .map(|n| n.to_string())
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
    let pending = current_pending(&all);
    let bounds = held_bounds(&all, state::read_pending(root)?.map(|p| p.generation));
    let mut changes = Vec::new();
    let mut still = Vec::new();
    for p in &pending {
        let key = KeyName::parse(&p.key).map_err(Error::State)?;
        match live::read_sysctl_raw(root, &key)? {
            None => still.push(p.clone()),
            // A pending min/max is held as a bound below, never set to its exact figure.
            Some(_) if bounds.contains_key(&p.key) => {}
            Some(now) if crate::profile::value::same(&p.key, &now, &p.value) => {}
            Some(now) => changes.push(Change::Sysctl {
                key: p.key.clone(),
                before: now,
                after: p.value.clone(),
            }),
        }
    }
    for (name, bound) in &bounds {
        let key = KeyName::parse(name).map_err(Error::State)?;
        // Absent (a module key not loaded yet): listed as still pending above, if it is one.
        let Some(now) = live::read_sysctl_raw(root, &key)? else {
            continue;
        };
        if let Some(after) = past_bound(bound, &now) {
            changes.push(Change::Sysctl {
                key: name.clone(),
                before: now,
                after,
            });
        }
    }
    let waiting = |still: &[PendingKey]| {
        still
            .iter()
            .map(|p| format!("{} (module {})", p.key, p.module))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if changes.is_empty() {
        let stdout = if pending.is_empty() && bounds.is_empty() {
            "nothing to do: no pending keys\n".to_string()
        } else if pending.is_empty() {
            "nothing to do: the min/max keys hold their bounds\n".to_string()
        } else if still.is_empty() {
            "nothing to do: the pending keys already hold their values\n".to_string()
        } else {
            format!("nothing to do: still pending: {}\n", waiting(&still))
        };
        return Ok(Output {
            code: 0,
            stdout,
            stderr,
        });
    }
    let number = writer.next_generation()?;
    let mut generation = Generation::new(number, "apply-pending", None, changes.clone());
    generation.pending = still.clone();
    // So that status still reads a later rise above a min as in sync, not drift.
    generation.bounds = changes
        .iter()
        .filter_map(|c| match c {
            Change::Sysctl { key, .. } => Some((key.clone(), bounds.get(key)?.clone())),
            _ => None,
        })
        .collect();
    writer.run(&generation)?;
    let mut stdout = String::new();
    for change in &changes {
        if let Change::Sysctl { key, after, .. } = change {
            let _ = writeln!(stdout, "set {key} = {after}");
        }
    }
    let held = generation.bounds.len();
    let set = changes.len() - held;
    let _ = write!(stdout, "applied generation {number}: ");
    if set > 0 || held == 0 {
        let _ = write!(
            stdout,
            "{set} pending key{} set",
            if set == 1 { "" } else { "s" }
        );
    }
    if held > 0 {
        let _ = write!(
            stdout,
            "{}{held} key{} brought back to its min/max bound",
            if set > 0 { ", " } else { "" },
            if held == 1 { "" } else { "s" }
        );
    }
    if !still.is_empty() {
        let _ = write!(stdout, "; still pending: {}", waiting(&still));
    }
    stdout.push('\n');
    Ok(Output {
        code: 0,
        stdout,
        stderr,
    })
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
    let live = LiveState::read(root, &Profile::default())?;
    let stale = processes::stale(root, &live)?;
    if stale.is_empty() {
        // Other users' /proc/PID/fd are closed to a non-root reader: say the list is partial.
        return Ok(if !root.is_real() || rustix::process::geteuid().is_root() {
            String::new()
        } else {
            "
(processes with old open-files limits: only your own are visible; run as root              to see all)
"
                .to_string()
        });
    }
    let mut out = String::from("\nstill running with old open-files limits (soft:hard):\n");
    for s in &stale {
        let p = &s.process;
        let ports: Vec<String> = p.ports.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "  pid {} {}{} port {}: has {}, a fresh start gets {} ({}); needs {}",
            p.pid,
            p.comm,
            p.unit
                .as_ref()
                .map_or_else(String::new, |u| format!(" ({u})")),
            ports.join(","),
            pair(s.now),
            pair(s.fresh.nofile),
            s.fresh.source,
            s.fresh.needs,
        );
    }
    let _ = writeln!(
        out,
        "  (`netprofile apply PROFILE --running NAME` raises a running process now, within \
         what the kernel allows)"
    );
    Ok(out)
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
            format!("waiting for module {}", p.module)
        };
        let _ = writeln!(out, "  {} = {}: {state}", p.key, p.value);
    }
    Ok(out)
}

/// The status sections as JSON: pending keys and the listening processes with old limits.
pub fn status_json(root: &Root) -> Result<serde_json::Value> {
    let mut pending = Vec::new();
    for p in current_pending(&state::generations(root)?) {
        let key = KeyName::parse(&p.key).map_err(Error::State)?;
        let present = live::read_sysctl_raw(root, &key)?.is_some();
        pending.push(serde_json::json!({
            "key": p.key, "value": p.value, "module": p.module, "module_loaded": present,
        }));
    }
    let live = LiveState::read(root, &Profile::default())?;
    let old: Vec<serde_json::Value> = processes::stale(root, &live)?
        .iter()
        .map(|s| {
            serde_json::json!({
                "pid": s.process.pid,
                "comm": s.process.comm,
                "unit": s.process.unit,
                "ports": s.process.ports,
                "nofile": { "soft": s.now.0, "hard": s.now.1 },
                "fresh_start": { "soft": s.fresh.nofile.0, "hard": s.fresh.nofile.1 },
                "source": s.fresh.source,
                "needs": s.fresh.needs,
            })
        })
        .collect();
    Ok(serde_json::json!({ "pending_keys": pending, "old_limits": old }))
}
