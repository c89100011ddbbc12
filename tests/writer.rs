//! Regression tests for issue 16's writer breaks, on temporary roots through the real binary:
//! every writing command goes through the one writer entry (trusted lock, recovery, undo
//! proven before the first change, journal, change, commit), plan-time refusals touch nothing,
//! a committed apply is never reported as "nothing touched", and a journal that cannot be
//! undone is moved aside instead of blocking every later writer.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Test;

const PROFILE: &str = r#"
[profile]
name = "t"

[sysctl]
"net.core.somaxconn" = 65535
"net.ipv4.tcp_rmem" = "4096 87380 16777216"
"net.ipv4.tcp_fin_timeout" = 15
"#;

const CONNTRACK: &str = "proc/sys/net/netfilter/nf_conntrack_max";
const JOURNAL: &str = "var/lib/netprofile/journal.json";
const PENDING: &str = "run/netprofile/pending.json";

/// A profile whose only key is pending (its module is not loaded on the fixture root).
const PENDING_PROFILE: &str = "[sysctl]\n\"net.netfilter.nf_conntrack_max\" = { min = 262144 }\n\
                               [modules]\nload = [\"nf_conntrack\"]\n";

fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The stock values of PROFILE's three keys, as the fixture root holds them.
fn stock_keys(root: &Path) -> bool {
    read(root, "proc/sys/net/core/somaxconn") == "4096\n"
        && read(root, "proc/sys/net/ipv4/tcp_fin_timeout") == "60\n"
        && read(root, "proc/sys/net/ipv4/tcp_rmem") == "4096\t131072\t6291456\n"
}

