//! What every command runs first: restores an interrupted transaction and reverts an expired
//! `--confirm` whose watcher is gone; and the refresh of a change's "before" that every revert uses.

use super::can_write;
use crate::error::{Error, Result};
use crate::profile::keys::KeyName;
use crate::system::root::Root;
use crate::system::{self as live};
use crate::transaction;
use crate::transaction::state::{self, Change, Generation, Lock, Outcome};

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

/// Reverts the pending `--confirm` generation, if there still is one. Caller holds the lock.
pub(super) fn revert_pending(root: &Root) -> Result<Option<String>> {
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
pub(super) fn refresh_before(root: &Root, change: &Change) -> Result<Change> {
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
        Change::Rlimit {
            pid,
            comm,
            started,
            after,
            ..
        } => {
            // A process that exited (or whose pid now names another) has nothing to restore:
            // before == after makes the change a no-op that rollback drops.
            let now = crate::system::processes::kernel_nofile(*pid)
                .filter(|_| crate::system::processes::same_process(*pid, comm, *started))
                .map_or(*after, |(_, (soft, hard))| state::Nofile { soft, hard });
            Change::Rlimit {
                pid: *pid,
                comm: comm.clone(),
                started: *started,
                before: now,
                after: *after,
            }
        }
    })
}
