//! netprofile's own state under the root: the writer lock (`run/netprofile.lock`), the journal
//! of an open transaction, the generations (`var/lib/netprofile/generations/`), and a pending
//! `--confirm` (`run/netprofile/pending.json`). Files are written through atomic.rs (atomic,
//! mode 0600). Records carry a timestamp and a sha256 checksum of their changes.

use std::fs::File;
use std::io::{Read, Seek, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::profile::keys::KeyName;
use crate::system::root::{Root, beneath};
use crate::transaction::atomic;

/// One thing a transaction changes: a sysctl key or a file, with its value before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Change {
    Sysctl {
        key: String,
        before: String,
        after: String,
    },
    File {
        /// Root-relative path.
        path: String,
        /// Content; `None` when the file does not exist.
        before: Option<String>,
        after: Option<String>,
    },
    /// The open-files limits of a running process, set with prlimit(2) (`apply --running`).
    Rlimit {
        pid: u32,
        /// Its name and start time (clock ticks after boot) when changed: a different process
        /// under the same pid is never touched.
        comm: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        started: Option<u64>,
        before: Nofile,
        after: Nofile,
    },
}

/// An open-files limit pair; `u64::MAX` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Nofile {
    pub soft: u64,
    pub hard: u64,
}

impl std::fmt::Display for Nofile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = |n: u64| {
            if n == u64::MAX {
                "unlimited".to_string()
            } else {
                n.to_string()
            }
        };
        write!(f, "{}:{}", v(self.soft), v(self.hard))
    }
}

/// A key apply could not set because its module was not loaded (plan's `Action::Pending`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct PendingKey {
    pub key: String,
    pub value: String,
    pub module: String,
}

impl Change {
    #[must_use]
    pub fn label(&self) -> String {
        match self {
            Change::Sysctl { key, .. } => key.clone(),
            Change::File { path, .. } => Root::display(path),
            Change::Rlimit { pid, comm, .. } => format!("nofile of pid {pid} ({comm})"),
        }
    }

    /// Refuses a change netprofile would never make: a key that is not a plain name under
    /// proc/sys, or a file other than the drop-ins netprofile manages. A journal or generation
    /// that names anything else was not written by netprofile and is not acted on.
    pub fn validate(&self) -> std::result::Result<(), String> {
        match self {
            Change::Sysctl { key, .. } => KeyName::parse(key)
                .map(|_| ())
                .map_err(|e| format!("key {key:?}: {e}")),
            Change::File { path, .. } => {
                if [
                    Root::sysctl_dropin(),
                    Root::limits_dropin(),
                    Root::systemd_dropin(),
                ]
                .contains(path)
                    || *path == Root::modules_dropin()
                    || Self::is_unit_dropin(path)
                {
                    Ok(())
                } else {
                    Err(format!(
                        "file {path:?} is not one of the drop-ins netprofile manages"
                    ))
                }
            }
            Change::Rlimit { .. } => Ok(()),
        }
    }

    /// Whether `path` is the drop-in netprofile writes for a service unit with a valid name
    /// (`etc/systemd/system/NAME.service.d/90-netprofile.conf`).
    fn is_unit_dropin(path: &str) -> bool {
        path.strip_prefix("etc/systemd/system/")
            .and_then(|rest| rest.strip_suffix(&format!(".d/{}", crate::system::root::DROPIN_NAME)))
            .is_some_and(|unit| {
                crate::profile::unit_name(unit).is_ok() && Root::unit_dropin(unit) == path
            })
    }

    /// The same change, undone.
    #[must_use]
    pub fn inverse(&self) -> Change {
        match self.clone() {
            Change::Sysctl { key, before, after } => Change::Sysctl {
                key,
                before: after,
                after: before,
            },
            Change::File {
                path,
                before,
                after,
            } => Change::File {
                path,
                before: after,
                after: before,
            },
            Change::Rlimit {
                pid,
                comm,
                started,
                before,
                after,
            } => Change::Rlimit {
                pid,
                comm,
                started,
                before: after,
                after: before,
            },
        }
    }
}

