//! What a reboot leaves, on temporary roots: the regression tests of what the VM test
//! (tests/vm/run.sh) found across real reboots. A "reboot" here is what one does to the files
//! netprofile reads: run/ is emptied (a tmpfs), the --confirm watcher is gone, and proc/sys holds
//! what the kernel and the boot files give (set by the test from the boot files it wrote). The
//! packages' enabling of netprofile.service is checked with the real deb-systemd-helper and
//! `systemctl --root ... preset`, and read back by the real binary's `diff`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Outcome, Test};

const SYN: &str = "proc/sys/net/ipv4/tcp_max_syn_backlog";
const NETDEV: &str = "proc/sys/net/core/netdev_max_backlog";
const SOMAXCONN: &str = "proc/sys/net/core/somaxconn";

/// A profile with an exact key and two raise-only keys, like high-conn's.
const PROFILE: &str = r#"
[profile]
name = "t"

[sysctl]
"net.core.somaxconn" = 65535
"net.ipv4.tcp_max_syn_backlog" = { min = 65535 }
"net.core.netdev_max_backlog" = { min = 16384 }
"#;

fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A reboot as netprofile sees it: the watcher of a --confirm is gone with its process, run/ is
/// empty, and the keys hold `values` (what the kernel and systemd-sysctl gave them).
fn reboot(root: &Path, values: &[(&str, &str)]) {
    if let Ok(text) = std::fs::read_to_string(root.join("run/netprofile/pending.json")) {
        let doc: serde_json::Value = serde_json::from_str(&text).expect("pending.json");
        if let Some(pid) = doc["watcher"].as_u64() {
            // Our own child's child: the watcher of this test's --confirm.
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
    let _ = std::fs::remove_dir_all(root.join("run"));
    std::fs::create_dir(root.join("run")).expect("run");
    for (rel, value) in values {
        common::write(&root.join(rel), &format!("{value}\n"));
    }
}

fn applied() -> Outcome {
    Test::new()
        .profile("t.toml", PROFILE)
        .args(&["apply", "-q", "t.toml"])
        .run()
        .code(0)
}

#[test]
fn a_plain_rollback_after_a_reboot_undoes_the_users_apply_not_the_boot_units() {
    let out = applied();
    assert_eq!(read(&out.root(), SYN), "65535\n");
    // Boot: the drop-in sets somaxconn; the kernel default 2048 comes back for the min key,
    // and netprofile.service raises it again as generation 2.
    reboot(&out.root(), &[(SYN, "2048"), (NETDEV, "1000")]);
    let out = out.then(&["apply", "--pending"]).code(0);
    assert!(
        out.stdout.contains("applied generation 2"),
        "{}",
        out.stdout
    );
    let out = out.then(&["rollback"]).code(0);
    assert!(
        out.stdout
            .starts_with("rolled back to the state before generation 1 as generation 3"),
        "a plain rollback must undo the user's apply (1), not the boot unit's generation 2:\n{}",
        out.stdout
    );
    assert_eq!(read(&out.root(), SYN), "2048\n");
    assert_eq!(read(&out.root(), NETDEV), "1000\n");
    assert_eq!(read(&out.root(), SOMAXCONN), "4096\n");
    assert!(!out.root().join("etc/sysctl.d/90-netprofile.conf").exists());
    // The next boot holds nothing: the apply is no longer in force.
    reboot(&out.root(), &[(SYN, "2048"), (SOMAXCONN, "4096")]);
    let out = out.then(&["apply", "--pending"]).code(0);
    assert_eq!(out.stdout, "nothing to do: no pending keys\n");
    assert_eq!(read(&out.root(), SYN), "2048\n");
    out.then(&["status"]).stdout_has("in effect: no generation");
}

#[test]
fn a_confirm_generation_a_reboot_dropped_is_shown_dropped_then_recorded_so() {
    let out = Test::new()
        .profile("t.toml", PROFILE)
        .args(&["apply", "-q", "--confirm", "600", "t.toml"])
        .run()
        .code(0);
    assert_eq!(read(&out.root(), SOMAXCONN), "65535\n");
    let out = out.then(&["history"]).stdout_has("pending (in effect)");
    // The reboot takes the live values and the pending record; the files were never written.
    reboot(
        &out.root(),
        &[(SOMAXCONN, "4096"), (SYN, "2048"), (NETDEV, "1000")],
    );
    let out = out.then(&["history"]).code(0).stdout_has("dropped");
    assert!(
        !out.stdout.contains("pending"),
        "a dropped --confirm must not stay pending:\n{}",
        out.stdout
    );
    let out = out.then(&["--json", "history"]).code(0);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(
        doc["generations"][0]["outcome"], "dropped",
        "{}",
        out.stdout
    );
    let out = out
        .then(&["status"])
        .code(0)
        .stdout_has("dropped: generation 1 (apply --confirm) was ended by a reboot");
    let out = out.then(&["--json", "status"]).code(0);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(doc["dropped"], serde_json::json!([1]), "{}", out.stdout);
    assert_eq!(doc["in_force"], serde_json::json!([]), "{}", out.stdout);
    // The next writer records it (here a rollback, which finds nothing to undo).
    let out = out
        .then(&["rollback"])
        .code(0)
        .stderr_has("generation 1 (apply --confirm) was dropped by a reboot");
    assert!(
        out.stdout.starts_with("nothing to roll back"),
        "{}",
        out.stdout
    );
    let record = read(&out.root(), "var/lib/netprofile/generations/000001.json");
    assert!(record.contains("\"outcome\": \"dropped\""), "{record}");
    // A later apply is the user's last change: status no longer reports the old drop.
    let out = out.then(&["apply", "-q", "t.toml"]).code(0);
    let out = out.then(&["status"]).code(0);
    assert!(!out.stdout.contains("dropped"), "{}", out.stdout);
    out.then(&["history"]).stdout_has("dropped");
}

#[test]
fn rollback_restores_what_another_boot_file_sets_not_the_journaled_value() {
    // Applied with netdev_max_backlog at the kernel's 1000 (raised to the min 16384); then an
    // administrator's boot file sets it to 50000, and the machine reboots.
    let out = applied();
    assert_eq!(read(&out.root(), NETDEV), "16384\n");
    common::write(
        &out.root().join("etc/sysctl.d/95-boot-higher.conf"),
        "net.core.netdev_max_backlog = 50000\n",
    );
    reboot(&out.root(), &[(NETDEV, "50000"), (SYN, "2048")]);
    let out = out.then(&["apply", "--pending"]).code(0);
    let out = out.then(&["rollback"]).code(0).stderr_has(
        "net.core.netdev_max_backlog: back to 50000, what \
         /etc/sysctl.d/95-boot-higher.conf:1 sets at boot, not 1000 from before the generation",
    );
    assert_eq!(
        read(&out.root(), NETDEV),
        "50000\n",
        "rollback must not lower what another boot file sets"
    );
    // Where no other file sets a key, the journaled original.
    assert_eq!(read(&out.root(), SYN), "2048\n");
    assert_eq!(read(&out.root(), SOMAXCONN), "4096\n");
}

#[test]
fn rollback_without_a_reboot_also_lands_on_the_boot_files_value() {
    let out = applied();
    // A boot file written after the apply, not loaded yet: live is still netprofile's 16384.
    common::write(
        &out.root().join("etc/sysctl.d/95-boot-higher.conf"),
        "net.core.netdev_max_backlog = 50000\n",
    );
    let out = out.then(&["rollback"]).code(0);
    assert_eq!(read(&out.root(), NETDEV), "50000\n", "{}", out.stderr);
    // diff of the same profile now sees live as the next boot will set it.
    out.then(&["diff", "t.toml"]).code(1);
}

/// A root with the unit as the packages install it, for the enabling tests.
fn root_with_unit(unit_dir: &str) -> Test {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/systemd/netprofile.service"),
    )
    .expect("unit");
    Test::new()
        .profile("t.toml", PROFILE)
        .file(&format!("{unit_dir}/netprofile.service"), &unit)
}

const NOT_ENABLED: &str = "is not enabled";

/// Runs one of the .deb's maintainer scripts as dpkg does, on `root` (deb-systemd-helper and the
/// scripts honour DPKG_ROOT); `systemctl` is a no-op stand-in so a host that runs systemd is not
/// reloaded.
fn maintscript(root: &Path, script: &str, args: &[&str]) {
    let stubs = tempfile::tempdir().expect("tempdir");
    common::write(&stubs.path().join("systemctl"), "#!/bin/sh\nexit 0\n");
    let _ = Command::new("chmod")
        .arg("755")
        .arg(stubs.path().join("systemctl"))
        .status();
    let path = format!(
        "{}:{}",
        stubs.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let status = Command::new("sh")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("packaging/debian/{script}")))
        .args(args)
        .env("DPKG_ROOT", root)
        .env("DPKG_MAINTSCRIPT_PACKAGE", "netprofile")
        .env("DPKG_MAINTSCRIPT_NAME", script)
        .env("PATH", path)
        .status()
        .unwrap_or_else(|e| panic!("sh {script}: {e}"));
    assert!(status.success(), "{script} {args:?}: {status}");
}

