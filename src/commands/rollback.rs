//! `netprofile rollback [GEN]`: back to the state before a generation, as a transaction of its own.

use super::apply::summary;
use super::recover::refresh_before;
use super::require_privileges;
use crate::cli::Config;
use crate::commands::Output;
use crate::error::{Error, Result};
use crate::transaction;
use crate::transaction::state::{self, Change, Generation, Lock, Outcome};

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
            Change::Sysctl { key, before, after } => {
                crate::profile::value::same(key, before, after)
            }
            Change::File { before, after, .. } => before == after,
            Change::Rlimit { before, after, .. } => before == after,
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
