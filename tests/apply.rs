//! apply, rollback, history, status and confirm on temporary roots: file writes, modes,
//! symlink refusal, the lock, injected failures and kills at every step, recovery.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Test, system_files};

const PROFILE: &str = r#"
[profile]
name = "t"

[sysctl]
"net.core.somaxconn" = 65535
"net.ipv4.tcp_rmem" = "4096 87380 16777216"
"net.ipv4.ip_local_reserved_ports" = "9000-9010,8080"

[ports]
local_range = [1024, 65535]

[[limits]]
domain = "*"
type = "-"
item = "nofile"
value = 65536
"#;

/// 4 keys and 2 files: 6 changes.
const CHANGES: usize = 6;

fn setup() -> Test {
    Test::new().profile("t.toml", PROFILE)
}

fn read(out: &common::Outcome, rel: &str) -> String {
    std::fs::read_to_string(out.root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn apply_sets_values_writes_files_and_records_a_generation() {
    let out = setup().args(&["apply", "-q", "t.toml"]).run().code(0);
    assert_eq!(
        out.stdout,
        "applied generation 1: 4 keys set, 2 files written\n"
    );
    assert_eq!(read(&out, "proc/sys/net/core/somaxconn"), "65535\n");
    assert_eq!(
        read(&out, "proc/sys/net/ipv4/tcp_rmem"),
        "4096 87380 16777216\n"
    );
    assert_eq!(
        read(&out, "proc/sys/net/ipv4/ip_local_reserved_ports"),
        "8080,9000-9010\n"
    );
    assert_eq!(
        read(&out, "etc/sysctl.d/90-netprofile.conf"),
        "# Written by netprofile from profile \"t\" (t.toml).\n\
         # Do not edit: the next `netprofile apply` replaces this file.\n\
         net.core.somaxconn = 65535\n\
         net.ipv4.ip_local_port_range = 1024 65535\n\
         net.ipv4.ip_local_reserved_ports = 8080,9000-9010\n\
         net.ipv4.tcp_rmem = 4096 87380 16777216\n"
    );
    let mode = |rel: &str| {
        std::fs::metadata(out.root().join(rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("etc/sysctl.d/90-netprofile.conf"), 0o644);
    assert_eq!(mode("etc/security/limits.d/90-netprofile.conf"), 0o644);
    assert_eq!(mode("var/lib/netprofile/generations/000001.json"), 0o600);
    assert!(!out.root().join("var/lib/netprofile/journal.json").exists());
    let out = out.then(&["diff", "t.toml"]).code(0);
    let out = out.then(&["history"]).code(0);
    assert!(out.stdout.starts_with("   1  "), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("  apply           applied (in effect)  t t.toml sha256:"),
        "{}",
        out.stdout
    );
    out.then(&["status"])
        .code(0)
        .stdout_has("4 managed keys, 0 drifted, 1 generation\n");
}

#[test]
fn apply_then_rollback_is_byte_identical() {
    let t = setup();
    let before = system_files(&t.root());
    let out = t.args(&["apply", "-q", "t.toml"]).run().code(0);
    assert_ne!(out.system_files(), before);
    let out = out.then(&["rollback"]).code(0).stdout(
        "rolled back to the state before generation 1 as generation 2: 4 keys set, 2 files written\n",
    );
    assert_eq!(out.system_files(), before);
    // The empty reserved-ports value went back as "\n", not as a zero-byte write.
    assert_eq!(
        read(&out, "proc/sys/net/ipv4/ip_local_reserved_ports"),
        "\n"
    );
    out.then(&["history"])
        .code(0)
        .stdout_has("   2  ")
        .stdout_has("rollback of 1");
}

#[test]
fn rollback_of_an_older_generation_restores_the_state_before_it() {
    let t = setup().profile(
        "u.toml",
        "[sysctl]\n\"net.core.somaxconn\" = 1000\n\"net.ipv4.tcp_fin_timeout\" = 30\n",
    );
    let before = system_files(&t.root());
    let out = t.args(&["apply", "-q", "t.toml"]).run().code(0);
    let out = out.then(&["apply", "-q", "u.toml"]).code(0);
    assert_eq!(read(&out, "proc/sys/net/ipv4/tcp_fin_timeout"), "30\n");
    let out = out.then(&["rollback", "1"]).code(0);
    assert_eq!(out.system_files(), before);
}

#[test]
fn dry_run_touches_nothing_and_exits_like_diff() {
    let t = setup();
    let before = common::snapshot(&t.root());
    let out = t.args(&["apply", "--dry-run", "t.toml"]).run().code(1);
    assert!(out.stdout.contains("+net.core.somaxconn = 65535"));
    assert_eq!(common::snapshot(&out.root()), before);
}

#[test]
fn nothing_to_do_when_in_sync() {
    setup()
        .args(&["apply", "-q", "t.toml"])
        .run()
        .code(0)
        .then(&["apply", "t.toml"])
        .code(0)
        .stdout("nothing to do: in sync: 4 keys as wanted\n");
}

#[test]
fn no_persist_changes_live_values_only() {
    let out = setup()
        .args(&["apply", "-q", "--no-persist", "t.toml"])
        .run()
        .code(0);
    assert_eq!(
        out.stdout,
        "applied generation 1: 4 keys set, 0 files written\n"
    );
    assert!(
        out.stderr
            .contains("limits and systemd settings live only in files")
    );
    assert!(!out.root().join("etc").exists());
}

#[test]
fn a_failure_at_any_step_restores_everything_and_exits_3() {
    for k in 1..=CHANGES {
        let t = setup();
        let before = system_files(&t.root());
        let fault = format!("fail:change:{k}");
        let out = t
            .env("NETPROFILE_FAULT", &fault)
            .args(&["apply", "-q", "t.toml"])
            .run()
            .code(3);
        assert!(
            out.stderr.contains("every change was rolled back"),
            "{k}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("restored net.core.somaxconn = 4096"),
            "{k}: {}",
            out.stderr
        );
        assert_eq!(out.system_files(), before, "after a failure at change {k}");
        assert!(!out.root().join("var/lib/netprofile/journal.json").exists());
        out.then(&["history"]).stdout_has("failed");
    }
}

#[test]
fn a_failing_undo_exits_4_and_lists_each_change() {
    let out = setup()
        .env("NETPROFILE_FAULT", "fail:change:3,fail:undo:1")
        .args(&["apply", "-q", "t.toml"])
        .run()
        .code(4);
    assert!(
        out.stderr.contains("rolling back failed too"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("NOT RESTORED net.core.somaxconn"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("restored net.ipv4.ip_local_port_range = 32768 60999"),
        "{}",
        out.stderr
    );
    // The journal stays; the next writer restores what it can (readers only report it).
    assert!(out.root().join("var/lib/netprofile/journal.json").exists());
    let out = out
        .then(&["status"])
        .code(0)
        .stderr_has("the next `netprofile apply`, `confirm` or `rollback` (as root) restores");
    assert_eq!(read(&out, "proc/sys/net/core/somaxconn"), "65535\n");
    let out = out.then(&["rollback"]).code(0);
    assert!(
        out.stderr
            .contains("was found and everything it touched was restored"),
        "{}",
        out.stderr
    );
    assert_eq!(read(&out, "proc/sys/net/core/somaxconn"), "4096\n");
}

#[test]
fn a_kill_at_any_step_is_recovered_by_the_next_run() {
    let mut steps: Vec<String> = vec!["journal".into()];
    steps.extend((1..=CHANGES).map(|k| format!("change:{k}")));
    for step in &steps {
        let t = setup();
        let before = system_files(&t.root());
        let out = t
            .env("NETPROFILE_FAULT", &format!("kill:{step}"))
            .args(&["apply", "-q", "t.toml"])
            .run();
        assert_eq!(out.signal, Some(9), "{step}: not killed\n{}", out.stderr);
        assert!(
            out.root().join("var/lib/netprofile/journal.json").exists(),
            "{step}"
        );
        let out = out.then(&["rollback"]).code(0);
        assert!(
            out.stderr.contains("an interrupted run (generation 1"),
            "{step}: {}",
            out.stderr
        );
        assert_eq!(out.system_files(), before, "after a kill at {step}");
        out.then(&["history"])
            .stdout_has("recover         recovered");
    }
}

#[test]
fn a_kill_during_undo_is_finished_by_the_next_run() {
    let t = setup();
    let before = system_files(&t.root());
    let out = t
        .env("NETPROFILE_FAULT", "fail:change:5,kill:undo:3")
        .args(&["apply", "-q", "t.toml"])
        .run();
    assert_eq!(out.signal, Some(9));
    let out = out.then(&["rollback"]).code(0);
    assert_eq!(out.system_files(), before);
    out.then(&["diff", "t.toml"]).code(1);
}

#[test]
fn a_kill_after_the_generation_is_recorded_keeps_the_apply() {
    let out = setup()
        .env("NETPROFILE_FAULT", "kill:generation")
        .args(&["apply", "-q", "t.toml"])
        .run();
    assert_eq!(out.signal, Some(9));
    let out = out.then(&["apply", "-q", "t.toml"]).code(0);
    assert!(
        out.stderr
            .contains("generation 1 had committed; closed its journal"),
        "{}",
        out.stderr
    );
    assert_eq!(read(&out, "proc/sys/net/core/somaxconn"), "65535\n");
    out.then(&["diff", "t.toml"]).code(0);
}

#[test]
fn a_symlinked_dropin_is_refused_before_anything_changes() {
    let t = setup().file("victim", "keep\n");
    std::fs::create_dir_all(t.root().join("etc/sysctl.d")).unwrap();
    std::os::unix::fs::symlink(
        t.root().join("victim"),
        t.root().join("etc/sysctl.d/90-netprofile.conf"),
    )
    .unwrap();
    let before = system_files(&t.root());
    let out = t.args(&["apply", "t.toml"]).run().code(2);
    assert!(
        out.stderr
            .contains("is a symlink; netprofile never reads or writes through a symlink"),
        "{}",
        out.stderr
    );
    assert_eq!(out.system_files(), before);
}

#[test]
fn a_second_writer_is_refused_with_the_holders_pid() {
    // Another netprofile's lock: its pid in the file, an exclusive flock held.
    let t = setup().file("run/netprofile.lock", &std::process::id().to_string());
    let path = t.root().join("run/netprofile.lock");
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let _lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    rustix::fs::flock(&_lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    let before = system_files(&t.root());
    let out = t.args(&["apply", "t.toml"]).run().code(2);
    assert!(
        out.stderr.contains(&format!(
            "another netprofile (pid {}) holds /run/netprofile.lock",
            std::process::id()
        )),
        "{}",
        out.stderr
    );
    assert_eq!(out.system_files(), before);
}

#[test]
fn confirm_keeps_the_apply_and_writes_the_files() {
    let out = setup()
        .args(&["apply", "-q", "--confirm", "30", "t.toml"])
        .run()
        .code(0);
    assert!(
        out.stdout.contains("run `netprofile confirm` within 30 s"),
        "{}",
        out.stdout
    );
    assert_eq!(read(&out, "proc/sys/net/core/somaxconn"), "65535\n");
    assert!(!out.root().join("etc/sysctl.d/90-netprofile.conf").exists());
    let out = out
        .then(&["status"])
        .stdout_has("pending: generation 1 reverts in");
    let out = out
        .then(&["confirm"])
        .code(0)
        .stdout("wrote the files as generation 2\nconfirmed generation 1\n");
    assert!(out.root().join("etc/sysctl.d/90-netprofile.conf").exists());
    let out = out.then(&["diff", "t.toml"]).code(0);
    out.then(&["confirm"])
        .code(2)
        .stderr_has("nothing is waiting for confirmation");
}

#[test]
fn confirm_times_out_and_reverts_by_itself() {
    let t = setup();
    let before = system_files(&t.root());
    let out = t
        .args(&["apply", "-q", "--confirm", "1", "t.toml"])
        .run()
        .code(0);
    assert_eq!(read(&out, "proc/sys/net/core/somaxconn"), "65535\n");
    // The detached watcher reverts after the deadline; poll for up to 120 s (a loaded machine).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while out.root().join("run/netprofile/pending.json").exists()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(out.system_files(), before);
    out.then(&["history"])
        .stdout_has("reverted")
        .stdout_has("revert of 1");
}

#[test]
fn apply_on_the_real_root_without_privileges_is_refused() {
    if !rustix::process::geteuid().is_root() {
        return; // already unprivileged: the test below would be the same run
    }
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_netprofile"))
        .args(["apply", "high-conn"])
        .output();
    let Ok(out) = out else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "setpriv missing"
        );
        return;
    };
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("apply changes kernel settings and files under /etc: run it as root"),
        "{stderr}"
    );
}
