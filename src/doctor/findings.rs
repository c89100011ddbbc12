//! Findings: from a `Snapshot`, each limit a connection can meet on this machine, with its
//! severity, the evidence read, the capacity it implies and the fix as profile lines; then the
//! binding one. Pure: never performs I/O (proc.rs reads), so fixture tables test every rule.

use serde::Serialize;

use super::apps::App;
use super::proc::{Process, Snapshot, port_range};
use super::rates::{self, CounterRate, Rates, When};
use crate::render::terminal::one_line;
use crate::system::limits::Failure;

/// What findings may use beyond the snapshot: the second sample's rates, the applications'
/// settings (apps.rs), what netprofile's generations did to somaxconn, and why pam_limits
/// refuses logins on the root.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    pub rates: Option<&'a Rates>,
    pub apps: &'a [App],
    /// (generation, somaxconn before, after) for each generation that changed it, oldest first.
    pub somaxconn_changes: &'a [(u64, u64, u64)],
    /// Each cause of a login pam_limits refuses (`system::login_lockouts`), in file order.
    pub lockouts: &'a [Failure],
    /// The pam_limits version those were modelled on (`pam_limits 1.5.2-6+deb12u1`).
    pub pam_limits: &'a str,
}

/// The id of a finding about a login that pam_limits refuses: not a connection limit, so
/// never the binding one.
pub const LOGIN_LOCKOUT: &str = "login-lockout";

/// The process a finding is about, and what started it (which decides the fix).
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ProcessRef {
    pub pid: u32,
    pub name: String,
    pub uid: Option<u32>,
    pub user: Option<String>,
    /// The systemd unit whose cgroup holds it.
    pub unit: Option<String>,
    /// The uid of the login session it descends from (proc/PID/loginuid).
    pub login_uid: Option<u32>,
    /// `unit`, `login` or `unknown` (neither a unit's cgroup nor a login uid: a container, an
    /// init script, a supervisor; its limits come from whatever started it).
    pub started_by: &'static str,
}

impl ProcessRef {
    #[must_use]
    pub fn of(p: &Process) -> ProcessRef {
        ProcessRef {
            pid: p.pid,
            name: p.comm.clone(),
            uid: p.uid,
            user: p.user.clone(),
            unit: p.service.clone(),
            login_uid: p.login_uid,
            started_by: if p.service.is_some() {
                "unit"
            } else if p.login_uid.is_some() {
                "login"
            } else {
                "unknown"
            },
        }
    }
}

/// "nginx (pid 42, user www-data, nginx.service)": how findings name a process. Its name,
/// user and unit come from the system (any local user names its process, newline included),
/// and a title or fix is one line by contract, in `--json` too: they are set in shown
/// `one_line`, while `process` keeps them exact.
#[must_use]
pub fn who(p: &Process) -> String {
    let mut parts = vec![format!("pid {}", p.pid)];
    match (&p.user, p.uid) {
        (Some(u), _) => parts.push(format!("user {}", one_line(u))),
        (None, Some(uid)) => parts.push(format!("uid {uid}")),
        _ => {}
    }
    if let Some(unit) = &p.service {
        parts.push(one_line(unit));
    }
    if !p.ports.is_empty() {
        parts.push(format!("port {}", join(&p.ports)));
    }
    format!("{} ({})", one_line(&p.comm), parts.join(", "))
}

