//! Shell completion that knows the domain: shipped profile names and profile files for PROFILE
//! arguments, catalogue keys and limits items for `explain`, generation numbers for `rollback`.
//! It uses clap_complete's dynamic engine: the script `netprofile completions SHELL` prints
//! calls `NETPROFILE_COMPLETE=SHELL netprofile -- WORDS...` at each TAB, and this module answers
//! from the clap definition in cli.rs plus the completers below. Completing only reads (the
//! current folder, the generations under /var/lib/netprofile); it never writes or locks.

use std::ffi::{OsStr, OsString};

use clap::CommandFactory;
use clap_complete::engine::{CompletionCandidate, PathCompleter, ValueCompleter};
use clap_complete::env::{Bash, EnvCompleter, Fish, Zsh};

use crate::cli::{Cli, CompletionShell};
use crate::profile::{SHIPPED, keys, limit::Item};
use crate::system::root::Root;

/// The variable the completion scripts set. Not clap's default `COMPLETE`: a root shell that
/// happens to export COMPLETE=bash must not turn `netprofile apply` into a completion request.
pub const VAR: &str = "NETPROFILE_COMPLETE";

/// Answers a completion request (the variable is set) and returns true; false for a normal run.
pub fn answer(args: &[OsString]) -> bool {
    if std::env::var_os(VAR).is_none_or(|v| v.is_empty() || v == "0") {
        return false;
    }
    let _ = ROOT.set(root_in(args));
    let cwd = std::env::current_dir().ok();
    match clap_complete::CompleteEnv::with_factory(Cli::command)
        .var(VAR)
        .try_complete(args.iter().cloned(), cwd.as_deref())
    {
        Ok(done) => done,
        // A completion request that failed prints nothing: the shell offers no candidates.
        Err(_) => std::env::var_os(VAR).is_some_and(|v| !v.is_empty() && v != "0"),
    }
}

/// The `--root DIR` of the command line being completed, so that `rollback <TAB>` offers the
/// generations of the tree the command will act on.
static ROOT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

fn root_in(args: &[OsString]) -> std::path::PathBuf {
    let mut root = std::path::PathBuf::from("/");
    let mut words = args.iter().skip_while(|a| *a != "--").skip(1);
    while let Some(word) = words.next() {
        if word == "--root" {
            if let Some(dir) = words.next() {
                root = dir.into();
            }
        } else if let Some(dir) = word.to_str().and_then(|w| w.strip_prefix("--root=")) {
            root = dir.into();
        }
    }
    root
}

/// The script a shell sources (or installs) to complete `netprofile`. It calls the
/// `netprofile` found in PATH, so the installed file keeps working after an upgrade.
#[must_use]
pub fn script(shell: CompletionShell) -> String {
    let completer: &dyn EnvCompleter = match shell {
        CompletionShell::Bash => &Bash,
        CompletionShell::Zsh => &Zsh,
        CompletionShell::Fish => &Fish,
    };
    let mut buf = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = completer.write_registration(VAR, "netprofile", "netprofile", "netprofile", &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

fn starts_with(current: &OsStr) -> impl Fn(&&str) -> bool + '_ {
    let prefix = current.to_string_lossy().into_owned();
    move |name: &&str| name.starts_with(prefix.as_str())
}

/// PROFILE: the shipped names, then profile files and folders (`*.toml`, or any file once the
/// word has a '/').
#[derive(Debug, Clone, Copy)]
pub struct ProfileCompleter;

impl ValueCompleter for ProfileCompleter {
    fn complete(&self, current: &OsStr) -> Vec<CompletionCandidate> {
        let mut out = shipped_names(current);
        let has_slash = current.to_string_lossy().contains('/');
        let files = PathCompleter::any()
            .filter(move |path| {
                path.is_dir() || has_slash || path.extension().is_some_and(|e| e == "toml")
            })
            .complete(current);
        out.extend(files);
        out
    }
}

/// `profiles NAME`: the shipped names.
#[derive(Debug, Clone, Copy)]
pub struct ShippedCompleter;

impl ValueCompleter for ShippedCompleter {
    fn complete(&self, current: &OsStr) -> Vec<CompletionCandidate> {
        shipped_names(current)
    }
}

fn shipped_names(current: &OsStr) -> Vec<CompletionCandidate> {
    SHIPPED
        .iter()
        .map(|(name, _)| *name)
        .filter(starts_with(current))
        .map(CompletionCandidate::new)
        .collect()
}

/// `explain KEY`: the catalogue's sysctl keys, the limits items and DefaultLimitNOFILE.
#[derive(Debug, Clone, Copy)]
pub struct KeyCompleter;

impl ValueCompleter for KeyCompleter {
    fn complete(&self, current: &OsStr) -> Vec<CompletionCandidate> {
        let mut out: Vec<CompletionCandidate> = keys::CATALOGUE
            .iter()
            .map(|k| (k.name, k.prevents))
            .filter(|(name, _)| starts_with(current)(name))
            .map(|(name, help)| CompletionCandidate::new(name).help(Some(help.into())))
            .collect();
        out.extend(
            Item::ALL
                .iter()
                .map(|item| item.as_str())
                .chain(["DefaultLimitNOFILE"])
                .filter(starts_with(current))
                .map(CompletionCandidate::new),
        );
        out
    }
}

/// `rollback GENERATION`: the generations recorded on this machine, newest first (none when
/// the state folder cannot be read, e.g. completing as a user other than root).
#[derive(Debug, Clone, Copy)]
pub struct GenerationCompleter;

impl ValueCompleter for GenerationCompleter {
    fn complete(&self, current: &OsStr) -> Vec<CompletionCandidate> {
        let root = Root::new(
            ROOT.get()
                .map_or(std::path::Path::new("/"), |r| r.as_path()),
        );
        let Ok(all) = crate::transaction::state::generations(&root) else {
            return Vec::new();
        };
        all.iter()
            .rev()
            .map(|g| {
                let profile = g.profile.as_ref().map_or("-", |p| p.name.as_str());
                (
                    g.number.to_string(),
                    format!("{} {} {}", g.time, g.op, profile),
                )
            })
            .filter(|(n, _)| starts_with(current)(&n.as_str()))
            .map(|(n, help)| CompletionCandidate::new(n).help(Some(help.into())))
            .collect()
    }
}
