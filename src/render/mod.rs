//! Turning a `Plan` into what a person reads (a table and unified file diffs) or what a program
//! reads (`--json`, documented in docs/json.md). Pure string building; the caller prints.

pub mod json;
pub mod markdown;
pub mod metrics;
pub mod terminal;

use std::fmt::Write as _;

use serde::Serialize;
use similar::TextDiff;

use crate::plan::{Action, FileChange, Plan};
use crate::system::root::Namespace;

/// ANSI colour, on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paint(pub bool);

impl Paint {
    fn wrap(self, code: &str, text: &str) -> String {
        if self.0 {
            terminal::style(code, text)
        } else {
            text.to_string()
        }
    }
    #[must_use]
    pub fn green(self, t: &str) -> String {
        self.wrap("32", t)
    }
    #[must_use]
    pub fn red(self, t: &str) -> String {
        self.wrap("31", t)
    }
    #[must_use]
    pub fn yellow(self, t: &str) -> String {
        self.wrap("33", t)
    }
    #[must_use]
    pub fn bold(self, t: &str) -> String {
        self.wrap("1", t)
    }
    #[must_use]
    pub fn dim(self, t: &str) -> String {
        self.wrap("2", t)
    }
    fn action(self, action: Action) -> String {
        match action {
            Action::Keep => self.green(action.label()),
            Action::Set => self.yellow(action.label()),
            _ => self.dim(action.label()),
        }
    }
}

/// Lays out rows in columns; the last column is not padded. Widths are what the terminal
/// shows (`terminal::width`: colour takes none, an escaped control character its escape).
/// A cell is one line: each is shown as a `terminal::value` (a value, path or unit name from
/// the system or a profile with a newline in it cannot start a row of its own; a value's own
/// tabs stay as they were).
pub fn table(out: &mut String, header: &[&str], rows: &[Vec<String>], paint: Paint) {
    let visible = terminal::width;
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| terminal::value(cell)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(visible(cell));
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len() - 1;
        let mut text = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            let pad = if i == last {
                0
            } else {
                widths[i] - visible(&cell) + 2
            };
            text.push_str(&cell);
            text.push_str(&" ".repeat(pad));
        }
        text.trim_end().to_string()
    };
    let _ = writeln!(
        out,
        "{}",
        paint.bold(&line(header.iter().map(|h| (*h).to_string()).collect()))
    );
    for row in rows {
        let _ = writeln!(out, "{}", line(row));
    }
}

fn or_dash(v: Option<&str>) -> String {
    match v {
        Some("") => "\"\"".to_string(),
        Some(v) => v.to_string(),
        None => "-".to_string(),
    }
}

