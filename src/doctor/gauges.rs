//! Gauges: each limit's use and its ceiling, as numbers, from a `Snapshot` (accept queues per
//! listener, ephemeral ports per destination for the most used ones, TIME_WAIT, file handles,
//! nofile per listening process and per client near its limit, conntrack, TCP memory).
//! `metrics` exports them and `watch` follows them over time. Pure: never performs I/O (proc.rs
//! reads).

use serde::Serialize;

use super::findings::{holder, num, usable_ports};
use super::proc::Snapshot;

/// One limit's use and ceiling now.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Gauge {
    /// The doctor finding id this limit belongs to (accept-queue, ephemeral-ports,
    /// time-wait-buckets, file-max, nofile, conntrack, tcp-mem).
    pub limit: &'static str,
    /// What it is a limit of: `127.0.0.1:8080` (a listener), `127.0.0.1:80` (a destination),
    /// `pid 42` (a process); empty for a machine-wide limit.
    pub subject: String,
    /// The process's name (comm) for a listener or a process, else empty.
    pub process: String,
    /// The process id for a listener or a process.
    pub pid: Option<u32>,
    pub used: u64,
    pub ceiling: u64,
    /// The setting the ceiling comes from (`net.core.somaxconn`, `listen() backlog`, ...).
    pub ceiling_from: String,
}

impl Gauge {
    /// used / ceiling (0 when the ceiling is 0).
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn usage(&self) -> f64 {
        if self.ceiling == 0 {
            0.0
        } else {
            self.used as f64 / self.ceiling as f64
        }
    }

    /// A machine-wide limit (no subject, no process).
    #[must_use]
    pub fn machine_wide(
        limit: &'static str,
        used: u64,
        ceiling: u64,
        ceiling_from: impl Into<String>,
    ) -> Gauge {
        Gauge {
            limit,
            subject: String::new(),
            process: String::new(),
            pid: None,
            used,
            ceiling,
            ceiling_from: ceiling_from.into(),
        }
    }

    /// A stable key for following this gauge from one sample to the next.
    #[must_use]
    pub fn key(&self) -> String {
        format!("{} {}", self.limit, self.subject)
    }
}

/// Every limit with its use and ceiling now, in a fixed order.
#[must_use]
pub fn gauges(snap: &Snapshot) -> Vec<Gauge> {
    let mut out = accept_queues(snap);
    out.extend(ephemeral_ports(snap));
    if let Some(buckets) = num(snap, "net.ipv4.tcp_max_tw_buckets") {
        out.push(Gauge::machine_wide(
            "time-wait-buckets",
            snap.states.time_wait,
            buckets,
            "net.ipv4.tcp_max_tw_buckets",
        ));
    }
    if let Some((allocated, _, max)) = snap.file_nr {
        out.push(Gauge::machine_wide(
            "file-max",
            allocated,
            max,
            "fs.file-max",
        ));
    }
    out.extend(nofiles(snap));
    if let Some((count, max)) = snap.conntrack {
        out.push(Gauge::machine_wide(
            "conntrack",
            count,
            max,
            "net.netfilter.nf_conntrack_max",
        ));
    }
    if let Some(high) = snap
        .sysctl
        .get("net.ipv4.tcp_mem")
        .and_then(|m| m.split_whitespace().nth(2)?.parse().ok())
    {
        out.push(Gauge::machine_wide(
            "tcp-mem",
            u64::try_from(snap.sockstat.get("TCP.mem").copied().unwrap_or(0)).unwrap_or(0),
            high,
            "net.ipv4.tcp_mem (high, pages)",
        ));
    }
    out
}

/// Each listener's accept queue against the backlog in force: its own listen() backlog, or
/// somaxconn when that cuts it (or when the backlog is not shown).
fn accept_queues(snap: &Snapshot) -> Vec<Gauge> {
    let mut out = Vec::new();
    let somaxconn = num(snap, "net.core.somaxconn");
    for l in &snap.listeners {
        // Without sock_diag the backlog in force is unknown; somaxconn is the most it can be.
        let (ceiling, from) = match (l.backlog, somaxconn) {
            (Some(b), Some(s)) if b >= s => (s, "net.core.somaxconn"),
            (Some(b), _) => (b, "listen() backlog"),
            (None, Some(s)) => (s, "net.core.somaxconn"),
            (None, None) => continue,
        };
        let who = holder(snap, l.port);
        out.push(Gauge {
            limit: "accept-queue",
            subject: format!("{}:{}", l.address, l.port),
            process: who.map(|p| p.comm.clone()).unwrap_or_default(),
            pid: who.map(|p| p.pid),
            used: l.queue,
            ceiling,
            ceiling_from: from.into(),
        });
    }
    out
}

