//! netprofile: declarative kernel tuning for many TCP connections.
//!
//! The binary is a thin shell around [`run`]. The work lives in one folder per layer, in the
//! order data flows (docs/architecture.md): `profile` loads and checks the TOML, `system` reads
//! the machine through `Root` with the rules of systemd-sysctl and pam_limits, `plan` compares
//! them without I/O, `render` shows the result, `transaction` applies it with a journal, and
//! `commands` holds one file per subcommand. `conntest` is the connection test.

pub mod cli;
pub mod commands;
pub mod complete;
pub mod conntest;
pub mod doctor;
pub mod error;
pub mod plan;
pub mod profile;
pub mod render;
pub mod system;
pub mod transaction;

use std::ffi::OsString;
use std::io::Write;

use clap::Parser;

use crate::cli::{Cli, Command, Config};

/// Runs netprofile with the given arguments and returns the process exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> i32 {
    let args: Vec<OsString> = args.into_iter().collect();
    // A TAB in a shell that sourced `netprofile completions SHELL`: answer and do nothing else.
    if complete::answer(&args) {
        return 0;
    }
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => return refused(&args, &e),
    };
    let config = Config::resolve(&cli);
    let result = match dispatch(&config, &cli.command) {
        // Whatever stopped `check --format nagios` (a missing --root, say) is UNKNOWN.
        Err(e) if nagios(&config, &cli.command) => {
            let mut out = commands::check::nagios_unknown(&e.to_string());
            out.stderr.push(format!("error: {e}"));
            Ok(out)
        }
        other => other,
    };
    match result {
        Ok(output) => {
            for line in &output.stderr {
                print_human(Stream::Stderr, &format!("{}\n", error::clip(line)));
            }
            if config.json {
                // JSON stays exact: serde escapes every control character itself.
                print_stdout(&output.stdout);
            } else {
                print_human(Stream::Stdout, &output.stdout);
            }
            output.code
        }
        Err(e) => {
            print_human(
                Stream::Stderr,
                &format!("{}\n", error::clip(&format!("error: {e}"))),
            );
            if config.json {
                print_stdout(&render::json::error(command_name(&cli.command), &e));
            }
            e.exit_code()
        }
    }
}

/// A command line clap refused: its message on stderr (help and version on stdout, exit 0);
/// exit 2, with the JSON error document under `--json`, or UNKNOWN (exit 3) for `check --format
/// nagios`.
fn refused(args: &[OsString], e: &clap::Error) -> i32 {
    let _ = e.print();
    // --help and --version are not errors; clap knows which is which.
    if !e.use_stderr() {
        return 0;
    }
    let text = e.render().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    // Automation asked for JSON: a refused command line is a document too.
    if args.iter().skip(1).any(|a| a == "--json") {
        print_stdout(&render::json::usage_error(text));
    } else if nagios_requested(args) {
        // A monitoring plugin: UNKNOWN (3), never the 2 Nagios would show as CRITICAL.
        let out = commands::check::nagios_unknown(&format!(
            "bad command line: {}",
            first_paragraph(text)
        ));
        print_stdout(&out.stdout);
        return out.code;
    }
    2
}

/// `check --format nagios` without `--json`: the plugin convention holds.
fn nagios(config: &Config, command: &Command) -> bool {
    !config.json
        && matches!(
            command,
            Command::Check {
                format: cli::CheckFormat::Nagios,
                ..
            }
        )
}

/// Whether a command line clap refused asked for `check --format nagios`: the first word that is
/// not an option (or the value of a global `--root` or `--color`) is `check`, and `--format
/// nagios` (or `--format=nagios`) follows it.
fn nagios_requested(args: &[OsString]) -> bool {
    let mut words = args.iter().skip(1).map(|a| a.to_string_lossy());
    let mut subcommand = None;
    while let Some(w) = words.next() {
        if w == "--root" || w == "--color" {
            words.next();
        } else if !w.starts_with('-') {
            subcommand = Some(w);
            break;
        }
    }
    if subcommand.as_deref() != Some("check") {
        return false;
    }
    let rest: Vec<_> = words.collect();
    rest.iter().any(|w| w == "--format=nagios")
        || rest
            .windows(2)
            .any(|p| p[0] == "--format" && p[1] == "nagios")
}