/// The unified diff of one file change, with `---`/`+++` headers naming the real path.
#[must_use]
pub fn file_diff(change: &FileChange, paint: Paint) -> String {
    let old = change.old.as_deref().unwrap_or("");
    let new = change.new.as_deref().unwrap_or("");
    let path = terminal::one_line(&change.path);
    let a = if change.old.is_some() {
        path.clone()
    } else {
        "/dev/null".to_string()
    };
    let b = if change.new.is_some() {
        path
    } else {
        "/dev/null".to_string()
    };
    let diff = TextDiff::from_lines(old, new);
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header(&a, &b)
        .to_string();
    text.lines()
        .map(|l| {
            if l.starts_with("+++") || l.starts_with("---") {
                paint.bold(l)
            } else if l.starts_with('+') {
                paint.green(l)
            } else if l.starts_with('-') {
                paint.red(l)
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// A managed drop-in edited or removed by hand (transaction/drift.rs): `edited by hand` or
/// `removed`, with a unified diff of the edit.
#[must_use]
pub fn hand_edit(edit: &crate::transaction::drift::HandEdit) -> String {
    let change = FileChange {
        rel: edit.path.clone(),
        path: crate::system::root::Root::display(&edit.path),
        old: Some(edit.written.clone()),
        new: edit.now.clone(),
    };
    format!(
        "{} was {} since netprofile wrote it:\n{}",
        terminal::one_line(&crate::system::root::Root::display(&edit.path)),
        if edit.now.is_some() {
            "edited by hand"
        } else {
            "removed"
        },
        file_diff(&change, Paint(false))
    )
}

/// The human form of a plan: tables, file diffs and a summary line.
#[must_use]
pub fn human(plan: &Plan, paint: Paint) -> String {
    let mut out = String::new();
    let ns = match plan.namespace {
        Namespace::Initial => "initial network namespace",
        Namespace::Private => "private network namespace",
    };
    let _ = writeln!(
        out,
        "profile {} ({}), {ns}",
        terminal::one_line(&plan.profile.name),
        terminal::one_line(&plan.profile.source)
    );
    if !plan.models.is_empty() {
        let notes: Vec<String> = plan
            .models
            .iter()
            .map(crate::system::versions::Model::short)
            .collect();
        let _ = writeln!(out, "modelled: {}", notes.join(", "));
    }
    sysctl_table(&mut out, plan, paint);
    limits_table(&mut out, plan, paint);
    systemd_table(&mut out, plan, paint);
    services_table(&mut out, plan, paint);
    let changed: Vec<&FileChange> = plan.files.iter().filter(|f| f.changes()).collect();
    for change in &changed {
        out.push('\n');
        out.push_str(&file_diff(change, paint));
    }
    out.push('\n');
    out.push_str(&summary(plan));
    out.push('\n');
    out
}

/// The sysctl rows: key, live value, the boot file's value and where, wanted, action (or
/// pending on a module).
fn sysctl_table(out: &mut String, plan: &Plan, paint: Paint) {
    if plan.sysctl.is_empty() {
        return;
    }
    out.push('\n');
    let rows: Vec<Vec<String>> = plan
        .sysctl
        .iter()
        .map(|r| {
            vec![
                r.key.to_string(),
                or_dash(r.live.as_deref()),
                r.boot.as_ref().map_or_else(
                    || "-".to_string(),
                    |b| {
                        format!(
                            "{} ({}:{})",
                            or_dash(Some(&b.value)),
                            b.source.file,
                            b.source.line
                        )
                    },
                ),
                r.wanted.clone(),
                match r.module {
                    Some(module) => paint.yellow(&format!("pending (module {module})")),
                    None => paint.action(r.action),
                },
            ]
        })
        .collect();
    table(
        out,
        &["SYSCTL", "LIVE", "AT BOOT", "WANTED", "ACTION"],
        &rows,
        paint,
    );
}

/// The limits rows: domain, half and item, live value, the line that sets it, wanted, action.
fn limits_table(out: &mut String, plan: &Plan, paint: Paint) {
    if plan.limits.is_empty() {
        return;
    }
    out.push('\n');
    let rows: Vec<Vec<String>> = plan
        .limits
        .iter()
        .map(|r| {
            vec![
                format!("{} {} {}", r.domain, r.half, r.item),
                or_dash(r.live.as_deref()),
                r.source
                    .as_ref()
                    .map_or_else(|| "-".to_string(), |s| format!("{}:{}", s.file, s.line)),
                r.wanted.clone(),
                paint.action(r.action),
            ]
        })
        .collect();
    table(
        out,
        &["LIMIT", "LIVE", "SET IN", "WANTED", "ACTION"],
        &rows,
        paint,
    );
}

/// The manager's rows (DefaultLimitNOFILE): live value, where it is set, wanted, action.
fn systemd_table(out: &mut String, plan: &Plan, paint: Paint) {
    if plan.systemd.is_empty() {
        return;
    }
    out.push('\n');
    let rows: Vec<Vec<String>> = plan
        .systemd
        .iter()
        .map(|r| {
            vec![
                r.setting.to_string(),
                r.live.clone(),
                r.source.as_ref().map_or_else(
                    || "systemd default".to_string(),
                    |s| format!("{}:{}", s.file, s.line),
                ),
                r.wanted.clone(),
                paint.action(r.action),
            ]
        })
        .collect();
    table(
        out,
        &["SYSTEMD", "LIVE", "SET IN", "WANTED", "ACTION"],
        &rows,
        paint,
    );
}

/// `[systemd.services]` rows: LimitNOFILE now, wanted, and what wins after apply.
fn services_table(out: &mut String, plan: &Plan, paint: Paint) {
    if plan.services.is_empty() {
        return;
    }
    out.push('\n');
    let at = |v: Option<&String>, s: Option<&crate::plan::Source>| match (v, s) {
        (Some(v), Some(s)) => format!("{v} ({}:{})", s.file, s.line),
        _ => "- (DefaultLimitNOFILE)".to_string(),
    };
    let rows: Vec<Vec<String>> = plan
        .services
        .iter()
        .map(|r| {
            vec![
                r.unit.clone(),
                at(r.live.as_ref(), r.source.as_ref()),
                r.wanted.clone(),
                at(r.after.as_ref(), r.after_source.as_ref()),
                paint.action(r.action),
            ]
        })
        .collect();
    table(
        out,
        &[
            "SERVICE LimitNOFILE",
            "NOW",
            "WANTED",
            "WINS AFTER APPLY",
            "ACTION",
        ],
        &rows,
        paint,
    );
}

/// How many of a plan's rows change, wait for a module or are skipped, by kind.
struct Tally {
    /// sysctl keys to set.
    set: usize,
    /// limits.conf entries to set.
    limits: usize,
    /// DefaultLimitNOFILE and services' LimitNOFILE to set.
    systemd: usize,
    pending: usize,
    files: usize,
    skipped: usize,
}

impl Tally {
    fn of(plan: &Plan) -> Self {
        let set = plan
            .sysctl
            .iter()
            .filter(|r| r.action == Action::Set)
            .count();
        // systemd's DefaultLimitNOFILE is a setting of the service manager, not a limits.conf
        // entry: counted apart so "N limits" means what pam_limits reads.
        let limits = plan
            .limits
            .iter()
            .filter(|r| r.action == Action::Set)
            .count();
        let systemd = plan
            .systemd
            .iter()
            .filter(|r| r.action == Action::Set)
            .count()
            + plan
                .services
                .iter()
                .filter(|r| r.action == Action::Set)
                .count();
        let pending = plan
            .sysctl
            .iter()
            .filter(|r| r.action == Action::Pending)
            .count();
        let files = plan.files.iter().filter(|f| f.changes()).count();
        let skipped = plan
            .sysctl
            .iter()
            .filter(|r| matches!(r.action, Action::SkipAbsent | Action::SkipGlobal))
            .count();
        Tally {
            set,
            limits,
            systemd,
            pending,
            files,
            skipped,
        }
    }
}

/// One line: what differs, or that everything is in sync.
#[must_use]
pub fn summary(plan: &Plan) -> String {
    let tally = Tally::of(plan);
    if plan.differs() {
        differs_line(plan, &tally)
    } else {
        in_sync_line(plan, &tally)
    }
}

/// `in sync: N keys as wanted`, with what was skipped, pending or accepted as overridden.
fn in_sync_line(plan: &Plan, tally: &Tally) -> String {
    let Tally {
        pending, skipped, ..
    } = *tally;
    let wanted = plan.sysctl.len() - skipped - pending;
    let mut s = format!(
        "in sync: {wanted} key{} as wanted",
        if wanted == 1 { "" } else { "s" }
    );
    if skipped > 0 {
        let _ = write!(s, ", {skipped} skipped");
    }
    if pending > 0 {
        let _ = write!(s, ", {pending} pending (module not loaded)");
    }
    if !plan.overrides.is_empty() {
        let _ = write!(
            s,
            ", {} overridden by other files (accepted)",
            plan.overrides.len()
        );
    }
    s
}

/// `differs: …`, each kind of change counted.
fn differs_line(plan: &Plan, tally: &Tally) -> String {
    let Tally {
        set,
        limits,
        systemd,
        pending,
        files,
        skipped,
    } = *tally;
    let mut parts = Vec::new();
    if set > 0 {
        parts.push(format!(
            "{set} key{} to set",
            if set == 1 { "" } else { "s" }
        ));
    }
    if limits > 0 {
        parts.push(format!(
            "{limits} limit{} to set",
            if limits == 1 { "" } else { "s" }
        ));
    }
    if systemd > 0 {
        parts.push(format!(
            "{systemd} systemd setting{} to set",
            if systemd == 1 { "" } else { "s" }
        ));
    }
    if files > 0 {
        parts.push(format!(
            "{files} file{} to write",
            if files == 1 { "" } else { "s" }
        ));
    }
    let overridden = plan.overrides.iter().filter(|o| !o.accepted).count();
    if overridden > 0 {
        parts.push(format!("{overridden} overridden by other files"));
    }
    if skipped > 0 {
        parts.push(format!("{skipped} skipped"));
    }
    if pending > 0 {
        parts.push(format!("{pending} pending (module not loaded)"));
    }
    format!("differs: {}", parts.join(", "))
}

/// `diff`, `check` and `apply --dry-run` under --json: docs/schema/diff.json (and check.json,
/// apply.json).
#[derive(Serialize, schemars::JsonSchema)]
pub struct JsonPlan<'a> {
    schema: json::Version,
    command: &'a str,
    in_sync: bool,
    exit_code: i32,
    exit_meaning: &'static str,
    /// `apply --dry-run`: true; the plan is what apply would do.
    dry_run: bool,
    #[serde(flatten)]
    plan: &'a Plan,
    diffs: Vec<JsonDiff<'a>>,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct JsonDiff<'a> {
    path: &'a str,
    action: &'static str,
    diff: String,
}

/// The `--json` form of a plan (docs/json.md).
#[must_use]
pub fn json(plan: &Plan, command: &str) -> String {
    let code = i32::from(plan.differs());
    // `apply --dry-run` prints the plan as `apply` with `dry_run: true`.
    let (command, dry_run) = match command.strip_suffix(" --dry-run") {
        Some(c) => (c, true),
        None => (command, false),
    };
    let doc = JsonPlan {
        schema: json::Version,
        command,
        in_sync: !plan.differs(),
        exit_code: code,
        exit_meaning: json::exit_meaning(code),
        dry_run,
        plan,
        diffs: plan
            .files
            .iter()
            .map(|f| JsonDiff {
                path: &f.path,
                action: f.verb(),
                diff: if f.changes() {
                    file_diff(f, Paint(false))
                } else {
                    String::new()
                },
            })
            .collect(),
    };
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}