#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The sha256 a journal and a generation carry over their changes.
#[must_use]
/// Where a live value stands against a recorded bound (`Generation::bounds`: `>= 4096` for a
/// profile's `min`, `<= 30` for a `max`): `Ok(())` when it meets it, `Err(N)` with the bound
/// to move it to, `None` when either does not read as a number.
pub fn against_bound(bound: &str, now: &str) -> Option<std::result::Result<(), i64>> {
    let now = now.trim().parse::<i64>().ok()?;
    let (min, n) = if let Some(n) = bound.strip_prefix(">= ") {
        (true, n.parse::<i64>().ok()?)
    } else {
        (false, bound.strip_prefix("<= ")?.parse::<i64>().ok()?)
    };
    let meets = if min { now >= n } else { now <= n };
    Some(if meets { Ok(()) } else { Err(n) })
}

pub fn checksum(changes: &[Change]) -> String {
    sha256_hex(&serde_json::to_vec(changes).unwrap_or_default())
}

#[must_use]
pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// What a transaction is doing; written before its first change, removed after it commits.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Journal {
    pub generation: u64,
    pub started: String,
    pub changes: Vec<Change>,
    pub checksum: String,
}

/// The profile a generation applied (defined with the profile: every document names a profile
/// this way).
pub use crate::profile::ProfileRef;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Live values and files changed.
    Applied,
    /// Live values changed; waiting for `netprofile confirm`, files not yet written.
    Pending,
    /// `--confirm` ran out without `confirm`: live values restored.
    Reverted,
    /// Failed and rolled back; nothing changed.
    Failed,
    /// An interrupted transaction, restored by a later run.
    Recovered,
    /// Applied, then undone by `netprofile rollback`: no longer in effect.
    RolledBack,
    /// A `--confirm` generation that a reboot ended before `netprofile confirm`: its live
    /// values went with the reboot and its files were never written, so nothing of it is in
    /// place (`dropped`).
    Dropped,
}

impl Outcome {
    /// The name `--json` prints (`rolled-back`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Pending => "pending",
            Outcome::Reverted => "reverted",
            Outcome::Failed => "failed",
            Outcome::Recovered => "recovered",
            Outcome::RolledBack => "rolled-back",
            Outcome::Dropped => "dropped",
        }
    }
}

/// `apply --verify`: the connection test on this machine before and after the apply.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Verify {
    pub before: Box<crate::conntest::report::Report>,
    pub after: Box<crate::conntest::report::Report>,
}

/// One entry of `netprofile history`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Generation {
    /// Its number, as every document names a generation (`number` in records written before
    /// schema 2).
    #[serde(rename = "generation", alias = "number")]
    pub number: u64,
    pub time: String,
    /// `apply`, `rollback` or `confirm`.
    pub op: String,
    pub profile: Option<ProfileRef>,
    /// For a rollback: the generation whose state before it was restored.
    pub rollback_of: Option<u64>,
    /// For a `confirm`: the pending generation it kept. Recording this generation is the
    /// commit point of the confirmation (the files and the keep decision together).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirms: Option<u64>,
    pub changes: Vec<Change>,
    pub outcome: Outcome,
    pub message: Option<String>,
    pub checksum: String,
    /// `apply --verify`: the connection-test reports before and after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<Verify>,
    /// Keys left pending (module not loaded) after this generation; `apply --pending` sets them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingKey>,
    /// `apply --allow-override`: the settings another file overrides (plan::Override), which
    /// the operator accepted; check and status report them as overridden, not as drift.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overridden: Vec<crate::plan::Override>,
    /// Raise-only and lower-only keys of the profile (`>= 4096`, `<= 30`): a later rise above a
    /// `min` (or fall below a `max`) is not drift.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub bounds: std::collections::BTreeMap<String, String>,
    /// `apply --no-persist`: nothing of it is to hold after a reboot, so netprofile.service
    /// does not re-apply its bounds at boot.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_persist: bool,
}

impl Generation {
    #[must_use]
    pub fn new(number: u64, op: &str, profile: Option<ProfileRef>, changes: Vec<Change>) -> Self {
        Generation {
            number,
            time: now(),
            op: op.to_string(),
            profile,
            rollback_of: None,
            confirms: None,
            checksum: checksum(&changes),
            changes,
            outcome: Outcome::Applied,
            message: None,
            verify: None,
            pending: Vec::new(),
            overridden: Vec::new(),
            bounds: std::collections::BTreeMap::new(),
            no_persist: false,
        }
    }
}

pub const JOURNAL: &str = "var/lib/netprofile/journal.json";
pub const GENERATIONS: &str = "var/lib/netprofile/generations";
pub const PENDING: &str = "run/netprofile/pending.json";

