//! `netprofile __confirm-watcher GEN`: the detached watcher of an `apply --confirm`. At the deadline it
//! becomes a writer like any other (`Writer::begin_waiting`: trusted lock, recovery, which
//! reverts the expired confirmation). It waits for a lock another netprofile holds only up to
//! `WATCHER_LOCK_WAIT`; a lock it cannot trust, or one held longer, stops it with a message in
//! run/netprofile/watcher-stopped.txt that `status` shows; the next writer then reverts.

use std::time::Duration;

use crate::cli::Config;
use crate::commands::Output;
use crate::error::Result;
use crate::transaction::state;
use crate::transaction::writer::{WATCHER_LOCK_WAIT, Writer};

/// `netprofile __confirm-watcher GEN`: waits for the deadline, then reverts unless confirmed.
pub fn confirm_watcher(config: &Config, generation: u64) -> Result<Output> {
    let root = &config.root;
    loop {
        let Some(pending) = state::read_pending(root)? else {
            return Ok(Output::default());
        };
        if pending.generation != generation {
            return Ok(Output::default());
        }
        if state::epoch_millis() >= pending.deadline_ms {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Another writer may hold the lock briefly (a `confirm` racing the deadline): wait, bounded.
    match Writer::begin_waiting(root, "the --confirm watcher", WATCHER_LOCK_WAIT) {
        Ok(writer) => Ok(Output {
            code: 0,
            stdout: String::new(),
            stderr: writer.recovered.clone(),
        }),
        Err(e) => {
            // Its stderr goes nowhere: leave the reason where `status` looks.
            let _ = state::note_watcher_stopped(root, generation, &e.to_string());
            Err(e)
        }
    }
}