/// sha256 through the coreutils tool (the tests have no hashing crate).
fn sha256_hex(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Writes netprofile's state file `rel` as netprofile would (root's, 0600 in 0700 folders).
fn plant_state(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut dir = path.parent().unwrap();
    while dir != root {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        dir = dir.parent().unwrap();
    }
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A journal of generation 1 with `changes` (JSON exactly as netprofile serialises them, so
/// the checksum matches).
fn journal(changes: &str) -> String {
    format!(
        "{{\"generation\":1,\"started\":\"2026-01-01T00:00:00Z\",\"changes\":{changes},\
         \"checksum\":\"{}\"}}",
        sha256_hex(changes.as_bytes())
    )
}

// Break 1: `apply --pending` is a writer like every other.

#[test]
fn apply_pending_first_undoes_an_interrupted_apply_and_takes_a_fresh_generation() {
    // Before: --pending wrote its own journal over the open one, reused generation 2 and left
    // the interrupted apply half-applied.
    let out = Test::new()
        .profile("p.toml", PENDING_PROFILE)
        .profile("t.toml", PROFILE)
        .args(&["apply", "-q", "p.toml"])
        .run()
        .code(0);
    let out = out.then_env(
        &["apply", "-q", "t.toml"],
        &[("NETPROFILE_FAULT", "kill:change:1")],
    );
    assert_eq!(out.signal, Some(9));
    assert!(out.root().join(JOURNAL).exists());
    assert!(!stock_keys(&out.root()), "the kill left a change in place");
    common::write(&out.root().join(CONNTRACK), "65536\n");
    let out = out
        .then(&["apply", "--pending"])
        .code(0)
        .stderr_has("an interrupted run (generation 2, started")
        .stdout_has("applied generation 3: 1 key brought back to its min/max bound\n");
    assert!(stock_keys(&out.root()), "the interrupted apply was undone");
    assert!(!out.root().join(JOURNAL).exists());
    assert_eq!(read(&out.root(), CONNTRACK), "262144\n");
    out.then(&["history"]).code(0).stdout_has("recovered");
}

#[test]
fn apply_pending_refuses_a_planted_journal_like_every_writer() {
    // Before: exit 0, "nothing to do", past a journal every other writer refuses.
    let t = Test::new();
    plant_state(
        &t.root(),
        JOURNAL,
        &journal(r#"[{"kind":"sysctl","key":"net.core.somaxconn","before":"1","after":"2"}]"#),
    );
    std::os::unix::fs::chown(t.root().join(JOURNAL), Some(4242), Some(4242)).unwrap();
    let out = t
        .args(&["apply", "--pending"])
        .run()
        .code(2)
        .stderr_has("owned by uid 4242");
    // A damaged one too.
    std::os::unix::fs::chown(out.root().join(JOURNAL), Some(0), Some(0)).unwrap();
    std::fs::write(out.root().join(JOURNAL), "{ not json").unwrap();
    out.then(&["apply", "--pending"])
        .code(2)
        .stderr_has("is damaged");
}

#[test]
fn apply_pending_reverts_an_expired_confirm_whose_watcher_died() {
    // Before: it held the expired apply's bounds instead of reverting it.
    let min = "[sysctl]\n\"net.core.somaxconn\" = { min = 65535 }\n";
    let out = Test::new()
        .profile("m.toml", min)
        .args(&["apply", "-q", "--confirm", "1", "m.toml"])
        .run()
        .code(0);
    let pending: serde_json::Value = serde_json::from_str(&read(&out.root(), PENDING)).unwrap();
    if let Some(pid) = pending["watcher"].as_u64() {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    std::thread::sleep(Duration::from_millis(1500));
    let out = out
        .then(&["apply", "--pending"])
        .code(0)
        .stderr_has("generation 1 was not confirmed in time; reverted as generation 2");
    assert_eq!(read(&out.root(), "proc/sys/net/core/somaxconn"), "4096\n");
    assert!(!out.root().join(PENDING).exists());
}

// Break 2: undo is proven before the first change; a journal that cannot be undone is moved
// aside, never left to block every later writer.

fn long_unit() -> String {
    // 254 characters: a valid unit name, but NAME.service.d is longer than NAME_MAX.
    format!("{}.service", "a".repeat(246))
}

#[test]
fn a_unit_name_whose_dropin_folder_cannot_exist_is_refused_at_plan_time() {
    // Before: validation passed, the write failed with ENAMETOOLONG, so did the undo: exit 4
    // and a journal that blocked every later writer.
    let unit = long_unit();
    let out = Test::new()
        .profile(
            "u.toml",
            &format!("[systemd.services.\"{unit}\"]\nlimit_nofile = 65536\n"),
        )
        .args(&["apply", "u.toml"])
        .run()
        .code(2)
        .stderr_has("cannot be written and restored: a name in it is longer than 255 bytes")
        .stderr_has("nothing was changed");
    assert!(!out.root().join("run").exists());
    assert!(!out.root().join("var").exists());
    assert!(!out.root().join("etc").exists());
}

#[test]
fn a_journal_that_cannot_be_undone_is_moved_aside_and_stops_only_one_run() {
    // Before: exit 4 on every later run until someone moved the journal by hand. Here the
    // key's module was unloaded since the interrupted run, so its value cannot be restored.
    let changes = r#"[{"kind":"sysctl","key":"net.netfilter.nf_conntrack_max","before":"65536","after":"262144"}]"#;
    let t = Test::new().profile("t.toml", PROFILE);
    plant_state(&t.root(), JOURNAL, &journal(changes));
    let out = t
        .args(&["apply", "-q", "t.toml"])
        .run()
        .code(4)
        .stderr_has("NOT RESTORED")
        .stderr_has(
            "the journal was moved to /var/lib/netprofile/journal-000001.failed.json so that \
             later runs are not blocked",
        );
    assert!(!out.root().join(JOURNAL).exists());
    assert!(
        out.root()
            .join("var/lib/netprofile/journal-000001.failed.json")
            .exists()
    );
    assert!(
        stock_keys(&out.root()),
        "the run that found it did nothing else"
    );
    // The next writer is not blocked: it does its job as generation 2.
    let out = out
        .then(&["apply", "-q", "t.toml"])
        .code(0)
        .stdout("applied generation 2: 3 keys set, 1 file written\n");
    assert!(!stock_keys(&out.root()));
}

// Break 4: a committed apply never says "nothing was touched".

#[test]
fn a_report_step_failing_after_the_commit_keeps_the_truth_and_exit_0() {
    // Before: the error went up as exit 2, whose meaning is "bad input, nothing touched".
    let out = Test::new()
        .profile("t.toml", PROFILE)
        .env("NETPROFILE_FAULT", "fail:report")
        .args(&["apply", "t.toml"])
        .run()
        .code(0)
        .stdout_has("applied generation 1: 3 keys set, 1 file written\n")
        .stderr_has(
            "warning: generation 1 was applied and recorded, but listing the processes with \
             old limits failed",
        );
    assert!(!stock_keys(&out.root()));
    out.then(&["history"]).code(0).stdout_has("applied");
}

// Break 9: the lock file is trusted only when it is ours.

#[test]
fn a_hard_linked_lock_is_refused_and_its_other_name_is_untouched() {
    let t = Test::new().profile("t.toml", PROFILE);
    let victim = t.root().parent().unwrap().join("victim");
    std::fs::write(&victim, "keep me\n").unwrap();
    std::fs::create_dir_all(t.root().join("run")).unwrap();
    std::fs::hard_link(&victim, t.root().join("run/netprofile.lock")).unwrap();
    let out = t
        .args(&["apply", "-q", "t.toml"])
        .run()
        .code(2)
        .stderr_has("refusing /run/netprofile.lock: it has 2 hard links");
    assert_eq!(read(out.dir.path(), "victim"), "keep me\n");
    assert!(stock_keys(&out.root()));
}

#[test]
fn a_lock_owned_by_another_user_or_writable_by_others_is_refused() {
    let t = Test::new()
        .profile("t.toml", PROFILE)
        .file("run/netprofile.lock", "");
    let lock = t.root().join("run/netprofile.lock");
    std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&lock, Some(65534), Some(65534)).unwrap();
    let out = t
        .args(&["apply", "-q", "t.toml"])
        .run()
        .code(2)
        .stderr_has("refusing /run/netprofile.lock: it is owned by uid 65534");
    std::os::unix::fs::chown(&lock, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = out
        .then(&["rollback"])
        .code(2)
        .stderr_has("group or others can write it");
    // Readable is enough to hold it: flock needs only a descriptor.
    std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = out
        .then(&["apply", "-q", "t.toml"])
        .code(2)
        .stderr_has("group or others can read it (mode 644)");
    assert!(stock_keys(&out.root()));
    std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o600)).unwrap();
    out.then(&["apply", "-q", "t.toml"]).code(0);
}

fn alive(pid: u32) -> bool {
    // A zombie (nobody reaps the detached watcher here) has stopped too.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

#[test]
fn the_watcher_stops_with_a_message_when_another_user_holds_the_lock() {
    // Before: a 0666 lock of another user was accepted, that user held it, and the watcher
    // retried for ever: no revert, no message.
    let out = Test::new()
        .profile("t.toml", PROFILE)
        .args(&["apply", "-q", "--confirm", "2", "t.toml"])
        .run()
        .code(0);
    let pending: serde_json::Value = serde_json::from_str(&read(&out.root(), PENDING)).unwrap();
    let watcher = u32::try_from(pending["watcher"].as_u64().expect("watcher pid")).unwrap();
    let lock = out.root().join("run/netprofile.lock");
    std::fs::remove_file(&lock).unwrap();
    std::fs::write(&lock, "").unwrap();
    std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::os::unix::fs::chown(&lock, Some(65534), Some(65534)).unwrap();
    let mut holder = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["flock", "-n"])
        .arg(&lock)
        .args(["sleep", "120"])
        .spawn()
        .expect("flock");
    let end = Instant::now() + Duration::from_secs(60);
    while alive(watcher) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    let stopped = !alive(watcher);
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(stopped, "the watcher was still retrying after 60 s");
    out.then(&["status"])
        .code(0)
        .stderr_has("warning: the watcher of generation 1 stopped without reverting it")
        .stderr_has("owned by uid 65534");
}

#[test]
fn a_stopped_watchers_note_is_shown_only_for_its_own_generation() {
    // The watcher writes its note without the lock (it stopped because it could not take it),
    // so a note can outlive its generation: written after a writer cleared the pending record.
    // Before, such a note was shown as the reason the watcher of the next `--confirm`
    // generation stopped, while that watcher was running fine.
    let out = Test::new()
        .profile("t.toml", PROFILE)
        .args(&["apply", "-q", "--confirm", "600", "t.toml"])
        .run()
        .code(0);
    let note = out.root().join("run/netprofile/watcher-stopped.txt");
    for (text, shown) in [
        (
            "generation 7: the lock was held by another netprofile\n",
            false,
        ),
        (
            "a note of an older netprofile, without a generation\n",
            false,
        ),
        (
            "generation 1: the lock was held by another netprofile\n",
            true,
        ),
    ] {
        std::fs::write(&note, text).unwrap();
        std::fs::set_permissions(&note, std::fs::Permissions::from_mode(0o600)).unwrap();
        let status = Command::new(env!("CARGO_BIN_EXE_netprofile"))
            .arg("--root")
            .arg(out.root())
            .arg("status")
            .output()
            .expect("status");
        let stderr = String::from_utf8_lossy(&status.stderr);
        assert_eq!(status.status.code(), Some(0), "{stderr}");
        assert_eq!(
            stderr.contains("warning: the watcher of generation 1 stopped without reverting it"),
            shown,
            "{text:?}: {stderr}"
        );
        if shown {
            assert!(
                stderr.contains("it: the lock was held by another netprofile\n"),
                "{stderr}"
            );
        }
    }
    // Confirmed: the watcher ends, and the note with the pending record.
    out.then(&["confirm", "-q"]).code(0);
    assert!(!note.exists());
}

// Break 11: plan-time refusals under `apply` touch nothing, not even run/ or the lock.

#[test]
fn every_plan_time_refusal_creates_nothing() {
    let service = "[systemd.services.\"web.service\"]\nlimit_nofile = \"65536:2000000\"\n";
    // (what, profile, files on the root, extra arguments, the message)
    type Case<'a> = (
        &'a str,
        String,
        Vec<(&'a str, &'a str)>,
        &'a [&'a str],
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "unknown key",
            "[sysctl]\n\"net.core.somaxconnn\" = 1\n".into(),
            vec![],
            &[],
            "unknown key",
        ),
        (
            "nofile above fs.nr_open",
            "[[limits]]\ndomain = \"*\"\ntype = \"-\"\nitem = \"nofile\"\nvalue = 2000000\n".into(),
            vec![],
            &[],
            "fs.nr_open",
        ),
        (
            "soft above an existing hard",
            "[[limits]]\ndomain = \"*\"\ntype = \"soft\"\nitem = \"nofile\"\nvalue = 100\n".into(),
            vec![("etc/security/limits.conf", "* hard nofile 50\n")],
            &[],
            "above the hard limit",
        ),
        (
            "an override without --allow-override",
            PROFILE.into(),
            vec![("etc/sysctl.d/99-local.conf", "net.core.somaxconn = 100\n")],
            &[],
            "apply refused",
        ),
        (
            "--running that matches nothing",
            PROFILE.into(),
            vec![],
            &["--running", "nosuchprocess"],
            "--running nosuchprocess",
        ),
        (
            "DefaultLimitNOFILE above fs.nr_open",
            "[systemd]\ndefault_limit_nofile = 2000000\n".into(),
            vec![],
            &[],
            "fs.nr_open",
        ),
        (
            "a service limit above fs.nr_open",
            service.into(),
            vec![],
            &[],
            "fs.nr_open",
        ),
        (
            "a unit name too long to restore",
            format!(
                "[systemd.services.\"{}\"]\nlimit_nofile = 65536\n",
                long_unit()
            ),
            vec![],
            &[],
            "longer than 255 bytes",
        ),
    ];
    for (what, profile, files, extra, message) in cases {
        let mut t = Test::new().profile("p.toml", &profile);
        for (rel, text) in files {
            t = t.file(rel, text);
        }
        let mut args = vec!["apply", "p.toml"];
        args.extend(extra);
        let out = t.args(&args).run();
        assert_eq!(out.code, 2, "{what}: {}", out.stderr);
        assert!(out.stderr.contains(message), "{what}: {}", out.stderr);
        for rel in ["run", "var", "etc/sysctl.d/90-netprofile.conf"] {
            assert!(
                !out.root().join(rel).exists(),
                "{what}: exit 2 created {rel}"
            );
        }
    }
    // A symlinked drop-in folder.
    let t = Test::new().profile("t.toml", PROFILE);
    std::fs::create_dir_all(t.root().join("elsewhere")).unwrap();
    std::fs::create_dir_all(t.root().join("etc")).unwrap();
    std::os::unix::fs::symlink("../elsewhere", t.root().join("etc/sysctl.d")).unwrap();
    let out = t.args(&["apply", "t.toml"]).run().code(2);
    assert!(!out.root().join("run").exists(), "{}", out.stderr);
    assert!(!out.root().join("var").exists());
}

