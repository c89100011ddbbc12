//! The prlimit changes of `apply --running PATTERN`: each matching running process raised
//! (never lowered) to what the profile gives it, as changes of the apply's transaction (undone
//! like any other change, see `set_nofile` in mod.rs). Reads /proc through system/processes;
//! never writes.

use crate::error::{Error, Result};
use crate::plan::{Action, Plan};
use crate::profile::Profile;
use crate::profile::limit::{Domain, Item, LimitValue};
use crate::system::LiveState;
use crate::system::processes::{self, Process};
use crate::system::root::Root;
use crate::transaction::state::{Change, Nofile};

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
pub fn running_changes(
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
            changes.extend(process_change(profile, live, pattern, process, nr_open)?);
        }
    }
    Ok(changes)
}

/// One matching process: the change that raises it to what the profile gives it (`None` when
/// it already has that), or the refusal that stops the apply before anything changes.
fn process_change(
    profile: &Profile,
    live: &LiveState,
    pattern: &str,
    process: &Process,
    nr_open: Option<u64>,
) -> Result<Option<Change>> {
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
        return Ok(Some(Change::Rlimit {
            pid: process.pid,
            comm,
            started: Some(started),
            before,
            after,
        }));
    }
    Ok(None)
}
