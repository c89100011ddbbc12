//! Tests against a real kernel, in a private user + network namespace.
//!
//! The namespace is entered as an unprivileged user (`setpriv --reuid=65534` then
//! `unshare -rn`), never as real root: a user namespace that maps root to root still passes the
//! kernel's uid-0 check on global keys, so `unshare -rn` run by root can write the host's
//! `fs.*`. As uid 65534 mapped to the namespace's root, per-namespace `net.*` keys are
//! writable and global ones are not, so even a buggy test cannot change the host. Nothing is
//! persisted: the root is a temporary tree whose `proc` links to the namespace's /proc.
//! Under CI=true a missing sandbox fails the test instead of skipping it.

mod common;

use std::path::Path;

use common::{in_netns, text};

fn host(key: &str) -> String {
    std::fs::read_to_string(Path::new("/proc/sys").join(key.replace('.', "/"))).unwrap_or_default()
}

#[test]
fn the_sandbox_cannot_touch_global_keys() {
    let before = host("fs.nr_open");
    let Some((out, _dir)) = in_netns(
        "echo 2000000 > /proc/sys/fs/nr_open 2>/dev/null && echo WROTE || echo REFUSED",
        &[],
    ) else {
        return;
    };
    assert_eq!(String::from_utf8_lossy(&out.stdout), "REFUSED\n");
    assert_eq!(host("fs.nr_open"), before);
}

#[test]
fn diff_high_conn_before_and_after_sysctl_w() {
    let host_before = host("net.core.somaxconn");
    let Some((out, _dir)) = in_netns(
        r#"
        "$NP" --root "$ROOT" check high-conn; echo "exit=$?"
        sysctl -q -w net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535 \
            net.ipv4.tcp_max_tw_buckets=262144 net.ipv4.tcp_tw_reuse=1 \
            "net.ipv4.ip_local_port_range=1024 65535" net.ipv4.tcp_syncookies=1
        "$NP" --root "$ROOT" check high-conn; echo "exit=$?"
        "#,
        &[],
    ) else {
        return;
    };
    let all = text(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.len() == 4, "{all}");
    assert!(lines[0].starts_with("differs: "), "{all}");
    assert!(lines[0].contains("net.core.somaxconn"), "{all}");
    assert_eq!(lines[1], "exit=1", "{all}");
    assert!(lines[2].starts_with("in sync: 6 keys as wanted"), "{all}");
    assert_eq!(lines[3], "exit=0", "{all}");
    assert!(all.contains("private network namespace"), "{all}");
    assert_eq!(host("net.core.somaxconn"), host_before, "the host changed");
}

#[test]
fn kernel_normal_forms_compare_equal() {
    // The kernel prints the range with a tab and the reserved ports merged and sorted; a
    // profile that wrote them otherwise is still in sync.
    let profile = "[ports]\nlocal_range = [40000, 50000]\nreserved = [\"9005-9010\", \"8080\", \"9000-9004\"]\n";
    let Some((out, _dir)) = in_netns(
        r#"
        "$NP" --root "$ROOT" check p.toml; echo "exit=$?"
        sysctl -q -w "net.ipv4.ip_local_port_range=40000 50000" \
            "net.ipv4.ip_local_reserved_ports=9005-9010,8080,9000-9004"
        printf 'range=%s\nreserved=%s\n' "$(cat /proc/sys/net/ipv4/ip_local_port_range)" \
            "$(cat /proc/sys/net/ipv4/ip_local_reserved_ports)"
        "$NP" --root "$ROOT" check p.toml; echo "exit=$?"
        "#,
        &[("p.toml", profile)],
    ) else {
        return;
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "differs: 2 keys to set (net.ipv4.ip_local_port_range, net.ipv4.ip_local_reserved_ports)",
            "exit=1",
            "range=40000\t50000",
            "reserved=8080,9000-9010",
            "in sync: 2 keys as wanted",
            "exit=0",
        ],
        "{}",
        text(&out)
    );
}
