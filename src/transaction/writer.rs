//! The one writer entry. Every command that changes the machine (`apply` and its `--pending`
//! and `--running` variants, `confirm`, `rollback`, the `--confirm` watcher) starts with
//! `Writer::begin`, and the only way to run a transaction is `Writer::run`: it is true by
//! construction, because `state::Lock::take` and the transaction steps in transaction/mod.rs
//! are private to this folder, and a `Writer` can only be made here.
//!
//! `begin` checks privileges, takes the trusted writer lock (state.rs), then recovers: it
//! finishes or undoes an interrupted transaction (an open journal; one that cannot be undone
//! is moved aside with exit 4 instead of blocking every later writer), reverts a `--confirm`
//! past its deadline, and removes temp files of killed runs. `run` then proves every change
//! undoable before the journal is written (names fit NAME_MAX and PATH_MAX; a key's current
//! value can be written back), and only then journals, changes with read-back, and commits.
//! This module decides nothing about *what* to change, except the inverse of what is recorded.

use std::time::{Duration, Instant};

use super::state::{self, Change, Generation, Lock, Outcome};
use crate::error::{Error, Result};
use crate::profile::keys::KeyName;
use crate::system::root::Root;
use crate::system::units::UNIT_DIRS;
use crate::system::{self as live};

/// Where netprofile writes a service's drop-in folder (`NAME.service.d`).
const UNIT_DIR: &str = UNIT_DIRS[0];

/// The longest file name and path the kernel takes (NAME_MAX, PATH_MAX less its NUL).
const NAME_MAX: usize = 255;
const PATH_MAX: usize = 4095;
/// The longest a temp file's name grows over its target's (`.NAME.netprofile-PID`).
const TEMP_EXTRA: usize = ".".len() + ".netprofile-".len() + 10;

/// How long the `--confirm` watcher waits for a writer lock held by another netprofile before
/// it gives up and leaves the revert to the next writer, with a message `status` shows.
pub const WATCHER_LOCK_WAIT: Duration = Duration::from_secs(300);

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

/// A writer holding the lock, after recovery. Dropping it releases the lock.
pub struct Writer<'r> {
    root: &'r Root,
    _lock: Lock,
    /// What recovery did, one line each, for stderr.
    pub recovered: Vec<String>,
}

impl<'r> Writer<'r> {
    /// Privileges, the trusted lock, then recovery: the start of every writing command.
    pub fn begin(root: &'r Root, what: &str) -> Result<Self> {
        require_privileges(root, what)?;
        let lock = Lock::take(root)?;
        Self::recovered(root, lock)
    }

    /// `begin` for the `--confirm` watcher: a lock held by another netprofile is waited for,
    /// up to `limit`; then it stops with an error (the next writer reverts instead).
    pub fn begin_waiting(root: &'r Root, what: &str, limit: Duration) -> Result<Self> {
        require_privileges(root, what)?;
        let end = Instant::now() + limit;
        let lock = loop {
            match Lock::take(root) {
                Ok(lock) => break lock,
                Err(Error::Locked { .. }) if Instant::now() < end => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(Error::Locked { message }) => {
                    return Err(Error::Locked {
                        message: format!(
                            "gave up after waiting {} s for the writer lock: {message}",
                            limit.as_secs()
                        ),
                    });
                }
                Err(e) => return Err(e),
            }
        };
        Self::recovered(root, lock)
    }

    fn recovered(root: &'r Root, lock: Lock) -> Result<Self> {
        let mut writer = Writer {
            root,
            _lock: lock,
            recovered: Vec::new(),
        };
        writer.recovered = writer.recover()?;
        Ok(writer)
    }

    #[must_use]
    pub fn root(&self) -> &Root {
        self.root
    }

    /// The number of the next generation (after recovery recorded its own).
    pub fn next_generation(&self) -> Result<u64> {
        state::next_generation(self.root)
    }