/// clap's message up to its first blank line (before the usage and tips), on one line.
fn first_paragraph(text: &str) -> String {
    text.split("\n\n")
        .next()
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The subcommand's name as the user typed it, for the `--json` error document.
fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Diff { .. } => "diff",
        Command::Check { .. } => "check",
        Command::Apply { .. } => "apply",
        Command::Confirm => "confirm",
        Command::Rollback { .. } => "rollback",
        Command::History => "history",
        Command::Status => "status",
        Command::Test { .. } => "test",
        Command::Profiles { .. } => "profiles",
        Command::Render { .. } => "render",
        Command::Completions { .. } => "completions",
        Command::Generate { .. } => "__generate",
        Command::Doctor { .. } => "doctor",
        Command::Explain { .. } => "explain",
        Command::ConfirmWatcher { .. } => "__confirm-watcher",
        Command::Watch { .. } => "watch",
        Command::Metrics { .. } => "metrics",
        Command::Worker { .. } => "__worker",
        Command::Holder => "__holder",
    }
}

fn dispatch(config: &Config, command: &Command) -> error::Result<commands::Output> {
    refuse_missing_root(config, command)?;
    report_interrupted(config, command);
    match command {
        Command::Diff { profile, .. } => commands::diff::diff(config, profile),
        Command::Check { profile, format } => commands::check::check(config, profile, *format),
        Command::Apply {
            profile,
            dry_run,
            confirm,
            no_persist,
            verify,
            running,
            pending,
            allow_override,
            ..
        } => match profile {
            Some(profile) if !*pending => commands::apply::apply(
                config,
                profile,
                &commands::apply::ApplyOptions {
                    dry_run: *dry_run,
                    confirm: *confirm,
                    no_persist: *no_persist,
                    verify: *verify,
                    running: running.clone(),
                    allow_override: *allow_override,
                },
            ),
            _ => commands::running::apply_pending(config),
        },
        Command::Confirm => commands::confirm::confirm(config),
        Command::Rollback { generation, force } => {
            commands::rollback::rollback(config, *generation, *force)
        }
        Command::History => commands::history::history(config),
        Command::Status => commands::status::status(config),
        Command::Profiles { name } => commands::profiles::profiles(config, name.as_deref()),
        Command::Render { profile } => commands::render::render(config, profile),
        Command::Completions { shell } => Ok(commands::Output {
            code: 0,
            stdout: complete::script(*shell),
            stderr: Vec::new(),
        }),
        Command::Generate { what, dir } => commands::generate::generate(*what, dir),
        Command::ConfirmWatcher { generation } => {
            commands::confirm_watcher::confirm_watcher(config, *generation)
        }
        Command::Watch { interval, for_ } => commands::watch::watch(config, *interval, *for_),
        Command::Metrics { output } => commands::metrics::metrics(config, output.as_deref()),
        Command::Test { what } => commands::test::test(config, what),
        Command::Doctor {
            connections,
            rate,
            outgoing,
            verify,
            interval,
        } => commands::doctor::doctor(
            config,
            connections.map(|n| doctor::capacity::Question {
                connections: n,
                rate: *rate,
                outgoing: *outgoing,
            }),
            *verify,
            *interval,
        ),
        Command::Explain { key } => commands::explain::explain(config, key),
        Command::Worker { task } => worker(config, task),
        Command::Holder => {
            conntest::holder();
            Ok(commands::Output::default())
        }
    }
}

/// A connection-test worker (`__worker`): its report is its stdout.
fn worker(config: &Config, task: &str) -> error::Result<commands::Output> {
    conntest::worker(&config.root, task).map(|stdout| commands::Output {
        code: 0,
        stdout,
        stderr: Vec::new(),
    })
}

