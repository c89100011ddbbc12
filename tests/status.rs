//! `status` tells the whole truth: hand edits of managed drop-ins are drift and `rollback`
//! will not clobber them without --force; file-only generations count as managed; reverted
//! and rolled-back generations do not; limits show the value in force for a login beside the
//! configured one; systemd settings are not limits.

mod common;

use common::{Test, system_files};
use serde_json::Value;

const PROFILE: &str = r#"
[profile]
name = "t"

[sysctl]
"net.core.somaxconn" = 65535

[[limits]]
domain = "*"
type = "-"
item = "nofile"
value = 65536
"#;

const LIMITS_ONLY: &str = r#"
[profile]
name = "fd"

[[limits]]
domain = "*"
type = "-"
item = "nofile"
value = 65536

[systemd]
default_limit_nofile = 65536
"#;

const SYSCTL_DROPIN: &str = "etc/sysctl.d/90-netprofile.conf";

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn applied() -> common::Outcome {
    Test::new()
        .profile("t.toml", PROFILE)
        .args(&["apply", "-q", "t.toml"])
        .run()
        .code(0)
}

#[test]
fn a_hand_edit_of_a_managed_dropin_is_drift() {
    let out = applied();
    let path = out.root().join(SYSCTL_DROPIN);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("65535", "1024")).unwrap();
    let out = out
        .then(&["status"])
        .code(0)
        .stdout_has("/etc/sysctl.d/90-netprofile.conf           drifted (edited by hand)\n")
        .stdout_has("1 managed key, 1 drifted, 1 generation\n");
    let out = out
        .then(&["-v", "status"])
        .code(0)
        .stdout_has("was edited by hand since netprofile wrote it:\n")
        .stdout_has("-net.core.somaxconn = 65535\n+net.core.somaxconn = 1024\n");
    let out = out.then(&["--json", "status"]).code(0);
    let doc = json(&out.stdout);
    assert_eq!(doc["in_sync"], false);
    assert_eq!(doc["drifted"], 1);
    let file = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/etc/sysctl.d/90-netprofile.conf")
        .unwrap();
    assert_eq!(file["state"], "edited");
    std::fs::remove_file(&path).unwrap();
    out.then(&["status"])
        .stdout_has("drifted (removed by hand)");
}

#[test]
fn rollback_shows_a_hand_edit_and_refuses_to_clobber_it_without_force() {
    let out = applied();
    let path = out.root().join(SYSCTL_DROPIN);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("net.ipv4.tcp_fin_timeout = 15\n");
    std::fs::write(&path, &text).unwrap();
    let before = system_files(&out.root());
    let out = out
        .then(&["rollback"])
        .code(2)
        .stderr_has("rollback would overwrite a managed drop-in edited by hand")
        .stderr_has("/etc/sysctl.d/90-netprofile.conf was edited by hand since netprofile wrote it")
        .stderr_has("+net.ipv4.tcp_fin_timeout = 15\n")
        .stderr_has("`netprofile rollback --force`");
    assert_eq!(
        out.system_files(),
        before,
        "a refused rollback changed something"
    );
    let out = out.then(&["rollback", "--force"]).code(0).stderr_has(
        "warning: --force overwrote the hand edits of /etc/sysctl.d/90-netprofile.conf",
    );
    assert!(!out.root().join(SYSCTL_DROPIN).exists());
    assert_eq!(
        std::fs::read_to_string(out.root().join("proc/sys/net/core/somaxconn")).unwrap(),
        "4096\n"
    );
}

#[test]
fn a_rolled_back_generation_no_longer_counts() {
    let out = applied().then(&["rollback"]).code(0);
    let out = out
        .then(&["status"])
        .code(0)
        .stdout_has("no keys managed yet (no generation in force)\n")
        .stdout_has("0 managed keys, 0 drifted, 2 generations\n");
    let doc = json(&out.then(&["--json", "status"]).code(0).stdout);
    assert_eq!(doc["in_force"], serde_json::json!([]));
    assert_eq!(doc["managed"], serde_json::json!([]));
    assert_eq!(doc["files"], serde_json::json!([]));
}

/// Rollback is never a toggle (issue 7): a second `rollback` finds nothing in effect, says so
/// and changes nothing, and status still shows nothing in force.
#[test]
fn a_second_rollback_is_not_a_toggle() {
    let out = applied()
        .then(&["rollback"])
        .code(0)
        .then(&["rollback"])
        .code(0)
        .stdout_has("nothing to roll back");
    let out = out.then(&["--json", "rollback"]).code(0);
    let again = json(&out.stdout);
    assert_eq!(again["changed"], false, "{again:#}");
    assert_eq!(again["generation"], serde_json::Value::Null, "{again:#}");
    let doc = json(&out.then(&["--json", "status"]).code(0).stdout);
    assert_eq!(doc["in_force"], serde_json::json!([]), "{doc:#}");
    assert_eq!(doc["managed"], serde_json::json!([]), "{doc:#}");
}

