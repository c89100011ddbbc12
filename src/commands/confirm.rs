//! `netprofile confirm`: keeps a pending `--confirm` apply and writes its files.

use std::fmt::Write as _;

use super::recover::refresh_before;
use super::require_privileges;
use crate::cli::Config;
use crate::commands::Output;
use crate::error::{Error, Result};
use crate::transaction;
use crate::transaction::state::{self, Change, Generation, Lock, Outcome};

/// `netprofile confirm`: keeps a pending `--confirm` and writes its files.
pub fn confirm(config: &Config) -> Result<Output> {
    let root = &config.root;
    require_privileges(root, "confirm")?;
    let _lock = Lock::take(root)?;
    let Some(pending) = state::read_pending(root)? else {
        return Err(Error::State(
            "nothing is waiting for confirmation (`netprofile status` shows pending applies)"
                .into(),
        ));
    };
    let mut original = state::read_generation(root, pending.generation)?
        .ok_or_else(|| Error::State(format!("generation {} is missing", pending.generation)))?;
    let mut stdout = String::new();
    if !pending.files.is_empty() {
        let changes: Vec<Change> = pending
            .files
            .iter()
            .map(|c| refresh_before(root, c))
            .collect::<Result<_>>()?;
        let number = state::next_generation(root)?;
        transaction::execute(root, number, &changes)?;
        let files = Generation::new(number, "confirm", original.profile.clone(), changes);
        transaction::commit(root, &files)?;
        let _ = writeln!(stdout, "wrote the files as generation {number}");
    }
    original.outcome = Outcome::Applied;
    state::write_generation(root, &original)?;
    state::clear_pending(root)?;
    let _ = writeln!(stdout, "confirmed generation {}", original.number);
    Ok(Output {
        code: 0,
        stdout,
        stderr: Vec::new(),
    })
}