/// The ports each of the most used destinations has used of the range (each destination
/// ip:port has the whole range to itself); one gauge with no destination when none is used, so
/// the ceiling is there to see.
fn ephemeral_ports(snap: &Snapshot) -> Vec<Gauge> {
    if !snap.sysctl.contains_key("net.ipv4.ip_local_port_range") {
        return Vec::new();
    }
    let usable = usable_ports(snap);
    let gauge = |subject: &str, used: u64| Gauge {
        subject: subject.to_string(),
        ..Gauge::machine_wide(
            "ephemeral-ports",
            used,
            usable,
            "net.ipv4.ip_local_port_range",
        )
    };
    if snap.states.destinations.is_empty() {
        return vec![gauge("", 0)];
    }
    snap.states
        .destinations
        .iter()
        .map(|(dest, used)| gauge(dest, *used))
        .collect()
}

/// Each listening process's open fds against its soft nofile limit, and where that comes from;
/// then each client (no listener) doctor found near its limit (`Snapshot::clients`).
fn nofiles(snap: &Snapshot) -> Vec<Gauge> {
    snap.processes
        .iter()
        .chain(&snap.clients)
        .filter_map(|p| {
            let soft = p.nofile_soft?;
            Some(Gauge {
                limit: "nofile",
                subject: format!("pid {}", p.pid),
                process: p.comm.clone(),
                pid: Some(p.pid),
                used: p.open_fds,
                ceiling: soft,
                ceiling_from: match &p.service {
                    Some(unit) => format!("LimitNOFILE of {unit}"),
                    None => "nofile (limits.conf)".into(),
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::proc::{Listener, Process};

    #[test]
    fn a_listener_below_somaxconn_is_capped_by_its_own_backlog() {
        let mut snap = Snapshot::default();
        snap.sysctl
            .insert("net.core.somaxconn".into(), "128".into());
        for (port, backlog) in [(80, Some(512)), (81, Some(16)), (82, None)] {
            snap.listeners.push(Listener {
                address: "0.0.0.0".into(),
                port,
                queue: 8,
                backlog,
                inode: 0,
            });
        }
        snap.processes.push(Process {
            pid: 7,
            comm: "web".into(),
            ports: vec![81],
            nofile_soft: Some(1024),
            open_fds: 512,
            ..Process::default()
        });
        let g = gauges(&snap);
        let q: Vec<(&str, u64, &str, &str)> = g
            .iter()
            .filter(|g| g.limit == "accept-queue")
            .map(|g| {
                (
                    g.subject.as_str(),
                    g.ceiling,
                    g.ceiling_from.as_str(),
                    g.process.as_str(),
                )
            })
            .collect();
        assert_eq!(
            q,
            [
                ("0.0.0.0:80", 128, "net.core.somaxconn", ""),
                ("0.0.0.0:81", 16, "listen() backlog", "web"),
                ("0.0.0.0:82", 128, "net.core.somaxconn", ""),
            ]
        );
        let n = g.iter().find(|g| g.limit == "nofile").expect("nofile");
        assert_eq!((n.used, n.ceiling, n.usage()), (512, 1024, 0.5));
    }

    #[test]
    fn one_gauge_per_destination_and_clients_near_their_nofile() {
        let mut snap = Snapshot::default();
        snap.sysctl
            .insert("net.ipv4.ip_local_port_range".into(), "32768\t60999".into());
        let of = |snap: &Snapshot, limit: &str| -> Vec<(String, String, u64, u64)> {
            gauges(snap)
                .into_iter()
                .filter(|g| g.limit == limit)
                .map(|g| (g.subject, g.ceiling_from, g.used, g.ceiling))
                .collect()
        };
        let range = || "net.ipv4.ip_local_port_range".to_string();
        // No destination yet: the ceiling alone, with no destination.
        assert_eq!(
            of(&snap, "ephemeral-ports"),
            [(String::new(), range(), 0, 28232)]
        );
        snap.states.destinations = vec![("10.0.0.5:443".into(), 30), ("[::1]:80".into(), 2)];
        assert_eq!(
            of(&snap, "ephemeral-ports"),
            [
                ("10.0.0.5:443".into(), range(), 30, 28232),
                ("[::1]:80".into(), range(), 2, 28232),
            ]
        );
        snap.clients.push(Process {
            pid: 9,
            comm: "loadgen".into(),
            nofile_soft: Some(1024),
            open_fds: 1000,
            service: Some("loadgen.service".into()),
            ..Process::default()
        });
        assert_eq!(
            of(&snap, "nofile"),
            [(
                "pid 9".into(),
                "LimitNOFILE of loadgen.service".into(),
                1000,
                1024
            )]
        );
    }
}