/// How close a limit is.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Nothing to do.
    #[default]
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
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Evidence {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Finding {
    /// Stable id: accept-queue, app-backlog, ephemeral-ports, time-wait-buckets, file-max,
    /// nofile, conntrack, tcp-mem, syn-retrans, cpu, threads, epoll, fin-timeout, tw-reuse,
    /// login-lockout (and those of docs/doctor.md).
    pub limit: &'static str,
    pub severity: Severity,
    pub title: String,
    pub evidence: Vec<Evidence>,
    /// What the limit allows, in connections or connections per second.
    pub capacity: Option<String>,
    /// Profile lines (TOML) that lift it; empty when no sysctl or limit can (`process_side`).
    /// For a `login-lockout`, the edit of `file` that ends it.
    pub fix: Vec<String>,
    /// The configuration file the finding is about, with `:LINE` when it is one line
    /// (`/etc/security/limits.d/30-max.conf:1`); `null` for a finding about live values.
    pub file: Option<String>,
    /// The cure is in the application or its unit, not in a kernel setting.
    pub process_side: bool,
    /// How full the limit is (0..1+), to rank findings of one severity.
    pub usage: Option<f64>,
    /// The process it is about (pid, name, user, unit or login).
    pub process: Option<ProcessRef>,
    /// For a finding built on kernel counters: whether they rise now (two samples), only rose
    /// in the past, or were not sampled.
    pub when: Option<When>,
    /// Those counters: since boot, and their change over the interval.
    pub rates: Vec<CounterRate>,
}

pub(super) fn ev(name: impl Into<String>, value: impl ToString) -> Evidence {
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

/// A sysctl of the snapshot as a number.
pub(super) fn num(snap: &Snapshot, key: &str) -> Option<u64> {
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

/// Every finding from the snapshot alone (no rates, no application settings), most severe
/// first.
#[must_use]
pub fn findings(snap: &Snapshot) -> Vec<Finding> {
    findings_in(snap, &Context::default())
}

/// Every finding, most severe first.
#[must_use]
pub fn findings_in(snap: &Snapshot, ctx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    accept_queue(snap, ctx, &mut out);
    ephemeral(snap, ctx, &mut out);
    files(snap, &mut out);
    nofile(snap, ctx, &mut out);
    conntrack(snap, &mut out);
    memory(snap, ctx, &mut out);
    retransmits(snap, ctx, &mut out);
    process_side(snap, &mut out);
    folklore(snap, &mut out);
    super::apps::findings(snap, ctx, &mut out);
    lockouts(ctx, &mut out);
    // A full queue behind a server that stopped accepting at its own cap is the symptom, the
    // cap the cause: the cap binds.
    let capped: Vec<u32> = out
        .iter()
        .filter(|f| matches!(f.limit, "app-cap" | "app-closes") && f.severity == Severity::Critical)
        .filter_map(|f| f.process.as_ref().map(|p| p.pid))
        .collect();
    for f in &mut out {
        if f.limit == "accept-queue"
            && f.severity == Severity::Critical
            && f.process.as_ref().is_some_and(|p| capped.contains(&p.pid))
        {
            f.severity = Severity::Warning;
            f.fix.clear();
            f.title
                .push_str(": a symptom of the server's own cap (see app-cap), not of somaxconn");
        }
    }
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

/// Logins pam_limits refuses on this root (issue 18): one critical finding per cause, with the
/// file (and line) and the fix. A session fails before any limit is set (a file it cannot
/// open) or is refused (`maxlogins 0`), so no connection limit matters to those logins.
fn lockouts(ctx: &Context, out: &mut Vec<Finding>) {
    for f in ctx.lockouts {
        let file = if f.line > 0 {
            format!("{}:{}", f.file, f.line)
        } else {
            f.file.clone()
        };
        out.push(Finding {
            limit: LOGIN_LOCKOUT,
            severity: Severity::Critical,
            title: f.why.clone(),
            evidence: vec![ev("modelled", ctx.pam_limits)],
            fix: vec![f.fix.clone()],
            file: Some(file),
            ..Finding::default()
        });
    }
}

/// The process that holds listening port `port`.
pub(super) fn holder(snap: &Snapshot, port: u16) -> Option<&Process> {
    snap.processes.iter().find(|p| p.ports.contains(&port))
}

/// How to restart a process so that it listens again.
fn restart_line(p: &Process) -> String {
    match &p.service {
        Some(unit) => format!(
            "restart {} (systemctl restart {}): somaxconn is read at listen(), and a reload \
             keeps the old listening socket",
            who(p),
            one_line(unit)
        ),
        None => format!(
            "restart {} (stop and start it): somaxconn is read at listen(), and a reload keeps \
             the old listening socket",
            who(p)
        ),
    }
}

/// The accept queues: one `accept-queue` finding (somaxconn, the queues, ListenOverflows), a
/// `listener-restart` for each listener an older somaxconn cut, and an `app-backlog` for the
/// listeners that ask a small backlog themselves.
fn accept_queue(snap: &Snapshot, ctx: &Context, out: &mut Vec<Finding>) {
    let Some(somaxconn) = num(snap, "net.core.somaxconn") else {
        return;
    };
    let (overflow_rate, when) = rates::counter(snap, ctx.rates, "TcpExt.ListenOverflows");
    let (drop_rate, _) = rates::counter(snap, ctx.rates, "TcpExt.ListenDrops");
    let overflows = overflow_rate.since_boot;
    let drops = drop_rate.since_boot;
    let queues = Queues::of(snap, ctx, somaxconn);
    let mut evidence = vec![
        ev("net.core.somaxconn", somaxconn),
        ev("TcpExt.ListenOverflows", overflows),
        ev("TcpExt.ListenDrops", drops),
        ev("ListenOverflows now", rates::phrase(&overflow_rate)),
    ];
    evidence.extend(queues.rows);
    let (full, capped) = (&queues.full, &queues.capped);
    let severity = if !full.is_empty() {
        Severity::Critical
    } else if when == When::Now || (somaxconn < 4096 && !capped.is_empty()) {
        Severity::Warning
    } else if overflows > 0 {
        Severity::Info
    } else {
        Severity::Ok
    };
    let title = queue_title(
        snap,
        full,
        capped,
        severity,
        somaxconn,
        &overflow_rate,
        when,
    );
    let smallest = snap.listeners.iter().filter_map(|l| l.backlog).min();
    let process = full
        .first()
        .or(capped.first())
        .and_then(|p| holder(snap, *p))
        .map(ProcessRef::of);
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
            somaxconn_fix(snap, somaxconn, capped)
        } else {
            Vec::new()
        },
        process_side: false,
        usage: Some(queues.worst),
        process,
        when: Some(when),
        rates: vec![overflow_rate, drop_rate],
        file: None,
    });
    for (port, backlog, why) in &queues.stale {
        out.push(listener_restart(snap, somaxconn, *port, *backlog, why));
    }
    out.extend(app_backlog(snap, somaxconn, when, &queues.low_app));
}

/// What each listener's queue and backlog say, against somaxconn.
#[derive(Default)]
struct Queues {
    /// One evidence row per listener: its queue and backlog.
    rows: Vec<Evidence>,
    /// The fullest queue, as a share of its backlog.
    worst: f64,
    /// Ports whose queue is at its backlog: the kernel refuses new connections there.
    full: Vec<u16>,
    /// Ports whose backlog is somaxconn: the sysctl caps what the server asked.
    capped: Vec<u16>,
    /// Listeners whose backlog an older, smaller somaxconn cut at listen() time, and why.
    stale: Vec<(u16, u64, String)>,
    /// Ports whose own backlog is under 511: the application asks little.
    low_app: Vec<(u16, u64)>,
}

impl Queues {
    fn of(snap: &Snapshot, ctx: &Context, somaxconn: u64) -> Queues {
        let mut q = Queues::default();
        for l in &snap.listeners {
            // Without sock_diag (a tree that is not the running kernel's) the backlog is
            // unknown; somaxconn is then the most it can be.
            let backlog = l.backlog.unwrap_or(somaxconn).min(somaxconn).max(1);
            q.rows.push(ev(
                format!("listener {}:{}", l.address, l.port),
                match l.backlog {
                    Some(b) => format!("queue {} of backlog {b}", l.queue),
                    None => format!("queue {} (backlog not shown in proc/net/tcp)", l.queue),
                },
            ));
            q.worst = q.worst.max(ratio(l.queue, backlog));
            // The kernel refuses once the queue is above the backlog (sk_acceptq_is_full).
            if l.queue >= backlog {
                q.full.push(l.port);
            }
            let asked = super::apps::asked_backlog(ctx.apps, snap, l.port);
            let generation = ctx
                .somaxconn_changes
                .iter()
                .rev()
                .find(|(_, before, after)| l.backlog == Some(*before) && *after > *before);
            match l.backlog {
                Some(b) if b >= somaxconn => q.capped.push(l.port),
                Some(b) if generation.is_some() || asked.is_some_and(|a| a > b) => {
                    q.stale
                        .push((l.port, b, stale_reason(b, generation, asked)));
                }
                Some(b) if b < 511 => q.low_app.push((l.port, b)),
                _ => {}
            }
        }
        q
    }
}

/// Why a listener's backlog `b` is stale: the netprofile generation that raised somaxconn
/// after it listened, else the larger backlog its configuration asks for.
fn stale_reason(b: u64, generation: Option<&(u64, u64, u64)>, asked: Option<u64>) -> String {
    match (generation, asked) {
        (Some((g, before, after)), _) => format!(
            "its backlog {b} is the somaxconn {before} in force before netprofile \
             generation {g} raised it to {after}"
        ),
        (None, Some(a)) => format!(
            "it asks a backlog of {a} but has {b}: the somaxconn in force when it \
             called listen() was {b}"
        ),
        (None, None) => String::new(),
    }
}

/// The profile lines that raise somaxconn (below 65535), and the restart of each capped
/// listener's server (a new somaxconn reaches a listener only when it calls listen() again).
fn somaxconn_fix(snap: &Snapshot, somaxconn: u64, capped: &[u16]) -> Vec<String> {
    let mut fix = Vec::new();
    if somaxconn < 65535 {
        fix.push("[sysctl] \"net.core.somaxconn\" = 65535".to_string());
        fix.push("[sysctl] \"net.ipv4.tcp_max_syn_backlog\" = { min = 65535 }".to_string());
        // A new somaxconn reaches a listener only when it calls listen() again.
        for port in capped {
            if let Some(p) = holder(snap, *port) {
                let line = format!("then {}", restart_line(p));
                if !fix.contains(&line) {
                    fix.push(line);
                }
            }
        }
    }
    fix
}

/// The accept-queue title: full now, overflowing now, capped by somaxconn, overflowed in the
/// past, or room.
fn queue_title(
    snap: &Snapshot,
    full: &[u16],
    capped: &[u16],
    severity: Severity,
    somaxconn: u64,
    overflow_rate: &CounterRate,
    when: When,
) -> String {
    let overflows = overflow_rate.since_boot;
    let holders: Vec<String> = full
        .iter()
        .chain(capped)
        .filter_map(|p| holder(snap, *p))
        .map(who)
        .collect();
    let holders = if holders.is_empty() {
        String::new()
    } else {
        format!(" ({})", holders.join("; "))
    };
    if !full.is_empty() {
        format!("accept queue full now on port {}{holders}", join(full))
    } else if when == When::Now {
        format!(
            "accept queue overflowing now: ListenOverflows {} ({overflows} since boot): \
             clients' handshakes are dropped and retried after 1 s, 3 s, 7 s",
            rates::phrase(overflow_rate)
        )
    } else if !capped.is_empty() && severity >= Severity::Warning {
        format!(
            "listen() backlog capped at net.core.somaxconn {somaxconn} on port {}{holders}",
            join(capped)
        )
    } else if overflows > 0 {
        format!(
            "accept queue overflowed {overflows} times since boot, {}: a past problem, not \
             a present one",
            rates::phrase(overflow_rate)
        )
    } else {
        "accept queues have room".to_string()
    }
}

/// A listener that keeps the backlog an older, smaller somaxconn gave it until it listens
/// again.
fn listener_restart(
    snap: &Snapshot,
    somaxconn: u64,
    port: u16,
    backlog: u64,
    why: &str,
) -> Finding {
    let p = holder(snap, port);
    let name = p.map_or_else(|| format!("the process on port {port}"), who);
    Finding {
        limit: "listener-restart",
        severity: Severity::Warning,
        title: format!(
            "{name} listens with a backlog of {backlog} although net.core.somaxconn is now \
             {somaxconn}: {why}; it keeps {backlog} until it listens again"
        ),
        evidence: vec![
            ev(format!("port {port} backlog"), backlog),
            ev("net.core.somaxconn", somaxconn),
        ],
        capacity: Some(format!("a burst of {backlog} connects on port {port}")),
        fix: vec![p.map_or_else(
            || format!("restart the server on port {port}"),
            restart_line,
        )],
        process_side: true,
        usage: None,
        process: p.map(ProcessRef::of),
        ..Finding::default()
    }
}

/// Listeners whose application asks a backlog under 511: somaxconn is not what limits them.
fn app_backlog(
    snap: &Snapshot,
    somaxconn: u64,
    when: When,
    low_app: &[(u16, u64)],
) -> Option<Finding> {
    let (first, _) = low_app.first()?;
    let ports: Vec<String> = low_app
        .iter()
        .map(|(p, b)| format!("port {p} backlog {b}"))
        .collect();
    let p = holder(snap, *first);
    Some(Finding {
        limit: "app-backlog",
        severity: if when == When::Now {
            Severity::Warning
        } else {
            Severity::Info
        },
        title: format!(
            "{} asks a small listen() backlog ({}); somaxconn {somaxconn} is not what \
             limits it: raise the backlog in the application's configuration",
            p.map_or_else(|| "the application".to_string(), who),
            ports.join(", ")
        ),
        evidence: low_app
            .iter()
            .map(|(p, b)| ev(format!("port {p} backlog"), b))
            .collect(),
        capacity: None,
        fix: super::apps::backlog_setting(p).into_iter().collect(),
        process_side: true,
        usage: None,
        process: p.map(ProcessRef::of),
        ..Finding::default()
    })
}

fn join(ports: &[u16]) -> String {
    let v: Vec<String> = ports.iter().map(ToString::to_string).collect();
    v.join(", ")
}

/// The ephemeral ports (`ephemeral-ports`) and, when it overflowed, the TIME_WAIT table
/// (`time-wait-buckets`); neither without a port range to read.
fn ephemeral(snap: &Snapshot, ctx: &Context, out: &mut Vec<Finding>) {
    let Some(raw) = snap.sysctl.get("net.ipv4.ip_local_port_range") else {
        return;
    };
    out.push(ephemeral_ports(snap, raw));
    out.extend(time_wait_buckets(snap, ctx));
}

/// The ports one destination ip:port allows, against the busiest destination's use.
fn ephemeral_ports(snap: &Snapshot, raw: &String) -> Finding {
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
    Finding {
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
        ..Finding::default()
    }
}

/// The TIME_WAIT table, when TCPTimeWaitOverflow rose: now (a warning) or in the past.
fn time_wait_buckets(snap: &Snapshot, ctx: &Context) -> Option<Finding> {
    let tw = snap.states.time_wait;
    let (rate, when) = rates::counter(snap, ctx.rates, "TcpExt.TCPTimeWaitOverflow");
    let overflow = rate.since_boot;
    if overflow > 0 {
        let buckets = num(snap, "net.ipv4.tcp_max_tw_buckets").unwrap_or(0);
        let now = when == When::Now;
        Some(Finding {
            limit: "time-wait-buckets",
            severity: if now {
                Severity::Warning
            } else {
                Severity::Info
            },
            title: if now {
                format!(
                    "TIME_WAIT table overflowing now ({}; {overflow} since boot): sockets are \
                     destroyed early (late segments may hit new connections)",
                    rates::phrase(&rate)
                )
            } else {
                format!(
                    "TIME_WAIT table overflowed {overflow} times since boot, {}: a past problem",
                    rates::phrase(&rate)
                )
            },
            evidence: vec![
                ev("TcpExt.TCPTimeWaitOverflow", overflow),
                ev("net.ipv4.tcp_max_tw_buckets", buckets),
                ev("TIME_WAIT sockets now", tw),
            ],
            capacity: Some(format!("{} connections closed per second", buckets / 60)),
            fix: if now {
                vec!["[sysctl] \"net.ipv4.tcp_max_tw_buckets\" = { min = 262144 }".into()]
            } else {
                Vec::new()
            },
            process_side: false,
            usage: Some(ratio(tw, buckets)),
            when: Some(when),
            rates: vec![rate],
            ..Finding::default()
        })
    } else {
        None
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
        ..Finding::default()
    });
}

