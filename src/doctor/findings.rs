//! Findings: from a `Snapshot`, each limit a connection can meet on this machine, with its
//! severity, the evidence read, the capacity it implies and the fix as profile lines; then the
//! binding one. Pure: never performs I/O (proc.rs reads), so fixture tables test every rule.

use serde::Serialize;

use super::proc::{Snapshot, port_range};

/// How close a limit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Nothing to do.
    Ok,
    /// Worth knowing; not a limit now.
    Info,
    /// Reached since boot, or close.
    Warning,
    /// Full now.
    Critical,
}

impl Severity {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One value or counter read, by name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Stable id: accept-queue, app-backlog, ephemeral-ports, time-wait-buckets, file-max,
    /// nofile, conntrack, tcp-mem, syn-retrans, cpu, threads, epoll, fin-timeout, tw-reuse.
    pub limit: &'static str,
    pub severity: Severity,
    pub title: String,
    pub evidence: Vec<Evidence>,
    /// What the limit allows, in connections or connections per second.
    pub capacity: Option<String>,
    /// Profile lines (TOML) that lift it; empty when no sysctl or limit can (`process_side`).
    pub fix: Vec<String>,
    /// The cure is in the application or its unit, not in a kernel setting.
    pub process_side: bool,
    /// How full the limit is (0..1+), to rank findings of one severity.
    pub usage: Option<f64>,
}

fn ev(name: impl Into<String>, value: impl ToString) -> Evidence {
    Evidence {
        name: name.into(),
        value: value.to_string(),
    }
}

#[allow(clippy::cast_precision_loss)]
fn ratio(used: u64, limit: u64) -> f64 {
    if limit == 0 {
        return 0.0;
    }
    used as f64 / limit as f64
}

fn level(usage: f64) -> Severity {
    if usage >= 0.9 {
        Severity::Critical
    } else if usage >= 0.7 {
        Severity::Warning
    } else {
        Severity::Ok
    }
}

fn num(snap: &Snapshot, key: &str) -> Option<u64> {
    snap.sysctl.get(key)?.trim().parse().ok()
}

fn counter(snap: &Snapshot, name: &str) -> i64 {
    snap.counters.get(name).copied().unwrap_or(0)
}

/// Ports in `ip_local_reserved_ports` (`8080,9000-9010`) that lie inside `range`.
#[must_use]
pub fn reserved_in(list: &str, range: (u16, u16)) -> u64 {
    let mut n = 0;
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (Ok(a), Ok(b)) = (a.trim().parse::<u16>(), b.trim().parse::<u16>()) else {
            continue;
        };
        let (lo, hi) = (a.max(range.0), b.min(range.1));
        if lo <= hi {
            n += u64::from(hi - lo) + 1;
        }
    }
    n
}

/// Usable ephemeral ports per destination: the range less reserved ports.
#[must_use]
pub fn usable_ports(snap: &Snapshot) -> u64 {
    let range = port_range(snap.sysctl.get("net.ipv4.ip_local_port_range"));
    let size = u64::from(range.1.saturating_sub(range.0)) + 1;
    let reserved = snap
        .sysctl
        .get("net.ipv4.ip_local_reserved_ports")
        .map_or(0, |l| reserved_in(l, range));
    size.saturating_sub(reserved)
}

/// Every finding, most severe first.
#[must_use]
pub fn findings(snap: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    accept_queue(snap, &mut out);
    ephemeral(snap, &mut out);
    files(snap, &mut out);
    nofile(snap, &mut out);
    conntrack(snap, &mut out);
    memory(snap, &mut out);
    retransmits(snap, &mut out);
    process_side(snap, &mut out);
    folklore(snap, &mut out);
    out.sort_by(|a, b| {
        b.severity.cmp(&a.severity).then(
            b.usage
                .unwrap_or(0.0)
                .partial_cmp(&a.usage.unwrap_or(0.0))
                .unwrap_or(std::cmp::Ordering::Equal),
        )
    });
    out
}

