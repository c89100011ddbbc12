//! The replay of generations: what is in force after a history of applies, confirms,
//! rollbacks and reverts (the generations in force, the keys, bounds and files netprofile last
//! set, the keys still pending, the overrides accepted). Built on `state::in_effect_with`, so
//! status, history, rollback and apply --pending agree. Reads generations; never writes.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::plan::Override;
use crate::system::root::Root;
use crate::transaction::state::{self, Change, Generation, Outcome, PendingKey};

/// The generations whose changes are still in force, oldest first: the transaction's own rule
/// (`state::in_effect_with`), so status, history and rollback agree. A `--confirm` apply that
/// is pending counts only while its record is there (after a reboot it is not in force).
#[must_use]
pub fn in_force(all: &[Generation], pending: Option<u64>) -> Vec<&Generation> {
    let effective = state::in_effect_with(all, pending);
    all.iter()
        .filter(|g| effective.contains(&g.number))
        .collect()
}

/// What netprofile last set, per key and per file, from the generations in force.
#[derive(Debug, Default)]
pub struct Managed {
    pub sysctl: BTreeMap<String, String>,
    /// For a raise-only (or lower-only) key, the bound it was applied with (`>= 4096`).
    pub bounds: BTreeMap<String, String>,
    /// Root-relative path -> the content netprofile last wrote (files it removed are dropped).
    pub files: BTreeMap<String, String>,
}

#[must_use]
pub fn managed(all: &[Generation], pending: Option<u64>) -> Managed {
    let mut m = Managed::default();
    for g in in_force(all, pending) {
        for change in &g.changes {
            match change {
                Change::Sysctl { key, after, .. } => {
                    m.sysctl.insert(key.clone(), after.clone());
                    match g.bounds.get(key) {
                        Some(bound) => m.bounds.insert(key.clone(), bound.clone()),
                        None => m.bounds.remove(key),
                    };
                }
                Change::File { path, after, .. } => match after {
                    Some(text) => {
                        m.files.insert(path.clone(), text.clone());
                    }
                    None => {
                        m.files.remove(path);
                    }
                },
                // A running process's limit is not a setting that can drift.
                Change::Rlimit { .. } => {}
            }
        }
    }
    m
}

/// The `--confirm` generations a reboot dropped (recorded so or not yet) after the last
/// generation a user's command made that was not dropped: what the user last did and lost.
pub fn recently_dropped(all: &[Generation], pending: Option<u64>) -> Vec<u64> {
    let shown = state::as_shown(all, pending);
    let since = shown
        .iter()
        .filter(|g| g.op != "apply-pending" && g.outcome != state::Outcome::Dropped)
        .map(|g| g.number)
        .max()
        .unwrap_or(0);
    shown
        .iter()
        .filter(|g| g.number > since && g.outcome == state::Outcome::Dropped)
        .map(|g| g.number)
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

/// The overrides accepted by the last apply still in force (applied or pending).
pub fn accepted_overrides(root: &Root) -> Result<Vec<Override>> {
    let generations = state::generations(root)?;
    let last = generations
        .iter()
        .rev()
        .find(|g| g.op == "apply" && matches!(g.outcome, Outcome::Applied | Outcome::Pending));
    Ok(last.map(|g| g.overridden.clone()).unwrap_or_default())
}

/// Whether `now` meets a recorded bound (`>= 4096`, `<= 30`): a later rise above a min is not
/// drift.
pub fn within(bound: Option<&String>, now: &str) -> bool {
    bound.and_then(|b| state::against_bound(b, now)) == Some(Ok(()))
}

/// The generation `netprofile rollback [GEN]` undoes, of those in `effective`: GEN, or the
/// apply a `confirm` GEN kept; by default the user's last change (`None` when nothing is in
/// effect). A GEN that does not exist or is not in effect is refused.
pub fn rollback_target(
    all: &[Generation],
    effective: &[u64],
    target: Option<u64>,
) -> Result<Option<u64>> {
    // A `confirm` generation stands for the apply it kept.
    let owner = |g: &Generation| g.confirms.unwrap_or(g.number);
    let Some(n) = target else {
        // The user's last change, not the boot unit's: an `apply-pending` generation (what
        // netprofile.service did at boot) holds the apply before it and goes with it.
        return Ok(all
            .iter()
            .rev()
            .filter(|g| effective.contains(&g.number) && g.op != "apply-pending")
            .map(owner)
            .next()
            .or_else(|| {
                all.iter()
                    .rev()
                    .find(|g| effective.contains(&g.number))
                    .map(owner)
            }));
    };
    let g = all.iter().find(|g| g.number == n).ok_or_else(|| {
        Error::Usage(format!(
            "there is no generation {n}; `netprofile history` lists them"
        ))
    })?;
    let n = owner(g);
    if !effective.contains(&n) {
        return Err(Error::Usage(format!(
            "generation {n} is not in effect (it was reverted, rolled back, failed or \
             only restored something); `netprofile history` marks the generations in \
             effect. Nothing was changed"
        )));
    }
    Ok(Some(n))
}

/// The state before `target`: for each key or file touched by a generation in effect since,
/// the value it had before the first of them that touched it, in the order to restore.
#[must_use]
pub fn state_before(all: &[Generation], effective: &[u64], target: u64) -> Vec<Change> {
    let mut restore: Vec<Change> = Vec::new();
    for g in all
        .iter()
        .filter(|g| g.number >= target && effective.contains(&g.number))
    {
        for change in &g.changes {
            if !restore.iter().any(|r| r.label() == change.label()) {
                restore.push(change.inverse());
            }
        }
    }
    restore.reverse();
    restore
}