fn postinst(root: &Path, args: &[&str]) {
    maintscript(root, "postinst", args);
}

const UNIT: &str = "lib/systemd/system/netprofile.service";

/// `dpkg -r netprofile` as far as the unit goes: prerm remove, the files go, postrm remove.
fn dpkg_remove(root: &Path) {
    maintscript(root, "prerm", &["remove"]);
    std::fs::remove_file(root.join(UNIT)).expect("remove the unit file");
    maintscript(root, "postrm", &["remove"]);
}

/// `dpkg -i` of the package again after a remove: the unit file is back, postinst configure
/// (no old version: dpkg passes none after a remove that kept only the conffiles).
fn dpkg_reinstall(root: &Path) {
    common::write(
        &root.join(UNIT),
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/systemd/netprofile.service"),
        )
        .expect("unit"),
    );
    postinst(root, &["configure"]);
}

/// Every file and symlink under `root` (not folders), root-relative.
fn entries(root: &Path) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).expect("metadata");
            if meta.is_dir() {
                todo.push(path);
            } else {
                let rel = path.strip_prefix(root).expect("under root");
                out.insert(rel.display().to_string());
            }
        }
    }
    out
}

/// Symlinks under `root` whose absolute target is not inside `root` (as the installed system
/// would resolve it).
fn dangling(root: &Path) -> Vec<String> {
    entries(root)
        .into_iter()
        .filter(|rel| {
            let Ok(target) = std::fs::read_link(root.join(rel)) else {
                return false;
            };
            let inside = match target.strip_prefix("/") {
                Ok(abs) => root.join(abs),
                Err(_) => root.join(rel).parent().expect("parent").join(&target),
            };
            !inside.exists()
        })
        .collect()
}

