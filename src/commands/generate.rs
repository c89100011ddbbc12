//! `netprofile __generate man|completions DIR` (hidden): the man pages and shell completions the
//! packages ship, generated from the clap definition in cli.rs so that a new subcommand or flag
//! appears in them without anyone editing a page. It writes only into DIR and never reads the
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
    };
    Ok(Output {
        code: 0,
        stdout: written.iter().map(|p| format!("{p}\n")).collect(),
        stderr: Vec::new(),
    })
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
    let man = clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("System Administration")
        .source(format!("netprofile {}", env!("CARGO_PKG_VERSION")));
    let path = man.generate_to(dir).map_err(|e| Error::write(dir, e))?;
    written.push(path.display().to_string());
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        page(sub, dir, written)?;
    }
    Ok(())
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