fn accept_queue(snap: &Snapshot, out: &mut Vec<Finding>) {
    let Some(somaxconn) = num(snap, "net.core.somaxconn") else {
        return;
    };
    let overflows = counter(snap, "TcpExt.ListenOverflows");
    let drops = counter(snap, "TcpExt.ListenDrops");
    let mut evidence = vec![
        ev("net.core.somaxconn", somaxconn),
        ev("TcpExt.ListenOverflows", overflows),
        ev("TcpExt.ListenDrops", drops),
    ];
    let mut worst = 0.0f64;
    let mut full = Vec::new();
    let mut capped = Vec::new();
    let mut low_app = Vec::new();
    for l in &snap.listeners {
        // Without sock_diag (a tree that is not the running kernel's) the backlog is unknown;
        // somaxconn is then the most it can be.
        let backlog = l.backlog.unwrap_or(somaxconn).min(somaxconn).max(1);
        evidence.push(ev(
            format!("listener {}:{}", l.address, l.port),
            match l.backlog {
                Some(b) => format!("queue {} of backlog {b}", l.queue),
                None => format!("queue {} (backlog not shown in proc/net/tcp)", l.queue),
            },
        ));
        worst = worst.max(ratio(l.queue, backlog));
        // The kernel refuses once the queue is above the backlog (sk_acceptq_is_full).
        if l.queue >= backlog {
            full.push(l.port);
        }
        match l.backlog {
            Some(b) if b >= somaxconn => capped.push(l.port),
            Some(b) if b < 511 => low_app.push((l.port, b)),
            _ => {}
        }
    }
    let mut fix = Vec::new();
    if somaxconn < 65535 {
        fix.push("[sysctl] \"net.core.somaxconn\" = 65535".to_string());
        fix.push("[sysctl] \"net.ipv4.tcp_max_syn_backlog\" = { min = 65535 }".to_string());
    }
    let severity = if !full.is_empty() {
        Severity::Critical
    } else if overflows > 0 || (somaxconn < 4096 && !capped.is_empty()) {
        Severity::Warning
    } else {
        Severity::Ok
    };
    let title = if !full.is_empty() {
        format!("accept queue full now on port {}", join(&full))
    } else if overflows > 0 {
        format!(
            "accept queue overflowed {overflows} times since boot: clients' handshakes were \
             dropped and retried after 1 s, 3 s, 7 s"
        )
    } else if !capped.is_empty() {
        format!(
            "listen() backlog capped at net.core.somaxconn {somaxconn} on port {}",
            join(&capped)
        )
    } else {
        "accept queues have room".to_string()
    };
    let smallest = snap.listeners.iter().filter_map(|l| l.backlog).min();
    out.push(Finding {
        limit: "accept-queue",
        severity,
        title,
        evidence,
        capacity: Some(match smallest {
            Some(b) => format!(
                "a burst of {b} connects waiting for accept() on the smallest queue; at most \
                 {somaxconn} on any"
            ),
            None => format!("any listener's backlog is capped at {somaxconn}"),
        }),
        fix: if severity >= Severity::Warning {
            fix
        } else {
            Vec::new()
        },
        process_side: false,
        usage: Some(worst),
    });
    if !low_app.is_empty() {
        let ports: Vec<String> = low_app
            .iter()
            .map(|(p, b)| format!("port {p} backlog {b}"))
            .collect();
        out.push(Finding {
            limit: "app-backlog",
            severity: if overflows > 0 {
                Severity::Warning
            } else {
                Severity::Info
            },
            title: format!(
                "the application asks a small listen() backlog ({}); somaxconn {somaxconn} is not \
                 what limits it: raise the backlog in the application's configuration",
                ports.join(", ")
            ),
            evidence: low_app
                .iter()
                .map(|(p, b)| ev(format!("port {p} backlog"), b))
                .collect(),
            capacity: None,
            fix: Vec::new(),
            process_side: true,
            usage: None,
        });
    }
}

fn join(ports: &[u16]) -> String {
    let v: Vec<String> = ports.iter().map(ToString::to_string).collect();
    v.join(", ")
}