fn limit_text(v: Option<u64>) -> String {
    v.map_or_else(|| "unlimited".to_string(), |n| n.to_string())
}

/// The profile lines and steps that raise `p`'s nofile, fitted to what started it: a unit's
/// drop-in (limits.conf never reaches a service), a limits.d line for its user (pam_limits
/// never applies `*` to root), or, when neither a unit nor a login started it, where its
/// limit really comes from; and `apply --running` first when only the soft limit binds.
#[must_use]
pub fn nofile_fix(p: &Process, need: u64) -> Vec<String> {
    let mut fix = Vec::new();
    if let (Some(soft), hard) = (p.nofile_soft, p.nofile_hard)
        && hard.is_none_or(|h| h > soft && h >= need)
    {
        fix.push(format!(
            "now, without a restart: netprofile apply high-conn --running {} (only the soft \
             limit binds: it is {soft}, the hard limit {} allows more; prlimit raises it in \
             place)",
            one_line(&p.comm),
            limit_text(hard)
        ));
    }
    match (&p.service, p.login_uid) {
        (Some(unit), _) => {
            let unit = one_line(unit);
            fix.push("[systemd] default_limit_nofile = 1048576".to_string());
            fix.push(format!(
                "or for this unit alone: LimitNOFILE=1048576 in a drop-in (systemctl edit \
                 {unit}), then systemctl restart {unit}; limits.conf does not reach a systemd \
                 service"
            ));
        }
        (None, Some(_)) => {
            // pam_limits applies a `*` line to every user but root: root needs its own.
            let domain = match (p.uid, &p.user) {
                (Some(0), _) => "root".to_string(),
                _ => "*".to_string(),
            };
            fix.push(format!(
                "[[limits]] domain = \"{domain}\", type = \"-\", item = \"nofile\", value = \
                 1048576{}",
                if domain == "root" {
                    " (it runs as root, and pam_limits never applies a \"*\" line to root)"
                } else {
                    ""
                }
            ));
            fix.push(format!(
                "then start {} again from a new login (limits.conf is read at login)",
                one_line(&p.comm)
            ));
        }
        (None, None) => {
            fix.push(format!(
                "{} was started by neither a systemd unit nor a login session (no unit cgroup, \
                 loginuid unset): it inherited its limit from what started it (a container \
                 runtime, an init script, a supervisor); raise nofile there (`ulimit -n` in its \
                 start script, the runtime's --ulimit nofile=) and restart it",
                one_line(&p.comm)
            ));
        }
    }
    fix
}

