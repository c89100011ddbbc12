//! `netprofile __generate man|completions|schema DIR` (hidden): the man pages and shell
//! completions the packages ship, generated from the clap definition in cli.rs so that a new
//! subcommand or flag appears in them without anyone editing a page, and the JSON Schemas of
//! docs/schema/, generated from the report types (commands/schema.rs). It writes only into DIR and never reads the
//! system; packaging/build.sh runs it on the binary it packages, so pages match that binary.

use std::path::Path;

use clap::CommandFactory;

use super::Output;
use crate::cli::{Cli, CompletionShell, Generate};
use crate::error::{Error, Result};

/// Writes the pages or completions into `dir` (created if missing) and lists what it wrote.
pub fn generate(what: Generate, dir: &Path) -> Result<Output> {
    std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
    let written = match what {
        Generate::Man => man(dir)?,
        Generate::Completions => completions(dir)?,
        Generate::Schema => schemas(dir)?,
    };
    Ok(Output {
        code: 0,
        stdout: written.iter().map(|p| format!("{p}\n")).collect(),
        stderr: Vec::new(),
    })
}

/// docs/schema/NAME.json for every `--json` document (commands/schema.rs).
fn schemas(dir: &Path) -> Result<Vec<String>> {
    let mut written = Vec::new();
    for (name, text) in super::schema::files() {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| Error::write(&path, e))?;
        written.push(path.display().to_string());
    }
    Ok(written)
}

/// netprofile.8, then netprofile-SUB.8 for every visible subcommand (and theirs: test-hold...).
/// Section 8: the tool changes kernel settings and is run by the administrator, like ip(8).
fn man(dir: &Path) -> Result<Vec<String>> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    page(&cmd, dir, &mut written)?;
    Ok(written)
}

fn page(cmd: &clap::Command, dir: &Path, written: &mut Vec<String>) -> Result<()> {
    let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_string();
    let man = clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("System Administration")
        .source(format!("netprofile {}", env!("CARGO_PKG_VERSION")));
    let mut roff: Vec<u8> = Vec::new();
    let rendered = (|| -> std::io::Result<()> {
        man.render_title(&mut roff)?;
        man.render_name_section(&mut roff)?;
        roff.extend_from_slice(synopsis(cmd, &name.replace('-', " ")).as_bytes());
        man.render_description_section(&mut roff)?;
        man.render_options_section(&mut roff)?;
        if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
            man.render_subcommands_section(&mut roff)?;
        }
        Ok(())
    })();
    rendered.map_err(|e| Error::write(dir, e))?;
    roff.extend_from_slice(sections(&name).as_bytes());
    let path = dir.join(format!("{name}.8"));
    std::fs::write(&path, roff).map_err(|e| Error::write(&path, e))?;
    written.push(path.display().to_string());
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        page(sub, dir, written)?;
    }
    Ok(())
}

/// Text for roff: backslashes and hyphens escaped, no line starting with a control character.
fn esc(text: &str) -> String {
    let out = text.replace('\\', "\\e").replace('-', "\\-");
    if out.starts_with('.') || out.starts_with('\'') {
        format!("\\&{out}")
    } else {
        out
    }
}

/// SYNOPSIS with each option's value (`--root DIR`, `--color WHEN`), which clap_mangen omits.
fn synopsis(cmd: &clap::Command, full_name: &str) -> String {
    let mut words = vec![format!("\\fB{}\\fR", esc(full_name))];
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        if arg.is_positional() {
            continue;
        }
        let flag = match (arg.get_short(), arg.get_long()) {
            (Some(s), Some(l)) => format!("\\fB\\-{s}\\fR|\\fB\\-\\-{}\\fR", esc(l)),
            (None, Some(l)) => format!("\\fB\\-\\-{}\\fR", esc(l)),
            (Some(s), None) => format!("\\fB\\-{s}\\fR"),
            (None, None) => continue,
        };
        let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values());
        let value = if takes_value {
            let names: Vec<String> = arg.get_value_names().map_or_else(
                || vec![arg.get_id().as_str().to_uppercase()],
                |v| v.iter().map(ToString::to_string).collect(),
            );
            let possible: Vec<String> = arg
                .get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| v.get_name().to_string())
                .collect();
            if possible.is_empty() {
                names
                    .iter()
                    .map(|n| format!(" \\fI{}\\fR", esc(n)))
                    .collect::<String>()
            } else {
                format!(" {}", esc(&possible.join("|")))
            }
        } else {
            String::new()
        };
        let repeat = if matches!(
            arg.get_action(),
            clap::ArgAction::Append | clap::ArgAction::Count
        ) {
            "..."
        } else {
            ""
        };
        if arg.is_required_set() {
            words.push(format!("{flag}{value}{repeat}"));
        } else {
            words.push(format!("[{flag}{value}]{repeat}"));
        }
    }
    for arg in cmd.get_positionals().filter(|a| !a.is_hide_set()) {
        let name = arg
            .get_value_names()
            .and_then(|v| v.first().map(ToString::to_string))
            .unwrap_or_else(|| arg.get_id().as_str().to_uppercase());
        if arg.is_required_set() {
            words.push(format!("\\fI{}\\fR", esc(&name)));
        } else {
            words.push(format!("[\\fI{}\\fR]", esc(&name)));
        }
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        words.push("\\fICOMMAND\\fR".to_string());
    }
    format!(".SH SYNOPSIS\n{}\n", words.join(" "))
}

