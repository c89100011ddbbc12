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
/// Every page has some (tests/packaging.rs checks it).
fn examples(name: &str) -> &'static [(&'static str, &'static str)] {
    match name {
        "netprofile" => &[
            (
                "Show what the high\\-conn profile would change, then apply it with a safety net:",
                "netprofile diff high\\-conn\nnetprofile apply \\-\\-confirm 5m high\\-conn\nnetprofile confirm",
            ),
            ("Undo the last generation:", "netprofile rollback"),
        ],
        "netprofile-apply" => &[
            (
                "Review the plan, then apply; it reverts by itself unless confirmed within 5 minutes:",
                "netprofile apply \\-\\-dry\\-run high\\-conn\nnetprofile apply \\-\\-confirm 5m high\\-conn\nnetprofile confirm",
            ),
            (
                "Apply, measure the gain over loopback, and raise nginx's running processes too:",
                "netprofile apply \\-\\-verify \\-\\-running nginx.service ./web.toml",
            ),
            (
                "The plan as a comment for a pull request:",
                "netprofile apply \\-\\-dry\\-run \\-\\-format markdown ./web.toml",
            ),
        ],
        "netprofile-diff" => &[
            (
                "Compare a profile file with this machine (exit 1 when they differ):",
                "netprofile diff ./web.toml",
            ),
            (
                "Compare a shipped profile with a mounted image, as JSON:",
                "netprofile \\-\\-root /mnt/image \\-\\-json diff high\\-conn",
            ),
        ],
        "netprofile-check" => &[
            (
                "Drift check for monitoring (exit 1 when drifted):",
                "netprofile check high\\-conn",
            ),
            (
                "As a Nagios or Icinga plugin, e.g. in nrpe.cfg:",
                "command[netprofile]=/usr/bin/netprofile check \\-\\-format nagios high\\-conn",
            ),
        ],
        "netprofile-render" => &[(
            "The files a profile writes, for review (the same on every host):",
            "netprofile render high\\-conn\nnetprofile render ./web.toml > review.txt",
        )],
        "netprofile-confirm" => &[(
            "Keep an apply made with \\-\\-confirm (files are written now):",
            "netprofile apply \\-\\-confirm 90s high\\-conn\nnetprofile confirm",
        )],
        "netprofile-rollback" => &[
            (
                "List generations, then undo generation 3 and every later one:",
                "netprofile history\nnetprofile rollback 3",
            ),
            (
                "Undo the last generation although a drop\\-in was edited by hand since:",
                "netprofile rollback \\-\\-force",
            ),
        ],
        "netprofile-history" => &[(
            "List generations, with every value and file each one changed:",
            "netprofile history\nnetprofile \\-v history",
        )],
        "netprofile-status" => &[(
            "What is managed now, any drift, and a pending confirmation:",
            "netprofile status\nnetprofile \\-\\-json status",
        )],
        _ => reading_examples(name),
    }
}

/// EXAMPLES of the pages of the commands that only read: explain, doctor, watch, metrics,
/// completions, profiles and the connection test.
fn reading_examples(name: &str) -> &'static [(&'static str, &'static str)] {
    match name {
        "netprofile-explain" => &[
            (
                "Where somaxconn comes from now and at boot:",
                "netprofile explain net.core.somaxconn",
            ),
            (
                "Who sets the open\\-files limit, at login and for services:",
                "netprofile explain nofile\nnetprofile explain DefaultLimitNOFILE",
            ),
        ],
        "netprofile-doctor" => &[
            (
                "Which limit binds first on this machine now:",
                "netprofile doctor",
            ),
            (
                "Which limits 50000 held connections and 500 new ones per second would meet:",
                "netprofile doctor \\-\\-connections 50000 \\-\\-rate 500/s",
            ),
        ],
        "netprofile-watch" => &[
            (
                "Watch the counters every 5 seconds for a minute, then read the summary:",
                "netprofile watch",
            ),
            (
                "Watch every second during a 10\\-minute load test (Ctrl\\-C ends early):",
                "netprofile watch \\-\\-interval 1s \\-\\-for 10m",
            ),
        ],
        "netprofile-metrics" => &[
            (
                "Write the metrics for node_exporter's textfile collector:",
                "netprofile metrics \\-\\-output /var/lib/prometheus/node\\-exporter/netprofile.prom",
            ),
            (
                "Or let the packaged timer do it every minute:",
                "systemctl enable \\-\\-now netprofile\\-metrics.timer",
            ),
        ],
        "netprofile-completions" => &[(
            "Complete in the current bash, or install for zsh:",
            "source <(netprofile completions bash)\nnetprofile completions zsh > \"${fpath[1]}/_netprofile\"",
        )],
        "netprofile-profiles" => &[(
            "List the shipped profiles, then copy one to edit it:",
            "netprofile profiles\nnetprofile profiles high\\-conn > web.toml",
        )],
        "netprofile-test-serve" => &[(
            "Serve on one host for 5 minutes, and run the client on another:",
            "netprofile test serve \\-\\-listen 0.0.0.0:9000 \\-\\-duration 5m\nnetprofile test churn \\-\\-target 192.0.2.10:9000",
        )],
        _ if name.starts_with("netprofile-test") => &[
            (
                "Hold 20000 connections over loopback:",
                "netprofile test hold \\-n 20000",
            ),
            (
                "Compare two profiles in a private sandbox:",
                "netprofile test churn \\-\\-sandbox \\-\\-compare legacy\\-defaults high\\-conn",
            ),
        ],
        _ => &[],
    }
}