/// `--root /nonexistent` is a typo, and `--root` at a folder with no `proc/sys` (an empty
/// folder, an unmounted image) is not a root tree: one error each, not one per key.
fn refuse_missing_root(config: &Config, command: &Command) -> error::Result<()> {
    let base = config.root.base();
    if config.root.is_real()
        || matches!(
            command,
            Command::Generate { .. } | Command::Completions { .. } | Command::Worker { .. }
        )
    {
        return Ok(());
    }
    let problem = match std::fs::metadata(base) {
        Ok(m) if m.is_dir() => None,
        Ok(_) => Some("is not a folder".to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("no such folder".to_string()),
        Err(e) => Some(format!("cannot be read ({e})")),
    };
    if let Some(problem) = problem {
        return Err(error::Error::Usage(format!(
            "--root {}: {problem}; give the folder that stands for / (a copy of the system, an \
             image or a chroot), or leave --root out to act on this machine",
            base.display(),
        )));
    }
    if reads_the_kernel(command) && !config.root.path("proc/sys").is_dir() {
        return Err(error::Error::Usage(format!(
            "--root {}: not a root tree, it has no proc/sys. A root tree stands for /: the \
             kernel's keys under proc/sys (a copy of /proc/sys, or /proc mounted in an image) \
             and the configuration under etc/. Give such a folder, or leave --root out to act \
             on this machine; nothing was read or written",
            base.display()
        )));
    }
    Ok(())
}

/// The commands that read live values from the root's `proc/sys`: every one but those that
/// only print (profiles, render), read netprofile's own history, or are internal.
fn reads_the_kernel(command: &Command) -> bool {
    !matches!(
        command,
        Command::Profiles { .. }
            | Command::Render { .. }
            | Command::History
            | Command::ConfirmWatcher { .. }
            | Command::Holder
    )
}

/// What an interrupted run left behind: writers (apply, confirm, rollback, the watcher)
/// restore it themselves once they hold the writer lock; every other command only reports it
/// and never takes the lock, so monitoring (diff, check, status, history) keeps working while
/// an apply runs.
fn report_interrupted(config: &Config, command: &Command) {
    let writer = match command {
        Command::Apply { dry_run, .. } => !dry_run,
        Command::Confirm | Command::Rollback { .. } => true,
        _ => false,
    };
    if writer
        || matches!(
            command,
            Command::Profiles { .. }
                | Command::Render { .. }
                | Command::Generate { .. }
                | Command::ConfirmWatcher { .. }
                | Command::Completions { .. }
                | Command::Worker { .. }
                | Command::Holder
                // They report an open journal themselves.
                | Command::Doctor { .. }
                | Command::Explain { .. }
        )
    {
        return;
    }
    for line in commands::recover::report(&config.root) {
        print_human(Stream::Stderr, &format!("{line}\n"));
    }
}

/// Where `print_human` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

/// THE way human text reaches the terminal, the final output of `run` and the live lines of
/// `watch` alike: through `render::terminal::for_terminal` (every control character from the
/// system shown visibly, and only `style`'s colour marks made colour), then written and
/// flushed at once. A closed pipe is not an error. `--json` stdout is the one exception
/// (`print_stdout`: serde's exact text).
pub(crate) fn print_human(stream: Stream, text: &str) {
    let text = render::terminal::for_terminal(text);
    let _ = match stream {
        Stream::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).and_then(|()| out.flush())
        }
        Stream::Stderr => {
            let mut err = std::io::stderr().lock();
            err.write_all(text.as_bytes()).and_then(|()| err.flush())
        }
    };
}

/// Writes to stdout; a closed pipe (`netprofile diff x | head`) is not an error.
fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_command_line_asks_for_nagios_only_from_check() {
        let cases = [
            ("netprofile check p --format nagios --bogus", true),
            (
                "netprofile --root /r --color never check --format=nagios",
                true,
            ),
            ("netprofile -q check --bogus --format nagios p", true),
            ("netprofile check p --format text --bogus", false),
            ("netprofile check p --bogus", false),
            // `check` as a value or a profile name is not the subcommand.
            ("netprofile --root check diff p --format nagios", false),
            ("netprofile diff check --format nagios", false),
            ("netprofile --bogus", false),
        ];
        for (line, want) in cases {
            let args: Vec<OsString> = line.split(' ').map(OsString::from).collect();
            assert_eq!(nagios_requested(&args), want, "{line}");
        }
    }

    #[test]
    fn claps_message_on_one_line() {
        let text = "the following required arguments were not provided:\n  <PROFILE>\n\n\
                    Usage: netprofile check --format <FORMAT> <PROFILE>\n";
        assert_eq!(
            first_paragraph(text),
            "the following required arguments were not provided: <PROFILE>"
        );
    }
}
