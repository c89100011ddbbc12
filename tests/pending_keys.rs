//! Keys that appear later: a key whose module is not loaded (no file under proc/sys) is
//! pending, not an error and not skipped. diff and status show it, apply sets the rest, keeps
//! it in the sysctl.d drop-in (an exact value; a min is held as a bound) and records it, `[modules] load` writes a modules-load.d drop-in,
//! and `apply --pending` sets it once the module has loaded (here: once the fixture root grows
//! the key's file, as the kernel's proc/sys does when nf_conntrack loads).

mod common;

use std::os::unix::fs::PermissionsExt;

use common::Test;

const PROFILE: &str = r#"
[profile]
name = "ct"

[sysctl]
"net.core.somaxconn" = 8192
"net.netfilter.nf_conntrack_max" = 262144

[modules]
load = ["nf_conntrack"]
"#;

const CONNTRACK: &str = "proc/sys/net/netfilter/nf_conntrack_max";

fn read(root: &std::path::Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn a_missing_module_key_is_pending_then_applied_when_the_module_loads() {
    let out = Test::new()
        .profile("ct.toml", PROFILE)
        .args(&["diff", "ct.toml"])
        .run()
        .code(1);
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("net.netfilter.nf_conntrack_max"))
        .unwrap_or_else(|| panic!("no row\n{}", out.stdout));
    assert!(
        row.ends_with("262144  pending (module nf_conntrack)"),
        "{row}"
    );
    assert!(
        out.stdout
            .contains("differs: 1 key to set, 2 files to write, 1 pending (module not loaded)"),
        "{}",
        out.stdout
    );

    let out = out.then(&["apply", "ct.toml"]).code(0);
    assert!(
        out.stdout
            .contains("applied generation 1: 1 key set, 2 files written"),
        "{}",
        out.stdout
    );
    assert_eq!(read(&out.root(), "proc/sys/net/core/somaxconn"), "8192\n");
    assert!(
        !out.root().join(CONNTRACK).exists(),
        "apply never creates a key"
    );
    // The boot files carry it, so it holds once the module loads at boot.
    assert!(
        read(&out.root(), "etc/sysctl.d/90-netprofile.conf")
            .contains("net.netfilter.nf_conntrack_max = 262144\n")
    );
    assert_eq!(
        read(&out.root(), "etc/modules-load.d/netprofile.conf"),
        "# Written by netprofile from profile \"ct\" (ct.toml).\n\
         # Do not edit: the next `netprofile apply` replaces this file.\n\
         nf_conntrack\n"
    );
    let mode = std::fs::metadata(out.root().join("etc/modules-load.d/netprofile.conf"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);

    let out = out
        .then(&["status"])
        .code(0)
        .stdout_has("pending keys (their module was not loaded at apply):\n")
        .stdout_has("  net.netfilter.nf_conntrack_max = 262144: waiting for module nf_conntrack\n");
    let out = out.then(&["apply", "--pending"]).code(0).stdout(
        "nothing to do: still pending: net.netfilter.nf_conntrack_max (module nf_conntrack)\n",
    );
    // A second apply of the same profile keeps it pending and changes nothing.
    let out = out
        .then(&["diff", "ct.toml"])
        .code(0)
        .stdout_has("in sync: 1 key as wanted, 1 pending (module not loaded)");

    // The module loads: the kernel's default appears.
    common::write(&out.root().join(CONNTRACK), "65536\n");
    let out = out
        .then(&["status"])
        .code(0)
        .stdout_has("262144: module loaded now: run `netprofile apply --pending`\n");
    let out = out.then(&["apply", "--pending"]).code(0).stdout(
        "set net.netfilter.nf_conntrack_max = 262144\n\
         applied generation 2: 1 pending key set\n",
    );
    assert_eq!(read(&out.root(), CONNTRACK), "262144\n");
    let out = out.then(&["status"]).code(0);
    assert!(!out.stdout.contains("pending keys"), "{}", out.stdout);
    let out = out
        .then(&["apply", "--pending"])
        .code(0)
        .stdout("nothing to do: no pending keys\n");
    let out = out.then(&["diff", "ct.toml"]).code(0);

    // A plain rollback undoes the user's apply (1) with the `apply --pending` generation after
    // it: the module's default comes back, both drop-ins go, and nothing is pending any more.
    let out = out.then(&["rollback"]).code(0);
    assert!(
        out.stdout
            .starts_with("rolled back to the state before generation 1 as generation 3"),
        "{}",
        out.stdout
    );
    assert_eq!(read(&out.root(), CONNTRACK), "65536\n");
    assert!(
        !out.root()
            .join("etc/modules-load.d/netprofile.conf")
            .exists()
    );
    assert!(!out.root().join("etc/sysctl.d/90-netprofile.conf").exists());
    assert_eq!(read(&out.root(), "proc/sys/net/core/somaxconn"), "4096\n");
    let out = out.then(&["status"]).code(0);
    assert!(!out.stdout.contains("pending keys"), "{}", out.stdout);
}

#[test]
fn a_pending_key_without_its_module_at_boot_gets_a_warning() {
    Test::new()
        .profile(
            "p.toml",
            "[sysctl]\n\"net.netfilter.nf_conntrack_max\" = 262144\n",
        )
        .args(&["apply", "p.toml"])
        .run()
        .code(0)
        .stderr_has(
            "warning: net.netfilter.nf_conntrack_max is pending: module nf_conntrack is not \
             loaded, so the key does not exist yet. Add [modules] load = [\"nf_conntrack\"]",
        );
}

#[test]
fn optional_still_means_skip_quietly() {
    let out = Test::new()
        .profile(
            "p.toml",
            "[sysctl]\n\"net.core.somaxconn\" = 8192\n\
             \"net.netfilter.nf_conntrack_max\" = { value = 262144, optional = true }\n",
        )
        .args(&["apply", "p.toml"])
        .run()
        .code(0);
    assert!(!out.stderr.contains("pending"), "{}", out.stderr);
    // The drop-in is the same on every host: an optional key is written with systemd-sysctl's
    // `-` prefix, which ignores it where the key does not exist.
    assert!(
        read(&out.root(), "etc/sysctl.d/90-netprofile.conf")
            .contains("\n-net.netfilter.nf_conntrack_max = 262144\n"),
        "an optional key is persisted as ignorable"
    );
    let out = out.then(&["status"]).code(0);
    assert!(!out.stdout.contains("pending keys"), "{}", out.stdout);
}

#[test]
fn a_key_of_no_known_module_is_still_unknown() {
    Test::new()
        .profile("p.toml", "[sysctl]\n\"net.core.somaxcon\" = 1\n")
        .args(&["apply", "p.toml"])
        .run()
        .code(2)
        .stderr_has("unknown key");
}

#[test]
fn a_misspelt_module_key_is_an_error_not_pending() {
    Test::new()
        .profile(
            "p.toml",
            "[sysctl]\n\"net.netfilter.nf_conntrack_maxx\" = 1\n",
        )
        .args(&["apply", "p.toml"])
        .run()
        .code(2)
        .stderr_has("unknown key")
        .stderr_has("Did you mean \"net.netfilter.nf_conntrack_max\"?");
}

#[test]
fn bad_module_names_are_refused() {
    Test::new()
        .profile("p.toml", "[modules]\nload = [\"../evil\"]\n")
        .args(&["apply", "p.toml"])
        .run()
        .code(2)
        .stderr_has("p.toml:2: [modules] load: \"../evil\" is not a module name");
}

#[test]
fn a_pending_min_key_is_raised_to_its_bound_never_lowered_when_its_module_loads() {
    let profile = "[sysctl]\n\"net.netfilter.nf_conntrack_max\" = { min = 262144 }\n\
                   [modules]\nload = [\"nf_conntrack\"]\n";
    let out = Test::new()
        .profile("p.toml", profile)
        .args(&["apply", "-q", "p.toml"])
        .run()
        .code(0);
    // Not in the sysctl drop-in: systemd-sysctl would set it, lowering a larger default.
    assert!(
        !out.root().join("etc/sysctl.d/90-netprofile.conf").exists(),
        "a profile of min keys only writes no sysctl drop-in"
    );
    common::write(&out.root().join(CONNTRACK), "65536\n");
    let out = out.then(&["apply", "--pending"]).code(0).stdout(
        "set net.netfilter.nf_conntrack_max = 262144\n\
         applied generation 2: 1 key brought back to its min/max bound\n",
    );
    assert_eq!(read(&out.root(), CONNTRACK), "262144\n");
    // After a reboot the module sizes it above the min: kept.
    common::write(&out.root().join(CONNTRACK), "1048576\n");
    let out = out.then(&["apply", "--pending"]).code(0);
    assert!(out.stdout.starts_with("nothing to do"), "{}", out.stdout);
    assert_eq!(read(&out.root(), CONNTRACK), "1048576\n");
}