fn started_text(p: &Process) -> String {
    match (&p.service, p.login_uid) {
        (Some(u), _) => format!("systemd unit {} (limits.conf does not apply)", one_line(u)),
        (None, Some(uid)) => format!("a login session of uid {uid} (limits.conf applies)"),
        (None, None) => {
            "neither a systemd unit nor a login session (loginuid unset): its limit was \
             inherited from what started it"
                .to_string()
        }
    }
}

fn nofile(snap: &Snapshot, ctx: &Context, out: &mut Vec<Finding>) {
    let all = snap
        .processes
        .iter()
        .map(|p| (p, true))
        .chain(snap.clients.iter().map(|p| (p, false)));
    for (p, server) in all {
        let Some(soft) = p.nofile_soft else {
            continue;
        };
        let usage = ratio(p.open_fds, soft);
        let mut severity = level(usage);
        if severity == Severity::Ok && soft <= 1024 && server {
            severity = Severity::Warning;
        }
        let name = who(p);
        let mut fix = nofile_fix(p, p.open_fds + 1);
        fix.extend(super::apps::nofile_setting(ctx.apps, p.pid));
        let left = soft.saturating_sub(p.open_fds);
        let cap = super::apps::remaining(ctx.apps, snap, p.pid);
        // A server whose own cap binds before its fds (redis sets its nofile to maxclients +
        // 32) is not at its nofile: app-cap says what binds.
        let cap_first = cap.as_ref().is_some_and(|(_, n)| *n < left);
        if cap_first && severity > Severity::Info {
            severity = Severity::Info;
        }
        let capacity = match &cap {
            Some((setting, n)) if *n < left => format!(
                "about {n} more connections in this process: its own {setting} binds before \
                 its {left} free fds"
            ),
            _ if server => format!("about {left} more connections in this process"),
            _ => format!("about {left} more sockets or files in this process"),
        };
        out.push(Finding {
            limit: "nofile",
            severity,
            title: if severity >= Severity::Warning {
                format!(
                    "{name}{} may open {soft} files and has {} open: EMFILE (\"too many open \
                     files\") at {soft}",
                    if server { "" } else { ", a client" },
                    p.open_fds
                )
            } else {
                format!("{name}: {} of {soft} open files", p.open_fds)
            },
            evidence: vec![
                ev(format!("pid {} nofile soft", p.pid), soft),
                ev(
                    format!("pid {} nofile hard", p.pid),
                    limit_text(p.nofile_hard),
                ),
                ev(format!("pid {} open fds", p.pid), p.open_fds),
                ev(format!("pid {} started by", p.pid), started_text(p)),
                ev(
                    format!("pid {} user", p.pid),
                    p.user
                        .clone()
                        .or(p.uid.map(|u| u.to_string()))
                        .unwrap_or_else(|| "?".into()),
                ),
            ],
            capacity: Some(capacity),
            fix: if severity >= Severity::Warning {
                fix
            } else {
                Vec::new()
            },
            process_side: false,
            usage: Some(usage),
            process: Some(ProcessRef::of(p)),
            ..Finding::default()
        });
    }
}

