//! Issue 18, item 4: `--root DIR` is a whole root. A symlink inside it resolves inside it, as
//! systemd-sysctl and pam_limits resolve it on the machine the tree is: an absolute target
//! `/x` means `DIR/x`, `..` stops at `DIR`, and a folder that is a link is followed the same
//! way. The targets here exist only inside the root (a path no host has), so a link followed on
//! the host would read nothing, and the assertions tell the two apart. No namespace: a plain
//! temporary root and `diff --json` / `explain --json`.

mod common;

use std::os::unix::fs::symlink;

use common::Test;
use serde_json::Value;

const PROFILE: &str = r#"
[profile]
name = "links"

[sysctl]
"net.core.somaxconn" = 65535
"net.ipv4.tcp_fin_timeout" = 30
"net.ipv4.tcp_max_syn_backlog" = 4096

[[limits]]
domain = "*"
type = "-"
item = "nofile"
value = 65536
"#;

/// A folder under the root that does not exist on this host (checked), for the link targets.
const ONLY_IN_ROOT: &str = "opt/netprofile-only-in-the-root-7f3a";

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn absolute_and_relative_links_resolve_inside_the_root() {
    assert!(
        !std::path::Path::new("/").join(ONLY_IN_ROOT).exists(),
        "/{ONLY_IN_ROOT} exists on this host: the test could not tell host from root"
    );
    let t = Test::new()
        .file(
            &format!("{ONLY_IN_ROOT}/sysctl.conf"),
            "net.core.somaxconn = 1234\n",
        )
        .file(
            &format!("{ONLY_IN_ROOT}/fin.conf"),
            "net.ipv4.tcp_fin_timeout = 33\n",
        )
        .file(
            &format!("{ONLY_IN_ROOT}/run-sysctl.d/70-dir.conf"),
            "net.ipv4.tcp_max_syn_backlog = 777\n",
        )
        .file(&format!("{ONLY_IN_ROOT}/limits.conf"), "* - nofile 4321\n")
        .file("etc/security/limits.conf", "# empty\n")
        .file("etc/security/limits.d/README", "")
        .file("etc/sysctl.d/README", "")
        .file("run/README", "")
        .profile("links.toml", PROFILE);
    let root = t.root();
    // An absolute link in sysctl.d and in limits.d.
    symlink(
        format!("/{ONLY_IN_ROOT}/sysctl.conf"),
        root.join("etc/sysctl.d/60-link.conf"),
    )
    .expect("symlink");
    symlink(
        format!("/{ONLY_IN_ROOT}/limits.conf"),
        root.join("etc/security/limits.d/40-link.conf"),
    )
    .expect("symlink");
    // A relative link with more `..` than the tree is deep: it stops at the root.
    symlink(
        format!("../../../../../../../../{ONLY_IN_ROOT}/fin.conf"),
        root.join("etc/sysctl.d/65-rel.conf"),
    )
    .expect("symlink");
    // A whole sysctl.d folder that is an absolute link.
    symlink(
        format!("/{ONLY_IN_ROOT}/run-sysctl.d"),
        root.join("run/sysctl.d"),
    )
    .expect("symlink");

    let diff = t.args(&["--json", "diff", "links.toml"]).run().code(1);
    let doc = json(&diff.stdout);
    let boot = |key: &str| -> (String, String) {
        let row = doc["sysctl"]
            .as_array()
            .expect("sysctl rows")
            .iter()
            .find(|r| r["key"] == key)
            .unwrap_or_else(|| panic!("no row for {key}: {doc:#}"));
        (
            row["boot"]["value"].as_str().unwrap_or("-").to_string(),
            row["boot"]["source"]["file"]
                .as_str()
                .unwrap_or("-")
                .to_string(),
        )
    };
    assert_eq!(
        boot("net.core.somaxconn"),
        ("1234".into(), "/etc/sysctl.d/60-link.conf".into())
    );
    assert_eq!(
        boot("net.ipv4.tcp_fin_timeout"),
        ("33".into(), "/etc/sysctl.d/65-rel.conf".into())
    );
    assert_eq!(
        boot("net.ipv4.tcp_max_syn_backlog"),
        ("777".into(), "/run/sysctl.d/70-dir.conf".into())
    );
    let limits: Vec<(String, String, String)> = doc["limits"]
        .as_array()
        .expect("limits rows")
        .iter()
        .map(|r| {
            (
                r["type"].as_str().unwrap_or_default().to_string(),
                r["live"].as_str().unwrap_or("-").to_string(),
                r["source"]["file"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    let from_link = |kind: &str| {
        (
            kind.to_string(),
            "4321".to_string(),
            "/etc/security/limits.d/40-link.conf".to_string(),
        )
    };
    assert_eq!(limits, [from_link("soft"), from_link("hard")], "{doc:#}");

    // explain follows the same links: the boot value and its file in the chain.
    let explain = diff
        .then(&["--json", "explain", "net.ipv4.tcp_max_syn_backlog"])
        .code(0);
    let doc = json(&explain.stdout);
    let text = doc.to_string();
    assert!(
        text.contains("\"777\"") && text.contains("/run/sysctl.d/70-dir.conf"),
        "{doc:#}"
    );
}
