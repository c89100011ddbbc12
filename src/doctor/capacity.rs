//! The capacity question: every limit that N held connections (and R new ones per second)
//! would meet on this machine, in the order they would bind, with the headroom of each.
//! Pure: computed from a `Snapshot`; never performs I/O (`--verify` runs the connection test
//! from commands/doctor.rs).

use serde::Serialize;

use super::findings::{num, usable_ports};
use super::proc::Snapshot;

/// What the user asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Question {
    pub connections: u64,
    /// New connections per second.
    pub rate: Option<u64>,
    /// The connections are opened by this host (a client, a proxy to backends).
    pub outgoing: bool,
}

/// One limit the load meets.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Limit {
    pub limit: String,
    /// What the load needs of it, in `unit`.
    pub need: u64,
    /// What this machine allows now.
    pub have: u64,
    pub unit: &'static str,
    /// have - need (negative: short by that much).
    pub headroom: i64,
    pub binds: bool,
    pub note: String,
    /// Profile line that lifts it, if any.
    pub fix: Option<String>,
}

fn limit(
    name: impl Into<String>,
    need: u64,
    have: u64,
    unit: &'static str,
    note: impl Into<String>,
    fix: Option<&str>,
) -> Limit {
    let headroom = i64::try_from(have)
        .unwrap_or(i64::MAX)
        .saturating_sub(i64::try_from(need).unwrap_or(i64::MAX));
    Limit {
        limit: name.into(),
        need,
        have,
        unit,
        headroom,
        binds: need > have,
        note: note.into(),
        fix: fix.map(String::from),
    }
}

/// Every limit the load meets, the first to bind first (highest need/have).
#[must_use]
pub fn limits(snap: &Snapshot, q: Question) -> Vec<Limit> {
    let mut out = process_fd_limits(snap, q);
    out.extend(machine_fd_limits(snap, q.connections));
    out.extend(memory_limits(snap, q.connections));
    out.extend(conntrack_limit(snap, q));
    out.extend(port_limits(snap, q));
    out.extend(rate_limits(snap, q));
    first_to_bind_first(&mut out);
    out
}

/// The open-files limits one process meets: its nofile soft and hard limits and fs.nr_open,
/// for the listener that already holds the most (incoming), else a process of this session.
fn process_fd_limits(snap: &Snapshot, q: Question) -> Vec<Limit> {
    let n = q.connections;
    let mut out = Vec::new();
    // Per process: the listener that already holds the most, else this session's limit.
    let server = snap.processes.iter().max_by_key(|p| p.open_fds);
    let (who, soft, hard, open) = match (server, q.outgoing) {
        (Some(p), false) => (
            format!("{} (pid {})", p.comm, p.pid),
            p.nofile_soft,
            p.nofile_hard,
            p.open_fds,
        ),
        _ => {
            let (s, h) = snap.own_nofile.unwrap_or((Some(1024), Some(1024)));
            ("a process started from this session".to_string(), s, h, 0)
        }
    };
    if let Some(soft) = soft {
        let service = server
            .and_then(|p| p.service.clone())
            .filter(|_| !q.outgoing);
        out.push(limit(
            "nofile soft (one process)",
            n + open,
            soft,
            "fds",
            format!("{who}, if one process holds them all (W workers: N/W each)"),
            Some(if service.is_some() {
                "[systemd] default_limit_nofile = 1048576"
            } else {
                "[[limits]] domain = \"*\", type = \"-\", item = \"nofile\", value = 1048576"
            }),
        ));
    }
    if let Some(hard) = hard {
        out.push(limit(
            "nofile hard (one process)",
            n + open,
            hard,
            "fds",
            format!("{who} may raise its soft limit up to this without privileges"),
            Some("[[limits]] domain = \"*\", type = \"-\", item = \"nofile\", value = 1048576"),
        ));
    }
    if let Some(nr_open) = num(snap, "fs.nr_open") {
        out.push(limit(
            "fs.nr_open",
            n + open,
            nr_open,
            "fds",
            "no process can have more open files, whatever its limits",
            Some("[sysctl] \"fs.nr_open\" = { min = 1048576 }"),
        ));
    }
    out
}

/// The machine's and the user's file tables: fs.file-max and fs.epoll.max_user_watches.
fn machine_fd_limits(snap: &Snapshot, n: u64) -> Vec<Limit> {
    let mut out = Vec::new();
    if let Some((allocated, _, max)) = snap.file_nr {
        out.push(limit(
            "fs.file-max",
            allocated + n,
            max,
            "files",
            format!("machine-wide; {allocated} in use now"),
            Some("[sysctl] \"fs.file-max\" = { min = 2097152 }"),
        ));
    }
    if let Some(watches) = num(snap, "fs.epoll.max_user_watches") {
        out.push(limit(
            "fs.epoll.max_user_watches",
            n,
            watches,
            "watches",
            "per user, an epoll server registers each connection once",
            Some("[sysctl] \"fs.epoll.max_user_watches\" = { min = 4194304 }"),
        ));
    }
    out
}

