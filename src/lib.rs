//! netprofile: declarative kernel tuning for many TCP connections.
//!
//! The binary is a thin shell around [`run`]. The work lives in one folder per layer, in the
//! order data flows (docs/architecture.md): `profile` loads and checks the TOML, `system` reads
//! the machine through `Root` with the rules of systemd-sysctl and pam_limits, `plan` compares
//! them without I/O, `render` shows the result, `transaction` applies it with a journal, and
//! `commands` holds one file per subcommand. `conntest` is the connection test.

pub mod cli;
pub mod commands;
pub mod conntest;
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
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors; clap knows which is which.
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let config = Config::resolve(&cli);
    let result = dispatch(&config, &cli.command);
    match result {
        Ok(output) => {
            let mut stderr = std::io::stderr().lock();
            for line in &output.stderr {
                let _ = writeln!(stderr, "{line}");
            }
            print_stdout(&output.stdout);
            output.code
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr().lock(), "error: {e}");
            e.exit_code()
        }
    }
}

fn dispatch(config: &Config, command: &Command) -> error::Result<commands::Output> {
    // Before anything else, restore what an interrupted run left behind (DESIGN.md: a crash
    // leaves an open journal, which the next run finds and recovers from).
    if !matches!(
        command,
        Command::Profiles { .. }
            | Command::Render { .. }
            | Command::Generate { .. }
            | Command::Watch { .. }
            | Command::Worker { .. }
            | Command::Holder
    ) {
        let mut stderr = std::io::stderr().lock();
        for line in commands::recover::recover(&config.root)? {
            let _ = writeln!(stderr, "{line}");
        }
    }
    match command {
        Command::Diff { profile, .. } => commands::diff::diff(config, profile),
        Command::Check { profile } => commands::check::check(config, profile),
        Command::Apply {
            profile,
            dry_run,
            confirm,
            no_persist,
            verify,
            ..
        } => commands::apply::apply(
            config,
            profile,
            &commands::apply::ApplyOptions {
                dry_run: *dry_run,
                confirm: *confirm,
                no_persist: *no_persist,
                verify: *verify,
            },
        ),
        Command::Confirm => commands::confirm::confirm(config),
        Command::Rollback { generation } => commands::rollback::rollback(config, *generation),
        Command::History => commands::history::history(config),
        Command::Status => commands::status::status(config),
        Command::Profiles { name } => commands::profiles::profiles(config, name.as_deref()),
        Command::Render { profile } => commands::render::render(config, profile),
        Command::Generate { what, dir } => commands::generate::generate(*what, dir),
        Command::Watch { generation } => commands::watch::watch(config, *generation),
        Command::Test { what } => commands::test::test(config, what),
        Command::Worker { task } => {
            conntest::worker(&config.root, task).map(|stdout| commands::Output {
                code: 0,
                stdout,
                stderr: Vec::new(),
            })
        }
        Command::Holder => {
            conntest::holder();
            Ok(commands::Output::default())
        }
    }
}

/// Writes to stdout; a closed pipe (`netprofile diff x | head`) is not an error.
fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
