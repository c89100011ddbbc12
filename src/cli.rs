//! The command line: what the user typed (`Cli`, parsed by clap) and the resolved settings the
//! commands run with (`Config`). Resolving reads the environment (NO_COLOR, whether stdout is a
//! terminal) but no files. Only this module and main.rs know about flags.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::render::Paint;
use crate::root::Root;

#[derive(Debug, Parser)]
#[command(
    name = "netprofile",
    version,
    about = "Declarative kernel tuning for many TCP connections: diff, apply with rollback, prove",
    after_help = "Exit codes: 0 ok or in sync; 1 differences found; 2 bad usage or input, nothing \
                  touched; 3 apply failed and was rolled back; 4 rollback failed too."
)]
pub struct Cli {
    /// Operate on this directory as if it were / (tests, images, chroots).
    #[arg(long, global = true, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Print a documented, stable JSON document on stdout instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Colour: auto (on a terminal, unless NO_COLOR is set), always or never.
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,
    /// Print less: only errors and the summary.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more detail.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compare the live system with a profile and show the files apply would write.
    Diff {
        /// A profile file (has a '/' or ends in .toml) or a shipped profile name.
        profile: String,
    },
    /// Drift check for monitoring: one line, exit 0 in sync, 1 drifted, 2 error.
    Check { profile: String },
    /// Plan, apply all-or-nothing with rollback, persist, and record a generation.
    Apply {
        profile: String,
        /// Print the plan and the file diffs; touch nothing (exit as diff).
        #[arg(long)]
        dry_run: bool,
        /// Revert by itself after SECONDS unless `netprofile confirm` comes in time. Files are
        /// written only when confirmed, so a reboot meanwhile also returns to the old values.
        #[arg(long, value_name = "SECONDS")]
        confirm: Option<u64>,
        /// Change live values only; write no files.
        #[arg(long)]
        no_persist: bool,
    },
    /// Keep a pending `apply --confirm`.
    Confirm,
    /// Return to the state before the last (or the given) generation.
    Rollback { generation: Option<u64> },
    /// Generations: when, profile, hash, what changed, outcome.
    History,
    /// Managed keys now; an open journal or pending confirmation.
    Status,
    /// List the shipped profiles.
    Profiles,
    /// Internal: the detached watcher of `apply --confirm`.
    #[command(name = "__watch", hide = true)]
    Watch { generation: u64 },
}

/// Settings every command runs with, resolved from `Cli` and the environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub root: Root,
    pub json: bool,
    pub paint: Paint,
    pub quiet: bool,
    pub verbose: u8,
}

impl Config {
    #[must_use]
    pub fn resolve(cli: &Cli) -> Self {
        let colour = match cli.color {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stdout().is_terminal()
            }
        };
        Config {
            root: Root::new(&cli.root),
            json: cli.json,
            paint: Paint(colour && !cli.json),
            quiet: cli.quiet,
            verbose: cli.verbose,
        }
    }
}