fn ephemeral(snap: &Snapshot, out: &mut Vec<Finding>) {
    let Some(raw) = snap.sysctl.get("net.ipv4.ip_local_port_range") else {
        return;
    };
    let range = port_range(Some(raw));
    let usable = usable_ports(snap);
    let reuse = num(snap, "net.ipv4.tcp_tw_reuse").unwrap_or(2);
    let tw = snap.states.time_wait;
    let (dest, used) = snap
        .states
        .busiest_destination
        .clone()
        .unwrap_or_else(|| ("-".into(), 0));
    let usage = ratio(used, usable);
    let severity = level(usage);
    let rate = usable / 60;
    let reuse_text = match reuse {
        1 => "1: connect() may take a port whose TIME_WAIT is over 1 s old (timestamps on)",
        2 => "2: reuse on loopback only (kernel default)",
        _ => "0: a port stays unusable for the 60 s of TIME_WAIT",
    };
    let mut fix = Vec::new();
    if range.0 > 1024 || range.1 < 65535 {
        fix.push("[ports] local_range = [1024, 65535]".to_string());
    }
    if reuse != 1 {
        fix.push("[sysctl] \"net.ipv4.tcp_tw_reuse\" = 1".to_string());
    }
    out.push(Finding {
        limit: "ephemeral-ports",
        severity,
        title: if severity >= Severity::Warning {
            format!(
                "{used} of {usable} ephemeral ports used toward {dest}: new connections to it \
                 fail with EADDRNOTAVAIL when none is left"
            )
        } else {
            format!("{usable} ephemeral ports per destination; the busiest uses {used}")
        },
        evidence: vec![
            ev(
                "net.ipv4.ip_local_port_range",
                format!("{} {}", range.0, range.1),
            ),
            ev(
                "net.ipv4.ip_local_reserved_ports",
                snap.sysctl
                    .get("net.ipv4.ip_local_reserved_ports")
                    .cloned()
                    .unwrap_or_default(),
            ),
            ev("usable ports", usable),
            ev("TIME_WAIT sockets now", tw),
            ev("busiest destination", format!("{dest} ({used} sockets)")),
            ev("net.ipv4.tcp_tw_reuse", reuse_text),
        ],
        capacity: Some(format!(
            "{usable} connections held to one destination ip:port; {rate} new connections/s \
             to it sustained when this side closes first (ports wait 60 s in TIME_WAIT){}",
            if reuse == 1 {
                format!(", about {usable}/s with tcp_tw_reuse=1")
            } else {
                String::new()
            }
        )),
        fix: if severity >= Severity::Warning {
            fix
        } else {
            Vec::new()
        },
        process_side: false,
        usage: Some(usage),
    });
    let overflow = counter(snap, "TcpExt.TCPTimeWaitOverflow");
    if overflow > 0 {
        let buckets = num(snap, "net.ipv4.tcp_max_tw_buckets").unwrap_or(0);
        out.push(Finding {
            limit: "time-wait-buckets",
            severity: Severity::Warning,
            title: format!(
                "TIME_WAIT table overflowed {overflow} times since boot: sockets were destroyed \
                 early (late segments may hit new connections)"
            ),
            evidence: vec![
                ev("TcpExt.TCPTimeWaitOverflow", overflow),
                ev("net.ipv4.tcp_max_tw_buckets", buckets),
                ev("TIME_WAIT sockets now", tw),
            ],
            capacity: Some(format!("{} connections closed per second", buckets / 60)),
            fix: vec!["[sysctl] \"net.ipv4.tcp_max_tw_buckets\" = { min = 262144 }".into()],
            process_side: false,
            usage: Some(ratio(tw, buckets)),
        });
    }
}

fn files(snap: &Snapshot, out: &mut Vec<Finding>) {
    let Some((allocated, _, max)) = snap.file_nr else {
        return;
    };
    let usage = ratio(allocated, max);
    let severity = level(usage);
    let nr_open = num(snap, "fs.nr_open");
    let mut evidence = vec![
        ev("fs.file-nr allocated", allocated),
        ev("fs.file-max", max),
    ];
    evidence.extend(nr_open.map(|n| ev("fs.nr_open (ceiling of any nofile)", n)));
    out.push(Finding {
        limit: "file-max",
        severity,
        title: if severity >= Severity::Warning {
            format!("{allocated} of {max} file handles of the whole machine in use: ENFILE next")
        } else {
            format!("{allocated} of {max} file handles in use machine-wide")
        },
        evidence,
        capacity: Some(format!(
            "{} more open files or sockets on the whole machine",
            max.saturating_sub(allocated)
        )),
        fix: if severity >= Severity::Warning {
            vec![format!(
                "[sysctl] \"fs.file-max\" = {{ min = {} }}",
                (allocated * 2).max(1_048_576)
            )]
        } else {
            Vec::new()
        },
        process_side: false,
        usage: Some(usage),
    });
}

fn limit_text(v: Option<u64>) -> String {
    v.map_or_else(|| "unlimited".to_string(), |n| n.to_string())
}

