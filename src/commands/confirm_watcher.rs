//! `netprofile __confirm-watcher GEN`: the detached watcher of an `apply --confirm`.

use std::time::Duration;

use super::recover::recover_locked;
use crate::cli::Config;
use crate::commands::Output;
use crate::error::{Error, Result};
use crate::transaction::state::{self, Lock};

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
    // Another writer may hold the lock briefly (a `confirm` racing the deadline): retry.
    let lock = loop {
        match Lock::take(root) {
            Ok(lock) => break lock,
            Err(Error::Locked { .. }) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(e),
        }
    };
    // The same recovery every writer runs: an open journal first (the apply was stopped
    // mid-way), then the expired confirmation.
    let messages = recover_locked(root, &lock)?;
    drop(lock);
    Ok(Output {
        code: 0,
        stdout: String::new(),
        stderr: messages,
    })
}