fn conntrack(snap: &Snapshot, out: &mut Vec<Finding>) {
    let Some((count, max)) = snap.conntrack else {
        return;
    };
    let sockets = snap.states.established + snap.states.time_wait;
    if count == 0 && sockets > 0 {
        // nf_conntrack counts per network namespace and hooks in only where a rule needs it:
        // connections here without a single entry are not tracked here.
        out.push(Finding {
            limit: "conntrack",
            severity: Severity::Ok,
            title: format!(
                "nothing is tracked in this network namespace (0 entries with {sockets} TCP \
                 connections): nf_conntrack_max {max} does not bind here"
            ),
            evidence: vec![
                ev("net.netfilter.nf_conntrack_count", count),
                ev("net.netfilter.nf_conntrack_max", max),
                ev("TCP connections (established + TIME_WAIT)", sockets),
            ],
            capacity: None,
            usage: Some(0.0),
            ..Finding::default()
        });
        return;
    }
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
        ..Finding::default()
    });
}

fn memory(snap: &Snapshot, ctx: &Context, out: &mut Vec<Finding>) {
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
    let (abort_rate, when) = rates::counter(snap, ctx.rates, "TcpExt.TCPAbortOnMemory");
    let aborts = abort_rate.since_boot;
    let usage = ratio(used, high);
    let severity = if used >= high {
        Severity::Critical
    } else if used >= pressure || when == When::Now {
        Severity::Warning
    } else if aborts > 0 {
        Severity::Info
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
            format!(
                "{aborts} connections aborted for lack of TCP memory since boot, {}",
                rates::phrase(&abort_rate)
            )
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
        when: (aborts > 0).then_some(when),
        rates: vec![abort_rate],
        ..Finding::default()
    });
}