fn has_deb_systemd_helper() -> bool {
    let found = Command::new("sh")
        .args(["-c", "command -v deb-systemd-helper"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found || std::env::var_os("CI").is_none(),
        "CI=true: deb-systemd-helper (init-system-helpers) is missing; .ci/run installs it"
    );
    found
}

#[test]
fn the_deb_enables_the_boot_unit_so_min_keys_hold_after_a_reboot_with_no_extra_step() {
    if !has_deb_systemd_helper() {
        eprintln!("skipped: no deb-systemd-helper (init-system-helpers) here");
        return;
    }
    let out = root_with_unit("lib/systemd/system")
        .args(&["diff", "t.toml"])
        .run()
        .code(1)
        .stderr_has(NOT_ENABLED);
    postinst(&out.root(), &["configure"]);
    let link = out
        .root()
        .join("etc/systemd/system/multi-user.target.wants/netprofile.service");
    assert!(
        link.is_symlink(),
        "postinst configure did not enable the unit"
    );
    let out = out.then(&["diff", "t.toml"]).code(1);
    assert!(!out.stderr.contains(NOT_ENABLED), "{}", out.stderr);
    // An administrator's `disable` survives an upgrade.
    let status = Command::new("deb-systemd-helper")
        .args(["disable", "netprofile.service"])
        .env("DPKG_ROOT", out.root())
        .env("DPKG_MAINTSCRIPT_PACKAGE", "netprofile")
        .status()
        .expect("deb-systemd-helper");
    assert!(status.success());
    postinst(&out.root(), &["configure", "0.1.0"]);
    assert!(!link.exists(), "an upgrade re-enabled a disabled unit");
    let out = out
        .then(&["diff", "t.toml"])
        .code(1)
        .stderr_has(NOT_ENABLED);
    // ... and a remove then a reinstall: the disable is kept until a purge.
    dpkg_remove(&out.root());
    dpkg_reinstall(&out.root());
    assert!(!link.is_symlink(), "a reinstall re-enabled a disabled unit");
    out.then(&["diff", "t.toml"])
        .code(1)
        .stderr_has(NOT_ENABLED);
}

#[test]
fn a_reinstall_after_a_remove_enables_the_boot_unit_again_and_a_purge_leaves_no_trace() {
    if !has_deb_systemd_helper() {
        eprintln!("skipped: no deb-systemd-helper (init-system-helpers) here");
        return;
    }
    let test = root_with_unit("lib/systemd/system");
    let before = entries(&test.root());
    let root = test.root();
    postinst(&root, &["configure"]);
    let wants = root.join("etc/systemd/system/multi-user.target.wants/netprofile.service");
    assert!(
        wants.is_symlink(),
        "postinst configure did not enable the unit"
    );
    let out = test.args(&["apply", "-q", "t.toml"]).run().code(0);
    let applied: Vec<String> = entries(&root).difference(&before).cloned().collect();
    // dpkg -r: no link is left to the removed unit file; netprofile's state stays.
    dpkg_remove(&root);
    assert!(!wants.is_symlink(), "dpkg -r left {}", wants.display());
    assert_eq!(
        dangling(&root),
        Vec::<String>::new(),
        "dangling links after dpkg -r"
    );
    assert!(
        root.join("var/lib/netprofile").is_dir(),
        "dpkg -r took the state"
    );
    // dpkg -i again: enabled as before the remove, so the next boot re-applies; diff agrees.
    dpkg_reinstall(&root);
    assert!(
        wants.is_symlink(),
        "a reinstall after dpkg -r left the unit disabled"
    );
    let out = out.then(&["diff", "t.toml"]).code(0);
    assert!(!out.stderr.contains(NOT_ENABLED), "{}", out.stderr);
    // dpkg -P: nothing of the package's is left; the drop-ins `apply` wrote stay (rollback
    // removes them), the state and deb-systemd-helper's records go.
    dpkg_remove(&root);
    maintscript(&root, "postrm", &["purge"]);
    let after = entries(&root);
    let kept: Vec<&String> = applied
        .iter()
        .filter(|rel| !rel.starts_with("var/lib/netprofile/") && !rel.starts_with("run/"))
        .filter(|rel| !rel.contains("systemd/system/multi-user.target.wants/"))
        .filter(|rel| !rel.starts_with("var/lib/systemd/"))
        .collect();
    let gone: Vec<&String> = before.difference(&after).collect();
    let left: Vec<&String> = after.difference(&before).collect();
    assert_eq!(
        gone,
        vec![UNIT],
        "the purge took more than the package's files"
    );
    assert_eq!(
        left, kept,
        "the purge left these (only apply's drop-ins may stay)"
    );
    for dir in [
        "var/lib/netprofile",
        "var/lib/systemd/deb-systemd-helper-enabled",
        "var/lib/systemd/deb-systemd-helper-masked",
        "etc/systemd/system/multi-user.target.wants",
    ] {
        assert!(!root.join(dir).exists(), "the purge left {dir}");
    }
}

#[test]
fn the_rpm_preset_enables_the_boot_unit() {
    let out = root_with_unit("usr/lib/systemd/system")
        .file(
            "usr/lib/systemd/system-preset/50-netprofile.preset",
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("packaging/systemd/50-netprofile.preset"),
            )
            .expect("preset"),
        )
        .args(&["diff", "t.toml"])
        .run()
        .code(1)
        .stderr_has(NOT_ENABLED);
    // What %post runs on a first install, here offline on the temporary root.
    let status = Command::new("systemctl")
        .arg(format!("--root={}", out.root().display()))
        .args(["preset", "netprofile.service"])
        .status();
    match status {
        Ok(s) => assert!(s.success(), "systemctl preset: {s}"),
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI=true: systemctl (systemd) is missing: {e}"
            );
            eprintln!("skipped: no systemctl here");
            return;
        }
    }
    let out = out.then(&["diff", "t.toml"]).code(1);
    assert!(!out.stderr.contains(NOT_ENABLED), "{}", out.stderr);
}
