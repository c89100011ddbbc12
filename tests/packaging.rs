//! What the packages ship, checked from the binary: `__generate man` writes netprofile.8 and one
//! page per visible subcommand of the clap definition (so a new subcommand gets its page), the
//! completions know every subcommand, and the profiles installed under
//! /usr/share/netprofile/profiles are exactly the ones embedded in the binary.

mod common;

use clap::CommandFactory;
use common::Test;
use netprofile::cli::Cli;

/// Every visible subcommand path, as the page names it: netprofile-test-hold.
fn pages(cmd: &clap::Command, prefix: &str, out: &mut Vec<String>) {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        let name = format!("{prefix}-{}", sub.get_name());
        out.push(format!("{name}.8"));
        pages(sub, &name, out);
    }
}

fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read generated dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn man_pages_cover_every_visible_subcommand() {
    let out = Test::bare()
        .args(&["__generate", "man", "man"])
        .run()
        .code(0);
    let mut want = vec!["netprofile.8".to_string()];
    pages(&Cli::command(), "netprofile", &mut want);
    want.sort();
    assert!(want.len() > 10, "too few subcommands: {want:?}");
    assert_eq!(listing(&out.dir.path().join("man")), want);
    let main = std::fs::read_to_string(out.dir.path().join("man/netprofile.8")).expect("page");
    assert!(main.contains(".TH netprofile 8"), "section 8: {main}");
    assert!(
        main.contains("netprofile\\-diff(8)"),
        "links the subcommand pages"
    );
    assert!(
        !main.contains("__confirm-watcher"),
        "hidden subcommands stay hidden"
    );
    let apply =
        std::fs::read_to_string(out.dir.path().join("man/netprofile-apply.8")).expect("page");
    assert!(apply.contains("\\-\\-dry\\-run"), "{apply}");
}

#[test]
fn completions_know_every_subcommand() {
    let out = Test::bare()
        .args(&["__generate", "completions", "comp"])
        .run()
        .code(0);
    let dir = out.dir.path().join("comp");
    assert_eq!(
        listing(&dir),
        ["_netprofile", "netprofile.bash", "netprofile.fish"]
    );
    // Each installed script asks the installed binary at each TAB (dynamic completion), and is
    // exactly what `netprofile completions SHELL` prints.
    for (file, shell) in [
        ("netprofile.bash", "bash"),
        ("_netprofile", "zsh"),
        ("netprofile.fish", "fish"),
    ] {
        let text = std::fs::read_to_string(dir.join(file)).expect("script");
        assert!(text.contains("NETPROFILE_COMPLETE"), "{file}: {text}");
        let printed = Test::bare().args(&["completions", shell]).run().code(0);
        assert_eq!(printed.stdout, text, "{file}");
    }
    let asked = std::process::Command::new(env!("CARGO_BIN_EXE_netprofile"))
        .args(["--", "netprofile", ""])
        .env("NETPROFILE_COMPLETE", "fish")
        .output()
        .expect("complete");
    let offered = String::from_utf8_lossy(&asked.stdout);
    let offered: Vec<&str> = offered
        .lines()
        .map(|l| l.split('\t').next().unwrap_or(l))
        .collect();
    for sub in Cli::command()
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
    {
        assert!(
            offered.contains(&sub.get_name()),
            "completion lacks {}: {offered:?}",
            sub.get_name()
        );
    }
    assert!(
        !offered.contains(&"__watch"),
        "hidden subcommands stay hidden"
    );
}

#[test]
fn installed_profiles_are_the_embedded_ones() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/profiles");
    let files: Vec<String> = listing(std::path::Path::new(dir))
        .into_iter()
        .filter_map(|f| f.strip_suffix(".toml").map(str::to_string))
        .collect();
    let mut shipped: Vec<String> = netprofile::profile::SHIPPED
        .iter()
        .map(|(n, _)| (*n).to_string())
        .collect();
    shipped.sort();
    assert_eq!(files, shipped);
    for (name, text) in netprofile::profile::SHIPPED {
        let file = std::fs::read_to_string(format!("{dir}/{name}.toml")).expect("profile");
        assert_eq!(&file, text, "{name}");
    }
}

#[test]
fn generate_into_an_unwritable_place_exits_2_and_names_it() {
    let out = Test::bare()
        .file("blocker", "a file, not a folder\n")
        .args(&["__generate", "man", "root/blocker/man"])
        .run()
        .code(2);
    assert!(out.stderr.contains("root/blocker/man"), "{}", out.stderr);
}

