//! Applying a list of changes as one transaction: journal first, then each change written and
//! read back, then commit; on any failure every change already made is undone in reverse order.
//!
//! The journal (state.rs) holds every original value and file content before the first write,
//! so a process killed at any point leaves enough to restore: `recover` finds an open journal
//! and puts everything back, unless the transaction had already recorded its generation (then
//! only the journal's removal was interrupted). This module never decides *what* to change;
//! plan/ does, and the submodules turn the generations and the live state into changes
//! (replay.rs, running.rs, pending.rs; drift.rs compares the replay with the machine). Its
//! steps are private: commands reach them only through `writer::Writer` (lock, recover, prove,
//! journal, change, commit), the one writer entry.
//!
//! The raw writers (atomic.rs: `write_file`, `remove_file`, `put`, `write_sysctl`) are in a
//! private module, so nothing outside this folder can call them: the one writer entry holds by
//! construction, checked by the compiler. A command's own output file, which is no tuned
//! setting (`metrics --output`), has its own function, `write_command_output`. The doctests
//! below fail the build of the tests if a raw writer becomes reachable from outside again:
//!
//! ```compile_fail,E0603
//! // atomic.rs (write_file, remove_file, put, write_sysctl) is private to the transaction.
//! use netprofile::transaction::atomic;
//! ```
//!
//! ```compile_fail,E0603
//! // So are the state writers (journal, generations, pending record).
//! use netprofile::transaction::state::write_generation;
//! ```

mod atomic;
pub mod drift;
pub mod fault;
pub mod pending;
pub mod replay;
pub mod running;
pub mod state;
pub mod verify;
pub mod writer;

use std::fmt::Write as _;
use std::path::Path;

use self::state::{Change, Generation, Journal, Outcome};
use crate::error::{Error, Result};
use crate::profile::keys::KeyName;
use crate::profile::value;
use crate::system as live;
use crate::system::root::Root;

/// Writes a command's own output file: `metrics --output`'s `.prom` for node_exporter's textfile
/// collector. That file is no tuned state (not a sysctl, limits, systemd or modules file, nor
/// netprofile's journal, generations or lock), so it takes no lock, no journal and no
/// generation: it is written as any file the user asked for, atomically (a temp file in
/// `dir`, fsync, rename over `dir/name`, fsync `dir`), mode 0644, and never through a
/// symlink. `dir` is the folder the user named (not under `--root`), `name` one component.
/// Nothing tuned may be written through this: tuned state goes through `writer::Writer`.
pub fn write_command_output(dir: &Path, name: &str, text: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(Error::Usage(format!(
            "{}: name a file",
            dir.join(name).display()
        )));
    }
    atomic::write_file(&Root::new(dir), name, text, 0o644)
}

/// Performs one change and checks it took effect.
fn perform(root: &Root, change: &Change, step: &str) -> Result<()> {
    if fault::fail(step) {
        return Err(Error::State(format!(
            "{}: fault injected at {step}",
            change.label()
        )));
    }
    match change {
        Change::Sysctl { key, after, .. } => {
            let name = KeyName::parse(key).map_err(Error::State)?;
            let rel = Root::sysctl_rel(&name);
            atomic::write_sysctl(root, &rel, after)?;
            let now = live::read_sysctl(root, &name)?.unwrap_or_default();
            if !value::same(key, &now, after) {
                return Err(Error::State(format!(
                    "{key}: wrote {:?} but the kernel reads back {now:?}",
                    value::of_key(key, after)
                )));
            }
            Ok(())
        }
        Change::File { path, after, .. } => atomic::put(root, path, after.as_deref()),
        Change::Rlimit {
            pid,
            comm,
            started,
            after,
            ..
        } => set_nofile(*pid, comm, *started, *after),
    }
}

/// Whether `pid` is still the process a change recorded: same name AND same start time. A
/// record without a start time never matches, so a process that merely shares a pid and a
/// name with it is never touched.
fn same_recorded_process(pid: u32, comm: &str, started: Option<u64>) -> bool {
    started.is_some() && crate::system::processes::same_process(pid, comm, started)
}