fn nofile(snap: &Snapshot, out: &mut Vec<Finding>) {
    for p in &snap.processes {
        let Some(soft) = p.nofile_soft else {
            continue;
        };
        let usage = ratio(p.open_fds, soft);
        let mut severity = level(usage);
        if severity == Severity::Ok && soft <= 1024 {
            severity = Severity::Warning;
        }
        let who = format!("{} (pid {}, port {})", p.comm, p.pid, join(&p.ports));
        let fix = match &p.service {
            Some(unit) => vec![
                "[systemd] default_limit_nofile = 1048576".to_string(),
                format!(
                    "or for this unit alone: LimitNOFILE=1048576 (systemctl edit {unit}); \
                     limits.conf does not reach a systemd service"
                ),
            ],
            None => vec![
                "[[limits]] domain = \"*\", type = \"-\", item = \"nofile\", value = 1048576"
                    .to_string(),
                format!("then start {} again from a new login", p.comm),
            ],
        };
        out.push(Finding {
            limit: "nofile",
            severity,
            title: if severity >= Severity::Warning {
                format!(
                    "{who} may open {soft} files and has {} open: EMFILE (\"too many open \
                     files\") at {soft}",
                    p.open_fds
                )
            } else {
                format!("{who}: {} of {soft} open files", p.open_fds)
            },
            evidence: vec![
                ev(format!("pid {} nofile soft", p.pid), soft),
                ev(
                    format!("pid {} nofile hard", p.pid),
                    limit_text(p.nofile_hard),
                ),
                ev(format!("pid {} open fds", p.pid), p.open_fds),
                ev(
                    format!("pid {} started by", p.pid),
                    p.service.as_ref().map_or_else(
                        || "a login session (limits.conf applies)".to_string(),
                        |u| format!("systemd unit {u} (limits.conf does not apply)"),
                    ),
                ),
            ],
            capacity: Some(format!(
                "about {} more connections in this process",
                soft.saturating_sub(p.open_fds)
            )),
            fix: if severity >= Severity::Warning {
                fix
            } else {
                Vec::new()
            },
            process_side: false,
            usage: Some(usage),
        });
    }
}

fn conntrack(snap: &Snapshot, out: &mut Vec<Finding>) {
    let Some((count, max)) = snap.conntrack else {
        return;
    };
    let usage = ratio(count, max);
    let severity = level(usage);
    out.push(Finding {
        limit: "conntrack",
        severity,
        title: format!("conntrack table holds {count} of {max} entries"),
        evidence: vec![
            ev("net.netfilter.nf_conntrack_count", count),
            ev("net.netfilter.nf_conntrack_max", max),
        ],
        capacity: Some(format!(
            "{} more tracked connections (TIME_WAIT ones count for 120 s)",
            max.saturating_sub(count)
        )),
        fix: if severity >= Severity::Warning {
            vec![
                "[sysctl] \"net.netfilter.nf_conntrack_max\" = { min = 1048576, optional = true }"
                    .into(),
            ]
        } else {
            Vec::new()
        },
        process_side: false,
        usage: Some(usage),
    });
}

fn memory(snap: &Snapshot, out: &mut Vec<Finding>) {
    let Some(mem) = snap.sysctl.get("net.ipv4.tcp_mem") else {
        return;
    };
    let v: Vec<u64> = mem
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    let [low, pressure, high] = v[..] else {
        return;
    };
    let used = u64::try_from(snap.sockstat.get("TCP.mem").copied().unwrap_or(0)).unwrap_or(0);
    let aborts = counter(snap, "TcpExt.TCPAbortOnMemory");
    let usage = ratio(used, high);
    let severity = if used >= high {
        Severity::Critical
    } else if used >= pressure || aborts > 0 {
        Severity::Warning
    } else {
        Severity::Ok
    };
    out.push(Finding {
        limit: "tcp-mem",
        severity,
        title: if used >= pressure {
            format!(
                "TCP buffers use {used} pages, past the pressure mark {pressure} of tcp_mem: \
                 the kernel shrinks buffers{}",
                if used >= high { " and drops data" } else { "" }
            )
        } else if aborts > 0 {
            format!("{aborts} connections aborted for lack of TCP memory since boot")
        } else {
            format!("TCP buffers use {used} of {high} pages (tcp_mem)")
        },
        evidence: vec![
            ev("sockstat TCP mem (pages)", used),
            ev("net.ipv4.tcp_mem", format!("{low} {pressure} {high}")),
            ev(
                "sockstat TCP inuse",
                snap.sockstat.get("TCP.inuse").copied().unwrap_or(0),
            ),
            ev(
                "sockstat TCP orphan",
                snap.sockstat.get("TCP.orphan").copied().unwrap_or(0),
            ),
            ev("TcpExt.TCPAbortOnMemory", aborts),
        ],
        capacity: Some(format!(
            "{} more pages ({} MiB) of socket buffers",
            high.saturating_sub(used),
            high.saturating_sub(used) * 4 / 1024
        )),
        fix: if severity >= Severity::Warning {
            vec![format!(
                "[sysctl] \"net.ipv4.tcp_mem\" = \"{} {} {}\"  (only with the RAM for it; \
                 smaller tcp_rmem/tcp_wmem maxima also help)",
                low * 2,
                pressure * 2,
                high * 2
            )]
        } else {
            Vec::new()
        },
        process_side: false,
        usage: Some(usage),
    });
}