#[test]
fn a_reverted_confirm_no_longer_counts_and_a_confirmed_ones_files_do() {
    // Confirmed: generation 1 set the key, generation 2 (files only) wrote the drop-ins.
    let out = Test::new()
        .profile("t.toml", PROFILE)
        .args(&["apply", "-q", "--confirm", "60", "t.toml"])
        .run()
        .code(0)
        .then(&["confirm"])
        .code(0);
    let doc = json(&out.then(&["--json", "status"]).code(0).stdout);
    assert_eq!(doc["in_force"], serde_json::json!([1, 2]));
    assert_eq!(doc["files"].as_array().unwrap().len(), 2, "{doc:#}");
    // Reverted: a pending apply rolled back before confirm.
    let out = Test::new()
        .profile("t.toml", PROFILE)
        .args(&["apply", "-q", "--confirm", "60", "t.toml"])
        .run()
        .code(0)
        .then(&["rollback"])
        .code(0);
    let doc = json(&out.then(&["--json", "status"]).code(0).stdout);
    assert_eq!(doc["managed"], serde_json::json!([]), "{doc:#}");
    assert_eq!(doc["pending"], Value::Null);
}

#[test]
fn a_file_only_generation_counts_as_managed() {
    // Only limits and a systemd setting: the generation changes files and no key.
    let out = Test::new()
        .profile("fd.toml", LIMITS_ONLY)
        .args(&["apply", "-q", "fd.toml"])
        .run()
        .code(0)
        .then(&["status"])
        .code(0);
    assert!(!out.stdout.contains("no keys managed"), "{}", out.stdout);
    let out = out
        .stdout_has("* soft nofile  65536     /etc/security/limits.d/90-netprofile.conf:3  65536       ok\n")
        .stdout_has("also managed: 2 limits, 1 systemd setting, 2 files; 1 generation in force\n");
    let doc = json(&out.then(&["--json", "status"]).code(0).stdout);
    assert_eq!(doc["in_sync"], true, "{doc:#}");
    assert_eq!(doc["limits"].as_array().unwrap().len(), 2);
    assert_eq!(doc["systemd"][0]["setting"], "DefaultLimitNOFILE");
}

#[test]
fn limits_show_the_value_in_force_for_a_login_beside_the_configured_one() {
    let out = applied();
    // A later file that a login reads after netprofile's drop-in.
    common::write(
        &out.root().join("etc/security/limits.d/95-ops.conf"),
        "*  soft  nofile  4096\n",
    );
    let out = out
        .then(&["status"])
        .code(0)
        .stdout_has("* soft nofile  4096      /etc/security/limits.d/95-ops.conf:1         65536       drifted\n")
        .stdout_has("* hard nofile  65536     /etc/security/limits.d/90-netprofile.conf:3  65536       ok\n");
    let doc = json(&out.then(&["--json", "status"]).code(0).stdout);
    let soft = &doc["limits"][0];
    assert_eq!(
        (&soft["type"], &soft["wanted"], &soft["live"]),
        (&"soft".into(), &"65536".into(), &"4096".into())
    );
    assert_eq!(soft["source"]["file"], "/etc/security/limits.d/95-ops.conf");
    assert_eq!(doc["drifted"], 1);
}

#[test]
fn systemd_settings_are_not_counted_as_limits() {
    Test::new()
        .profile("fd.toml", LIMITS_ONLY)
        .args(&["check", "fd.toml"])
        .run()
        .code(1)
        .stdout("differs: 2 limits to set, 1 systemd setting to set, 2 files to write\n");
}

/// Issue 18: status names the systemd-sysctl and pam_limits versions its boot and login values
/// were modelled on, in its text (the `modelled:` line before the closing count) as in its
/// JSON; read from the root's dpkg database, or "unknown (as NEWEST)" without one.
#[test]
fn status_says_which_versions_it_modelled() {
    let dpkg = "Package: systemd\nStatus: install ok installed\nVersion: 252.39-1~deb12u1\n\n\
                Package: libpam-modules\nStatus: install ok installed\nVersion: 1.5.2-6+deb12u1\n";
    let text = Test::new()
        .file("var/lib/dpkg/status", dpkg)
        .args(&["status"])
        .run()
        .code(0);
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert_eq!(
        lines[lines.len() - 2..],
        [
            "modelled: systemd-sysctl 252.39-1~deb12u1, pam_limits 1.5.2-6+deb12u1",
            "0 managed keys, 0 drifted, 0 generations",
        ],
        "{}",
        text.stdout
    );
    let doc = json(&text.then(&["--json", "status"]).code(0).stdout);
    let models: Vec<(&str, &str, &str)> = doc["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| {
            (
                m["package"].as_str().unwrap_or_default(),
                m["version"].as_str().unwrap_or_default(),
                m["rules"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        models,
        [
            ("systemd", "252.39-1~deb12u1", "252"),
            ("libpam-modules", "1.5.2-6+deb12u1", "1.5")
        ]
    );
    Test::new()
        .args(&["status"])
        .run()
        .code(0)
        .stdout_has("\nmodelled: systemd-sysctl unknown (as 257), pam_limits unknown (as 1.7)\n");
}