/// Sets a running process's open-files limits with prlimit(2) and reads them back from the
/// kernel's /proc. The pid must still carry the name and start time it had when planned.
fn set_nofile(pid: u32, comm: &str, started: Option<u64>, want: state::Nofile) -> Result<()> {
    use crate::system::processes::kernel_nofile;
    let label = format!("pid {pid} ({comm})");
    if kernel_nofile(pid).is_none() {
        return Err(Error::State(format!("{label}: the process has exited")));
    }
    if started.is_none() {
        return Err(Error::State(format!(
            "{label}: no start time was recorded, so netprofile cannot tell it from another \
             process with the same pid and name; its limits were not touched"
        )));
    }
    if !same_recorded_process(pid, comm, started) {
        return Err(Error::State(format!(
            "{label}: pid {pid} is now another process; its limits were not touched"
        )));
    }
    let limit = |n: u64| (n != u64::MAX).then_some(n);
    let new = rustix::process::Rlimit {
        current: limit(want.soft),
        maximum: limit(want.hard),
    };
    let pid_t = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| Error::State(format!("{label}: not a valid pid")))?;
    let old = rustix::process::prlimit(
        Some(pid_t),
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: new.current,
            maximum: new.maximum,
        },
    )
    .map_err(|e| {
        let old_hard = kernel_nofile(pid).map_or(0, |(_, (_, hard))| hard);
        let why = if e == rustix::io::Errno::PERM && want.hard > old_hard {
            format!(
                "raising the hard open-files limit from {old_hard} to {} needs \
                 CAP_SYS_RESOURCE, which this netprofile does not have (prlimit: EPERM). Run \
                 it with that capability, or restart the process under its new limits",
                want.hard
            )
        } else if e == rustix::io::Errno::PERM {
            "prlimit refused (EPERM): changing another user's process needs CAP_SYS_RESOURCE \
             or the same user"
                .to_string()
        } else if e == rustix::io::Errno::INVAL {
            format!(
                "prlimit refused {want} (EINVAL): soft above hard, or hard above the kernel's \
                 fs.nr_open"
            )
        } else {
            format!("prlimit failed: {e}")
        };
        Error::State(format!("{label}: {why}"))
    })?;
    let _ = old;
    let now = kernel_nofile(pid).map(|(_, pair)| pair);
    if now != Some((want.soft, want.hard)) {
        return Err(Error::State(format!(
            "{label}: set nofile {want} but the kernel reads back {now:?}"
        )));
    }
    Ok(())
}

/// Undoes `done` in reverse order. Returns a line per change saying what state it is in, and
/// whether every undo succeeded.
fn undo(root: &Root, done: &[Change]) -> (Vec<String>, bool) {
    let mut lines = Vec::new();
    let mut ok = true;
    for (i, change) in done.iter().enumerate().rev() {
        let step = format!("undo:{}", i + 1);
        // A process that has exited has no limits left to restore; one recorded without its
        // start time cannot be told from another process with its pid and name: left alone.
        if let Change::Rlimit {
            pid, comm, started, ..
        } = change
            && !same_recorded_process(*pid, comm, *started)
        {
            let why = if started.is_none() {
                "no start time recorded, so it cannot be told from another process with this \
                 pid and name; left alone"
            } else {
                "exited; nothing to restore"
            };
            lines.push(format!("  {}: {why}", change.label()));
            continue;
        }
        let result = perform(root, &change.inverse(), &step);
        fault::point(&step);
        match result {
            Ok(()) => lines.push(format!("  restored {}", describe_before(change))),
            Err(e) => {
                ok = false;
                lines.push(format!("  NOT RESTORED {}: {e}", change.label()));
            }
        }
    }
    lines.reverse();
    (lines, ok)
}

fn describe_before(change: &Change) -> String {
    match change {
        Change::Sysctl { key, before, .. } => match value::normalise(before).as_str() {
            "" => format!("{key} = \"\""),
            shown => format!("{key} = {shown}"),
        },
        Change::File { path, before, .. } => match before {
            Some(_) => format!("{} (previous content)", Root::display(path)),
            None => format!("{} (removed; it did not exist)", Root::display(path)),
        },
        Change::Rlimit { before, .. } => format!("{} = {before}", change.label()),
    }
}

/// Runs `changes` as generation `number`. On success the journal is still open: the caller
/// records the generation and then calls `state::close_journal`, so a crash between the two
/// is recognised as committed.
fn execute(root: &Root, number: u64, changes: &[Change]) -> Result<()> {
    let journal = Journal {
        generation: number,
        started: state::now(),
        checksum: state::checksum(changes),
        changes: changes.to_vec(),
    };
    state::write_journal(root, &journal)?;
    fault::point("journal");
    for (i, change) in changes.iter().enumerate() {
        let step = format!("change:{}", i + 1);
        let result = perform(root, change, &step);
        fault::point(&step);
        if let Err(error) = result {
            // The failed change is undone too: a read-back mismatch means it did change.
            let (lines, ok) = undo(root, &changes[..=i]);
            let mut message = format!("{error}\n");
            if ok {
                let _ = writeln!(
                    message,
                    "every change was rolled back; the system is as before:"
                );
                message.push_str(&lines.join("\n"));
                state::close_journal(root)?;
                return Err(Error::ApplyFailed { message });
            }
            let _ = writeln!(
                message,
                "rolling back failed too; the state of each change (the journal {} is kept):",
                Root::display(state::JOURNAL)
            );
            message.push_str(&lines.join("\n"));
            return Err(Error::RollbackFailed { message });
        }
    }
    Ok(())
}