fn generation_rel(number: u64) -> String {
    format!("{GENERATIONS}/{number:06}.json")
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
}

fn parse<T: for<'de> Deserialize<'de>>(root: &Root, rel: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| {
        Error::State(format!(
            "{} is damaged ({e}); move it aside to continue",
            root.path(rel).display()
        ))
    })
}

/// Reads one of netprofile's own state files, trusting it only when it is ours: a regular file
/// (never through a symlink), owned by root or the user running netprofile (`--root` trees of
/// an unprivileged user), writable by no one else, in a folder with the same properties. Anything else is refused with what to do.
pub fn read_state(root: &Root, rel: &str) -> Result<Option<String>> {
    let path = root.path(rel);
    let (dir, _) = beneath::split(rel).map_err(|e| Error::read(&path, e))?;
    let dirfd = match beneath::open_dir(root, dir, false) {
        Ok(fd) => fd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::read(&path, e)),
    };
    trusted(&dirfd, dir)?;
    let fd = match beneath::open_file(
        root,
        rel,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK,
        0,
    ) {
        Ok(fd) => fd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::read(&path, e)),
    };
    trusted(&fd, rel)?;
    crate::profile::read_bounded(File::from(fd), crate::system::MAX_READ)
        .map(Some)
        .map_err(|e| Error::read(&path, e))
}

/// Refuses a state file or folder owned by someone other than root or the running user, or
/// writable by group/others.
fn trusted(fd: &std::os::fd::OwnedFd, rel: &str) -> Result<()> {
    let meta = rustix::fs::fstat(fd).map_err(|e| Error::read(Root::display(rel), e.into()))?;
    let euid = rustix::process::geteuid().as_raw();
    let shown = Root::display(rel);
    if meta.st_uid != euid && meta.st_uid != 0 {
        return Err(Error::State(format!(
            "refusing {shown}: it is owned by uid {}, not by uid {euid} that runs netprofile, so \
             it may not be netprofile's. Inspect it and remove it (or chown it) to continue; \
             nothing was changed",
            meta.st_uid
        )));
    }
    if meta.st_mode & 0o022 != 0 {
        return Err(Error::State(format!(
            "refusing {shown}: group or others can write it (mode {:o}), so anyone could have \
             planted it. Inspect it, then `chmod go-w` it to continue; nothing was changed",
            meta.st_mode & 0o7777
        )));
    }
    Ok(())
}

fn validate_all(root: &Root, rel: &str, changes: &[Change]) -> Result<()> {
    for change in changes {
        change.validate().map_err(|why| {
            Error::State(format!(
                "refusing {}: {why}; netprofile did not write this. Move it aside to \
                 continue; nothing was changed",
                root.path(rel).display()
            ))
        })?;
    }
    Ok(())
}

pub(super) fn write_journal(root: &Root, journal: &Journal) -> Result<()> {
    atomic::write_file(root, JOURNAL, &to_json(journal), 0o600)
}

pub fn read_journal(root: &Root) -> Result<Option<Journal>> {
    let Some(text) = read_state(root, JOURNAL)? else {
        return Ok(None);
    };
    let journal: Journal = parse(root, JOURNAL, &text)?;
    validate_all(root, JOURNAL, &journal.changes)?;
    if journal.checksum != checksum(&journal.changes) {
        return Err(Error::State(format!(
            "{} fails its checksum; it was edited or damaged. Move it aside to continue",
            root.path(JOURNAL).display()
        )));
    }
    Ok(Some(journal))
}

/// Writes one of netprofile's own state files (mode 0600, atomically).
pub(super) fn write_state_file(root: &Root, rel: &str, text: &str) -> Result<()> {
    atomic::write_file(root, rel, text, 0o600)
}

pub(super) fn close_journal(root: &Root) -> Result<()> {
    atomic::remove_file(root, JOURNAL)
}

pub(super) fn write_generation(root: &Root, generation: &Generation) -> Result<()> {
    atomic::write_file(
        root,
        &generation_rel(generation.number),
        &to_json(generation),
        0o600,
    )
}

pub fn read_generation(root: &Root, number: u64) -> Result<Option<Generation>> {
    let rel = generation_rel(number);
    let Some(text) = read_state(root, &rel)? else {
        return Ok(None);
    };
    let generation: Generation = parse(root, &rel, &text)?;
    validate_all(root, &rel, &generation.changes)?;
    Ok(Some(generation))
}

