//! The listeners netprofile reads from the kernel's sock_diag are the ones `ss -ltn` shows, in
//! a private user + network namespace entered as uid 65534 (see tests/kernel.rs): addresses of
//! both families, backlogs, a non-empty accept queue, and established connections that must
//! not show up as listeners.

mod common;

use std::collections::BTreeSet;

use common::{in_netns, text};

/// Listeners with different addresses and backlogs; 2 connections wait in 2002's accept queue
/// and 300 are accepted on 2001 (so that established sockets exist next to the listeners).
const SERVER: &str = r#"
import socket, time
ls = []
def listen(fam, addr, port, backlog):
    s = socket.socket(fam, socket.SOCK_STREAM)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, port)); s.listen(backlog); ls.append(s); return s
a = listen(socket.AF_INET, "127.0.0.1", 2001, 512)
listen(socket.AF_INET, "127.0.0.2", 2002, 5)
listen(socket.AF_INET, "0.0.0.0", 2003, 128)
listen(socket.AF_INET6, "::1", 2004, 9)
listen(socket.AF_INET6, "::", 2005, 33)
waiting = [socket.create_connection(("127.0.0.2", 2002)) for _ in range(2)]
held = []
for _ in range(300):
    held.append(socket.create_connection(("127.0.0.1", 2001)))
    held.append(a.accept()[0])
print("ready", flush=True)
time.sleep(600)
"#;

#[test]
fn sock_diag_listeners_are_what_ss_ltn_shows() {
    let Some((out, _dir)) = in_netns(
        r#"
        ip link set lo up
        python3 server.py > ready.txt &
        for _ in $(seq 1200); do grep -qs ready ready.txt && break; sleep 0.1; done
        echo "== ss"
        ss -ltnH
        echo "== doctor"
        "$NP" --json doctor
        echo "== diff"
        "$NP" --root "$ROOT" diff p.toml
        kill %1
        "#,
        &[
            ("server.py", SERVER),
            ("p.toml", "[ports]\nlocal_range = [1024, 65535]\n"),
        ],
    ) else {
        return;
    };
    let all = text(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (ss, rest) = stdout
        .split_once("== doctor\n")
        .unwrap_or_else(|| panic!("{all}"));
    let (doctor, _) = rest
        .split_once("== diff\n")
        .unwrap_or_else(|| panic!("{all}"));
    // ss -ltnH: State Recv-Q Send-Q Local:Port Peer:Port.
    let from_ss: BTreeSet<String> = ss
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(format!("{} {} {}", f.get(3)?, f.get(1)?, f.get(2)?))
        })
        .collect();
    assert_eq!(from_ss.len(), 5, "{all}");
    let doc: serde_json::Value =
        serde_json::from_str(doctor).unwrap_or_else(|e| panic!("{e}\n{all}"));
    let from_np: BTreeSet<String> = doc["listeners"]
        .as_array()
        .unwrap_or_else(|| panic!("{all}"))
        .iter()
        .map(|l| {
            format!(
                "{}:{} {} {}",
                l["address"].as_str().unwrap_or("?"),
                l["port"],
                l["queue"],
                l["backlog"]
            )
        })
        .collect();
    assert_eq!(from_np, from_ss, "{all}");
    // The server process holds all five, with its 600 sockets of the 300 connections counted.
    let procs = doc["processes"]
        .as_array()
        .unwrap_or_else(|| panic!("{all}"));
    assert_eq!(procs.len(), 1, "{all}");
    assert_eq!(
        procs[0]["ports"],
        serde_json::json!([2001, 2002, 2003, 2004, 2005]),
        "{all}"
    );
    assert!(procs[0]["open_fds"].as_u64().unwrap_or(0) >= 607, "{all}");
    // The live-state read (diff) sees the same ports in the new ephemeral range.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("listening port(s) 2001, 2002, 2003, 2004, 2005 lie inside"),
        "{all}"
    );
}