fn retransmits(snap: &Snapshot, out: &mut Vec<Finding>) {
    let syn = counter(snap, "TcpExt.TCPSynRetrans");
    if syn > 0 {
        out.push(Finding {
            limit: "syn-retrans",
            severity: Severity::Info,
            title: format!(
                "{syn} SYNs this host sent were retransmitted since boot: its own connects \
                 waited 1 s or more (a full accept queue or drops at the far side)"
            ),
            evidence: vec![
                ev("TcpExt.TCPSynRetrans", syn),
                ev("Tcp.ActiveOpens", counter(snap, "Tcp.ActiveOpens")),
            ],
            capacity: None,
            fix: Vec::new(),
            process_side: true,
            usage: None,
        });
    }
}

fn process_side(snap: &Snapshot, out: &mut Vec<Finding>) {
    for p in &snap.processes {
        let who = format!("{} (pid {}, port {})", p.comm, p.pid, join(&p.ports));
        let cpu = p.cpu_now.unwrap_or(0.0).max(p.cpu_lifetime);
        let mut evidence = vec![
            ev(format!("pid {} threads", p.pid), p.threads),
            ev(
                format!("pid {} CPU since start", p.pid),
                format!("{:.0}% of one core", p.cpu_lifetime * 100.0),
            ),
            ev("CPUs", snap.cpus),
        ];
        if let Some(now) = p.cpu_now {
            evidence.push(ev(
                format!("pid {} CPU now", p.pid),
                format!("{:.0}% of one core", now * 100.0),
            ));
        }
        if p.threads == 1 && cpu >= 0.85 {
            out.push(Finding {
                limit: "cpu",
                severity: Severity::Critical,
                title: format!(
                    "{who} runs one thread at {:.0}% of a core: it is the limit, not the kernel; \
                     no sysctl lifts it",
                    cpu * 100.0
                ),
                evidence: evidence.clone(),
                capacity: Some("what one core accepts and serves".into()),
                fix: vec![
                    "run more worker processes or threads (e.g. nginx worker_processes auto; \
                     SO_REUSEPORT listeners)"
                        .into(),
                ],
                process_side: true,
                usage: Some(cpu),
            });
        } else if p.threads == 1 && snap.cpus > 1 {
            out.push(Finding {
                limit: "threads",
                severity: Severity::Info,
                title: format!("{who} has one thread: it can use one of {} CPUs", snap.cpus),
                evidence: evidence.clone(),
                capacity: None,
                fix: Vec::new(),
                process_side: true,
                usage: None,
            });
        }
        if !p.epoll {
            out.push(Finding {
                limit: "epoll",
                severity: if p.has_epoll {
                    Severity::Info
                } else {
                    Severity::Warning
                },
                title: if p.has_epoll {
                    format!(
                        "{who} has an epoll instance but its listening socket is not in it \
                         (accept() in a thread, or another event loop)"
                    )
                } else {
                    format!(
                        "{who} waits on its listener without epoll (select(), poll() or a \
                         blocking accept()): select() cannot watch fd 1024 or above, poll() \
                         costs O(connections) per wake-up; no sysctl changes that"
                    )
                },
                evidence: vec![
                    ev(format!("pid {} epoll instances", p.pid), p.has_epoll),
                    ev(
                        format!("pid {} listener in epoll (fdinfo tfd)", p.pid),
                        p.epoll,
                    ),
                    ev(format!("pid {} threads", p.pid), p.threads),
                ],
                capacity: None,
                fix: Vec::new(),
                process_side: true,
                usage: None,
            });
        }
    }
}

