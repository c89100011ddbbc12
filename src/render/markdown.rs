//! A plan as a Markdown comment for a pull request (`diff --format markdown`,
//! `apply --dry-run --format markdown`): the summary, one table per kind of setting, warnings,
//! and each file diff in a fenced `diff` block. Pure string building, like the rest of render;
//! it never colours (a pasted comment has no terminal) and never reads anything.

use std::fmt::Write as _;

use super::{Paint, file_diff, or_dash, summary};
use crate::plan::{Action, FileChange, Plan};
use crate::system::root::Namespace;

/// Free text (a warning) that embeds strings from the system or a profile: every character
/// Markdown acts on is backslash-escaped, so `<img>`, `[link](url)`, `**`, `~~`, autolinks
/// (`http\://`) and table pipes stay text; `@` is put in a code span, because GitHub links
/// mentions in text whatever the escaping. Newlines would end the row or quote.
fn text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '@' => out.push_str("`@`"),
            '\n' | '\r' => out.push(' '),
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '<' | '>' | '(' | ')' | '#' | '+'
            | '!' | '|' | '~' | '&' | ':' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// A value from the system or a profile in a table cell: an inline code span, where
/// Markdown makes no links, images, emphasis, HTML or mentions; a fence longer than any run
/// of backticks inside; pipes escaped (GitHub's tables split cells first); newlines become
/// spaces.
fn code(text: &str) -> String {
    let text = text.replace(['\n', '\r'], " ");
    let longest = longest_run(&text, '`');
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}").replace('|', "\\|")
}

/// A value cell: `-` for none, `""` for empty, else the value as code.
fn value(v: Option<&str>) -> String {
    match v {
        None => "-".to_string(),
        Some(v) => code(&or_dash(Some(v))),
    }
}

/// Where a value is set: `` `file`:line ``.
fn place(file: &str, line: usize) -> String {
    format!("{}:{line}", code(file))
}

fn longest_run(text: &str, c: char) -> usize {
    let (mut best, mut run) = (0, 0);
    for ch in text.chars() {
        if ch == c {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best
}

fn action(action: Action) -> String {
    match action {
        Action::Set => format!("**{}**", action.label()),
        _ => action.label().to_string(),
    }
}

fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    out.push('\n');
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(
        out,
        "|{}",
        header.iter().map(|_| "---|").collect::<String>()
    );
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
}

fn diff_block(out: &mut String, change: &FileChange) {
    let diff = file_diff(change, Paint(false));
    let fence = "`".repeat(longest_run(&diff, '`').max(2) + 1);
    let _ = write!(
        out,
        "\n{} ({}):\n\n{fence}diff\n{diff}{fence}\n",
        code(&change.path),
        change.verb()
    );
}

/// The Markdown form of a plan, headed by the command that produced it.
#[must_use]
pub fn plan(plan: &Plan, command: &str) -> String {
    let mut out = String::new();
    let ns = match plan.namespace {
        Namespace::Initial => "initial network namespace",
        Namespace::Private => "private network namespace",
    };
    let _ = writeln!(
        out,
        "### netprofile {command} {}\n\nProfile {} ({}), {ns}: **{}**",
        code(&plan.profile.name),
        code(&plan.profile.name),
        code(&plan.profile.source),
        summary(plan)
    );
    if !plan.sysctl.is_empty() {
        sysctl_table(&mut out, plan);
    }
    if !plan.limits.is_empty() {
        limits_table(&mut out, plan);
    }
    if !plan.systemd.is_empty() {
        systemd_table(&mut out, plan);
    }
    if !plan.services.is_empty() {
        services_table(&mut out, plan);
    }
    if !plan.warnings.is_empty() {
        out.push('\n');
        for w in &plan.warnings {
            let _ = writeln!(out, "> **warning:** {}", text(w));
        }
    }
    let changed: Vec<&FileChange> = plan.files.iter().filter(|f| f.changes()).collect();
    if !changed.is_empty() {
        out.push_str("\n#### Files\n");
        for change in changed {
            diff_block(&mut out, change);
        }
    }
    out
}

/// The sysctl rows: key, live value, the boot file's value and where, wanted, action.
fn sysctl_table(out: &mut String, plan: &Plan) {
    let rows: Vec<Vec<String>> = plan
        .sysctl
        .iter()
        .map(|r| {
            vec![
                code(r.key.as_str()),
                value(r.live.as_deref()),
                r.boot.as_ref().map_or_else(
                    || "-".to_string(),
                    |b| {
                        format!(
                            "{} ({})",
                            value(Some(&b.value)),
                            place(&b.source.file, b.source.line)
                        )
                    },
                ),
                value(Some(&r.wanted)),
                action(r.action),
            ]
        })
        .collect();
    table(
        out,
        &["sysctl", "live", "at boot", "wanted", "action"],
        &rows,
    );
}

/// The limits rows: domain, half and item, live value, the line that sets it, wanted, action.
fn limits_table(out: &mut String, plan: &Plan) {
    let rows: Vec<Vec<String>> = plan
        .limits
        .iter()
        .map(|r| {
            vec![
                code(&format!("{} {} {}", r.domain, r.half, r.item)),
                value(r.live.as_deref()),
                r.source
                    .as_ref()
                    .map_or_else(|| "-".to_string(), |s| place(&s.file, s.line)),
                value(Some(&r.wanted)),
                action(r.action),
            ]
        })
        .collect();
    table(out, &["limit", "live", "set in", "wanted", "action"], &rows);
}

/// The manager's rows (DefaultLimitNOFILE): live value, where it is set, wanted, action.
fn systemd_table(out: &mut String, plan: &Plan) {
    let rows: Vec<Vec<String>> = plan
        .systemd
        .iter()
        .map(|r| {
            vec![
                code(r.setting),
                value(Some(&r.live)),
                r.source
                    .as_ref()
                    .map_or_else(|| "systemd default".to_string(), |s| place(&s.file, s.line)),
                value(Some(&r.wanted)),
                action(r.action),
            ]
        })
        .collect();
    table(
        out,
        &["systemd", "live", "set in", "wanted", "action"],
        &rows,
    );
}

/// The services' LimitNOFILE rows: now, wanted, and what wins after apply (with where).
fn services_table(out: &mut String, plan: &Plan) {
    let at = |v: Option<&String>, s: Option<&crate::plan::Source>| match (v, s) {
        (Some(v), Some(s)) => format!("{} ({})", value(Some(v)), place(&s.file, s.line)),
        _ => "- (DefaultLimitNOFILE)".to_string(),
    };
    let rows: Vec<Vec<String>> = plan
        .services
        .iter()
        .map(|r| {
            vec![
                code(&r.unit),
                at(r.live.as_ref(), r.source.as_ref()),
                value(Some(&r.wanted)),
                at(r.after.as_ref(), r.after_source.as_ref()),
                action(r.action),
            ]
        })
        .collect();
    table(
        out,
        &[
            "service LimitNOFILE",
            "now",
            "wanted",
            "wins after apply",
            "action",
        ],
        &rows,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_spans_survive_backticks_and_pipes() {
        assert_eq!(code("a"), "`a`");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`x"), "`` `x ``");
        assert_eq!(code("a|b"), "`a\\|b`");
        assert_eq!(code("1\n2"), "`1 2`");
    }

    #[test]
    fn free_text_cannot_make_markup() {
        assert_eq!(
            text("<img src=x> [a](http://e) **b** @c |"),
            "\\<img src=x\\> \\[a\\]\\(http\\://e\\) \\*\\*b\\*\\* `@`c \\|"
        );
    }
}
