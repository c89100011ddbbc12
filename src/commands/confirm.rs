//! `netprofile confirm`: keeps a pending `--confirm` apply and writes its files.
//!
//! The confirmation is one transaction: the drop-ins are written and the `confirm` generation
//! (which names the generation it keeps) is recorded as its commit point. A kill before that
//! point leaves the apply pending, so its deadline still reverts it; a kill after it leaves it
//! kept, files included. Never a mix.

use crate::cli::Config;
use crate::commands::Output;
use crate::error::{Error, Result};
use crate::render::json;
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
    let changes: Vec<Change> = pending
        .files
        .iter()
        .map(|c| refresh_before(root, c))
        .collect::<Result<_>>()?;
    let number = writer.next_generation()?;
    let mut written = Generation::new(number, "confirm", original.profile.clone(), changes);
    written.confirms = Some(original.number);
    writer.run(&written)?;
    original.outcome = Outcome::Applied;
    // Both are bookkeeping after the commit point: `in_effect` and `revert_pending` already
    // read the `confirm` generation as the decision.
    let _ = writer.record(&original);
    let _ = writer.clear_pending();
    let files_generation = (!written.changes.is_empty()).then_some(number);
    let doc = json::ConfirmResult {
        schema: json::Version,
        command: "confirm",
        exit_code: 0,
        exit_meaning: json::exit_meaning(0),
        confirmed: original.number,
        files_generation,
        files: json::split_changes(&written.changes, false).1,
        summary: lines(original.number, files_generation).join("; "),
    };
    let stdout = super::render_doc(config, &doc, human);
    Ok(Output {
        code: 0,
        stdout,
        stderr,
    })
}

/// What a confirmation did, a line each: the files it wrote (when there were any) and the
/// generation it kept.
fn lines(confirmed: u64, files_generation: Option<u64>) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(number) = files_generation {
        lines.push(format!("wrote the files as generation {number}"));
    }
    lines.push(format!("confirmed generation {confirmed}"));
    lines
}

/// The text of confirm's document.
fn human(doc: &json::ConfirmResult) -> String {
    lines(doc.confirmed, doc.files_generation).join("\n") + "\n"
}
