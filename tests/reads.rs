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

/// A listener, pid 4242 (`webd`), holding the listening socket 0.0.0.0:8080 (inode 9001) as
/// fd 3 and an epoll instance as fd 4; `fdinfo` is what the test plants at proc/4242/fdinfo/4.
fn epoll_listener(fdinfo: &dyn Fn(&std::path::Path)) -> Test {
    let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
               \x20  0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 9001 1\n";
    let t = machine()
        .file("proc/net/tcp", tcp)
        .process(4242, "webd", 4, None)
        .fds(4242, [3], "socket:[9001]")
        .fds(4242, [4], "anon_inode:[eventpoll]");
    let info = t.root().join("proc/4242/fdinfo/4");
    std::fs::create_dir_all(info.parent().unwrap()).unwrap();
    fdinfo(&info);
    t
}

/// What one run did: exit code (-1 when it was killed at `LIMIT`), stdout, stderr and its
/// peak resident memory in KiB (wait4's ru_maxrss of that process alone).
struct Measured {
    code: i32,
    stdout: String,
    stderr: String,
    max_rss_kib: i64,
}

fn run_measured(t: &Test, args: &[&str]) -> Measured {
    let out_path = t.root().parent().unwrap().join("out.txt");
    let err_path = t.root().parent().unwrap().join("err.txt");
    // Reaped by wait4 below, which also gives its peak memory.
    #[allow(clippy::zombie_processes)]
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_netprofile"))
        .arg("--root")
        .arg(t.root())
        .args(["--color", "never"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("run netprofile");
    let pid = i32::try_from(child.id()).unwrap();
    let end = std::time::Instant::now() + LIMIT;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of that plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut killed = false;
    loop {
        // SAFETY: wait4 on the child this test started, into locals that outlive the call.
        let got = unsafe { libc::wait4(pid, &raw mut status, libc::WNOHANG, &raw mut usage) };
        if got == pid {
            break;
        }
        assert_eq!(got, 0, "wait4: {}", std::io::Error::last_os_error());
        if !killed && std::time::Instant::now() > end {
            // SAFETY: kill(2) on the child this test started and has not reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let read =
        |p: &std::path::Path| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
    Measured {
        code: if killed || !libc::WIFEXITED(status) {
            -1
        } else {
            libc::WEXITSTATUS(status)
        },
        stdout: read(&out_path),
        stderr: read(&err_path),
        max_rss_kib: usage.ru_maxrss,
    }
}

#[test]
fn a_fifo_or_a_runaway_file_at_an_epoll_fdinfo_is_skipped_at_once_in_little_memory() {
    // An epoll instance's fdinfo is scanned as a stream (it can hold millions of lines), but
    // through the same bounded open: a FIFO there is not waited on, and a huge file without a
    // newline is not held in memory. That fd is skipped: doctor says the listener is not in
    // an epoll instance it could read, and doctor, metrics and watch all finish.
    let good = |p: &std::path::Path| {
        std::fs::write(
            p,
            "pos:\t0\nflags:\t02\nmnt_id:\t15\ntfd:        3 events:       19 data:                3  pos:0 ino:2329 sdev:8\n",
        )
        .unwrap();
    };
    let fifo = |p: &std::path::Path| mkfifo(p);
    // Sparse: 512 MiB of NUL bytes that take no disk, and no newline in them.
    let runaway = |p: &std::path::Path| {
        std::fs::File::create(p)
            .unwrap()
            .set_len(512 << 20)
            .unwrap();
    };
    let not_in_epoll = "has an epoll instance but its listening socket is not in it";
    let control = run_measured(&epoll_listener(&good), &["doctor"]);
    assert_eq!(control.code, 0, "{}", control.stderr);
    assert!(control.stdout.contains("webd"), "{}", control.stdout);
    assert!(!control.stdout.contains(not_in_epoll), "{}", control.stdout);
    for (what, plant) in [
        ("a FIFO", &fifo as &dyn Fn(&std::path::Path)),
        ("a 512 MiB file without a newline", &runaway),
    ] {
        for args in [
            &["doctor"][..],
            &["metrics"],
            &["watch", "--interval", "1s", "--for", "1s"],
        ] {
            let out = run_measured(&epoll_listener(plant), args);
            assert_eq!(out.code, 0, "{what}, {args:?}: {}", out.stderr);
            // The run itself is a few MiB; the old read_line held the whole file.
            assert!(
                out.max_rss_kib < 128 << 10,
                "{what}, {args:?}: peak {} KiB",
                out.max_rss_kib
            );
            if args[0] == "doctor" {
                assert!(out.stdout.contains(not_in_epoll), "{what}: {}", out.stdout);
            }
        }
    }
}
