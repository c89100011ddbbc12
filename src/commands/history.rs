//! `netprofile history`: the generations, oldest first.

use super::Output;
use crate::cli::Config;
use crate::error::Result;
use crate::render::json;
use crate::render::terminal::one_line;

/// `netprofile history`: one line per generation, oldest first.
pub fn history(config: &Config) -> Result<Output> {
    let pending = crate::transaction::state::read_pending(&config.root)
        .ok()
        .flatten()
        .map(|p| p.generation);
    // A `--confirm` generation a reboot dropped shows as dropped, whether or not a writer has
    // recorded it yet.
    let all = crate::transaction::state::as_shown(
        &crate::transaction::state::generations(&config.root)?,
        pending,
    );
    let in_effect = crate::transaction::state::in_effect_with(&all, pending);
    let doc = json::HistoryDoc {
        envelope: json::Envelope::new("history", 0),
        generations: &all,
    };
    let stdout = super::render_doc(config, &doc, |doc| {
        human(doc, &in_effect, config.verbose > 0)
    });
    Ok(Output {
        code: 0,
        stdout,
        stderr: Vec::new(),
    })
}

/// The text of history's document: a generation each, or that there is none yet.
fn human(doc: &json::HistoryDoc<'_>, in_effect: &[u64], verbose: bool) -> String {
    if doc.generations.is_empty() {
        return "no generations yet\n".into();
    }
    doc.generations
        .iter()
        .map(|g| line(g, in_effect.contains(&g.number), verbose))
        .collect()
}

/// One generation: number, time, operation, outcome, profile, then what it changed (each
/// change on its own line with -v).
fn line(g: &crate::transaction::state::Generation, in_effect: bool, verbose: bool) -> String {
    let profile = g.profile.as_ref().map_or_else(
        || "-".to_string(),
        |p| {
            format!(
                "{} {} sha256:{}",
                one_line(&p.name),
                one_line(&p.source),
                &p.sha256[..12.min(p.sha256.len())]
            )
        },
    );
    let what: Vec<String> = g.changes.iter().map(|c| one_line(&c.label())).collect();
    let op = match g.rollback_of {
        Some(n) => format!("{} of {n}", g.op),
        None => g.op.clone(),
    };
    let mut out = format!(
        "{:>4}  {}  {:<14}  {:<10}  {}\n      {}\n",
        g.number,
        g.time,
        op,
        g.outcome.name().to_string() + if in_effect { " (in effect)" } else { "" },
        profile,
        if what.is_empty() {
            "(no changes)".to_string()
        } else {
            what.join(", ")
        }
    );
    if verbose {
        for change in &g.changes {
            out.push_str(&format!("        {}\n", describe(change)));
        }
    }
    out
}

fn describe(change: &crate::transaction::state::Change) -> String {
    match change {
        crate::transaction::state::Change::Sysctl { key, before, after } => {
            format!("{key}: {before} -> {after}")
        }
        crate::transaction::state::Change::File {
            path,
            before,
            after,
        } => format!(
            "{}: {}",
            one_line(&crate::system::root::Root::display(path)),
            match (before, after) {
                (None, Some(_)) => "created",
                (Some(_), None) => "removed",
                _ => "rewritten",
            }
        ),
        crate::transaction::state::Change::Rlimit { before, after, .. } => {
            format!("{}: {before} -> {after}", one_line(&change.label()))
        }
    }
}