/// All generations, oldest first.
pub fn generations(root: &Root) -> Result<Vec<Generation>> {
    let dir = root.path(GENERATIONS);
    let mut numbers: Vec<u64> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_string_lossy()
                    .strip_suffix(".json")
                    .and_then(|n| n.parse().ok())
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::read(dir, e)),
    };
    numbers.sort_unstable();
    let mut out = Vec::new();
    for n in numbers {
        out.extend(read_generation(root, n)?);
    }
    Ok(out)
}

/// The generations whose changes are in place now: an `apply` or `confirm` that committed
/// (applied, or pending its confirmation) and that no later `rollback` or `revert` undid. A
/// rollback of N undoes every generation from N up to itself, so this is decided from the
/// commit records alone, newest first, in one pass.
#[must_use]
pub fn in_effect(all: &[Generation]) -> Vec<u64> {
    let mut undone_from = u64::MAX;
    let mut out = Vec::new();
    for g in all.iter().rev() {
        if matches!(g.op.as_str(), "rollback" | "revert")
            && g.outcome == Outcome::Applied
            && let Some(of) = g.rollback_of
        {
            undone_from = undone_from.min(of);
            continue;
        }
        if matches!(g.op.as_str(), "apply" | "apply-pending" | "confirm")
            && matches!(g.outcome, Outcome::Applied | Outcome::Pending)
            && g.number < undone_from
        {
            out.push(g.number);
        }
    }
    out.reverse();
    out
}

/// `in_effect`, less a pending generation whose pending record is gone and that no `confirm`
/// kept: a reboot clears run/ and the kernel's values with it, and the files were never
/// written, so nothing of it is in place. `pending` is the generation the pending record
/// names, if there is one.
#[must_use]
pub fn in_effect_with(all: &[Generation], pending: Option<u64>) -> Vec<u64> {
    in_effect(all)
        .into_iter()
        .filter(|&n| {
            all.iter().find(|g| g.number == n).is_none_or(|g| {
                g.outcome != Outcome::Pending
                    || pending == Some(n)
                    || all.iter().any(|c| c.confirms == Some(n))
            })
        })
        .collect()
}

/// The `--confirm` generations a reboot dropped: still marked pending, though no pending
/// record names them (run/ does not outlive a reboot) and no `confirm` kept them. Writers
/// record them as `Outcome::Dropped` (commands/recover.rs); readers show them so before that.
#[must_use]
pub fn dropped(all: &[Generation], pending: Option<u64>) -> Vec<u64> {
    all.iter()
        .filter(|g| {
            g.outcome == Outcome::Pending
                && pending != Some(g.number)
                && !all.iter().any(|c| c.confirms == Some(g.number))
        })
        .map(|g| g.number)
        .collect()
}

/// `all` as it is to be shown: the generations a reboot dropped (see `dropped`) marked so.
#[must_use]
pub fn as_shown(all: &[Generation], pending: Option<u64>) -> Vec<Generation> {
    let gone = dropped(all, pending);
    all.iter()
        .cloned()
        .map(|mut g| {
            if gone.contains(&g.number) {
                g.outcome = Outcome::Dropped;
            }
            g
        })
        .collect()
}

/// The generations in effect now (see `in_effect_with`), reading the pending record.
pub fn in_effect_now(root: &Root, all: &[Generation]) -> Result<Vec<u64>> {
    let pending = read_pending(root)?.map(|p| p.generation);
    Ok(in_effect_with(all, pending))
}

pub fn next_generation(root: &Root) -> Result<u64> {
    Ok(generations(root)?.last().map_or(1, |g| g.number + 1))
}

/// A `--confirm` waiting for `netprofile confirm`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Pending {
    pub generation: u64,
    /// Milliseconds since the epoch after which the watcher reverts.
    pub deadline_ms: u64,
    pub watcher: Option<u32>,
    /// The drop-ins to write when confirmed (a reboot before then keeps the old boot files).
    #[serde(default)]
    pub files: Vec<Change>,
}

pub(super) fn write_pending(root: &Root, pending: &Pending) -> Result<()> {
    atomic::write_file(root, PENDING, &to_json(pending), 0o600)
}

pub fn read_pending(root: &Root) -> Result<Option<Pending>> {
    let Some(text) = read_state(root, PENDING)? else {
        return Ok(None);
    };
    let pending: Pending = parse(root, PENDING, &text)?;
    validate_all(root, PENDING, &pending.files)?;
    Ok(Some(pending))
}

