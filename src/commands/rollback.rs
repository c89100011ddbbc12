//! `netprofile rollback [GEN]`: back to the state before a generation, as a transaction of its own.

use super::apply::summary;
use super::recover::refresh_before;
use super::require_privileges;
use crate::cli::Config;
use crate::commands::Output;
use crate::error::{Error, Result};
use crate::system::root::Root;
use crate::transaction;
use crate::transaction::state::{self, Change, Generation, Lock, Outcome};

/// `netprofile rollback [GEN]`: restores the state before GEN (default: the last generation
/// that changed something), as a transaction of its own.
///
/// A managed drop-in edited by hand since netprofile wrote it is not overwritten unless
/// `force`: the error shows the edit.
pub fn rollback(config: &Config, target: Option<u64>, force: bool) -> Result<Output> {
    let root = &config.root;
    require_privileges(root, "rollback")?;
    let _lock = Lock::take(root)?;
    let all = state::generations(root)?;
    let effective = |g: &&Generation| matches!(g.outcome, Outcome::Applied | Outcome::Pending);
    let target = match target {
        Some(n) => {
            let g = all.iter().find(|g| g.number == n).ok_or_else(|| {
                Error::Usage(format!(
                    "there is no generation {n}; `netprofile history` lists them"
                ))
            })?;
            if !effective(&g) {
                return Err(Error::Usage(format!(
                    "generation {n} changed nothing that is still in place ({}); pick \
                     another from `netprofile history`",
                    serde_json::to_value(g.outcome)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default()
                )));
            }
            n
        }
        None => all
            .iter()
            .rev()
            .find(effective)
            .map(|g| g.number)
            .ok_or_else(|| Error::Usage("no generation to roll back".into()))?,
    };
    // The state before `target`: for each key or file touched since, the value it had before
    // the first generation that touched it.
    let mut restore: Vec<Change> = Vec::new();
    for g in all.iter().filter(|g| g.number >= target).filter(effective) {
        for change in &g.changes {
            if !restore.iter().any(|r| r.label() == change.label()) {
                restore.push(change.inverse());
            }
        }
    }
    restore.reverse();
    let edits: Vec<super::status::HandEdit> =
        super::status::hand_edits(root, &super::status::managed(&all))?
            .into_iter()
            .filter(|e| {
                restore
                    .iter()
                    .any(|r| matches!(r, Change::File { path, .. } if *path == e.path))
            })
            .collect();
    if !edits.is_empty() && !force {
        let shown: Vec<String> = edits
            .iter()
            .map(super::status::HandEdit::describe)
            .collect();
        return Err(Error::Usage(format!(
            "rollback would overwrite {} edited by hand; keep a copy of the edit, then run \
             `netprofile rollback --force` to overwrite it. Nothing was changed\n{}",
            if edits.len() == 1 {
                "a managed drop-in".to_string()
            } else {
                format!("{} managed drop-ins", edits.len())
            },
            shown.join("\n").trim_end()
        )));
    }
    let mut changes = Vec::new();
    for change in &restore {
        let fresh = refresh_before(root, change)?;
        let same = match &fresh {
            Change::Sysctl { key, before, after } => {
                crate::profile::value::same(key, before, after)
            }
            Change::File { before, after, .. } => before == after,
        };
        if !same {
            changes.push(fresh);
        }
    }
    let pending = state::read_pending(root)?;
    let number = state::next_generation(root)?;
    if !changes.is_empty() {
        transaction::execute(root, number, &changes)?;
    }
    let mut generation = Generation::new(number, "rollback", None, changes.clone());
    generation.rollback_of = Some(target);
    transaction::commit(root, &generation)?;
    let mut ended_pending = None;
    if let Some(p) = pending
        && p.generation >= target
    {
        ended_pending = Some(p.generation);
        if let Some(mut g) = state::read_generation(root, p.generation)? {
            g.outcome = Outcome::Reverted;
            state::write_generation(root, &g)?;
        }
        state::clear_pending(root)?;
    }
    let line = format!(
        "rolled back to the state before generation {target} as generation {number}: {}",
        summary(&changes)
    );
    let mut stderr = Vec::new();
    if !edits.is_empty() {
        stderr.push(format!(
            "warning: --force overwrote the hand edits of {}",
            edits
                .iter()
                .map(|e| Root::display(&e.path))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let stdout = if config.json {
        use crate::render::json;
        let (keys, files) = json::split_changes(&changes, false);
        json::pretty(&json::RollbackResult {
            schema: json::SCHEMA,
            command: "rollback",
            exit_code: 0,
            exit_meaning: json::exit_meaning(0),
            rolled_back: target,
            generation: number,
            changed: !changes.is_empty(),
            keys,
            files,
            overwrote_hand_edits: edits.iter().map(|e| Root::display(&e.path)).collect(),
            ended_pending,
            summary: line,
        })
    } else {
        line + "\n"
    };
    Ok(Output {
        code: 0,
        stdout,
        stderr,
    })
}
