//! The one bounded read (issue 16, break 3): every file netprofile reads, /proc included, is
//! opened non-blocking and without following links, must be a regular file and is capped. A
//! FIFO or a link to /dev/zero planted at `proc/net/tcp` is a clear error, quickly, for each
//! command that reads the socket tables.

mod common;

use std::time::Duration;

use common::Test;

/// Generous for a loaded machine; a blocked open on a FIFO never ends, and reading /dev/zero
/// to the old end took gigabytes.
const LIMIT: Duration = Duration::from_secs(120);

/// A root with what doctor reads, and a profile that moves the port range (so that diff reads
/// the socket tables too).
fn machine() -> Test {
    Test::new()
        .file("proc/net/netstat", "TcpExt: ListenOverflows\nTcpExt: 0\n")
        .file("proc/net/snmp", "Tcp: ActiveOpens\nTcp: 1\n")
        .file(
            "proc/net/sockstat",
            "sockets: used 4\nTCP: inuse 1 orphan 0 tw 0 alloc 1 mem 1\n",
        )
        .file("proc/net/tcp6", "  sl  local_address\n")
        .profile(
            "p.toml",
            "[sysctl]\n\"net.ipv4.ip_local_port_range\" = \"1024 65535\"\n",
        )
}

fn mkfifo(path: &std::path::Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success());
}

#[test]
fn a_fifo_at_proc_net_tcp_is_a_clear_error_not_a_hang() {
    for args in [&["doctor"][..], &["diff", "p.toml"], &["check", "p.toml"]] {
        let t = machine();
        mkfifo(&t.root().join("proc/net/tcp"));
        let out = t.args(args).run_within(LIMIT);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("proc/net/tcp"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("is not a regular file"),
            "{args:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn a_link_to_dev_zero_at_proc_net_tcp_is_refused_at_once() {
    for args in [&["doctor"][..], &["diff", "p.toml"]] {
        let t = machine();
        std::os::unix::fs::symlink("/dev/zero", t.root().join("proc/net/tcp")).unwrap();
        let out = t.args(args).run_within(LIMIT);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("/proc/net/tcp is a symlink"),
            "{args:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn proc_files_are_never_read_through_a_link() {
    // A link in the fake proc/sys or a /proc/PID file leads outside it: refused, not followed.
    let t = machine();
    let outside = t.root().parent().unwrap().join("secret");
    std::fs::write(&outside, "4096\n").unwrap();
    std::fs::remove_file(t.root().join("proc/sys/net/core/somaxconn")).unwrap();
    std::os::unix::fs::symlink(&outside, t.root().join("proc/sys/net/core/somaxconn")).unwrap();
    let out = t
        .profile("s.toml", "[sysctl]\n\"net.core.somaxconn\" = 4096\n")
        .args(&["diff", "s.toml"])
        .run_within(LIMIT);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("/proc/sys/net/core/somaxconn is a symlink"),
        "{}",
        out.stderr
    );
}
