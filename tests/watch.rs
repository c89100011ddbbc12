//! `netprofile watch` against the real kernel, in a private user + network namespace entered as
//! uid 65534: a slow server (somaxconn 8 caps its listen(1024); it accepts one connection per
//! 100 ms) under bounded loopback load overflows its accept queue. watch names the listener and
//! its process, proposes net.core.somaxconn, and once the load stops reports the finding as
//! past. The proposal is a profile `netprofile diff` accepts. `metrics`, run after the load,
//! parses with a real Prometheus parser and shows the overflow.

mod common;
mod prom_common;

use common::{Test, in_netns, in_private_ns, text, validate_json};
use serde_json::Value;

/// A slow server: listens on 127.0.0.1 (a free port, written to the file named by argv[1])
/// with listen(BACKLOG), accepts one connection every 100 ms, exits by itself after 180 s. It
/// names itself `slowsrv` (its /proc/PID/comm).
const SLOW_SERVER: &str = r#"
import os, socket, sys, time
with open("/proc/self/comm", "w") as f:
    f.write("slowsrv")
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(int(sys.argv[2]))
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(s.getsockname()[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
s.settimeout(0.5)
end = time.monotonic() + 180
while time.monotonic() < end:
    try:
        c, _ = s.accept()
        c.close()
    except socket.timeout:
        pass
    time.sleep(0.1)
"#;

/// Bounded loopback load: batches of 64 non-blocking connects every 0.2 s for argv[2]
/// seconds, at most 3000 connections, each batch closed before the next.
const LOAD: &str = r#"
import socket, sys, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
end = time.monotonic() + seconds
total = 0
while time.monotonic() < end and total < 3000:
    batch = []
    for _ in range(64):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        batch.append(c)
    total += len(batch)
    time.sleep(0.2)
    for c in batch:
        c.close()
"#;

/// The namespace script: somaxconn `somaxconn`, the slow server with `backlog`; a JSON watch
/// of 1 s intervals (its progress lines on stderr); once it has taken its first snapshot (its
/// "watching" line), 6 s of load, then `metrics`; once the watch has taken two more snapshots
/// after the load, Ctrl-C (SIGINT) ends it with its document. Snapshots can take seconds on a
/// loaded, shared machine (the sock_diag dump of the socket tables, the fds of each process
/// doctor may read), so the script waits for them instead of assuming a pace; every wait is
/// bounded (300 s). The outputs land in files
/// of the temporary folder. It runs in a private PID namespace with its own /proc (see `run`).
fn script(somaxconn: u32, backlog: u32) -> String {
    format!(
        r#"
        set -e
        ip link set lo up
        echo {somaxconn} > /proc/sys/net/core/somaxconn
        /usr/bin/python3 slow.py port {backlog} &
        srv=$!
        for _ in $(seq 600); do [ -e port ] && break; sleep 0.1; done
        "$NP" --root "$ROOT" --color never --json watch --interval 1s --for 10m > watch.json 2> watch.err &
        watch=$!
        intervals() {{ grep -cE '^ *[0-9]+\.[0-9]s  ' watch.err || true; }}
        for _ in $(seq 3000); do grep -q watching watch.err && break; sleep 0.1; done
        /usr/bin/python3 load.py "$(cat port)" 6
        "$NP" --root "$ROOT" metrics > metrics.prom
        n=$(intervals)
        for _ in $(seq 3000); do [ "$(intervals)" -ge $((n + 2)) ] && break; sleep 0.1; done
        kill -INT $watch
        wait $watch
        kill $srv 2>/dev/null || true
        cat port > port.txt
        "#
    )
}

struct Run {
    watch: Value,
    progress: String,
    metrics: String,
    port: String,
}

fn run(somaxconn: u32, backlog: u32) -> Option<Run> {
    // A private PID namespace with its own /proc: doctor's snapshot reads every process it may
    // (uid 65534's in other tests hold 100 000s of fds, each a readlink), so it sees only
    // this test's. The root's `proc` links to /proc, now that one.
    let (out, dir) = in_netns(
        "exec unshare --pid --fork --mount-proc bash ns.sh",
        &[
            ("slow.py", SLOW_SERVER),
            ("load.py", LOAD),
            ("ns.sh", &script(somaxconn, backlog)),
        ],
    )?;
    assert!(out.status.success(), "{}", text(&out));
    let read = |name: &str| {
        std::fs::read_to_string(dir.path().join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", text(&out)))
    };
    let watch = read("watch.json");
    Some(Run {
        watch: validate_json(&["--json", "watch"], &watch),
        progress: read("watch.err"),
        metrics: read("metrics.prom"),
        port: read("port.txt").trim().to_string(),
    })
}

fn accept_queue(doc: &Value) -> &Value {
    let all = doc["findings"].as_array().expect("findings");
    all.iter()
        .find(|f| f["id"] == "accept-queue")
        .unwrap_or_else(|| panic!("no accept-queue finding:\n{doc:#}"))
}

#[test]
fn watch_proposes_somaxconn_for_the_slow_servers_overflow_and_reports_it_past_after() {
    let Some(r) = run(8, 1024) else { return };
    let doc = &r.watch;
    let listener = format!("127.0.0.1:{}", r.port);
    let samples = doc["samples"].as_array().expect("samples");
    // While the load ran, some interval saw the overflow, with its rate.
    let bound: Vec<&Value> = samples
        .iter()
        .filter(|s| {
            s["binding"]
                .as_array()
                .is_some_and(|b| b.contains(&Value::from("accept-queue")))
        })
        .collect();
    assert!(!bound.is_empty(), "{doc:#}");
    assert!(
        bound
            .iter()
            .any(|s| s["rates"]["TcpExt.ListenOverflows"].as_f64() > Some(0.0)),
        "{doc:#}"
    );
    // After the load: the last interval binds nothing and the finding is past.
    assert_eq!(samples.last().unwrap()["binding"], serde_json::json!([]));
    let f = accept_queue(doc);
    assert_eq!(f["state"], "past", "{f:#}");
    assert_eq!(f["subject"], listener.as_str(), "{f:#}");
    assert_eq!(f["process"], "slowsrv", "{f:#}");
    assert!(f["rate_per_s"].as_f64() > Some(0.0), "{f:#}");
    assert_eq!(f["rate_of"], "TcpExt.ListenOverflows");
    // The proposal: somaxconn, with the listener and its process as evidence.
    let proposal = doc["proposal"].as_str().expect("a proposal");
    assert!(
        proposal.contains("\n\"net.core.somaxconn\" = 65535\n"),
        "{proposal}"
    );
    assert!(
        proposal.contains(&format!("at {listener} of slowsrv (pid ")),
        "{proposal}"
    );
    assert!(proposal.contains("(net.core.somaxconn)"), "{proposal}");
    // It is a profile netprofile takes: diff on a stock machine (somaxconn 4096) wants it.
    Test::new()
        .profile("proposal.toml", proposal)
        .args(&["diff", "proposal.toml"])
        .run()
        .code(1)
        .stdout_has("net.core.somaxconn");
    // While it bound, the progress (stderr with --json) said so, with the listener's process.
    assert!(
        r.progress.contains(&format!(
            "binds: accept-queue: listener {listener}; process slowsrv (pid "
        )),
        "{}",
        r.progress
    );
    assert_eq!(doc["interrupted"], true, "ended by Ctrl-C");
    // metrics after the load: the real kernel's figures parse, and show the overflow.
    let Some(m) = prom_common::parse(&r.metrics) else {
        return;
    };
    let who = [("listener", listener.as_str()), ("process", "slowsrv")];
    assert_eq!(
        prom_common::value(&m, "netprofile_accept_queue_limit", &who),
        8.0
    );
    assert!(prom_common::value(&m, "netprofile_tcp_listen_overflows", &[]) > 0.0);
}

#[test]
fn an_applications_small_backlog_is_not_blamed_on_somaxconn() {
    // The same overflow, but the server asks listen(4) under the default somaxconn 4096: the
    // proposal must not raise somaxconn (it would change nothing) and names the application.
    let Some(r) = run(4096, 4) else { return };
    let f = accept_queue(&r.watch);
    assert_eq!(f["process"], "slowsrv", "{f:#}");
    let proposal = r.watch["proposal"].as_str().expect("a proposal");
    assert!(!proposal.contains("\"net.core.somaxconn\" ="), "{proposal}");
    assert!(
        proposal.contains("listen() backlog (4) binds, not net.core.somaxconn"),
        "{proposal}"
    );
    assert!(proposal.contains("slowsrv's configuration"), "{proposal}");
}

// ---- On a fixture tree: a process's open files grow toward its limit ----

/// A machine whose process `webd` (pid 4242, web.service) holds the listener 0.0.0.0:8080 with
/// a soft nofile of 1024 and `open` fds.
fn fd_machine(open: u32) -> Test {
    let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
               \x20  0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 9001 1\n";
    Test::new()
        .file("proc/net/netstat", "TcpExt: ListenOverflows\nTcpExt: 0\n")
        .file("proc/net/tcp", tcp)
        .process(4242, "webd", 4, Some("0::/system.slice/web.service"))
        .fds(4242, [3], "socket:[9001]")
        .fds(4242, 11..10 + open as usize, "/dev/null")
}

#[test]
fn a_process_nearing_its_nofile_is_approaching_then_binds_with_a_systemd_proposal() {
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};
    let t = fd_machine(600);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_netprofile"))
        .arg("--root")
        .arg(t.root())
        .args([
            "--color",
            "never",
            "watch",
            "--interval",
            "0.5s",
            "--for",
            "2m",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run netprofile");
    // watch's lines as they come, read by a thread so the test can grow the fds meanwhile.
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(100);
    // Each step waits (at most until the deadline) for a line containing `want`, doing `step`
    // every 100 ms meanwhile.
    let mut wait_for = |want: &str, step: &mut dyn FnMut()| {
        while !seen.contains(want) {
            assert!(Instant::now() < deadline, "no {want:?} in:\n{seen}");
            step();
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
                seen.push_str(&line);
                seen.push('\n');
            }
        }
    };
    let fd = t.root().join("proc/4242/fd");
    let mut open = 600u32;
    let mut add = |n: u32, cap: u32| {
        for _ in 0..n {
            if open < cap {
                std::os::unix::fs::symlink("/dev/null", fd.join((10 + open).to_string())).unwrap();
                open += 1;
            }
        }
    };
    // Two snapshots taken; then the fds grow, 5 per 100 ms up to 1000 (98 %: not yet binding),
    // until watch calls the limit approaching; then all 1024 are open until it binds.
    wait_for("no counter moved", &mut || {});
    wait_for("approaching: nofile at pid 4242 (webd): ", &mut || {
        add(5, 1000)
    });
    wait_for("binds: nofile", &mut || add(1024, 1024));
    // SAFETY: kill(2) on the child this test started: Ctrl-C ends it with the summary.
    let pid = i32::try_from(child.id()).unwrap();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let status = child.wait().expect("wait");
    reader.join().expect("reader");
    seen.extend(rx.try_iter().map(|l| l + "\n"));
    assert!(status.success(), "{seen}");
    assert!(seen.contains(" of 1024 (+"), "{seen}");
    assert!(seen.contains("binds in ~"), "{seen}");
    assert!(seen.contains("\ninterrupted\n"), "{seen}");
    assert!(
        seen.contains("present nofile at pid 4242 (webd, pid 4242)"),
        "{seen}"
    );
    // A systemd service: the proposal raises DefaultLimitNOFILE and says how for one unit.
    assert!(
        seen.contains("\n[systemd]\n# nofile (present) at pid 4242 of webd (pid 4242): "),
        "{seen}"
    );
    assert!(
        seen.contains("\ndefault_limit_nofile = 1048576\n"),
        "{seen}"
    );
    assert!(
        seen.contains("LimitNOFILE=1048576 in a drop-in (systemctl edit web.service)"),
        "{seen}"
    );
}

#[test]
fn ctrl_c_ends_the_watch_with_its_summary() {
    let t = fd_machine(10);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_netprofile"))
        .arg("--root")
        .arg(t.root())
        .args(["--json", "watch", "--interval", "1s", "--for", "10m"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run netprofile");
    std::thread::sleep(std::time::Duration::from_secs(3));
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on the child this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0));
    let doc = validate_json(&["--json", "watch"], &String::from_utf8_lossy(&out.stdout));
    assert_eq!(doc["interrupted"], true, "{doc:#}");
    assert!(doc["watched_s"].as_f64().unwrap() < 300.0, "{doc:#}");
    assert_eq!(doc["findings"], serde_json::json!([]));
    assert_eq!(doc["proposal"], Value::Null);
}

#[test]
fn watch_is_bounded() {
    for args in [
        ["watch", "--for", "25h"],
        ["watch", "--for", "0s"],
        ["watch", "--interval", "10ms"],
    ] {
        Test::new().args(&args).run().code(2).stderr_has("must be");
    }
}

#[test]
fn a_client_at_its_nofile_binds_with_its_process_and_a_proposal() {
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};
    // `loadgen` (pid 5151) holds no listener: doctor's client, 1020 of its 1024 files open.
    let t = fd_machine(10)
        .file("proc/5151/loginuid", "1000\n")
        .busy_client(0..1020);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_netprofile"))
        .arg("--root")
        .arg(t.root())
        .args(["--json", "watch", "--interval", "0.5s", "--for", "2m"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run netprofile");
    // The progress on stderr, read by a thread; Ctrl-C once it says the limit binds.
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(100);
    let mut progress = String::new();
    while !progress.contains("binds: nofile") {
        assert!(Instant::now() < deadline, "no binding in:\n{progress}");
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            progress.push_str(&line);
            progress.push('\n');
        }
    }
    // SAFETY: kill(2) on the child this test started.
    let pid = i32::try_from(child.id()).unwrap();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let out = child.wait_with_output().expect("wait");
    reader.join().expect("reader");
    assert!(out.status.success(), "{progress}");
    assert!(
        progress.contains("process loadgen (pid 5151)"),
        "{progress}"
    );
    let doc = validate_json(&["--json", "watch"], &String::from_utf8_lossy(&out.stdout));
    let f = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "nofile")
        .unwrap_or_else(|| panic!("no nofile finding:\n{doc:#}"));
    assert_eq!(
        (&f["subject"], &f["process"], &f["pid"], &f["state"]),
        (
            &Value::from("pid 5151"),
            &Value::from("loadgen"),
            &Value::from(5151),
            &Value::from("present")
        ),
        "{f:#}"
    );
    let proposal = doc["proposal"].as_str().expect("a proposal");
    assert!(
        proposal.contains("# nofile (present) at pid 5151 of loadgen (pid 5151): "),
        "{proposal}"
    );
    assert!(proposal.contains("item = \"nofile\""), "{proposal}");
}

// ---- Live lines are terminal-safe (issue 16) ----

/// In a private user, network and PID namespace: the named server, then `watch --color MODE`
/// for each mode until its live output says `binds:` (at most 300 s), ended by Ctrl-C. Its
/// stdout lands in MODE.out.
const NAMED_SCRIPT: &str = r#"
set -e
ip link set lo up
/usr/bin/python3 named.py &
srv=$!
for _ in $(seq 3000); do [ -e ready ] && break; sleep 0.1; done
for mode in always never; do
    "$NP" --root "$ROOT" --color $mode watch --interval 0.5s --for 10m > $mode.out 2> $mode.err &
    watch=$!
    for _ in $(seq 3000); do grep -q 'binds:' $mode.out && break; sleep 0.1; done
    kill -INT $watch
    wait $watch
done
kill $srv 2>/dev/null || true
"#;

/// `text` without the SGR colour sequences (`ESC [ digits ; m`) netprofile emits.
fn without_colour(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("\x1b[") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let len = after
            .find(|c: char| !(c.is_ascii_digit() || c == ';'))
            .unwrap_or(after.len());
        if after[len..].starts_with('m') {
            rest = &after[len + 1..];
        } else {
            out.push_str("\x1b[");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn live_lines_show_a_hostile_process_name_escaped_and_colour_as_colour() {
    let Some((out, dir)) = in_private_ns(
        NAMED_SCRIPT,
        &[(
            "named.py",
            &common::named_listener(r#"b"\x1b[2J\xe2\x80\xae\xe2\x80\x8bevil""#, 0),
        )],
        true,
    ) else {
        return;
    };
    assert!(out.status.success(), "{}", text(&out));
    let shown = r"\e[2J\u{202e}\u{200b}evil";
    for mode in ["always", "never"] {
        let stdout = std::fs::read_to_string(dir.path().join(format!("{mode}.out")))
            .unwrap_or_else(|e| panic!("{mode}: {e}\n{}", text(&out)));
        // The live line that says it binds names the process, escaped visibly.
        let live = stdout
            .lines()
            .find(|l| l.contains("binds:") && l.contains("nofile"))
            .unwrap_or_else(|| panic!("--color {mode}: no live binds line in:\n{stdout}"));
        assert!(live.contains(shown), "--color {mode}: {live:?}");
        // Nothing of the name reaches the terminal raw, nor a colour mark unresolved.
        for raw in ['\u{202e}', '\u{200b}', '\u{e000}'] {
            assert!(
                !stdout.contains(raw),
                "--color {mode}: {raw:?} in {stdout:?}"
            );
        }
        let plain = without_colour(&stdout);
        assert!(!plain.contains('\x1b'), "--color {mode}: {stdout:?}");
        if mode == "always" {
            assert!(live.contains("\x1b[31mbinds:\x1b[0m"), "{live:?}");
        } else {
            assert_eq!(plain, stdout, "--color never prints no colour");
        }
    }
}
