//! What a command finds left behind, and the refresh of a change's "before" that every revert
//! uses.
//!
//! Writers (`apply`, `confirm`, `rollback`, the `--confirm` watcher) call `recover_locked`
//! while holding the writer lock: it restores an interrupted transaction, reverts a `--confirm`
//! past its deadline, removes temp files of killed runs, and says what it did; then the
//! command does its own job. Read-only commands never take the lock: they call `report`,
//! which only says what a writer will restore, so monitoring never sees a false "locked".

use crate::error::{Error, Result};
use crate::profile::keys::KeyName;
use crate::system::root::Root;
use crate::system::{self as live};
use crate::transaction;
use crate::transaction::state::{self, Change, Generation, Lock, Outcome};

/// Folders where a killed run can leave `.NAME.netprofile-PID` temp files.
const TEMP_DIRS: [&str; 6] = [
    "etc/sysctl.d",
    Root::LIMITS_D,
    Root::SYSTEMD_CONF_D,
    Root::STATE_DIR,
    state::GENERATIONS,
    Root::RUN_DIR,
];

/// For read-only commands: what an interrupted run left, without changing anything.
#[must_use]
pub fn report(root: &Root) -> Vec<String> {
    let mut out = Vec::new();
    if root.path(state::JOURNAL).exists() {
        out.push(format!(
            "warning: an interrupted netprofile run left {}; the next `netprofile apply`, \
             `confirm` or `rollback` (as root) restores the state before it",
            Root::display(state::JOURNAL)
        ));
    }
    match state::read_pending(root) {
        Ok(Some(p)) if state::epoch_millis() > p.deadline_ms + 2000 => out.push(format!(
            "warning: generation {} was not confirmed by its deadline and its automatic revert \
             has not run yet; the next `netprofile apply`, `confirm` or `rollback` (as root) \
             reverts it",
            p.generation
        )),
        Ok(_) => {}
        // An unprivileged reader (monitoring) cannot see root's 0700 state: nothing to say.
        Err(Error::Read { source, .. })
            if source.kind() == std::io::ErrorKind::PermissionDenied => {}
        Err(e) => out.push(format!("warning: {e}")),
    }
    out
}

/// For writers, with `_lock` held: restores an open journal, reverts an expired `--confirm`,
/// removes temp files of killed runs. Returns messages for stderr.
pub fn recover_locked(root: &Root, _lock: &Lock) -> Result<Vec<String>> {
    let mut messages = Vec::new();
    if let Some(text) = transaction::recover(root)? {
        messages.push(format!("netprofile: {text}"));
    }
    let record = state::read_pending(root)?;
    // A `--confirm` generation a reboot ended (its record in run/ is gone): recorded as dropped.
    let all = state::generations(root)?;
    for n in state::dropped(&all, record.as_ref().map(|p| p.generation)) {
        if let Some(mut g) = all.iter().find(|g| g.number == n).cloned() {
            g.outcome = Outcome::Dropped;
            g.message = Some(
                "dropped: a reboot ended it before `netprofile confirm`; nothing of it is in \
                 place"
                    .into(),
            );
            state::write_generation(root, &g)?;
            messages.push(format!(
                "netprofile: generation {n} (apply --confirm) was dropped by a reboot before \
                 `netprofile confirm`; nothing of it is in place"
            ));
        }
    }
    let expired = record.is_some_and(|p| state::epoch_millis() >= p.deadline_ms);
    if expired && let Some(text) = revert_pending(root)? {
        messages.push(format!("netprofile: {text}"));
    }
    let mut removed = 0;
    for dir in TEMP_DIRS {
        removed += transaction::atomic::remove_leftovers(root, dir)?;
    }
    if removed > 0 {
        messages.push(format!(
            "netprofile: removed {removed} temporary file{} left by an interrupted run",
            if removed == 1 { "" } else { "s" }
        ));
    }
    Ok(messages)
}

/// Reverts the pending `--confirm` generation, if there still is one. Caller holds the lock.
/// A pending generation that was confirmed (a `confirm` generation names it), never committed
/// (its journal was restored) or is no longer in effect only has its record cleared.
pub(super) fn revert_pending(root: &Root) -> Result<Option<String>> {
    let Some(pending) = state::read_pending(root)? else {
        return Ok(None);
    };
    let all = state::generations(root)?;
    let Some(mut original) = all.iter().find(|g| g.number == pending.generation).cloned() else {
        state::clear_pending(root)?;
        return Ok(None);
    };
    if all.iter().any(|g| g.confirms == Some(pending.generation)) {
        // `confirm` committed but was stopped before it cleared the pending record.
        if original.outcome == Outcome::Pending {
            original.outcome = Outcome::Applied;
            let _ = state::write_generation(root, &original);
        }
        state::clear_pending(root)?;
        return Ok(None);
    }
    if !state::in_effect(&all).contains(&original.number) {
        state::clear_pending(root)?;
        return Ok(None);
    }
    let mut changes = Vec::new();
    for change in original.changes.iter().rev() {
        let fresh = refresh_before(root, &change.inverse())?;
        if !is_noop(&fresh) {
            changes.push(fresh);
        }
    }
    let number = state::next_generation(root)?;
    let mut revert = Generation::new(number, "revert", original.profile.clone(), changes);
    revert.rollback_of = Some(original.number);
    revert.message = Some("--confirm ran out without `netprofile confirm`".into());
    transaction::run(root, &revert)?;
    original.outcome = Outcome::Reverted;
    let _ = state::write_generation(root, &original);
    state::clear_pending(root)?;
    Ok(Some(format!(
        "generation {} was not confirmed in time; reverted as generation {number}",
        original.number
    )))
}

/// Whether a change would change nothing (the system already holds its `after`).
pub(super) fn is_noop(change: &Change) -> bool {
    match change {
        Change::Sysctl { key, before, after } => crate::profile::value::same(key, before, after),
        Change::File { before, after, .. } => before == after,
        Change::Rlimit { before, after, .. } => before == after,
    }
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