/// The pages a sysadmin expects: SYNOPSIS with each option's value, EXIT STATUS, ENVIRONMENT,
/// FILES, EXAMPLES where there are some, SEE ALSO naming the files' own pages, and nothing
/// `man --warnings` complains about (man-db's groff, as `man -l` renders the installed page).
#[test]
fn man_pages_have_the_sections_a_sysadmin_expects_and_render_without_warnings() {
    let out = Test::bare()
        .args(&["__generate", "man", "man"])
        .run()
        .code(0);
    let dir = out.dir.path().join("man");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect("page");
    let apply = read("netprofile-apply.8");
    let synopsis = apply
        .split(".SH SYNOPSIS\n")
        .nth(1)
        .and_then(|s| s.lines().next())
        .expect("a SYNOPSIS line");
    for want in [
        "\\fB\\-\\-confirm\\fR \\fIDURATION\\fR",
        "\\fB\\-\\-root\\fR \\fIDIR\\fR",
        "\\fB\\-\\-color\\fR auto|always|never",
        "[\\fB\\-\\-running\\fR \\fIPATTERN\\fR]...",
        "[\\fIPROFILE\\fR]",
    ] {
        assert!(synopsis.contains(want), "{want} not in {synopsis}");
    }
    for page in listing(&dir) {
        let text = read(&page);
        // EXAMPLES with at least one command line in it.
        let examples = text
            .split(".SH EXAMPLES\n")
            .nth(1)
            .and_then(|s| s.split(".SH ").next())
            .unwrap_or_else(|| panic!("{page} lacks EXAMPLES"));
        assert!(
            examples.contains(".nf\n") && examples.contains("\nnetprofile "),
            "{page}: EXAMPLES without a command: {examples}"
        );
        for section in [
            ".SH EXIT STATUS\n",
            ".SH ENVIRONMENT\n",
            ".SH FILES\n",
            ".SH SEE ALSO\n",
        ] {
            assert!(text.contains(section), "{page} lacks {section}");
        }
        for see in [
            "\\fBsysctl.d\\fR(5)",
            "\\fBlimits.conf\\fR(5)",
            "\\fBsystemd\\-sysctl\\fR(8)",
        ] {
            assert!(text.contains(see), "{page} does not refer to {see}");
        }
        assert!(
            !text.contains(".SH EXTRA"),
            "{page}: exit codes belong in EXIT STATUS"
        );
        let man = std::process::Command::new("man")
            .args(["--warnings", "-l"])
            .arg(dir.join(&page))
            .env("MANWIDTH", "80")
            .output()
            .expect("man(1) from man-db (packaging/ci.sh installs it)");
        assert!(man.status.success(), "man -l {page} failed");
        assert_eq!(
            String::from_utf8_lossy(&man.stderr),
            "",
            "{page}: man --warnings"
        );
    }
}

/// The EXIT STATUS section of a page as man(1) renders it, one code or paragraph per entry
/// (whitespace collapsed).
fn exit_status(dir: &std::path::Path, page: &str) -> Vec<String> {
    let man = std::process::Command::new("man")
        .args(["-l"])
        .arg(dir.join(page))
        .env("MANWIDTH", "200")
        .output()
        .expect("man(1) from man-db (packaging/ci.sh installs it)");
    let text = String::from_utf8_lossy(&man.stdout).replace('\u{2010}', "-");
    let section = text
        .split("\nEXIT STATUS\n")
        .nth(1)
        .and_then(|s| s.split("\nENVIRONMENT\n").next())
        .unwrap_or_else(|| panic!("{page}: no EXIT STATUS in {text}"));
    section
        .split("\n\n")
        .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|e| !e.is_empty())
        .collect()
}

/// Each page lists the exit codes its command really uses: check's page gives the Nagios codes
/// that `check --format nagios` exits with, and diff's page no apply failure.
#[test]
fn man_pages_give_each_command_its_own_exit_codes() {
    let out = Test::bare()
        .args(&["__generate", "man", "man"])
        .run()
        .code(0);
    let dir = out.dir.path().join("man");
    let check = exit_status(&dir, "netprofile-check.8");
    let nagios = check
        .iter()
        .position(|e| e.contains("--format nagios"))
        .unwrap_or_else(|| panic!("check's EXIT STATUS does not name --format nagios: {check:?}"));
    // The real plugin: a stock root against high-conn is CRITICAL, a profile that is not there
    // is UNKNOWN; the page must say so for the code each one exits with.
    let critical = Test::new()
        .args(&["check", "--format", "nagios", "high-conn"])
        .run();
    assert!(
        critical.stdout.starts_with("NETPROFILE CRITICAL - "),
        "{}",
        critical.stdout
    );
    let critical_code = critical.code;
    let unknown = critical.then(&["check", "--format", "nagios", "./missing.toml"]);
    assert!(
        unknown.stdout.starts_with("NETPROFILE UNKNOWN - "),
        "{}",
        unknown.stdout
    );
    for (code, state) in [(critical_code, "CRITICAL"), (unknown.code, "UNKNOWN")] {
        let want = format!("{code} {state}:");
        assert!(
            check[nagios..].iter().any(|e| e.starts_with(&want)),
            "check's page lacks {want:?} after --format nagios: {check:?}"
        );
    }
    for state in ["0 OK:", "1 WARNING:"] {
        assert!(
            check[nagios..].iter().any(|e| e.starts_with(state)),
            "{state} {check:?}"
        );
    }
    assert!(
        !check
            .iter()
            .any(|e| e.contains("apply failed") || e.contains("rolled back")),
        "check never applies: {check:?}"
    );
    let diff = exit_status(&dir, "netprofile-diff.8");
    let codes: Vec<&str> = diff.iter().filter_map(|e| e.split(' ').next()).collect();
    assert_eq!(codes, ["0", "1", "2"], "{diff:?}");
    let apply = exit_status(&dir, "netprofile-apply.8");
    let codes: Vec<&str> = apply.iter().filter_map(|e| e.split(' ').next()).collect();
    assert_eq!(codes, ["0", "1", "2", "3", "4"], "{apply:?}");
    let watch = exit_status(&dir, "netprofile-watch.8");
    let codes: Vec<&str> = watch.iter().filter_map(|e| e.split(' ').next()).collect();
    assert_eq!(codes, ["0", "2"], "{watch:?}");
}