/// Kernel memory: slab per socket against MemAvailable, and tcp_mem's high mark.
fn memory_limits(snap: &Snapshot, n: u64) -> Vec<Limit> {
    let mut out = Vec::new();
    // Kernel memory: slab per socket, plus one page of buffer if each has data queued.
    if let Some(avail) = snap.mem_available_kb {
        let need_kb = n * snap.slab_per_socket / 1024;
        out.push(limit(
            "kernel memory (slab)",
            need_kb,
            avail,
            "KiB",
            format!(
                "{} bytes of slab per socket ({}); against MemAvailable",
                snap.slab_per_socket, snap.slab_source
            ),
            None,
        ));
    }
    if let Some(mem) = snap.sysctl.get("net.ipv4.tcp_mem") {
        let high: u64 = mem
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let used = u64::try_from(snap.sockstat.get("TCP.mem").copied().unwrap_or(0)).unwrap_or(0);
        out.push(limit(
            "net.ipv4.tcp_mem (high)",
            used + n,
            high,
            "pages",
            "idle connections take no buffer pages; this counts one page each, as if every \
             connection had a message queued",
            Some("[sysctl] \"net.ipv4.tcp_mem\": raise only with the RAM for it"),
        ));
    }
    out
}

/// nf_conntrack_max, when conntrack is loaded: each tracked connection is one entry (and a
/// closed one stays 120 s); not binding in a namespace that tracks nothing.
fn conntrack_limit(snap: &Snapshot, q: Question) -> Option<Limit> {
    let n = q.connections;
    let sockets = snap.states.established + snap.states.time_wait;
    if let Some((0, max)) = snap.conntrack
        && sockets > 0
    {
        // Nothing tracked here although connections exist: nf_conntrack hooks into a network
        // namespace only when a rule needs it, and counts per namespace.
        let mut l = limit(
            "net.netfilter.nf_conntrack_max",
            0,
            max,
            "entries",
            format!(
                "not tracked in this network namespace: 0 entries with {sockets} TCP \
                 connections; binds only if a firewall rule starts tracking here"
            ),
            None,
        );
        l.binds = false;
        Some(l)
    } else if let Some((count, max)) = snap.conntrack {
        let tw = q.rate.unwrap_or(0) * 120;
        Some(limit(
            "net.netfilter.nf_conntrack_max",
            count + n + tw,
            max,
            "entries",
            if tw > 0 {
                "plus closed connections, tracked 120 s in TIME_WAIT".to_string()
            } else {
                "each tracked connection is one entry".to_string()
            },
            Some(
                "[sysctl] \"net.netfilter.nf_conntrack_max\" = { min = 1048576, optional = true }",
            ),
        ))
    } else {
        None
    }
}

/// Outgoing connections: the ephemeral ports one destination allows, and with a rate the
/// ports TIME_WAIT holds.
fn port_limits(snap: &Snapshot, q: Question) -> Vec<Limit> {
    let n = q.connections;
    let mut out = Vec::new();
    let usable = usable_ports(snap);
    let reuse = num(snap, "net.ipv4.tcp_tw_reuse").unwrap_or(2);
    if q.outgoing {
        out.push(limit(
            "ephemeral ports (one destination ip:port)",
            n,
            usable,
            "ports",
            "per source address and destination ip:port; more destination or source addresses \
             multiply it",
            Some("[ports] local_range = [1024, 65535]"),
        ));
        if let Some(r) = q.rate {
            let hold = if reuse == 1 { 1 } else { 60 };
            out.push(limit(
                "ports in TIME_WAIT (one destination)",
                n + r * hold,
                usable,
                "ports",
                format!(
                    "if this side closes first each port waits {hold} s before reuse \
                     (tcp_tw_reuse={reuse})"
                ),
                Some("[sysctl] \"net.ipv4.tcp_tw_reuse\" = 1"),
            ));
        }
    }
    out
}

/// With a rate of new connections: the TIME_WAIT buckets, and (incoming) the accept queue a
/// 100 ms pause in accept() fills.
fn rate_limits(snap: &Snapshot, q: Question) -> Vec<Limit> {
    let mut out = Vec::new();
    if let Some(r) = q.rate {
        if let Some(buckets) = num(snap, "net.ipv4.tcp_max_tw_buckets") {
            out.push(limit(
                "net.ipv4.tcp_max_tw_buckets",
                r * 60,
                buckets,
                "sockets",
                "TIME_WAIT sockets of the side that closes first, 60 s each",
                Some("[sysctl] \"net.ipv4.tcp_max_tw_buckets\" = { min = 262144 }"),
            ));
        }
        if !q.outgoing
            && let Some(somaxconn) = num(snap, "net.core.somaxconn")
        {
            let backlog = snap
                .listeners
                .iter()
                .filter_map(|l| l.backlog)
                .min()
                .unwrap_or(somaxconn)
                .min(somaxconn);
            out.push(limit(
                "accept queue (100 ms pause in accept())",
                r / 10,
                backlog,
                "connections",
                "connects arriving while the server does not accept for 100 ms",
                Some("[sysctl] \"net.core.somaxconn\" = 65535, and a large listen() backlog"),
            ));
        }
    }
    out
}

/// Sorts the limits by need/have, highest first: the first to bind first. The sort is stable,
/// so limits with the same ratio keep the order above.
fn first_to_bind_first(out: &mut [Limit]) {
    out.sort_by(|a, b| {
        let r = |l: &Limit| {
            #[allow(clippy::cast_precision_loss)]
            let v = l.need as f64 / (l.have.max(1)) as f64;
            v
        };
        r(b).partial_cmp(&r(a)).unwrap_or(std::cmp::Ordering::Equal)
    });
}