    /// Checks that every change can be undone, before anything is written: each file's path
    /// fits NAME_MAX and PATH_MAX (its temp file's too), and each key's current value is
    /// accepted by the kernel when written back (what undo writes). A change that could not be
    /// undone is refused as bad input (exit 2); nothing is changed.
    pub fn prove(&self, changes: &[Change]) -> Result<()> {
        for change in changes {
            match change {
                Change::File { path, .. } => prove_path(self.root, path)?,
                Change::Sysctl { key, before, .. } => {
                    // A regular file of a temporary root takes any text back: only the
                    // kernel can refuse, and there one write is the whole operation.
                    let name = KeyName::parse(key).map_err(Error::State)?;
                    if !super::atomic::sysctl_is_kernel(self.root, &Root::sysctl_rel(&name))? {
                        continue;
                    }
                    let rel = Root::sysctl_rel(&name);
                    if let Err(e) = super::atomic::write_sysctl(self.root, &rel, before) {
                        return Err(Error::Usage(format!(
                            "{key} cannot be undone: writing its current value back, as a \
                             rollback would, fails ({e}). netprofile changes nothing it cannot \
                             restore; leave {key} out of the profile (or set it by hand). \
                             Nothing was changed"
                        )));
                    }
                    let now = live::read_sysctl(self.root, &name)?.unwrap_or_default();
                    if !crate::profile::value::same(key, &now, before) {
                        // The kernel took its own value and now shows another: say so.
                        return Err(Error::RollbackFailed {
                            message: format!(
                                "{key} cannot be undone: the kernel took its current value \
                                 {before:?} back but now reads {now:?}. Nothing else was \
                                 changed; set {key} by hand and leave it out of the profile"
                            ),
                        });
                    }
                }
                // Lowering a limit back is always allowed; a process without a recorded start
                // time is never changed (see `running`).
                Change::Rlimit { .. } => {}
            }
        }
        Ok(())
    }

    /// Proves `generation.changes` undoable, then runs them as one transaction and records
    /// `generation` as its commit point (see `transaction::run`).
    pub fn run(&self, generation: &Generation) -> Result<()> {
        self.prove(&generation.changes)?;
        super::run(self.root, generation)
    }

    /// Records (or updates) a generation: bookkeeping after a commit, such as an outcome.
    pub fn record(&self, generation: &Generation) -> Result<()> {
        state::write_generation(self.root, generation)
    }

    /// Writes the pending `--confirm` record.
    pub fn write_pending(&self, pending: &state::Pending) -> Result<()> {
        state::write_pending(self.root, pending)
    }

    /// Removes the pending `--confirm` record (confirmed, reverted, rolled back or failed).
    pub fn clear_pending(&self) -> Result<()> {
        state::clear_pending(self.root)
    }

    /// Restores an open journal, reverts an expired `--confirm`, removes temp files of killed
    /// runs. Returns messages for stderr.
    fn recover(&self) -> Result<Vec<String>> {
        let root = self.root;
        let mut messages = Vec::new();
        if let Some(text) = super::recover(root)? {
            messages.push(format!("netprofile: {text}"));
        }
        let record = state::read_pending(root)?;
        // A `--confirm` generation a reboot ended (its record in run/ is gone): recorded as
        // dropped, so history and status never show it pending for ever.
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
        if expired && let Some(text) = self.revert_pending()? {
            messages.push(format!("netprofile: {text}"));
        }
        let mut removed = 0;
        for dir in temp_dirs(root) {
            removed += super::atomic::remove_leftovers(root, &dir)?;
        }
        if removed > 0 {
            messages.push(format!(
                "netprofile: removed {removed} temporary file{} left by an interrupted run",
                if removed == 1 { "" } else { "s" }
            ));
        }
        Ok(messages)
    }