/// Records `generation` and closes the journal: the commit point of a transaction.
fn commit(root: &Root, generation: &Generation) -> Result<()> {
    if fault::fail("generation") {
        return Err(Error::State(format!(
            "recording generation {}: fault injected at generation",
            generation.number
        )));
    }
    state::write_generation(root, generation)?;
    fault::point("generation");
    // Once the generation is recorded the transaction has committed: a journal that cannot be
    // removed now is closed by the next writer (`recover` finds its generation).
    let _ = state::close_journal(root);
    Ok(())
}

/// Runs `generation.changes` as one transaction and records `generation` as its commit point.
/// Any failure after the first change, the commit included (generations folder read-only,
/// ENOSPC, EROFS), undoes every change and returns `ApplyFailed` (exit 3) listing what was
/// restored, or `RollbackFailed` (exit 4): never "nothing touched" with changes in place.
fn run(root: &Root, generation: &Generation) -> Result<()> {
    execute(root, generation.number, &generation.changes)?;
    let Err(error) = commit(root, generation) else {
        return Ok(());
    };
    let (lines, ok) = undo(root, &generation.changes);
    let mut message = format!("{error}\n");
    if ok {
        let _ = writeln!(
            message,
            "every change was rolled back; the system is as before:"
        );
        message.push_str(&lines.join("\n"));
        let _ = state::close_journal(root);
        return Err(Error::ApplyFailed { message });
    }
    let _ = writeln!(
        message,
        "rolling back failed too; the state of each change (the journal {} is kept):",
        Root::display(state::JOURNAL)
    );
    message.push_str(&lines.join("\n"));
    Err(Error::RollbackFailed { message })
}

/// Finds an open journal and restores the state before it. Returns what it did, for the user.
fn recover(root: &Root) -> Result<Option<String>> {
    let Some(journal) = state::read_journal(root)? else {
        return Ok(None);
    };
    if let Some(done) = state::read_generation(root, journal.generation)?
        && done.checksum == journal.checksum
    {
        state::close_journal(root)?;
        let what = if done.outcome == Outcome::Recovered {
            "had already been restored"
        } else {
            "had committed"
        };
        return Ok(Some(format!(
            "generation {} {what}; closed its journal",
            journal.generation
        )));
    }
    let (lines, ok) = undo(root, &journal.changes);
    if !ok {
        // Kept in place, it would stop every later writer with this same error for ever: the
        // journal is moved aside (kept for the operator), the failure recorded in history.
        let aside = format!(
            "{}/journal-{:06}.failed.json",
            Root::STATE_DIR,
            journal.generation
        );
        let text = serde_json::to_string_pretty(&journal).unwrap_or_default() + "\n";
        state::write_state_file(root, &aside, &text)?;
        state::close_journal(root)?;
        let mut generation =
            Generation::new(journal.generation, "recover", None, journal.changes.clone());
        generation.outcome = Outcome::Failed;
        generation.message = Some(format!(
            "interrupted run started {} could not be fully restored; journal moved to {}",
            journal.started,
            Root::display(&aside)
        ));
        let _ = state::write_generation(root, &generation);
        return Err(Error::RollbackFailed {
            message: format!(
                "an interrupted run (generation {}) left an open journal, and restoring it \
                 failed; the state of each change:\n{}\nthe journal was moved to {} so that \
                 later runs are not blocked; set the keys marked NOT RESTORED by hand (their \
                 original values are in that file). Nothing else was done",
                journal.generation,
                lines.join("\n"),
                Root::display(&aside)
            ),
        });
    }
    let mut generation = Generation::new(journal.generation, "recover", None, journal.changes);
    generation.outcome = Outcome::Recovered;
    generation.message = Some(format!(
        "interrupted run started {} restored",
        journal.started
    ));
    // The record is for history only; the restore is done. A generations folder that cannot
    // be written must not stop the command that found the journal from doing its own job.
    let _ = state::write_generation(root, &generation);
    state::close_journal(root)?;
    Ok(Some(format!(
        "an interrupted run (generation {}, started {}) was found and everything it touched \
         was restored:\n{}",
        journal.generation,
        journal.started,
        lines.join("\n")
    )))
}
