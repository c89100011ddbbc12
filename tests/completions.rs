//! Completions that know the domain, driven through real bash: the script `netprofile
//! completions bash` prints is sourced, COMP_WORDS/COMP_CWORD are set as readline sets them on a
//! TAB, and the registered function is called; COMPREPLY is what the user would be offered.

mod common;

use std::path::Path;
use std::process::Command;

use common::Test;

/// Completes `line` (the last word is the one under the cursor) in `cwd`, with the binary in
/// PATH as `netprofile`, and returns bash's COMPREPLY.
fn complete_bash(cwd: &Path, line: &[&str]) -> Vec<String> {
    let bin = cwd.join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let link = bin.join("netprofile");
    if !link.exists() {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_netprofile"), &link).expect("symlink");
    }
    let script = Command::new(&link)
        .args(["completions", "bash"])
        .output()
        .expect("netprofile completions bash");
    assert_eq!(script.status.code(), Some(0));
    std::fs::write(cwd.join("netprofile.bash"), &script.stdout).expect("write script");
    let words: Vec<String> = line.iter().map(|w| format!("'{w}'")).collect();
    let cword = line.len() - 1;
    let driver = format!(
        r#"set -e
source ./netprofile.bash
complete -p netprofile >/dev/null
COMP_WORDS=({words})
COMP_CWORD={cword}
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
COMP_TYPE=9
fn=$(complete -p netprofile | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
"$fn" netprofile "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}"
"#,
        words = words.join(" ")
    );
    let out = Command::new("bash")
        .arg("--norc")
        .arg("--noprofile")
        .arg("-c")
        .arg(driver)
        .current_dir(cwd)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env_remove("NETPROFILE_COMPLETE")
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "bash failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_a_shipped_profile_name_and_profile_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(
        complete_bash(dir.path(), &["netprofile", "diff", "hi"]),
        ["high-conn"]
    );
    std::fs::write(dir.path().join("web.toml"), "[profile]\nname = \"web\"\n").expect("write");
    std::fs::write(dir.path().join("notes.txt"), "not a profile\n").expect("write");
    let offered = complete_bash(dir.path(), &["netprofile", "apply", ""]);
    for want in [
        "base",
        "high-conn",
        "load-generator",
        "legacy-defaults",
        "web.toml",
    ] {
        assert!(
            offered.iter().any(|o| o == want),
            "{want} not in {offered:?}"
        );
    }
    assert!(
        !offered.iter().any(|o| o == "notes.txt"),
        "a non-profile file is offered: {offered:?}"
    );
}

#[test]
fn bash_completes_a_catalogue_key_and_a_limits_item_for_explain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let offered = complete_bash(dir.path(), &["netprofile", "explain", "net.core.so"]);
    assert_eq!(offered, ["net.core.somaxconn"]);
    assert_eq!(
        complete_bash(dir.path(), &["netprofile", "explain", "nof"]),
        ["nofile"]
    );
    assert_eq!(
        complete_bash(dir.path(), &["netprofile", "explain", "DefaultL"]),
        ["DefaultLimitNOFILE"]
    );
}

#[test]
fn bash_completes_the_generations_of_the_given_root_for_rollback() {
    let out = Test::new()
        .profile(
            "p.toml",
            "[profile]\nname = \"p\"\n[sysctl]\n\"net.core.somaxconn\" = 8192\n",
        )
        .args(&["apply", "--no-persist", "./p.toml"])
        .run()
        .code(0);
    let out = out.then(&["apply", "--no-persist", "high-conn"]).code(0);
    let root = out.root();
    let root = root.to_str().expect("utf-8 temp path");
    let offered = complete_bash(
        out.dir.path(),
        &["netprofile", "--root", root, "rollback", ""],
    );
    let numbers: Vec<&String> = offered.iter().filter(|o| !o.starts_with('-')).collect();
    assert_eq!(numbers, ["2", "1"], "newest first: {offered:?}");
    // Without --root the machine's own history is read (none here, or root's): never a crash.
    let dir = tempfile::tempdir().expect("tempdir");
    let _ = complete_bash(dir.path(), &["netprofile", "rollback", ""]);
}

#[test]
fn colour_values_complete_without_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("always-a-file"), "").expect("write");
    assert_eq!(
        complete_bash(dir.path(), &["netprofile", "--color", ""]),
        ["auto", "always", "never"]
    );
    // fish: the registration is exclusive (no file fallback) and the engine offers the values.
    let fish = Command::new(env!("CARGO_BIN_EXE_netprofile"))
        .args(["completions", "fish"])
        .output()
        .expect("completions fish");
    let fish = String::from_utf8_lossy(&fish.stdout);
    assert!(fish.contains("--exclusive"), "{fish}");
    let values = Command::new(env!("CARGO_BIN_EXE_netprofile"))
        .args(["--", "netprofile", "--color", ""])
        .current_dir(dir.path())
        .env("NETPROFILE_COMPLETE", "fish")
        .output()
        .expect("complete fish");
    let values = String::from_utf8_lossy(&values.stdout);
    let values: Vec<&str> = values
        .lines()
        .map(|l| l.split('\t').next().unwrap_or(l))
        .collect();
    assert_eq!(values, ["auto", "always", "never"]);
}

#[test]
fn completions_for_an_unknown_shell_exit_2() {
    Test::bare()
        .args(&["completions", "tcsh"])
        .run()
        .code(2)
        .stderr_has("bash");
}