fn retransmits(snap: &Snapshot, ctx: &Context, out: &mut Vec<Finding>) {
    let (rate, when) = rates::counter(snap, ctx.rates, "TcpExt.TCPSynRetrans");
    let syn = rate.since_boot;
    if syn > 0 {
        out.push(Finding {
            limit: "syn-retrans",
            severity: Severity::Info,
            title: format!(
                "{syn} SYNs this host sent were retransmitted since boot ({}): its own connects \
                 waited 1 s or more (a full accept queue or drops at the far side)",
                rates::phrase(&rate)
            ),
            evidence: vec![
                ev("TcpExt.TCPSynRetrans", syn),
                ev("Tcp.ActiveOpens", counter(snap, "Tcp.ActiveOpens")),
            ],
            capacity: None,
            fix: Vec::new(),
            process_side: true,
            usage: None,
            when: Some(when),
            rates: vec![rate],
            ..Finding::default()
        });
    }
}

/// A listener without epoll is a warning from this many open fds on (select()'s FD_SETSIZE is
/// 1024).
pub const EPOLL_MATTERS_FDS: u64 = 512;

/// What each listening process is limited by itself, whatever the kernel allows: one thread
/// (`cpu` when it saturates a core, else `threads`), and a listener outside epoll (`epoll`).
fn process_side(snap: &Snapshot, out: &mut Vec<Finding>) {
    for p in &snap.processes {
        out.extend(one_thread(snap, p));
        out.extend(without_epoll(p));
    }
}

