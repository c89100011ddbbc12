//! Limits that reach processes: per-service LimitNOFILE drop-ins on temporary roots (content,
//! mode, systemd's precedence, rollback), the list of listening processes still running with
//! old limits, and `apply --running` raising a real child process with prlimit(2) and rollback
//! lowering it again. The child is a `sleep` this test starts; its `proc` entry in the temporary
//! root is a copy, while prlimit acts on the real pid.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Test, system_files};

const DROPIN: &str = "etc/systemd/system/web.service.d/90-netprofile.conf";

const SERVICE_PROFILE: &str = r#"
[profile]
name = "t"

[systemd.services."web.service"]
limit_nofile = "65536:131072"
"#;

fn read(root: &std::path::Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn with_unit() -> Test {
    Test::new().profile("t.toml", SERVICE_PROFILE).file(
        "usr/lib/systemd/system/web.service",
        "[Unit]\nDescription=web\n\n[Service]\nExecStart=/usr/bin/web\nLimitNOFILE=4096\n",
    )
}

#[test]
fn a_service_limit_is_a_dropin_that_beats_the_unit_file_and_rolls_back() {
    let out = with_unit().args(&["diff", "t.toml"]).run().code(1);
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("web.service"))
        .unwrap_or_else(|| panic!("no web.service row\n{}", out.stdout));
    assert!(
        row.contains("4096 (/usr/lib/systemd/system/web.service:6)"),
        "{row}"
    );
    assert!(
        row.contains("65536:131072 (/etc/systemd/system/web.service.d/90-netprofile.conf:4)"),
        "{row}"
    );
    assert!(row.ends_with("set"), "{row}");

    let out = out.then(&["apply", "t.toml"]).code(0).stdout_has(
        "applied generation 1: 0 keys set, 1 file written\n\
         new LimitNOFILE takes effect after `systemctl daemon-reload` and a restart of \
         web.service\n",
    );
    assert_eq!(
        read(&out.root(), DROPIN),
        "# Written by netprofile from profile \"t\" (t.toml).\n\
         # Do not edit: the next `netprofile apply` replaces this file.\n\
         [Service]\n\
         LimitNOFILE=65536:131072\n"
    );
    let mode = std::fs::metadata(out.root().join(DROPIN))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    let out = out.then(&["check", "t.toml"]).code(0);
    let out = out.then(&["history"]).code(0);
    assert!(
        out.stdout.contains("/etc/systemd/system/web.service.d"),
        "{}",
        out.stdout
    );
    let out = out.then(&["rollback"]).code(0);
    assert!(!out.root().join(DROPIN).exists());
    // The unit's own file is untouched.
    assert!(read(&out.root(), "usr/lib/systemd/system/web.service").contains("LimitNOFILE=4096"));
    out.then(&["diff", "t.toml"]).code(1);
}

#[test]
fn a_later_dropin_that_beats_ours_is_named() {
    let out = with_unit()
        .file(
            "run/systemd/system/web.service.d/99-local.conf",
            "[Service]\nLimitNOFILE=2048\n",
        )
        .args(&["diff", "t.toml"])
        .run()
        .code(1)
        .stderr_has(
            "/run/systemd/system/web.service.d/99-local.conf:2 sets LimitNOFILE of web.service \
             to 2048 (netprofile wants 65536:131072), and it is read after netprofile's \
             drop-in, so at service start the value would be 2048",
        );
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("web.service"))
        .unwrap_or_default();
    assert!(
        row.contains("2048 (/run/systemd/system/web.service.d/99-local.conf:2)  overridden"),
        "{row}"
    );
}

#[test]
fn a_service_the_profile_no_longer_names_loses_its_dropin() {
    let out = with_unit().args(&["apply", "-q", "t.toml"]).run().code(0);
    assert!(out.root().join(DROPIN).exists());
    common::write(
        &out.dir.path().join("u.toml"),
        "[profile]\nname = \"u\"\n[sysctl]\n\"net.core.somaxconn\" = 8192\n",
    );
    let out = out.then(&["diff", "u.toml"]).code(1);
    assert!(
        out.stdout
            .contains("--- /etc/systemd/system/web.service.d/90-netprofile.conf"),
        "{}",
        out.stdout
    );
    let out = out.then(&["apply", "-q", "u.toml"]).code(0);
    assert!(!out.root().join(DROPIN).exists());
}