// Break 12: temp files of killed runs in every folder netprofile writes.

#[test]
fn temp_files_in_service_and_modules_folders_are_removed_by_the_next_writer() {
    let out = Test::new()
        .profile("t.toml", PROFILE)
        .file(
            "etc/systemd/system/web.service.d/.90-netprofile.conf.netprofile-4242",
            "x",
        )
        .file("etc/modules-load.d/.netprofile.conf.netprofile-4243", "x")
        .file("etc/systemd/system/web.service.d/.keep-me", "mine")
        .args(&["apply", "-q", "t.toml"])
        .run()
        .code(0)
        .stderr_has("removed 2 temporary files left by an interrupted run");
    assert!(
        !out.root()
            .join("etc/systemd/system/web.service.d/.90-netprofile.conf.netprofile-4242")
            .exists()
    );
    assert!(
        !out.root()
            .join("etc/modules-load.d/.netprofile.conf.netprofile-4243")
            .exists()
    );
    assert!(
        out.root()
            .join("etc/systemd/system/web.service.d/.keep-me")
            .exists()
    );
}

// Break 13: a process is touched only when its recorded start time matches.

fn soft_nofile(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("nofile line");
    line["Max open files".len()..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a number")
}

#[test]
fn rollback_of_a_process_record_without_start_time_leaves_the_process_alone() {
    // Before: any process with the recorded pid and name was set back to the recorded limits.
    let mut child = Command::new("sh")
        .args(["-c", "ulimit -S -n 1000 && exec sleep 60"])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sh");
    let pid = child.id();
    let end = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default() != "sleep\n" {
        assert!(Instant::now() < end, "sleep never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let hard = std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4).map(ToString::to_string))
        .unwrap();
    let changes = format!(
        "[{{\"kind\":\"rlimit\",\"pid\":{pid},\"comm\":\"sleep\",\"before\":{{\"soft\":256,\
         \"hard\":{hard}}},\"after\":{{\"soft\":1000,\"hard\":{hard}}}}}]"
    );
    let generation = format!(
        "{{\"number\":1,\"time\":\"2026-01-01T00:00:00Z\",\"op\":\"apply\",\"profile\":null,\
         \"rollback_of\":null,\"changes\":{changes},\"outcome\":\"applied\",\"message\":null,\
         \"checksum\":\"{}\"}}",
        sha256_hex(changes.as_bytes())
    );
    let t = Test::new();
    plant_state(
        &t.root(),
        "var/lib/netprofile/generations/000001.json",
        &generation,
    );
    let out = t.args(&["rollback"]).run();
    let soft = soft_nofile(pid);
    let _ = child.kill();
    let _ = child.wait();
    let out = out.code(0);
    assert_eq!(soft, 1000, "pid {pid} was touched\n{}", out.stderr);
}

// Break 14: an accepted service drop-in override is not drift.

#[test]
fn an_accepted_service_dropin_override_is_not_drift_for_check() {
    let out = Test::new()
        .profile(
            "s.toml",
            "[systemd.services.\"web.service\"]\nlimit_nofile = \"65536:131072\"\n",
        )
        .file(
            "usr/lib/systemd/system/web.service",
            "[Service]\nExecStart=/usr/bin/web\nLimitNOFILE=4096\n",
        )
        .file(
            "run/systemd/system/web.service.d/99-local.conf",
            "[Service]\nLimitNOFILE=2048\n",
        )
        .args(&["apply", "-q", "s.toml"])
        .run()
        .code(2)
        .stderr_has("sets LimitNOFILE of web.service to 2048");
    let out = out
        .then(&["apply", "-q", "--allow-override", "s.toml"])
        .code(0);
    out.then(&["check", "s.toml"])
        .code(0)
        .stdout("in sync: 0 keys as wanted, 1 overridden by other files (accepted)\n");
}
