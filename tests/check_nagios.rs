//! `check --format nagios`: the Nagios/Icinga plugin convention, one state per case: OK (exit
//! 0), WARNING (1: what is in force holds but a persisted file does not), CRITICAL (2: a live
//! value differs), UNKNOWN (3: the check could not run), each one status line with perfdata.
//! Without --format the documented exit codes (0 in sync, 1 drifted, 2 error) stay.

mod common;

use common::Test;

const PROFILE: &str = r#"
[profile]
name = "t"

[sysctl]
"net.core.somaxconn" = 65535
"#;

const DROPIN: &str = "etc/sysctl.d/90-netprofile.conf";

fn applied() -> common::Outcome {
    Test::new()
        .profile("t.toml", PROFILE)
        .args(&["apply", "-q", "t.toml"])
        .run()
        .code(0)
}

#[test]
fn ok_when_in_sync() {
    applied()
        .then(&["check", "t.toml", "--format", "nagios"])
        .code(0)
        .stdout(
            "NETPROFILE OK - in sync: 1 key as wanted | sysctl_drifted=0;;1;0;1 \
             limits_drifted=0;;1;0;0 systemd_drifted=0;;1;0;0 files_drifted=0;1;;0;4 \
             overrides=0;1;;0;\n",
        );
}

#[test]
fn warning_when_only_a_persisted_file_differs() {
    let out = applied();
    std::fs::remove_file(out.root().join(DROPIN)).unwrap();
    let out = out.then(&["check", "t.toml", "--format", "nagios"]).code(1);
    assert!(
        out.stdout
            .starts_with("NETPROFILE WARNING - differs: 1 file to write | "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .ends_with(" | sysctl_drifted=0;;1;0;1 limits_drifted=0;;1;0;0 systemd_drifted=0;;1;0;0 files_drifted=1;1;;0;4 overrides=0;1;;0;\n"),
        "{}",
        out.stdout
    );
    assert_eq!(out.stdout.lines().count(), 1);
    // The default format says "drifted" with exit 1 as documented.
    out.then(&["check", "t.toml"]).code(1);
}

#[test]
fn critical_when_a_live_value_differs() {
    let out = Test::new()
        .profile("t.toml", PROFILE)
        .args(&["check", "t.toml", "--format", "nagios"])
        .run()
        .code(2);
    assert!(
        out.stdout.starts_with("NETPROFILE CRITICAL - ")
            && out.stdout.contains("(net.core.somaxconn)")
            && out.stdout.contains(" | sysctl_drifted=1;;1;0;1 "),
        "{}",
        out.stdout
    );
    assert_eq!(out.stdout.lines().count(), 1);
    // Without --format: exit 1, as documented (2 is for errors there).
    out.then(&["check", "t.toml"]).code(1);
}

#[test]
fn unknown_when_the_check_cannot_run() {
    let out = Test::new()
        .profile("bad.toml", "[sysctl]\n\"net.core.somaxconn\" = \n")
        .args(&["check", "bad.toml", "--format", "nagios"])
        .run()
        .code(3);
    assert!(
        out.stdout.starts_with("NETPROFILE UNKNOWN - bad.toml"),
        "{}",
        out.stdout
    );
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    // Without --format a bad profile is exit 2, as documented.
    out.then(&["check", "bad.toml"]).code(2);
}

/// The status line of a check that could not run: one `NETPROFILE UNKNOWN - ` line, exit 3.
fn unknown(out: &common::Outcome, reason: &str) {
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.starts_with("NETPROFILE UNKNOWN - ") && out.stdout.contains(reason),
        "{reason:?} not in {:?}",
        out.stdout
    );
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
}

#[test]
fn a_bad_command_line_is_unknown_not_critical() {
    // Nagios shows exit 2 as CRITICAL: a typo in the command definition must say UNKNOWN.
    let out = Test::new()
        .profile("t.toml", PROFILE)
        .args(&["check", "t.toml", "--format", "nagios", "--bogus"])
        .run();
    unknown(
        &out,
        "bad command line: unexpected argument '--bogus' found",
    );
    assert!(out.stderr.contains("--bogus"), "{}", out.stderr);
    // No profile named; --format=nagios is the same request.
    let out = out.then(&["check", "--format=nagios"]);
    unknown(
        &out,
        "bad command line: the following required arguments were not provided: <PROFILE>",
    );
    // Without --format nagios a bad command line stays exit 2 with nothing on stdout.
    let out = out.then(&["check", "t.toml", "--bogus"]).code(2);
    assert_eq!(out.stdout, "");
}

#[test]
fn a_missing_root_is_unknown() {
    let t = Test::new().profile("t.toml", PROFILE);
    std::fs::remove_dir_all(t.root()).unwrap();
    let out = t.args(&["check", "t.toml", "--format", "nagios"]).run();
    unknown(&out, "/root: no such folder");
    assert!(out.stderr.contains("no such folder"), "{}", out.stderr);
    // Without --format: exit 2, as documented.
    let out = out.then(&["check", "t.toml"]).code(2);
    assert_eq!(out.stdout, "");
    // --json keeps check's JSON error document and its code.
    out.then(&["--json", "check", "t.toml", "--format", "nagios"])
        .code(2)
        .stdout_has("\"kind\": \"usage\"");
}