fn folklore(snap: &Snapshot, out: &mut Vec<Finding>) {
    if let Some(fin) = num(snap, "net.ipv4.tcp_fin_timeout")
        && fin < 60
    {
        out.push(Finding {
            limit: "fin-timeout",
            severity: Severity::Info,
            title: format!(
                "net.ipv4.tcp_fin_timeout is {fin}, but TIME_WAIT still lasts 60 s: the kernel \
                 fixes it (TCP_TIMEWAIT_LEN); tcp_fin_timeout only bounds orphaned FIN_WAIT_2"
            ),
            evidence: vec![
                ev("net.ipv4.tcp_fin_timeout", fin),
                ev("TIME_WAIT sockets now", snap.states.time_wait),
            ],
            capacity: None,
            fix: vec![
                "for TIME_WAIT: [ports] local_range = [1024, 65535] and, for outgoing \
                 connections, [sysctl] \"net.ipv4.tcp_tw_reuse\" = 1"
                    .into(),
            ],
            process_side: false,
            usage: None,
        });
    }
    let reuse = num(snap, "net.ipv4.tcp_tw_reuse").unwrap_or(2);
    let accepted = snap.states.time_wait_accepted;
    if reuse == 1 && accepted > 0 && accepted * 2 >= snap.states.time_wait {
        out.push(Finding {
            limit: "tw-reuse",
            severity: Severity::Info,
            title: format!(
                "net.ipv4.tcp_tw_reuse is 1, but {accepted} of {} TIME_WAIT sockets are on \
                 accepted connections (local port is a listener): tw_reuse only lets connect() \
                 reuse a port, it does nothing for a server's side",
                snap.states.time_wait
            ),
            evidence: vec![
                ev("net.ipv4.tcp_tw_reuse", reuse),
                ev("TIME_WAIT on listening ports", accepted),
                ev("TIME_WAIT sockets now", snap.states.time_wait),
            ],
            capacity: None,
            fix: vec![
                "let clients close first (HTTP keep-alive), or accept the TIME_WAIT: it costs \
                 a few hundred bytes and no port on a server"
                    .into(),
            ],
            process_side: true,
            usage: None,
        });
    }
}

/// Keys and limits the shipped profile `high-conn` sets, by finding id.
fn lifted_by_high_conn(limit: &str) -> bool {
    matches!(
        limit,
        "accept-queue" | "ephemeral-ports" | "time-wait-buckets" | "nofile" | "conntrack"
    )
}

/// The one line doctor ends with: the binding limit and what lifts it.
#[must_use]
pub fn binding(all: &[Finding]) -> (Option<&Finding>, String) {
    let top = all.iter().find(|f| f.severity >= Severity::Warning);
    let Some(f) = top else {
        let nearest = all
            .iter()
            .filter(|f| f.usage.is_some() && !f.process_side)
            .max_by(|a, b| {
                a.usage
                    .unwrap_or(0.0)
                    .partial_cmp(&b.usage.unwrap_or(0.0))
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
        let line = match nearest {
            Some(n) => format!(
                "binding limit: none reached; the nearest is {} at {:.0}%",
                n.limit,
                n.usage.unwrap_or(0.0) * 100.0
            ),
            None => "binding limit: none reached".to_string(),
        };
        return (None, line);
    };
    let lift = if f.process_side {
        "no profile lifts it: the application must change".to_string()
    } else if lifted_by_high_conn(f.limit) {
        format!(
            "lift it with the shipped profile high-conn ({})",
            f.fix.join("; ")
        )
    } else if f.fix.is_empty() {
        "no profile line lifts it".to_string()
    } else {
        format!("lift it with {}", f.fix.join("; "))
    };
    (
        Some(f),
        format!("binding limit: {} ({}); {lift}", f.limit, f.title),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ports_inside_the_range() {
        let cases = [
            ("", 0),
            ("8080", 0),
            ("40000", 1),
            ("40000-40009,50000", 11),
            ("30000-32777", 10),
            ("junk,40001", 1),
        ];
        for (list, want) in cases {
            assert_eq!(reserved_in(list, (32768, 60999)), want, "{list}");
        }
    }
}