pub(super) fn clear_pending(root: &Root) -> Result<()> {
    let _ = atomic::remove_file(root, WATCHER_STOPPED);
    atomic::remove_file(root, PENDING)
}

#[must_use]
pub fn epoch_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The writer lock: an exclusive `flock` on run/netprofile.lock holding the owner's pid. It is
/// released when this value is dropped or the process dies, so a killed writer never leaves
/// a stale lock.
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Takes the lock. Only the writer entry (writer.rs) calls this. The lock file is state
    /// like any other: opened below the root without following a symlink, never truncated or
    /// written before it is proved ours (a regular file with one link, owned by root or the
    /// running user, writable by no one else, in a folder with the same properties).
    pub(super) fn take(root: &Root) -> Result<Lock> {
        let path = root.path(Root::LOCK);
        let (dir, _) = beneath::split(Root::LOCK).map_err(|e| Error::write(&path, e))?;
        let dirfd = beneath::open_dir(root, dir, true).map_err(|e| Error::write(&path, e))?;
        trusted(&dirfd, dir)?;
        // Neither O_TRUNC nor a write until it is checked: a planted hard link to another
        // file must come out of this unchanged.
        let fd = beneath::open_file(
            root,
            Root::LOCK,
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CREATE | rustix::fs::OFlags::NONBLOCK,
            0o600,
        )
        .map_err(|e| Error::write(&path, e))?;
        let meta = rustix::fs::fstat(&fd).map_err(|e| Error::write(&path, e.into()))?;
        if rustix::fs::FileType::from_raw_mode(meta.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(Error::write(
                &path,
                std::io::Error::other("is not a regular file; remove it to continue"),
            ));
        }
        if meta.st_nlink != 1 {
            return Err(Error::State(format!(
                "refusing {}: it has {} hard links, so it is another file's name too and \
                 writing it would change that file. Inspect it and remove it to continue; \
                 nothing was changed",
                Root::display(Root::LOCK),
                meta.st_nlink
            )));
        }
        trusted(&fd, Root::LOCK)?;
        // flock needs only a descriptor: a lock others can open, others can hold.
        if meta.st_mode & 0o044 != 0 {
            return Err(Error::State(format!(
                "refusing {}: group or others can read it (mode {:o}), so any user could open \
                 it and hold the lock, blocking every writer. Remove it to continue (netprofile \
                 makes it 0600); nothing was changed",
                Root::display(Root::LOCK),
                meta.st_mode & 0o7777
            )));
        }
        let mut file = File::from(fd);
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                let mut holder = String::new();
                let _ = (&file).take(64).read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if !holder.is_empty() && holder.bytes().all(|b| b.is_ascii_digit()) {
                    format!("another netprofile (pid {holder})")
                } else {
                    "another netprofile".to_string()
                };
                return Err(Error::Locked {
                    message: format!(
                        "{who} holds {}; wait for it to finish and try again. Nothing was changed",
                        Root::display(Root::LOCK)
                    ),
                });
            }
            Err(e) => return Err(Error::write(&path, e.into())),
        }
        let pid = std::process::id().to_string();
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(pid.as_bytes()));
        written.map_err(|e| Error::write(&path, e))?;
        Ok(Lock { _file: file })
    }
}

/// The watcher of `generation`, which could not become a writer, leaves the reason it stopped
/// for `status` and every reader (`watcher_stopped`).
///
/// The one state file written without the writer lock, by design: the watcher stops because it
/// could not take or trust that lock. It is safe: the write is `write_file`'s (a temp file with
/// the watcher's pid in its name, fsync, rename), so a reader sees the old note or the new one,
/// never half, and never through a symlink; the note changes nothing tuned and no journal,
/// generation or pending record; it is only ever read to print a warning. Writers remove it
/// with the pending record (`clear_pending`); a note written after that (the watcher lost a
/// race with a writer that reverted or confirmed) names a generation that is no longer
/// pending, so it is never shown for a later one. A writer's cleanup of temp files could
/// remove the watcher's temp file while it writes: the note is then lost, which is harmless,
/// since that writer reverts the expired generation itself.
pub fn note_watcher_stopped(root: &Root, generation: u64, why: &str) -> Result<()> {
    write_state_file(
        root,
        WATCHER_STOPPED,
        &format!(
            "{}{}\n",
            watcher_note_prefix(generation),
            why.replace('\n', " ")
        ),
    )
}