    /// Reverts the pending `--confirm` generation, if there still is one. A pending generation
    /// that was confirmed (a `confirm` generation names it), never committed (its journal was
    /// restored) or is no longer in effect only has its record cleared.
    fn revert_pending(&self) -> Result<Option<String>> {
        let root = self.root;
        let Some(pending) = state::read_pending(root)? else {
            return Ok(None);
        };
        let all = state::generations(root)?;
        let Some(mut original) = all.iter().find(|g| g.number == pending.generation).cloned()
        else {
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
        let number = self.next_generation()?;
        let mut revert = Generation::new(number, "revert", original.profile.clone(), changes);
        revert.rollback_of = Some(original.number);
        revert.message = Some("--confirm ran out without `netprofile confirm`".into());
        // Not `run`: a revert restores what was there before, which the kernel held; proving
        // it would refuse to undo the very change a deadline must undo.
        super::run(root, &revert)?;
        original.outcome = Outcome::Reverted;
        let _ = state::write_generation(root, &original);
        state::clear_pending(root)?;
        Ok(Some(format!(
            "generation {} was not confirmed in time; reverted as generation {number}",
            original.number
        )))
    }
}

/// Folders where a killed run can leave `.NAME.netprofile-PID` temp files: every folder
/// netprofile writes, each service's drop-in folder included.
fn temp_dirs(root: &Root) -> Vec<String> {
    let mut dirs: Vec<String> = [
        crate::system::root::SYSCTL_DIRS[0],
        Root::LIMITS_D,
        Root::SYSTEMD_CONF_D,
        Root::STATE_DIR,
        state::GENERATIONS,
        Root::RUN_DIR,
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    let modules = Root::modules_dropin();
    dirs.extend(modules.rsplit_once('/').map(|(dir, _)| dir.to_string()));
    // Only real folders named NAME.service.d: a symlink is never entered.
    if let Ok(entries) = std::fs::read_dir(root.path(UNIT_DIR)) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".service.d") && entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(format!("{UNIT_DIR}/{name}"));
            }
        }
    }
    dirs
}

/// The part of `Writer::prove` that needs no write: every file's name and path fit, and no
/// file or folder on its way is a symlink. Plan-time callers run it before taking the lock.
pub fn prove_names<'c>(root: &Root, changes: impl IntoIterator<Item = &'c Change>) -> Result<()> {
    for change in changes {
        if let Change::File { path, .. } = change {
            super::atomic::refuse_symlinks(root, path)?;
            prove_path(root, path)?;
        }
    }
    Ok(())
}

/// Refuses a path whose name (or its temp file's) is over NAME_MAX, or whose full path is over
/// PATH_MAX: a journal naming it could never be undone.
fn prove_path(root: &Root, rel: &str) -> Result<()> {
    let full = root.path(rel);
    let too_long = rel.split('/').enumerate().any(|(i, part)| {
        let last = i == rel.split('/').count() - 1;
        part.len() + if last { TEMP_EXTRA } else { 0 } > NAME_MAX
    }) || full.as_os_str().len() + TEMP_EXTRA > PATH_MAX;
    if too_long {
        return Err(Error::Usage(format!(
            "{} cannot be written and restored: a name in it is longer than {NAME_MAX} bytes \
             or the whole path longer than {PATH_MAX} (with its temp file). Use a shorter \
             name; nothing was changed",
            Root::display(rel)
        )));
    }
    Ok(())
}

/// Whether a change would change nothing (the system already holds its `after`).
#[must_use]
pub fn is_noop(change: &Change) -> bool {
    match change {
        Change::Sysctl { key, before, after } => crate::profile::value::same(key, before, after),
        Change::File { before, after, .. } => before == after,
        Change::Rlimit { before, after, .. } => before == after,
    }
}

/// A change whose `before` is read from the system now, so undo restores what is there.
pub fn refresh_before(root: &Root, change: &Change) -> Result<Change> {
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
            // A process that exited (or whose pid now names another, or that was recorded
            // without its start time) has nothing to restore: before == after makes the
            // change a no-op that rollback drops.
            let now = crate::system::processes::kernel_nofile(*pid)
                .filter(|_| super::same_recorded_process(*pid, comm, *started))
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