/// The commands a page shows in its EXAMPLES (a description, then roff lines), by page name.
fn examples(name: &str) -> &'static [(&'static str, &'static str)] {
    match name {
        "netprofile" | "netprofile-apply" => &[
            (
                "Show what the high-conn profile would change, then apply it with a safety net:",
                "netprofile diff high\\-conn\nnetprofile apply \\-\\-confirm 5m high\\-conn\nnetprofile confirm",
            ),
            ("Undo the last generation:", "netprofile rollback"),
        ],
        "netprofile-diff" | "netprofile-check" | "netprofile-render" => &[
            (
                "Compare a profile file with this machine:",
                "netprofile diff ./web.toml",
            ),
            (
                "Drift check for monitoring (exit 1 when drifted):",
                "netprofile check high\\-conn",
            ),
            (
                "The files a profile writes, for review:",
                "netprofile render high\\-conn",
            ),
        ],
        "netprofile-rollback"
        | "netprofile-history"
        | "netprofile-status"
        | "netprofile-confirm" => &[
            (
                "List generations, then undo generation 3 and every later one:",
                "netprofile history\nnetprofile rollback 3",
            ),
            (
                "What is managed now, and any pending confirmation:",
                "netprofile status",
            ),
        ],
        "netprofile-explain" | "netprofile-doctor" => &[
            (
                "Where somaxconn comes from now and at boot:",
                "netprofile explain net.core.somaxconn",
            ),
            (
                "Which limit 50000 held connections would meet first:",
                "netprofile doctor \\-\\-connections 50000",
            ),
        ],
        "netprofile-completions" => &[(
            "Complete in the current bash, or install for zsh:",
            "source <(netprofile completions bash)\nnetprofile completions zsh > \"${fpath[1]}/_netprofile\"",
        )],
        "netprofile-profiles" => &[(
            "Copy a shipped profile to edit it:",
            "netprofile profiles high\\-conn > web.toml",
        )],
        _ if name.starts_with("netprofile-test") => &[
            (
                "Hold 20000 connections over loopback:",
                "netprofile test hold \\-n 20000",
            ),
            (
                "Compare two profiles in a private sandbox:",
                "netprofile test churn \\-\\-compare legacy\\-defaults high\\-conn",
            ),
        ],
        _ => &[],
    }
}

/// EXIT STATUS, ENVIRONMENT, FILES and the start of SEE ALSO: the same on every page.
const COMMON_SECTIONS: &str = r".SH EXIT STATUS
.TP
\fB0\fR
Success; for diff, check and apply \-\-dry\-run: in sync.
.TP
\fB1\fR
Differences found (diff, check, apply \-\-dry\-run).
.TP
\fB2\fR
Bad usage or input (a profile error names its file, line and key); nothing was touched.
.TP
\fB3\fR
apply failed and every change was rolled back.
.TP
\fB4\fR
The rollback failed too; the message lists each key's state.
.SH ENVIRONMENT
.TP
\fBNO_COLOR\fR
When set and not empty, \fB\-\-color auto\fR prints no colour.
.TP
\fBNETPROFILE_COMPLETE\fR
Set by the scripts of \fBnetprofile completions\fR: the command line is completed, not run.
.SH FILES
.TP
\fI/etc/sysctl.d/90\-netprofile.conf\fR
The persisted kernel settings (read at boot by systemd\-sysctl).
.TP
\fI/etc/security/limits.d/90\-netprofile.conf\fR
The persisted limits.conf entries (read at login by pam_limits).
.TP
\fI/etc/systemd/system.conf.d/90\-netprofile.conf\fR, \fI/etc/systemd/system/NAME.service.d/90\-netprofile.conf\fR
systemd's default and per\-service limits.
.TP
\fI/etc/modules\-load.d/netprofile.conf\fR
Modules a profile loads at boot.
.TP
\fI/var/lib/netprofile/\fR
Generations and the journal of an interrupted apply (root only, mode 0700).
.TP
\fI/run/netprofile.lock\fR, \fI/run/netprofile/\fR
The writers' lock and a pending \fB\-\-confirm\fR.
.TP
\fI/usr/share/netprofile/profiles/\fR, \fI/usr/share/netprofile/schema/\fR
The shipped profiles (also built in) and the JSON Schemas of \fB\-\-json\fR output.
.SH SEE ALSO
";

/// EXAMPLES (per page), then EXIT STATUS, ENVIRONMENT, FILES and SEE ALSO on every page.
fn sections(name: &str) -> String {
    let examples = examples(name);
    let mut out = String::new();
    if !examples.is_empty() {
        out.push_str(".SH EXAMPLES\n");
        for (what, commands) in examples {
            out.push_str(&format!(
                ".PP\n{what}\n.PP\n.RS 4\n.nf\n{commands}\n.fi\n.RE\n"
            ));
        }
    }
    out.push_str(COMMON_SECTIONS);
    if name != "netprofile" {
        out.push_str("\\fBnetprofile\\fR(8),\n");
    }
    out.push_str(
        "\\fBsysctl.d\\fR(5),\n\\fBlimits.conf\\fR(5),\n\\fBsystemd\\-sysctl\\fR(8),\n\
         \\fBsystemd\\-system.conf\\fR(5),\n\\fBsysctl\\fR(8),\n\\fBprlimit\\fR(1)\n",
    );
    out
}

/// netprofile.bash, _netprofile (zsh) and netprofile.fish: the scripts `netprofile completions
/// SHELL` prints, which ask the installed binary at each TAB (crate::complete).
fn completions(dir: &Path) -> Result<Vec<String>> {
    let mut written = Vec::new();
    for (shell, name) in [
        (CompletionShell::Bash, "netprofile.bash"),
        (CompletionShell::Zsh, "_netprofile"),
        (CompletionShell::Fish, "netprofile.fish"),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, crate::complete::script(shell))
            .map_err(|e| Error::write(&path, e))?;
        written.push(path.display().to_string());
    }
    Ok(written)
}
