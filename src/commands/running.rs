//! What reaches processes and what comes later: `apply --running PATTERN` (prlimit on running
//! processes, as changes of the apply's transaction), `apply --pending` (keys whose module has
//! loaded since, and the `min`/`max` keys held at boot by netprofile.service), and the sections `apply` and `status` end with: processes that still run with
//! old limits, and keys still pending. The transaction itself lives in transaction/; this file
//! decides which changes to make and how to report them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::cli::Config;
use crate::commands::Output;
use crate::error::{Error, Result};
use crate::plan::{Action, Plan};
use crate::profile::limit::{Domain, Item, LimitValue};
use crate::profile::{Profile, keys::KeyName};
use crate::system::processes::{self, Process};
use crate::system::root::Root;
use crate::system::{self as live, LiveState};
use crate::transaction::state::{self, Change, Generation, Nofile, Outcome, PendingKey};
use crate::transaction::writer::Writer;

/// What the profile gives a process: its service's limit, the manager's default for any other
/// service, else the profile's `[[limits]]` nofile for its user or `*` (pam_limits: `*` does not
/// apply to root). Halves the profile leaves open are `None`.
fn profile_gives(
    profile: &Profile,
    process: &Process,
    live: &LiveState,
) -> Option<(Option<u64>, Option<u64>)> {
    if let Some(unit) = &process.unit {
        let pair = profile
            .services
            .get(unit)
            .map(|s| s.nofile)
            .or_else(|| profile.systemd_nofile.as_ref().map(|(p, _)| *p))?;
        return Some((Some(pair.soft), Some(pair.hard)));
    }
    let user = process.uid.and_then(|uid| {
        live.users
            .iter()
            .find(|(_, (u, _))| *u == uid)
            .map(|(n, _)| n.clone())
    });
    let nofile = |d: &dyn Fn(&Domain) -> bool| {
        profile
            .limits
            .iter()
            .find(|l| l.item == Item::Nofile && d(&l.domain))
    };
    let limit = nofile(&|d| matches!(d, Domain::User(n) if Some(n) == user.as_ref()))
        .or_else(|| nofile(&|d| *d == Domain::All).filter(|_| process.uid != Some(0)))?;
    let num = |v: Option<LimitValue>| match v? {
        LimitValue::Num(n) => u64::try_from(n).ok(),
        LimitValue::Unlimited => Some(u64::MAX),
    };
    Some((num(limit.soft), num(limit.hard)))
}

fn matches(process: &Process, pattern: &str) -> bool {
    process.comm == pattern
        || process.unit.as_deref() == Some(pattern)
        || process.unit.as_deref() == Some(&format!("{pattern}.service"))
}

/// The prlimit changes for `apply --running`: each matching process raised (never lowered) to
/// what the profile gives it. Refuses, before anything changes, a pattern that matches nothing,
/// a process the profile gives no limit, and a hard limit above fs.nr_open.
pub(super) fn running_changes(
    root: &Root,
    profile: &Profile,
    live: &LiveState,
    plan: &Plan,
    patterns: &[String],
) -> Result<Vec<Change>> {
    if patterns.is_empty() {
        return Ok(Vec::new());
    }
    let all = processes::all(root);
    // prlimit acts on the running kernel; on the real root this apply may raise fs.nr_open
    // first (keys are written before processes).
    let planned_nr_open = plan
        .sysctl
        .iter()
        .find(|r| r.key.as_str() == "fs.nr_open" && r.action == Action::Set)
        .and_then(|r| r.target.as_deref()?.parse::<u64>().ok())
        .filter(|_| root.is_real());
    let nr_open = processes::kernel_nr_open().max(planned_nr_open);
    let mut changes = Vec::new();
    for pattern in patterns {
        let matched: Vec<&Process> = all.iter().filter(|p| matches(p, pattern)).collect();
        if matched.is_empty() {
            return Err(Error::Usage(format!(
                "--running {pattern}: no process under {} is named {pattern:?} or runs in \
                 {pattern}.service; nothing was changed",
                root.path("proc").display()
            )));
        }
        for process in matched {
            let label = format!(
                "--running {pattern}: pid {} ({})",
                process.pid, process.comm
            );
            let Some((want_soft, want_hard)) = profile_gives(profile, process, live) else {
                return Err(Error::Usage(format!(
                    "{label}: the profile gives it no open-files limit (add \
                     [systemd.services.\"NAME.service\"] limit_nofile, [systemd] \
                     default_limit_nofile or a [[limits]] nofile entry); nothing was changed"
                )));
            };
            let Some((comm, (soft, hard))) = processes::kernel_nofile(process.pid) else {
                return Err(Error::Usage(format!(
                    "{label}: no such running process; nothing was changed"
                )));
            };
            if comm != process.comm {
                return Err(Error::Usage(format!(
                    "{label}: the running pid {} is {comm:?}, not {:?}; nothing was changed",
                    process.pid, process.comm
                )));
            }
            let after = Nofile {
                soft: soft.max(want_soft.unwrap_or(0)),
                hard: hard.max(want_hard.unwrap_or(0)),
            };
            let after = Nofile {
                hard: after.hard.max(after.soft),
                ..after
            };
            if after.hard > hard
                && let Some(nr_open) = nr_open
                && after.hard > nr_open
            {
                return Err(Error::Usage(format!(
                    "{label}: hard open-files limit {} is above fs.nr_open {nr_open} of the \
                     running kernel, which prlimit refuses. Lower the profile's value or raise \
                     fs.nr_open; nothing was changed",
                    after.hard
                )));
            }
            let before = Nofile { soft, hard };
            if after != before {
                // Without its start time the record could not tell this process from a later
                // one with the same pid and name, so rollback could not be made safe.
                let Some(started) = processes::kernel_started(process.pid) else {
                    return Err(Error::Usage(format!(
                        "{label}: its start time cannot be read from /proc/{}/stat, so a \
                         rollback could not tell it from another process with the same pid; \
                         nothing was changed",
                        process.pid
                    )));
                };
                changes.push(Change::Rlimit {
                    pid: process.pid,
                    comm,
                    started: Some(started),
                    before,
                    after,
                });
            }
        }
    }
    Ok(changes)
}

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

/// The keys pending now: those of the last apply still in effect (not rolled back or reverted).
#[must_use]
pub fn current_pending(all: &[Generation]) -> Vec<PendingKey> {
    let mut stack: Vec<(u64, &[PendingKey])> = Vec::new();
    for g in all {
        if !matches!(g.outcome, Outcome::Applied | Outcome::Pending) {
            continue;
        }
        match g.op.as_str() {
            "apply" | "apply-pending" => stack.push((g.number, &g.pending)),
            "rollback" | "revert" => {
                if let Some(target) = g.rollback_of {
                    stack.retain(|(n, _)| *n < target);
                }
            }
            _ => {}
        }
    }
    stack.last().map(|(_, p)| p.to_vec()).unwrap_or_default()
}

/// The raise-only and lower-only keys to hold now (`>= N`, `<= N`): those of the last apply in
/// force that was persisted (a `--no-persist` apply does not outlive a reboot; rollback takes
/// its generation out of force, and the bounds of the apply before it hold again).
#[must_use]
pub fn held_bounds(all: &[Generation], pending: Option<u64>) -> BTreeMap<String, String> {
    let effective = state::in_effect_with(all, pending);
    all.iter()
        .rev()
        .find(|g| effective.contains(&g.number) && g.op == "apply" && !g.no_persist)
        .map(|g| g.bounds.clone())
        .unwrap_or_default()
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
