//! `netprofile status`: what netprofile manages now and whether the machine still holds it.
//!
//! "Managed" is the replay of the generations still in force: applies, confirms and their
//! file-only generations count; a generation reverted (an unconfirmed `--confirm`) or undone
//! by a later `rollback` does not. Drift is any difference: a key's live value, a managed
//! drop-in edited or removed by hand, a limit whose value in force for a login is not the one
//! configured, a systemd setting overridden (worked out in transaction/drift.rs; this file
//! assembles the document and renders it). Limits and systemd settings are reported apart.
//! Read-only: never takes the lock, never writes.

use serde::Serialize;

use super::Output;
use crate::cli::Config;
use crate::error::Result;
use crate::system::root::Root;
use crate::transaction::drift::{
    FileRow, HandEdit, KeyRow, LimitRow, SystemdRow, Where, file_rows, hand_edits, key_rows,
    limit_rows, systemd_rows,
};
use crate::transaction::replay::{self, in_force, managed, recently_dropped};
use crate::transaction::state;

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct PendingRow {
    generation: u64,
    seconds_left: u64,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct StatusDoc {
    #[serde(flatten)]
    envelope: crate::render::json::Envelope,
    /// True when nothing managed has drifted.
    in_sync: bool,
    drifted: usize,
    managed: Vec<KeyRow>,
    files: Vec<FileRow>,
    limits: Vec<LimitRow>,
    systemd: Vec<SystemdRow>,
    pending: Option<PendingRow>,
    /// `--confirm` generations a reboot ended before `netprofile confirm` (nothing of them is
    /// in place), since the last change a user made.
    dropped: Vec<u64>,
    open_journal: bool,
    /// Every recorded generation, as `history` shows it.
    generations: Vec<state::Generation>,
    /// The generations still in force.
    in_force: Vec<u64>,
    /// Values another file overrides, accepted with `apply --allow-override`: reported as
    /// overridden, not as drift.
    overridden: Vec<crate::plan::Override>,
    /// Keys waiting for a module, and listening processes still on old limits.
    processes: super::running::StatusProcesses,
    /// The systemd-sysctl and pam_limits versions the boot and login values were modelled on.
    models: Vec<crate::system::versions::Model>,
}

/// `netprofile status`: managed keys, files, limits and systemd settings now, and any pending
/// confirmation. Exit 0: status informs; `check PROFILE` is the monitoring command.
pub fn status(config: &Config) -> Result<Output> {
    let root = &config.root;
    let all = state::generations(root)?;
    let pending_record = state::read_pending(root)?;
    let pending_generation = pending_record.as_ref().map(|p| p.generation);
    let managed = managed(&all, pending_generation);
    let keys = key_rows(root, &managed)?;
    let edits = hand_edits(root, &managed)?;
    let files = file_rows(&managed, &edits);
    let limits = limit_rows(root, &managed)?;
    let systemd = systemd_rows(root, &managed)?;
    let drifted = keys.iter().filter(|r| !r.in_sync).count()
        + files.iter().filter(|r| !r.in_sync).count()
        + limits.iter().filter(|r| !r.in_sync).count()
        + systemd.iter().filter(|r| !r.in_sync).count();
    let pending = pending_record.map(|p| PendingRow {
        generation: p.generation,
        seconds_left: p
            .deadline_ms
            .saturating_sub(state::epoch_millis())
            .div_ceil(1000),
    });
    // One read of the live state (the dpkg database among it, 0.8 MB here) serves the old
    // limits, the models and the lockout line.
    let live = crate::system::LiveState::read(root, &crate::profile::Profile::default())?;
    let old_limits = crate::system::processes::stale(root, &live)?;
    let versions = &live.versions;
    let doc = StatusDoc {
        envelope: crate::render::json::Envelope::new("status", 0),
        in_sync: drifted == 0,
        drifted,
        managed: keys,
        files,
        limits,
        systemd,
        pending,
        dropped: recently_dropped(&all, pending_generation),
        open_journal: root.path(state::JOURNAL).exists(),
        generations: state::as_shown(&all, pending_generation),
        in_force: in_force(&all, pending_generation)
            .iter()
            .map(|g| g.number)
            .collect(),
        overridden: replay::accepted_overrides(root)?,
        processes: super::running::status_processes(root, &old_limits)?,
        models: versions.models(),
    };
    let stdout = if config.json {
        crate::render::json::pretty(&doc)
    } else {
        human_with_sections(config, root, &doc, &edits, &old_limits)?
    };
    Ok(Output {
        code: 0,
        stdout,
        stderr: lockout_pointer(root, versions.pam_rules()),
    })
}

/// One line when pam_limits refuses logins on the root (issue 18), pointing at `doctor`, whose
/// findings name each cause with its file and fix. It costs what reading passwd, group and the
/// limits files costs (no process or socket is read); nothing when pam_limits is not
/// installed, and nothing when those files cannot be read (doctor says why).
fn lockout_pointer(root: &Root, rules: crate::system::limits::PamRules) -> Vec<String> {
    if !crate::system::pam_limits_installed(root) {
        return Vec::new();
    }
    let Ok(found) = crate::system::login_lockouts_under(root, rules) else {
        return Vec::new();
    };
    let Some(first) = found.first() else {
        return Vec::new();
    };
    let place = if first.line > 0 {
        format!("{}:{}", first.file, first.line)
    } else {
        first.file.clone()
    };
    vec![format!(
        "warning: pam_limits refuses logins on this root ({}, the first in {place}): run \
         `netprofile doctor` for each cause and its fix",
        plural(found.len(), "cause", "causes")
    )]
}

/// The text of status: the tables, then, before the closing count line, what is waiting for
/// a module, what still runs with old limits, and the models the values were read with.
fn human_with_sections(
    config: &Config,
    root: &Root,
    doc: &StatusDoc,
    edits: &[HandEdit],
    old_limits: &[crate::system::processes::Stale],
) -> Result<String> {
    let mut text = human(config, doc, edits);
    let last = text.trim_end_matches('\n').rfind('\n').map_or(0, |i| i + 1);
    let tail = text.split_off(last);
    text.push_str(&super::running::pending_section(root)?);
    text.push_str(&super::running::old_limits_text(root, old_limits));
    let notes: Vec<String> = doc
        .models
        .iter()
        .map(crate::system::versions::Model::short)
        .collect();
    text.push_str(&format!("modelled: {}\n", notes.join(", ")));
    text.push_str(&tail);
    Ok(text)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn human(config: &Config, doc: &StatusDoc, edits: &[HandEdit]) -> String {
    let mut out = String::new();
    if doc.managed.is_empty() && doc.files.is_empty() {
        out.push_str("no keys managed yet (no generation in force)\n");
    }
    keys_table(&mut out, config, doc);
    limits_tables(&mut out, config, doc);
    files_table(&mut out, config, doc);
    if config.verbose > 0 {
        for e in edits {
            out.push('\n');
            out.push_str(&crate::render::hand_edit(e));
        }
    }
    if !out.is_empty() && !out.ends_with("\n\n") && !doc.managed.is_empty() {
        out.push('\n');
    }
    notices(&mut out, doc);
    counts(&mut out, doc);
    out
}

fn state(config: &Config, ok: bool, bad: &str) -> String {
    if ok {
        config.paint.green("ok")
    } else {
        config.paint.yellow(bad)
    }
}

fn place(s: Option<&Where>, default: &str) -> String {
    s.map_or_else(|| default.to_string(), |s| format!("{}:{}", s.file, s.line))
}

/// The managed sysctl keys: live, last set, drifted or not.
fn keys_table(out: &mut String, config: &Config, doc: &StatusDoc) {
    if doc.managed.is_empty() {
        return;
    }
    let rows: Vec<Vec<String>> = doc
        .managed
        .iter()
        .map(|r| {
            vec![
                r.key.clone(),
                r.live.clone().unwrap_or_else(|| "-".into()),
                r.wanted.clone(),
                state(config, r.in_sync, "drifted"),
            ]
        })
        .collect();
    crate::render::table(
        out,
        &["SYSCTL", "LIVE", "LAST SET", "STATE"],
        &rows,
        config.paint,
    );
}

/// The limits a login gets and systemd's settings, each beside what the drop-in configures.
fn limits_tables(out: &mut String, config: &Config, doc: &StatusDoc) {
    let limits: Vec<Vec<String>> = doc
        .limits
        .iter()
        .map(|r| {
            vec![
                format!("{} {} {}", r.domain, r.half, r.item),
                r.live.clone().unwrap_or_else(|| "-".into()),
                place(r.source.as_ref(), "kernel default"),
                r.wanted.clone(),
                state(config, r.in_sync, "drifted"),
            ]
        })
        .collect();
    let systemd: Vec<Vec<String>> = doc
        .systemd
        .iter()
        .map(|r| {
            vec![
                r.setting.to_string(),
                r.live.clone().unwrap_or_else(|| "-".into()),
                place(r.source.as_ref(), "systemd default"),
                r.wanted.clone(),
                state(config, r.in_sync, "drifted"),
            ]
        })
        .collect();
    for (first, rows) in [("LIMIT", limits), ("SYSTEMD", systemd)] {
        if rows.is_empty() {
            continue;
        }
        out.push('\n');
        crate::render::table(
            out,
            &[first, "IN FORCE", "SET IN", "CONFIGURED", "STATE"],
            &rows,
            config.paint,
        );
    }
}

/// The managed drop-ins, and whether a hand edited or removed one.
fn files_table(out: &mut String, config: &Config, doc: &StatusDoc) {
    if doc.files.is_empty() {
        return;
    }
    out.push('\n');
    let rows: Vec<Vec<String>> = doc
        .files
        .iter()
        .map(|r| {
            vec![
                r.path.clone(),
                state(
                    config,
                    r.in_sync,
                    if r.state == "removed" {
                        "drifted (removed by hand)"
                    } else {
                        "drifted (edited by hand)"
                    },
                ),
            ]
        })
        .collect();
    crate::render::table(out, &["FILE", "STATE"], &rows, config.paint);
}

/// A pending confirmation, dropped ones, an open journal and accepted overrides.
fn notices(out: &mut String, doc: &StatusDoc) {
    if let Some(p) = &doc.pending {
        out.push_str(&format!(
            "pending: generation {} reverts in {} s unless `netprofile confirm`\n",
            p.generation, p.seconds_left
        ));
    }
    for n in &doc.dropped {
        out.push_str(&format!(
            "dropped: generation {n} (apply --confirm) was ended by a reboot before `netprofile \
             confirm`; nothing of it is in place\n"
        ));
    }
    if doc.open_journal {
        out.push_str("open journal: an interrupted run; run netprofile as root to restore it\n");
    }
    for o in &doc.overridden {
        out.push_str(&format!(
            "{}  overridden at {} by {}:{} ({}, netprofile wants {}; accepted with \
             --allow-override)\n",
            o.setting, o.when, o.file, o.line, o.value, o.wanted
        ));
    }
}

/// The generations in effect and the closing counts.
fn counts(out: &mut String, doc: &StatusDoc) {
    out.push_str(&if doc.in_force.is_empty() {
        "in effect: no generation\n".to_string()
    } else {
        let list: Vec<String> = doc.in_force.iter().map(u64::to_string).collect();
        format!(
            "in effect: generation{} {}\n",
            if list.len() == 1 { "" } else { "s" },
            list.join(", ")
        )
    });
    let mut also = Vec::new();
    if !doc.limits.is_empty() {
        also.push(plural(doc.limits.len(), "limit", "limits"));
    }
    if !doc.systemd.is_empty() {
        also.push(plural(
            doc.systemd.len(),
            "systemd setting",
            "systemd settings",
        ));
    }
    if !doc.files.is_empty() {
        also.push(plural(doc.files.len(), "file", "files"));
    }
    if !also.is_empty() {
        out.push_str(&format!(
            "also managed: {}; {} in force\n",
            also.join(", "),
            plural(doc.in_force.len(), "generation", "generations")
        ));
    }
    out.push_str(&format!(
        "{}, {} drifted, {}\n",
        plural(doc.managed.len(), "managed key", "managed keys"),
        doc.drifted,
        plural(doc.generations.len(), "generation", "generations"),
    ));
}
