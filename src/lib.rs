//! netprofile: declarative kernel tuning for many TCP connections.
//!
//! The binary is a thin shell around [`run`]. The work lives in one module per concept, in the
//! order data flows (DESIGN.md, "Architecture"): a `profile` is loaded and checked, the `live`
//! state is read through `root`, `plan` compares them without I/O, `render` shows the result.

pub mod apply;
pub mod cli;
pub mod cmd;
pub mod conntest;
pub mod dropin;
pub mod error;
pub mod fault;
pub mod keys;
pub mod limits;
pub mod live;
pub mod persist;
pub mod plan;
pub mod profile;
pub mod render;
pub mod root;
pub mod state;
pub mod sysctld;
pub mod transaction;
pub mod value;

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

fn dispatch(config: &Config, command: &Command) -> error::Result<cmd::Output> {
    // Before anything else, restore what an interrupted run left behind (DESIGN.md: a crash
    // leaves an open journal, which the next run finds and recovers from).
    if !matches!(
        command,
        Command::Profiles | Command::Watch { .. } | Command::Worker { .. } | Command::Holder
    ) {
        let mut stderr = std::io::stderr().lock();
        for line in apply::recover(&config.root)? {
            let _ = writeln!(stderr, "{line}");
        }
    }
    match command {
        Command::Diff { profile } => cmd::diff(config, profile),
        Command::Check { profile } => cmd::check(config, profile),
        Command::Apply {
            profile,
            dry_run,
            confirm,
            no_persist,
            verify,
        } => apply::apply(
            config,
            profile,
            &apply::ApplyOptions {
                dry_run: *dry_run,
                confirm: *confirm,
                no_persist: *no_persist,
                verify: *verify,
            },
        ),
        Command::Confirm => apply::confirm(config),
        Command::Rollback { generation } => apply::rollback(config, *generation),
        Command::History => cmd::history(config),
        Command::Status => cmd::status(config),
        Command::Profiles => cmd::profiles(config),
        Command::Watch { generation } => apply::watch(config, *generation),
        Command::Test { what } => cmd::test(config, what),
        Command::Worker { task } => {
            conntest::worker(&config.root, task).map(|stdout| cmd::Output {
                code: 0,
                stdout,
                stderr: Vec::new(),
            })
        }
        Command::Holder => {
            conntest::holder();
            Ok(cmd::Output::default())
        }
    }
}

/// Writes to stdout; a closed pipe (`netprofile diff x | head`) is not an error.
fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