/// A single-threaded listener: the limit itself at 85% of a core or more (`cpu`), else a note
/// that it uses one of several CPUs (`threads`).
fn one_thread(snap: &Snapshot, p: &Process) -> Option<Finding> {
    let who = who(p);
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
        Some(Finding {
            limit: "cpu",
            severity: Severity::Critical,
            title: format!(
                "{who} runs one thread at {:.0}% of a core: it is the limit, not the kernel; \
                 no sysctl lifts it",
                cpu * 100.0
            ),
            evidence,
            capacity: Some("what one core accepts and serves".into()),
            fix: vec![
                "run more worker processes or threads (e.g. nginx worker_processes auto; \
                 SO_REUSEPORT listeners)"
                    .into(),
            ],
            process_side: true,
            usage: Some(cpu),
            ..Finding::default()
        })
    } else if p.threads == 1 && snap.cpus > 1 {
        Some(Finding {
            limit: "threads",
            severity: Severity::Info,
            title: format!("{who} has one thread: it can use one of {} CPUs", snap.cpus),
            evidence,
            capacity: None,
            fix: Vec::new(),
            process_side: true,
            usage: None,
            ..Finding::default()
        })
    } else {
        None
    }
}

/// A listener not in an epoll instance: a warning when it has none and holds hundreds of fds
/// (select() fails at fd 1024, poll() grows with connections), else a note.
fn without_epoll(p: &Process) -> Option<Finding> {
    if p.epoll {
        return None;
    }
    let who = who(p);
    // select() fails at fd 1024 and poll() costs grow with connections: it matters
    // when the process holds hundreds of fds, not on a developer's idle server.
    let matters = !p.has_epoll && p.open_fds >= EPOLL_MATTERS_FDS;
    Some(Finding {
        limit: "epoll",
        severity: if matters {
            Severity::Warning
        } else {
            Severity::Info
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
                 costs O(connections) per wake-up; no sysctl changes that{}",
                if matters {
                    format!(" ({} fds open now)", p.open_fds)
                } else {
                    format!(
                        "; with {} fds open it matters only from several hundred \
                         connections on",
                        p.open_fds
                    )
                }
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
        ..Finding::default()
    })
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
            ..Finding::default()
        });
    }
    let reuse = num(snap, "net.ipv4.tcp_tw_reuse").unwrap_or(2);
    let accepted = snap.states.time_wait_accepted;
    if reuse == 1 && accepted > 0 && accepted * 2 >= snap.states.time_wait {
        out.push(Finding {
            limit: "tw-reuse",
            severity: Severity::Info,
            title: format!(
                "{accepted} of {} TIME_WAIT sockets are on accepted connections (local port is a \
                 listener): they hold no port and cost a few hundred bytes each; tcp_tw_reuse \
                 (1 here, as high-conn sets it) serves this host's own outgoing connections, \
                 and these need nothing",
                snap.states.time_wait
            ),
            evidence: vec![
                ev("net.ipv4.tcp_tw_reuse", reuse),
                ev("TIME_WAIT on listening ports", accepted),
                ev("TIME_WAIT sockets now", snap.states.time_wait),
            ],
            capacity: None,
            fix: Vec::new(),
            process_side: false,
            usage: None,
            ..Finding::default()
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
    let top = all
        .iter()
        .find(|f| f.severity >= Severity::Warning && f.limit != LOGIN_LOCKOUT);
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
    let lift = if f.process_side && !f.fix.is_empty() {
        format!("no profile lifts it: {}", f.fix.join("; "))
    } else if f.process_side {
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
