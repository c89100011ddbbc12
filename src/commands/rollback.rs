//! `netprofile rollback [GEN]`: back to the state before a generation, as a transaction of its
//! own. Never a toggle: only generations still in effect (`state::in_effect`) are undone, a
//! reverted or rolled-back one never comes back, and a `confirm` belongs to the apply it kept
//! (rolling back restores that apply's keys and its files together).

use super::apply::summary;
use crate::cli::Config;
use crate::commands::Output;
use crate::error::{Error, Result};
use crate::system::root::Root;
use crate::transaction::state::{self, Change, Generation, Outcome};
use crate::transaction::writer::{Writer, is_noop, refresh_before};

/// `netprofile rollback [GEN]`: restores the state before GEN (default: the last apply still in
/// effect). With nothing in effect it says so, changes nothing and exits 0.
///
/// A managed drop-in edited by hand since netprofile wrote it is not overwritten unless
/// `force`: the error shows the edit.
pub fn rollback(config: &Config, target: Option<u64>, force: bool) -> Result<Output> {
    let root = &config.root;
    let writer = Writer::begin(root, "rollback")?;
    let mut stderr = writer.recovered.clone();
    let all = state::generations(root)?;
    let effective = state::in_effect_now(root, &all)?;
    // A `confirm` generation stands for the apply it kept.
    let owner = |g: &Generation| g.confirms.unwrap_or(g.number);
    let target = match target {
        Some(n) => {
            let g = all.iter().find(|g| g.number == n).ok_or_else(|| {
                Error::Usage(format!(
                    "there is no generation {n}; `netprofile history` lists them"
                ))
            })?;
            let n = owner(g);
            if !effective.contains(&n) {
                return Err(Error::Usage(format!(
                    "generation {n} is not in effect (it was reverted, rolled back, failed or \
                     only restored something); `netprofile history` marks the generations in \
                     effect. Nothing was changed"
                )));
            }
            n
        }
        None => match all
            .iter()
            .rev()
            .filter(|g| effective.contains(&g.number))
            .map(owner)
            .next()
        {
            Some(n) => n,
            None => {
                let line = "nothing to roll back: no generation is in effect (`netprofile \
                            history` lists them); nothing was changed";
                let stdout = if config.json {
                    use crate::render::json;
                    json::pretty(&json::RollbackResult {
                        schema: json::SCHEMA,
                        command: "rollback",
                        exit_code: 0,
                        exit_meaning: json::exit_meaning(0),
                        rolled_back: None,
                        generation: None,
                        changed: false,
                        keys: Vec::new(),
                        files: Vec::new(),
                        overwrote_hand_edits: Vec::new(),
                        ended_pending: None,
                        summary: line.to_string(),
                    })
                } else {
                    format!("{line}\n")
                };
                return Ok(Output {
                    code: 0,
                    stdout,
                    stderr,
                });
            }
        },
    };
    // The state before `target`: for each key or file touched by a generation in effect since,
    // the value it had before the first of them that touched it.
    let mut restore: Vec<Change> = Vec::new();
    for g in all
        .iter()
        .filter(|g| g.number >= target && effective.contains(&g.number))
    {
        for change in &g.changes {
            if !restore.iter().any(|r| r.label() == change.label()) {
                restore.push(change.inverse());
            }
        }
    }
    restore.reverse();
    let edits: Vec<super::status::HandEdit> = super::status::hand_edits(
        root,
        &super::status::managed(&all, state::read_pending(root)?.map(|p| p.generation)),
    )?
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
        if !is_noop(&fresh) {
            changes.push(fresh);
        }
    }
    let pending = state::read_pending(root)?;
    let number = writer.next_generation()?;
    let mut generation = Generation::new(number, "rollback", None, changes.clone());
    generation.rollback_of = Some(target);
    writer.run(&generation)?;
    // Bookkeeping after the commit point (in_effect already reads the rollback record).
    for g in all
        .iter()
        .filter(|g| g.number >= target && effective.contains(&g.number))
    {
        let mut g = g.clone();
        g.outcome = Outcome::RolledBack;
        let _ = writer.record(&g);
    }
    let mut ended_pending = None;
    if let Some(p) = pending
        && p.generation >= target
    {
        ended_pending = Some(p.generation);
        let _ = writer.clear_pending();
    }
    let restored: Vec<String> = changes.iter().map(Change::label).collect();
    if !restored.is_empty() {
        stderr.push(format!("restored: {}", restored.join(", ")));
    }
    let line = format!(
        "rolled back to the state before generation {target} as generation {number}: {}",
        summary(&changes)
    );
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
            rolled_back: Some(target),
            generation: Some(number),
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