fn watcher_note_prefix(generation: u64) -> String {
    format!("generation {generation}: ")
}

/// Why the watcher of `generation` stopped without reverting it, when it left a note for that
/// generation (`note_watcher_stopped`); a note of another generation is stale and not shown.
pub fn watcher_stopped(root: &Root, generation: u64) -> Result<Option<String>> {
    let Some(text) = read_state(root, WATCHER_STOPPED)? else {
        return Ok(None);
    };
    Ok(text
        .trim()
        .strip_prefix(&watcher_note_prefix(generation))
        .map(String::from))
}

/// Where the `--confirm` watcher says why it stopped without reverting (shown by `status` and
/// every command's recover report until the next writer reverts).
pub const WATCHER_STOPPED: &str = "run/netprofile/watcher-stopped.txt";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_against_recorded_bounds() {
        for (bound, now, want) in [
            (">= 4096", "8192", Some(Ok(()))),
            (">= 4096", "4096\n", Some(Ok(()))),
            (">= 4096", "1024", Some(Err(4096))),
            ("<= 30", "60", Some(Err(30))),
            ("<= 30", "15", Some(Ok(()))),
            (">= 4096", "4096 8192", None),
            ("= 4096", "1", None),
        ] {
            assert_eq!(against_bound(bound, now), want, "{bound} {now:?}");
        }
    }

    fn g(number: u64, op: &str, outcome: Outcome, rollback_of: Option<u64>) -> Generation {
        let mut g = Generation::new(number, op, None, Vec::new());
        g.outcome = outcome;
        g.rollback_of = rollback_of;
        g
    }

    #[test]
    fn in_effect_follows_rollbacks_and_reverts_never_toggles() {
        use Outcome::*;
        let all = vec![
            g(1, "apply", Applied, None),
            g(2, "apply", Reverted, None),
            g(3, "revert", Applied, Some(2)),
            g(4, "apply", Applied, None),
            g(5, "apply", Failed, None),
        ];
        assert_eq!(in_effect(&all), [1, 4]);
        let mut more = all.clone();
        more.push(g(6, "rollback", Applied, Some(4)));
        assert_eq!(in_effect(&more), [1]);
        more.push(g(7, "rollback", Applied, Some(1)));
        assert!(
            in_effect(&more).is_empty(),
            "a rollback is never undone by another"
        );
        // A pending generation whose record is gone (a reboot) is not in effect ...
        let pending = vec![g(1, "apply", Pending, None)];
        assert_eq!(in_effect_with(&pending, Some(1)), [1]);
        assert!(in_effect_with(&pending, None).is_empty());
        // ... unless a confirm kept it.
        let mut kept = pending.clone();
        let mut c = g(2, "confirm", Applied, None);
        c.confirms = Some(1);
        kept.push(c);
        assert_eq!(in_effect_with(&kept, None), [1, 2]);
        // Without its record and unconfirmed, it was dropped; with either, it was not.
        assert_eq!(dropped(&pending, None), [1]);
        assert!(dropped(&pending, Some(1)).is_empty());
        assert!(dropped(&kept, None).is_empty());
        assert_eq!(as_shown(&pending, None)[0].outcome, Dropped);
    }

    #[test]
    fn only_keys_and_managed_dropins_pass_validation() {
        let file = |path: &str| Change::File {
            path: path.into(),
            before: None,
            after: None,
        };
        assert!(file("etc/sysctl.d/90-netprofile.conf").validate().is_ok());
        assert!(
            file("etc/security/limits.d/90-netprofile.conf")
                .validate()
                .is_ok()
        );
        // An absolute path is refused even when it names a managed drop-in.
        let absolute = Root::display(&Root::sysctl_dropin());
        for bad in ["../victim", "etc/sudoers.d/pwn", absolute.as_str()] {
            assert!(file(bad).validate().is_err(), "{bad}");
        }
        let key = |k: &str| Change::Sysctl {
            key: k.into(),
            before: String::new(),
            after: String::new(),
        };
        assert!(key("net.core.somaxconn").validate().is_ok());
        for bad in [
            "../../etc/shadow",
            "net..core",
            "/net/core",
            "net.core.x/../y",
        ] {
            assert!(key(bad).validate().is_err(), "{bad}");
        }
    }
}
