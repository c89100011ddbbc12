//! Terminal-safe output (issue 16, break 5): strings from the system or a profile reach the
//! terminal with every control character shown (`\e`), in doctor, diff, errors and the rest;
//! `--json` keeps them exact. Its own test binary: it renames this process.

mod common;

use std::process::Command;

use common::Test;

const HOSTILE: &str = "\x1b[2Jpwn\x07";

fn no_raw_controls(what: &str, text: &str) {
    assert!(
        !text
            .chars()
            .any(|c| (c.is_control() && c != '\n' && c != '\t') || c == '\u{202e}'),
        "{what}: raw control character in\n{text:?}"
    );
}

#[test]
fn a_process_named_with_escapes_listening_on_loopback_is_shown_escaped() {
    // A process's name is the main thread's comm; any thread of the process may set it. Only
    // this test binary is renamed, and only loopback is listened on.
    std::fs::write("/proc/self/comm", HOSTILE).expect("rename this process");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let me = std::process::id();
    let doctor = |json: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_netprofile"));
        if json {
            cmd.arg("--json");
        }
        cmd.args(["doctor", "--color", "always"])
            .env_remove("NO_COLOR")
            .output()
            .unwrap()
    };
    let out = doctor(false);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        stdout.contains(&format!("\\e[2Jpwn\\x07 (pid {me}, "))
            && stdout.contains(&format!("port {port})")),
        "doctor should name the process, escaped:\n{stdout}\n{stderr}"
    );
    // Colour is still emitted (--color always), and nothing else that controls the terminal.
    assert!(stdout.contains("\x1b[1m"), "{stdout:?}");
    let without_colour: String = stdout
        .replace("\x1b[0m", "")
        .replace("\x1b[1m", "")
        .replace("\x1b[2m", "")
        .replace("\x1b[31m", "")
        .replace("\x1b[32m", "")
        .replace("\x1b[33m", "");
    no_raw_controls("doctor stdout", &without_colour);
    no_raw_controls("doctor stderr", &stderr);
    // JSON stays exact: the name as the kernel has it.
    let json = doctor(true);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(
        doc.to_string().contains("\\u001b[2Jpwn\\u0007"),
        "the JSON should carry the exact name: {doc}"
    );
    drop(listener);
}

#[test]
fn profile_and_file_strings_are_escaped_in_diff_and_errors() {
    // A boot file whose name and value carry escapes, overriding a managed key; a profile
    // description and a bad value with escapes.
    let t = Test::new()
        .file(
            "etc/sysctl.d/99-\x1b[2Jx.conf",
            "net.core.somaxconn = 128\n",
        )
        .file(
            "etc/sysctl.d/98-v.conf",
            "net.core.somaxconn = 128\u{202e}\x1b]0;title\x07\n",
        )
        .profile(
            "p.toml",
            "[profile]\ndescription = \"d\\u001b[2J\"\n[sysctl]\n\"net.core.somaxconn\" = 65535\n",
        );
    let out = t.args(&["diff", "p.toml"]).run();
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stdout.contains("99-\\e[2Jx.conf"), "{}", out.stdout);
    no_raw_controls("diff stdout", &out.stdout);
    no_raw_controls("diff stderr", &out.stderr);
    let out = out.then(&["--json", "diff", "p.toml"]);
    assert!(out.stdout.contains("99-\\u001b[2Jx.conf"), "{}", out.stdout);
    let out = out.then(&["explain", "net.core.somaxconn"]);
    assert!(
        out.stdout.contains("128\\u{202e}\\e]0;title\\x07"),
        "{}",
        out.stdout
    );
    no_raw_controls("explain stdout", &out.stdout);

    let bad = Test::new()
        .profile(
            "bad.toml",
            "[sysctl]\n\"net.core.somaxconn\" = \"1\\u001b[2J\"\n",
        )
        .args(&["check", "bad.toml"])
        .run();
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    no_raw_controls("check stderr", &bad.stderr);

    // A root path with an escape in it, named in an error.
    let t = Test::new();
    let dir = t.root().join("\x1b[2Jdir");
    std::fs::create_dir(&dir).unwrap();
    let out = t.args(&["check", "\x1b[2Jdir/missing.toml"]).run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    no_raw_controls("error", &out.stderr);
}