#[test]
fn bad_service_entries_are_refused_with_the_line() {
    for (text, want) in [
        (
            "[systemd.services.\"../../x.service\"]\nlimit_nofile = 10\n",
            "t.toml:1: [systemd.services.\"../../x.service\"]: \"../../x.service\" is not a valid unit name",
        ),
        (
            "[systemd.services.\"nginx\"]\nlimit_nofile = 10\n",
            "\"nginx\" is not a service unit; write the full name, such as \"nginx.service\"",
        ),
        (
            "[systemd.services.\"nginx.service\"]\nlimit_nofile = \"9:3\"\n",
            "t.toml:2: [systemd.services.\"nginx.service\"] limit_nofile: soft 9 is above hard 3",
        ),
        (
            "[systemd.services.\"nginx.service\"]\nlimit_nofile = 2000000\n",
            "hard 2000000 is above fs.nr_open 1048576; nginx.service would fail to start",
        ),
    ] {
        let out = Test::new()
            .profile("t.toml", text)
            .args(&["apply", "t.toml"])
            .run()
            .code(2)
            .stderr_has(want);
        assert!(!out.root().join("etc").exists(), "nothing written");
    }
}

/// A listening process in web.service with the old default limits, as `proc` shows it.
fn with_listener(t: Test) -> Test {
    let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0\n";
    let t = t
        .file("proc/net/tcp", tcp)
        .file("proc/4321/comm", "web\n")
        .file("proc/4321/status", "Name:\tweb\nUid:\t33\t33\t33\t33\n")
        .file("proc/4321/cgroup", "0::/system.slice/web.service\n")
        .file(
            "proc/4321/limits",
            "Limit                     Soft Limit           Hard Limit           Units     \n\
             Max open files            4096                 4096                 files     \n",
        );
    std::fs::create_dir_all(t.root().join("proc/4321/fd")).unwrap();
    std::os::unix::fs::symlink("socket:[4242]", t.root().join("proc/4321/fd/3")).unwrap();
    std::os::unix::fs::symlink("/dev/null", t.root().join("proc/4321/fd/0")).unwrap();
    t
}

