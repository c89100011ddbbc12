//! `netprofile confirm`: keeps a pending `--confirm` apply and writes its files.
//!
//! The confirmation is one transaction: the drop-ins are written and the `confirm` generation
//! (which names the generation it keeps) is recorded as its commit point. A kill before that
//! point leaves the apply pending, so its deadline still reverts it; a kill after it leaves it
//! kept, files included. Never a mix.

use std::fmt::Write as _;

use crate::cli::Config;
use crate::commands::Output;
use crate::error::{Error, Result};
use crate::transaction::state::{self, Change, Generation, Outcome};
use crate::transaction::writer::{Writer, refresh_before};

/// `netprofile confirm`: keeps a pending `--confirm` and writes its files.
pub fn confirm(config: &Config) -> Result<Output> {
    let root = &config.root;
    // A deadline that passed is reverted here, before the pending record is looked at.
    let writer = Writer::begin(root, "confirm")?;
    let stderr = writer.recovered.clone();
    let Some(pending) = state::read_pending(root)? else {
        let hint = if stderr.iter().any(|l| l.contains("not confirmed in time")) {
            "too late: the pending apply ran out and was reverted (see above)"
        } else {
            "nothing is waiting for confirmation (`netprofile status` shows pending applies)"
        };
        return Err(Error::State(hint.into()));
    };
    let Some(mut original) = state::read_generation(root, pending.generation)? else {
        writer.clear_pending()?;
        return Err(Error::State(format!(
            "generation {} never completed (its run was interrupted and restored); nothing to \
             confirm",
            pending.generation
        )));
    };
    let mut stdout = String::new();
    let changes: Vec<Change> = pending
        .files
        .iter()
        .map(|c| refresh_before(root, c))
        .collect::<Result<_>>()?;
    let number = writer.next_generation()?;
    let mut written = Generation::new(number, "confirm", original.profile.clone(), changes);
    written.confirms = Some(original.number);
    writer.run(&written)?;
    let mut files_generation = None;
    let mut files = Vec::new();
    if !written.changes.is_empty() {
        files = crate::render::json::split_changes(&written.changes, false).1;
        files_generation = Some(number);
        let _ = writeln!(stdout, "wrote the files as generation {number}");
    }
    original.outcome = Outcome::Applied;
    // Both are bookkeeping after the commit point: `in_effect` and `revert_pending` already
    // read the `confirm` generation as the decision.
    let _ = writer.record(&original);
    let _ = writer.clear_pending();
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
        stderr,
    })
}