/// The exit codes a page's command really uses (README's table, docs/json.md), by page name.
fn exit_codes(name: &str) -> &'static [(&'static str, &'static str)] {
    const OK: (&str, &str) = ("0", "Success.");
    const BAD: (&str, &str) = (
        "2",
        "Bad usage or input (the error names the file, line or key), or a file it cannot \
         read; nothing was touched.",
    );
    const IN_SYNC: (&str, &str) = ("0", "In sync: the machine matches the profile.");
    const UNDO_FAILED: (&str, &str) = (
        "4",
        "The undo failed too; the message lists each key's state.",
    );
    match name {
        "netprofile" => &[
            (
                "0",
                "Success; for diff, check and apply \\-\\-dry\\-run: in sync.",
            ),
            (
                "1",
                "Differences found (diff, check, apply \\-\\-dry\\-run).",
            ),
            BAD,
            (
                "3",
                "apply (or rollback, confirm) failed and every change was undone.",
            ),
            UNDO_FAILED,
            (
                "",
                "\\fBcheck \\-\\-format nagios\\fR follows the plugin convention instead: 0 OK, \
                 1 WARNING, 2 CRITICAL, 3 UNKNOWN (see \\fBnetprofile\\-check\\fR(8)).",
            ),
        ],
        "netprofile-diff" => &[IN_SYNC, ("1", "The machine differs from the profile."), BAD],
        "netprofile-check" => &[
            IN_SYNC,
            ("1", "Drift: the machine differs from the profile."),
            BAD,
            (
                "",
                "With \\fB\\-\\-format nagios\\fR (and no \\fB\\-\\-json\\fR), the Nagios/Icinga \
                 plugin codes instead:",
            ),
            (
                "0",
                "OK: every value in force is the profile's and will hold.",
            ),
            (
                "1",
                "WARNING: what is in force is right but would not hold at boot or login (a \
                 drop\\-in missing or edited, another file overriding).",
            ),
            ("2", "CRITICAL: a value in force now is not the profile's."),
            (
                "3",
                "UNKNOWN: the check itself failed (a bad profile, an unreadable file); the \
                 error is on the status line.",
            ),
        ],
        "netprofile-apply" => &[
            (
                "0",
                "Applied, or nothing to change; with \\-\\-dry\\-run: nothing would change.",
            ),
            (
                "1",
                "With \\-\\-dry\\-run only: the plan would change something (or raise a running \
                 process's limits).",
            ),
            BAD,
            ("3", "The apply failed and every change was rolled back."),
            (
                "4",
                "The rollback failed too; the message lists each key's state.",
            ),
        ],
        "netprofile-rollback" | "netprofile-confirm" => &[
            OK,
            (
                "2",
                "Bad usage, nothing to do, or refused (a managed drop\\-in edited by hand, shown \
                 as a diff); nothing was touched.",
            ),
            (
                "3",
                "Writing failed and every change it made was undone; the message lists what \
                 was restored.",
            ),
            UNDO_FAILED,
        ],
        _ => &[OK, BAD],
    }
}

/// EXIT STATUS from `exit_codes`; an entry without a code is a paragraph between the codes.
fn exit_status(name: &str) -> String {
    let mut out = String::from(".SH EXIT STATUS\n");
    for (code, meaning) in exit_codes(name) {
        if code.is_empty() {
            out.push_str(&format!(".PP\n{meaning}\n"));
        } else {
            out.push_str(&format!(".TP\n\\fB{code}\\fR\n{meaning}\n"));
        }
    }
    out
}

/// ENVIRONMENT, FILES and the start of SEE ALSO: the same on every page.
const COMMON_SECTIONS: &str = r".SH ENVIRONMENT
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

/// EXAMPLES and EXIT STATUS (per page), then ENVIRONMENT, FILES and SEE ALSO on every page.
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
    out.push_str(&exit_status(name));
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
