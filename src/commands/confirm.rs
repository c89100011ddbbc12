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
    let mut files_generation = None;
    let mut files = Vec::new();
    if !pending.files.is_empty() {
        let changes: Vec<Change> = pending
            .files
            .iter()
            .map(|c| refresh_before(root, c))
            .collect::<Result<_>>()?;
        let number = state::next_generation(root)?;
        transaction::execute(root, number, &changes)?;
        let written = Generation::new(number, "confirm", original.profile.clone(), changes);
        transaction::commit(root, &written)?;
        files = crate::render::json::split_changes(&written.changes, false).1;
        files_generation = Some(number);
        let _ = writeln!(stdout, "wrote the files as generation {number}");
    }
    original.outcome = Outcome::Applied;
    state::write_generation(root, &original)?;
    state::clear_pending(root)?;
    let _ = writeln!(stdout, "confirmed generation {}", original.number);
    if config.json {
        use crate::render::json;
        stdout = json::pretty(&json::ConfirmResult {
            schema: json::SCHEMA,
            command: "confirm",
            exit_code: 0,
            exit_meaning: json::exit_meaning(0),
            confirmed: original.number,
            files_generation,
            files,
            summary: stdout.lines().collect::<Vec<_>>().join("; "),
        });
    }
    Ok(Output {
        code: 0,
        stdout,
        stderr: Vec::new(),
    })
}
