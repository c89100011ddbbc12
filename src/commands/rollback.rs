//! `netprofile rollback [GEN]`: back to the state before a generation, as a transaction of its
//! own. Never a toggle: only generations still in effect (`state::in_effect`) are undone, a
//! reverted or rolled-back one never comes back, and a `confirm` belongs to the apply it kept
//! (rolling back restores that apply's keys and its files together). A plain `rollback` undoes
//! the user's last change: the boot unit's `apply-pending` generations after it go with it.

use super::apply::summary;
use crate::cli::Config;
use crate::commands::Output;
use crate::error::{Error, Result};
use crate::render::json;
use crate::system::root::Root;
use crate::system::sysctld;
use crate::transaction::drift::{HandEdit, hand_edits};
use crate::transaction::replay;
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
    let Some(target) = replay::rollback_target(&all, &effective, target)? else {
        return Ok(nothing_to_roll_back(config, stderr));
    };
    let mut restore = replay::state_before(&all, &effective, target);
    let boot_notes = to_boot_values(root, &mut restore)?;
    let edits = hand_edits_in_the_way(root, &all, &restore, force)?;
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
    let ended_pending = mark_rolled_back(&writer, &all, &effective, target, pending);
    let restored: Vec<String> = changes.iter().map(Change::label).collect();
    if !restored.is_empty() {
        stderr.push(format!("restored: {}", restored.join(", ")));
    }
    stderr.extend(boot_notes);
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
    let (keys, files) = json::split_changes(&changes, false);
    let doc = json::RollbackResult {
        schema: json::Version,
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
    };
    let stdout = super::render_doc(config, &doc, human);
    Ok(Output {
        code: 0,
        stdout,
        stderr,
    })
}

/// The text of rollback's document: its summary line.
fn human(doc: &json::RollbackResult) -> String {
    format!("{}\n", doc.summary)
}

/// Bookkeeping after the commit point (in_effect already reads the rollback record): the
/// generations undone are marked rolled back, and a `--confirm` among them no longer waits.
/// Returns the pending generation that ended.
fn mark_rolled_back(
    writer: &Writer,
    all: &[Generation],
    effective: &[u64],
    target: u64,
    pending: Option<state::Pending>,
) -> Option<u64> {
    for g in all
        .iter()
        .filter(|g| g.number >= target && effective.contains(&g.number))
    {
        let mut g = g.clone();
        g.outcome = Outcome::RolledBack;
        let _ = writer.record(&g);
    }
    let p = pending.filter(|p| p.generation >= target)?;
    let _ = writer.clear_pending();
    Some(p.generation)
}

/// With no generation in effect: says so, changes nothing, exits 0.
fn nothing_to_roll_back(config: &Config, stderr: Vec<String>) -> Output {
    let line = "nothing to roll back: no generation is in effect (`netprofile \
                history` lists them); nothing was changed";
    let doc = json::RollbackResult {
        schema: json::Version,
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
    };
    let stdout = super::render_doc(config, &doc, human);
    Output {
        code: 0,
        stdout,
        stderr,
    }
}

/// The managed drop-ins edited by hand that the rollback would overwrite: refused (the error
/// shows the edit) unless `force`, and then returned for the warning.
fn hand_edits_in_the_way(
    root: &Root,
    all: &[Generation],
    restore: &[Change],
    force: bool,
) -> Result<Vec<HandEdit>> {
    let edits: Vec<HandEdit> = hand_edits(
        root,
        &replay::managed(all, state::read_pending(root)?.map(|p| p.generation)),
    )?
    .into_iter()
    .filter(|e| {
        restore
            .iter()
            .any(|r| matches!(r, Change::File { path, .. } if *path == e.path))
    })
    .collect();
    if !edits.is_empty() && !force {
        let shown: Vec<String> = edits.iter().map(crate::render::hand_edit).collect();
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
    Ok(edits)
}

/// Rollback leaves the machine as if the undone generations had never been applied: a key is
/// restored to what the boot files set once the restored drop-ins are in place (another file's
/// line, as systemd-sysctl reads them, or netprofile's own earlier drop-in), and to the value
/// journaled before the generation only where no boot file sets it. So live agrees with the
/// next boot: a value another file set at a boot since the apply is not lowered to the
/// journaled one from before that boot. Returns a note per key whose journaled value was not
/// the one restored.
fn to_boot_values(root: &Root, restore: &mut [Change]) -> Result<Vec<String>> {
    let mut files = crate::system::boot_files(root)?;
    for change in restore.iter() {
        if let Change::File { path, after, .. } = change {
            let shown = Root::display(path);
            if let Some(i) = files.iter().position(|f| f.path == shown) {
                match after {
                    Some(text) => text.clone_into(&mut files[i].text),
                    None => {
                        files.remove(i);
                    }
                }
            }
        }
    }
    let mut notes = Vec::new();
    for change in restore.iter_mut() {
        let Change::Sysctl { key, before, after } = change else {
            continue;
        };
        let ints = sysctld::ints_of(key, Some(before));
        let Some(boot) = sysctld::boot_value(&files, key, ints) else {
            continue;
        };
        if !crate::profile::value::same(key, &boot.value, after) {
            notes.push(format!(
                "{key}: back to {}, what {}:{} sets at boot, not {} from before the generation",
                boot.value, boot.file, boot.line, after
            ));
            *after = boot.value;
        }
    }
    Ok(notes)
}