#[test]
fn apply_and_status_list_what_still_runs_with_old_limits() {
    let line = "  pid 4321 web (web.service) port 8080: has 4096:4096, a fresh start gets \
                65536:131072 (LimitNOFILE=65536:131072 in \
                /etc/systemd/system/web.service.d/90-netprofile.conf:4); needs `systemctl \
                daemon-reload`, then restart web.service\n";
    let out = with_listener(with_unit()).args(&["status"]).run().code(0);
    assert!(
        !out.stdout.contains("still running with old"),
        "before apply the unit gives 4096, which it has\n{}",
        out.stdout
    );
    let out = out
        .then(&["apply", "t.toml"])
        .code(0)
        .stdout_has("still running with old open-files limits (soft:hard):\n")
        .stdout_has(line);
    let out = out.then(&["status"]).code(0).stdout_has(line);
    let out = out.then(&["status", "--json"]).code(0);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let old = &doc["processes"]["old_limits"][0];
    assert_eq!(
        (
            &old["pid"],
            &old["unit"],
            &old["nofile"]["soft"],
            &old["fresh_start"]["hard"]
        ),
        (
            &serde_json::json!(4321),
            &serde_json::json!("web.service"),
            &serde_json::json!(4096),
            &serde_json::json!(131_072)
        )
    );
    let out = out.then(&["rollback"]).code(0).then(&["status"]).code(0);
    assert!(
        !out.stdout.contains("still running with old"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_login_process_below_limits_conf_needs_a_new_login() {
    let t = with_listener(Test::new()).file("proc/4321/cgroup", "0::/user.slice/session-2.scope\n");
    t.profile(
        "l.toml",
        "[[limits]]\ndomain = \"*\"\ntype = \"-\"\nitem = \"nofile\"\nvalue = 65536\n",
    )
    .args(&["apply", "l.toml"])
    .run()
    .code(0)
    .stdout_has(
        "  pid 4321 web port 8080: has 4096:4096, a fresh start gets 65536:65536 (limits soft \
         /etc/security/limits.d/90-netprofile.conf:3, hard \
         /etc/security/limits.d/90-netprofile.conf:3); needs a new login (pam_limits), then \
         restart it\n",
    );
}

// ---- prlimit on a real child process ------------------------------------------------------

/// A `sleep` this test started, with its soft open-files limit lowered; killed on drop.
struct Child {
    child: std::process::Child,
    pid: u32,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn real_nofile(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("nofile line");
    let f: Vec<u64> = line["Max open files".len()..]
        .split_whitespace()
        .take(2)
        .map(|v| v.parse().expect("a number"))
        .collect();
    (f[0], f[1])
}

fn spawn_child(soft: u64) -> Child {
    let child = Command::new("sh")
        .args(["-c", &format!("ulimit -S -n {soft} && exec sleep 60")])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sh");
    let pid = child.id();
    let child = Child { child, pid };
    let start = Instant::now();
    while std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default() != "sleep\n" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "sleep never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(real_nofile(pid).0, soft);
    child
}

/// The child's entry in the temporary root's `proc`, copied from the real one, as a login
/// process of uid 1000 (so `*` limits apply to it).
fn with_child(t: Test, child: &Child) -> Test {
    let pid = child.pid;
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    t.file(&format!("proc/{pid}/comm"), "sleep\n")
        .file(
            &format!("proc/{pid}/status"),
            "Name:\tsleep\nUid:\t1000\t1000\t1000\t1000\n",
        )
        .file(
            &format!("proc/{pid}/cgroup"),
            "0::/user.slice/user-1000.slice/session-1.scope\n",
        )
        .file(&format!("proc/{pid}/limits"), &limits)
}

fn kernel_nr_open() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .expect("nr_open")
        .trim()
        .parse()
        .expect("number")
}

fn nofile_profile(soft: u64, hard: u64) -> String {
    format!(
        "[profile]\nname = \"p\"\n\
         [[limits]]\ndomain = \"*\"\ntype = \"soft\"\nitem = \"nofile\"\nvalue = {soft}\n\
         [[limits]]\ndomain = \"*\"\ntype = \"hard\"\nitem = \"nofile\"\nvalue = {hard}\n"
    )
}

/// A temporary root whose fs.nr_open admits `hard`, so that only the running kernel decides.
fn tree_for(hard: u64) -> Test {
    Test::new().sysctl("fs.nr_open", &hard.max(1_048_576).to_string())
}

#[test]
fn running_raises_the_soft_limit_within_hard_and_rollback_lowers_it_again() {
    let child = spawn_child(256);
    let (_, hard) = real_nofile(child.pid);
    let soft = 1000.min(hard);
    let out = with_child(tree_for(hard), &child)
        .profile("p.toml", &nofile_profile(soft, hard))
        .args(&["apply", "p.toml", "--running", "sleep"])
        .run()
        .code(0)
        .stdout_has(
            "applied generation 1: 0 keys set, 1 file written, 1 process's limits changed\n",
        );
    assert_eq!(real_nofile(child.pid), (soft, hard));
    let out = out.then(&["history", "-v"]).code(0).stdout_has(&format!(
        "nofile of pid {} (sleep): 256:{hard} -> {soft}:{hard}",
        child.pid
    ));
    out.then(&["rollback"])
        .code(0)
        .stdout_has("as generation 2: 0 keys set, 1 file written, 1 process's limits changed\n");
    assert_eq!(real_nofile(child.pid), (256, hard));
}

#[test]
fn running_matches_nothing_or_gives_nothing_and_changes_nothing() {
    let child = spawn_child(256);
    let (_, hard) = real_nofile(child.pid);
    let out = with_child(tree_for(hard), &child)
        .profile("p.toml", &nofile_profile(300, hard))
        .args(&["apply", "p.toml", "--running", "nosuchprocess"])
        .run()
        .code(2)
        .stderr_has("--running nosuchprocess: no process under ");
    let before = system_files(&out.root());
    // A profile with no open-files limit for it.
    common::write(
        &out.dir.path().join("q.toml"),
        "[sysctl]\n\"net.core.somaxconn\" = 8192\n",
    );
    let out = out
        .then(&["apply", "q.toml", "--running", "sleep"])
        .code(2)
        .stderr_has("(sleep): the profile gives it no open-files limit");
    assert_eq!(system_files(&out.root()), before);
    assert_eq!(real_nofile(child.pid), (256, hard));
}

#[test]
fn running_refuses_a_hard_limit_above_the_kernels_nr_open() {
    let child = spawn_child(256);
    let (_, hard) = real_nofile(child.pid);
    let nr_open = kernel_nr_open();
    let out = with_child(tree_for(nr_open + 1), &child)
        .profile("p.toml", &nofile_profile(300, nr_open + 1))
        .args(&["apply", "p.toml", "--running", "sleep"])
        .run()
        .code(2)
        .stderr_has(&format!(
            "pid {} (sleep): hard open-files limit {} is above fs.nr_open {nr_open} of the \
             running kernel, which prlimit refuses",
            child.pid,
            nr_open + 1
        ));
    assert!(!out.root().join("etc/security").exists(), "nothing written");
    assert_eq!(real_nofile(child.pid), (256, hard));
}

fn has_cap_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .expect("CapEff");
    eff & (1 << 24) != 0
}

#[test]
fn raising_the_hard_limit_needs_cap_sys_resource_and_says_so() {
    let child = spawn_child(256);
    let (_, hard) = real_nofile(child.pid);
    let nr_open = kernel_nr_open();
    if hard >= nr_open {
        // No one can raise this hard limit; the nr_open refusal above covers it.
        return;
    }
    let out = with_child(tree_for(hard + 1), &child)
        .profile("p.toml", &nofile_profile(300, hard + 1))
        .args(&["apply", "p.toml", "--running", "sleep"])
        .run();
    if has_cap_sys_resource() {
        let out = out.code(0);
        assert_eq!(real_nofile(child.pid), (300, hard + 1));
        out.then(&["rollback"]).code(0);
        assert_eq!(real_nofile(child.pid), (256, hard));
    } else {
        let out = out
            .code(3)
            .stderr_has(&format!(
                "pid {} (sleep): raising the hard open-files limit from {hard} to {} needs \
                 CAP_SYS_RESOURCE, which this netprofile does not have (prlimit: EPERM)",
                child.pid,
                hard + 1
            ))
            .stderr_has("every change was rolled back");
        assert!(
            !out.root()
                .join("etc/security/limits.d/90-netprofile.conf")
                .exists()
        );
        assert_eq!(real_nofile(child.pid), (256, hard));
    }
}

// ---- systemd itself as the oracle for drop-in precedence ----------------------------------

/// The LimitNOFILE= systemd would apply, from `systemd-analyze --root DIR cat-config`, which
/// lists a unit's file and drop-ins in systemd's own order (masking, name order). `None` when
/// systemd-analyze is not installed.
fn systemd_winner(root: &std::path::Path, unit: &str) -> Option<(String, String, usize)> {
    let out = Command::new("systemd-analyze")
        .arg(format!("--root={}", root.display()))
        .args(["cat-config", &format!("systemd/system/{unit}")])
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let prefix = root.display().to_string();
    let (mut file, mut line, mut in_service) = (String::new(), 0, false);
    let mut winner = None;
    for l in text.lines() {
        if let Some(path) = l.strip_prefix("# ") {
            file = path.strip_prefix(&prefix).unwrap_or(path).to_string();
            line = 0;
            continue;
        }
        line += 1;
        if l.starts_with('[') {
            in_service = l == "[Service]";
        } else if in_service && let Some(v) = l.strip_prefix("LimitNOFILE=") {
            winner = Some((v.to_string(), file.clone(), line));
        }
    }
    Some(winner.expect("a LimitNOFILE line"))
}

#[test]
fn the_winning_limit_is_the_one_systemd_applies() {
    let unit = "[Service]\nExecStart=/bin/true\nLimitNOFILE=4096\n";
    let set = |n: u32| format!("[Service]\nLimitNOFILE={n}\n");
    let layouts: Vec<Vec<(&str, String)>> = vec![
        vec![("usr/lib/systemd/system/web.service", unit.into())],
        vec![
            ("usr/lib/systemd/system/web.service", unit.into()),
            ("etc/systemd/system/web.service", set(111)),
        ],
        vec![
            ("usr/lib/systemd/system/web.service", unit.into()),
            ("usr/lib/systemd/system/web.service.d/50-x.conf", set(7)),
            ("etc/systemd/system/web.service.d/50-x.conf", set(8192)),
            ("run/systemd/system/web.service.d/10-a.conf", set(100)),
        ],
        vec![
            ("usr/local/lib/systemd/system/web.service", unit.into()),
            ("usr/lib/systemd/system/web.service.d/99-z.conf", set(3)),
            ("run/systemd/system/web.service.d/98-y.conf", set(2)),
            (
                "usr/local/lib/systemd/system/web.service.d/97-x.conf",
                set(1),
            ),
        ],
    ];
    for files in layouts {
        let mut t = Test::new().profile("t.toml", SERVICE_PROFILE);
        for (rel, text) in &files {
            t = t.file(rel, text);
        }
        let Some((value, file, line)) = systemd_winner(&t.root(), "web.service") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "systemd-analyze is missing under CI=true"
            );
            eprintln!("skipped: systemd-analyze is not installed");
            return;
        };
        let out = t.args(&["diff", "t.toml"]).run().code(1);
        let row = out
            .stdout
            .lines()
            .find(|l| l.starts_with("web.service"))
            .unwrap_or_default()
            .to_string();
        assert!(
            row.contains(&format!("{value} ({file}:{line})")),
            "{files:?}\n  systemd: {value} at {file}:{line}\n  netprofile: {row}"
        );
    }
}