#[test]
fn history_and_status_show_a_profile_path_with_escapes_escaped() {
    // The profile's file name is what history and status name it by.
    let name = "\x1b[2Jp.toml";
    let out = Test::new()
        .profile(name, "[sysctl]\n\"net.core.somaxconn\" = 65535\n")
        .args(&["apply", "-q", name])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = out.then(&["history"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("\\e[2Jp.toml"), "{}", out.stdout);
    no_raw_controls("history stdout", &out.stdout);
    no_raw_controls("history stderr", &out.stderr);
    let out = out.then(&["status"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    no_raw_controls("status stdout", &out.stdout);
    no_raw_controls("status stderr", &out.stderr);
}

/// In a private user, network, PID and cgroup namespace (the server in no unit's cgroup, so a
/// login's limits apply to it): limits.conf of the root gives a new login of root (the
/// namespace's uid 0; pam_limits never applies `*` to root) 1024 open files, more than the
/// server's 64, so status lists it as running with old limits. doctor and status run
/// as text and as JSON, each into its own file.
const NEWLINE_SCRIPT: &str = r#"
set -e
ip link set lo up
mkdir -p etc/security
echo 'root:x:0:0:root:/root:/bin/sh' > etc/passwd
printf 'root soft nofile 1024\nroot hard nofile 1024\n' > etc/security/limits.conf
unshare -C /usr/bin/python3 newline.py &
srv=$!
for _ in $(seq 3000); do [ -e ready ] && break; sleep 0.1; done
"$NP" --root "$ROOT" doctor --interval 0 > doctor.out 2> doctor.err || true
"$NP" --root "$ROOT" --json doctor --interval 0 > doctor.json 2>> doctor.err || true
"$NP" --root "$ROOT" status > status.out 2> status.err || true
"$NP" --root "$ROOT" --json status > status.json 2>> status.err || true
kill $srv 2>/dev/null || true
"#;

#[test]
fn a_process_name_with_a_newline_cannot_forge_a_line_in_doctor_or_status() {
    let Some((out, dir)) = common::in_private_ns(
        NEWLINE_SCRIPT,
        &[(
            "newline.py",
            &common::named_listener(r#"b"x\nbinding limit""#, 2),
        )],
        true,
    ) else {
        return;
    };
    assert!(out.status.success(), "{}", common::text(&out));
    let read = |name: &str| {
        std::fs::read_to_string(dir.path().join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", common::text(&out)))
    };
    let exact = "x\nbinding limit";
    let shown = r"x\nbinding limit";
    for (command, key) in [("doctor", "name"), ("status", "comm")] {
        let human = read(&format!("{command}.out"));
        let err = read(&format!("{command}.err"));
        assert!(
            human.contains(&format!("{shown} (")) || human.contains(&format!("{shown} port")),
            "{command} should name the process escaped:\n{human}\n{err}"
        );
        // The only line that starts "binding limit" is doctor's own ("binding limit: ...").
        for line in human.lines() {
            assert!(
                !line.starts_with("binding limit") || line.starts_with("binding limit: "),
                "{command}: a forged line {line:?} in\n{human}"
            );
        }
        let json = read(&format!("{command}.json"));
        assert!(
            json.contains(&serde_json::to_string(exact).unwrap()),
            "{command} --json should carry the exact name:\n{json}"
        );
        let doc: serde_json::Value = serde_json::from_str(&json).expect(command);
        let names = doc.to_string();
        assert!(
            names.contains(&format!(
                "\"{key}\":{}",
                serde_json::to_string(exact).unwrap()
            )),
            "{command} --json: `{key}` should be the exact name:\n{json}"
        );
    }
}

#[test]
fn a_profile_path_with_a_newline_cannot_forge_a_line_in_diff() {
    // The loader refuses a newline in a value ("a value cannot span lines") and names are
    // `A-Z a-z 0-9 . _ -`: the path the profile was read from is what can carry one.
    let name = "p\nprofile forged.toml";
    let out = Test::new()
        .profile(name, "[sysctl]\n\"net.core.somaxconn\" = 65535\n")
        .args(&["diff", name])
        .run();
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stdout.contains(r"p\nprofile forged.toml"),
        "the path should be shown escaped:\n{}",
        out.stdout
    );
    assert!(
        !out.stdout.lines().any(|l| l.starts_with("profile forged")),
        "a forged line in:\n{}",
        out.stdout
    );
    let out = out.then(&["--json", "diff", name]);
    assert!(
        out.stdout.contains(&serde_json::to_string(name).unwrap()),
        "--json keeps the exact path:\n{}",
        out.stdout
    );
}