#[test]
fn dry_run_says_what_running_would_raise_and_changes_nothing() {
    let child = spawn_child(256);
    let (_, hard) = real_nofile(child.pid);
    let soft = 1000.min(hard);
    let out = with_child(tree_for(hard), &child)
        .profile("p.toml", &nofile_profile(soft, hard))
        .args(&["apply", "--dry-run", "p.toml", "--running", "sleep"])
        .run()
        .code(1)
        .stdout_has(&format!(
            "would set nofile of pid {} (sleep): 256:{hard} -> {soft}:{hard}\n",
            child.pid
        ));
    assert!(!out.root().join("etc").exists());
    assert_eq!(real_nofile(child.pid), (256, hard));
}

#[test]
fn rollback_after_the_process_exited_leaves_its_pid_alone() {
    let mut child = spawn_child(256);
    let (_, hard) = real_nofile(child.pid);
    let soft = 1000.min(hard);
    let out = with_child(tree_for(hard), &child)
        .profile("p.toml", &nofile_profile(soft, hard))
        .args(&["apply", "-q", "p.toml", "--running", "sleep"])
        .run()
        .code(0);
    child.child.kill().expect("kill");
    child.child.wait().expect("wait");
    // Only the file is restored; the gone process is not an error.
    out.then(&["rollback"])
        .code(0)
        .stdout_has("as generation 2: 0 keys set, 1 file written\n");
}

#[test]
fn a_service_on_the_managers_default_needs_a_daemon_reexec() {
    with_listener(Test::new())
        .file("proc/4321/cgroup", "0::/system.slice/other.service\n")
        .profile(
            "d.toml",
            "[systemd]\ndefault_limit_nofile = \"65536:524288\"\n",
        )
        .args(&["apply", "d.toml"])
        .run()
        .code(0)
        .stdout_has(
            "new DefaultLimitNOFILE takes effect after `systemctl daemon-reexec` (or a reboot)",
        )
        .stdout_has(
            "  pid 4321 web (other.service) port 8080: has 4096:4096, a fresh start gets \
             65536:524288 (DefaultLimitNOFILE=65536:524288 in \
             /etc/systemd/system.conf.d/90-netprofile.conf:4); needs `systemctl \
             daemon-reexec`, then restart other.service\n",
        );
}
