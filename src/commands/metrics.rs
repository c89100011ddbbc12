//! `netprofile metrics`: the machine's limits, counters and drift in the Prometheus text format,
//! for node_exporter's textfile collector. Reads doctor's snapshot (doctor/proc.rs, gauges.rs)
//! and status's view of what is managed (commands/status.rs), all through `Root`; writes only
//! the `--output` file, atomically. Never takes the writer lock.

use std::path::Path;

use super::Output;
use crate::cli::Config;
use crate::doctor::findings::{self, Severity};
use crate::doctor::gauges::{self, Gauge};
use crate::doctor::proc::Snapshot;
use crate::error::{Error, Result};
use crate::profile::keys::KeyName;
use crate::render::metrics::{Family, Kind, render};
use crate::system::root::Root;
use crate::transaction::state;

/// Kernel counters exported as counters: (snapshot name, metric name, help).
const COUNTERS: &[(&str, &str, &str)] = &[
    (
        "TcpExt.ListenOverflows",
        "netprofile_tcp_listen_overflows_total",
        "Connections refused because a listener's accept queue was full (TcpExt ListenOverflows).",
    ),
    (
        "TcpExt.ListenDrops",
        "netprofile_tcp_listen_drops_total",
        "SYNs and ACKs dropped at a listener, overflows included (TcpExt ListenDrops).",
    ),
    (
        "TcpExt.TCPReqQFullDrop",
        "netprofile_tcp_syn_queue_full_drops_total",
        "SYNs dropped because the SYN queue was full (TcpExt TCPReqQFullDrop).",
    ),
    (
        "TcpExt.TCPReqQFullDoCookies",
        "netprofile_tcp_syn_queue_full_cookies_total",
        "SYN cookies sent because the SYN queue was full (TcpExt TCPReqQFullDoCookies).",
    ),
    (
        "TcpExt.TCPSynRetrans",
        "netprofile_tcp_syn_retransmits_total",
        "SYNs this host retransmitted: its connects waited 1 s or more (TcpExt TCPSynRetrans).",
    ),
    (
        "TcpExt.TCPTimeWaitOverflow",
        "netprofile_tcp_time_wait_overflows_total",
        "TIME_WAIT sockets destroyed early: tcp_max_tw_buckets was full (TcpExt TCPTimeWaitOverflow).",
    ),
    (
        "TcpExt.TCPAbortOnMemory",
        "netprofile_tcp_aborts_on_memory_total",
        "Connections aborted for lack of TCP memory (TcpExt TCPAbortOnMemory).",
    ),
    (
        "TcpExt.TCPBacklogDrop",
        "netprofile_tcp_backlog_drops_total",
        "Packets dropped because a socket's backlog was full (TcpExt TCPBacklogDrop).",
    ),
    (
        "Tcp.ActiveOpens",
        "netprofile_tcp_active_opens_total",
        "Connections this host opened (Tcp ActiveOpens).",
    ),
    (
        "Tcp.PassiveOpens",
        "netprofile_tcp_passive_opens_total",
        "Connections this host accepted (Tcp PassiveOpens).",
    ),
    (
        "Tcp.AttemptFails",
        "netprofile_tcp_attempt_fails_total",
        "Connection attempts that failed (Tcp AttemptFails).",
    ),
    (
        "Tcp.EstabResets",
        "netprofile_tcp_established_resets_total",
        "Established connections reset (Tcp EstabResets).",
    ),
    (
        "Tcp.RetransSegs",
        "netprofile_tcp_retransmitted_segments_total",
        "Segments retransmitted (Tcp RetransSegs).",
    ),
];

// The helps of ephemeral-ports and nofile below say 10 destinations and 100 fds.
const _: () = assert!(
    crate::doctor::proc::TOP_DESTINATIONS == 10 && crate::doctor::proc::CLIENT_MIN_FDS == 100
);

/// Each gauge limit's families: (finding id, use family, ceiling family, helps).
const LIMITS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "accept-queue",
        "netprofile_accept_queue",
        "netprofile_accept_queue_limit",
        "Connections waiting for accept() on a listener.",
        "The accept queue's size in force: min(listen() backlog, net.core.somaxconn).",
    ),
    (
        "ephemeral-ports",
        "netprofile_ephemeral_ports_used",
        "netprofile_ephemeral_ports_limit",
        "Local ephemeral ports in use toward a destination ip:port (established and TIME_WAIT), for the 10 most used destinations.",
        "Usable ephemeral ports per destination: net.ipv4.ip_local_port_range less reserved ports.",
    ),
    (
        "time-wait-buckets",
        "netprofile_time_wait_sockets",
        "netprofile_time_wait_limit",
        "TCP sockets in TIME_WAIT.",
        "The most TIME_WAIT sockets the kernel keeps (net.ipv4.tcp_max_tw_buckets).",
    ),
    (
        "file-max",
        "netprofile_files_allocated",
        "netprofile_files_limit",
        "File handles allocated on the whole machine (fs.file-nr).",
        "File handles the whole machine may allocate (fs.file-max).",
    ),
    (
        "nofile",
        "netprofile_process_open_files",
        "netprofile_process_nofile_limit",
        "Open file descriptors of a process holding a listening socket, or of another process with 100 or more open and 70 % of its limit.",
        "That process's soft open-files limit (RLIMIT_NOFILE): EMFILE at this many.",
    ),
    (
        "conntrack",
        "netprofile_conntrack_entries",
        "netprofile_conntrack_limit",
        "Connections tracked by netfilter (nf_conntrack_count).",
        "The conntrack table's size (net.netfilter.nf_conntrack_max).",
    ),
    (
        "tcp-mem",
        "netprofile_tcp_memory_pages",
        "netprofile_tcp_memory_limit_pages",
        "Pages of memory TCP socket buffers use (sockstat TCP mem).",
        "Pages at which TCP drops data: the high mark of net.ipv4.tcp_mem.",
    ),
];

/// The labels of a gauge's samples: what the limit is of, and who holds it.
fn labels(g: &Gauge) -> Vec<(&'static str, String)> {
    match g.limit {
        "accept-queue" => vec![
            ("listener", g.subject.clone()),
            ("process", g.process.clone()),
        ],
        "ephemeral-ports" => vec![("destination", g.subject.clone())],
        "nofile" => vec![
            ("pid", g.pid.map(|p| p.to_string()).unwrap_or_default()),
            ("process", g.process.clone()),
        ],
        _ => Vec::new(),
    }
}

/// One managed setting and whether the machine still holds it.
struct Drift {
    kind: &'static str,
    name: String,
    drifted: bool,
}

/// What the generations in force manage and whether each still holds: status's rules
/// (transaction/drift.rs), so metrics, status and check agree.
fn drift(root: &Root) -> Result<(Vec<Drift>, Vec<u64>)> {
    let all = state::generations(root)?;
    let pending = state::read_pending(root)?.map(|p| p.generation);
    let managed = crate::transaction::replay::managed(&all, pending);
    let mut out = Vec::new();
    for (key, want) in &managed.sysctl {
        let name = KeyName::parse(key).map_err(Error::State)?;
        let now = crate::system::read_sysctl(root, &name)?;
        let held = now.as_deref().is_some_and(|now| {
            crate::profile::value::same(key, now, want)
                || crate::transaction::replay::within(managed.bounds.get(key), now)
        });
        out.push(Drift {
            kind: "sysctl",
            name: key.clone(),
            drifted: !held,
        });
    }
    let edits = crate::transaction::drift::hand_edits(root, &managed)?;
    for path in managed.files.keys() {
        out.push(Drift {
            kind: "file",
            name: Root::display(path),
            drifted: edits.iter().any(|e| &e.path == path),
        });
    }
    for r in crate::transaction::drift::limit_rows(root, &managed)? {
        out.push(Drift {
            kind: "limit",
            name: format!("{} {} {}", r.domain, r.half, r.item),
            drifted: !r.in_sync,
        });
    }
    for r in crate::transaction::drift::systemd_rows(root, &managed)? {
        out.push(Drift {
            kind: "systemd",
            name: r.setting.to_string(),
            drifted: !r.in_sync,
        });
    }
    let in_force = crate::transaction::replay::in_force(&all, pending)
        .iter()
        .map(|g| g.number)
        .collect();
    Ok((out, in_force))
}

fn severity_value(s: Severity) -> f64 {
    match s {
        Severity::Ok => 0.0,
        Severity::Info => 1.0,
        Severity::Warning => 2.0,
        Severity::Critical => 3.0,
    }
}

/// Every family, from the snapshot, its findings and the drift of what is managed.
#[must_use]
fn families(snap: &Snapshot, drift: &[Drift], in_force: &[u64]) -> Vec<Family> {
    let mut out = drift_families(drift, in_force);
    out.extend(limit_families(snap));
    out.extend(judgement_families(snap));
    out.extend(counter_families(snap));
    out
}

/// A gauge family with one unlabelled sample.
fn single(name: &'static str, help: &'static str, value: f64) -> Family {
    let mut f = Family::new(name, Kind::Gauge, help);
    f.add(&[], value);
    f
}

/// What is managed: each setting's drift, how many drifted and are managed, and the
/// generations in force.
#[allow(clippy::cast_precision_loss)]
fn drift_families(drift: &[Drift], in_force: &[u64]) -> Vec<Family> {
    let mut per = Family::new(
        "netprofile_drift",
        Kind::Gauge,
        "1 when a setting the generations in force manage no longer holds on this machine, else 0.",
    );
    for d in drift {
        per.add(
            &[("kind", d.kind), ("name", &d.name)],
            f64::from(u8::from(d.drifted)),
        );
    }
    vec![
        per,
        single(
            "netprofile_drifted_settings",
            "Managed settings that no longer hold (what `netprofile status` counts as drifted).",
            drift.iter().filter(|d| d.drifted).count() as f64,
        ),
        single(
            "netprofile_managed_settings",
            "Settings the generations in force manage (sysctl keys, files, limits, systemd).",
            drift.len() as f64,
        ),
        single(
            "netprofile_generation",
            "The newest generation in force (0: none; `netprofile history` lists them).",
            in_force.last().copied().unwrap_or(0) as f64,
        ),
        single(
            "netprofile_generations_in_force",
            "Generations whose changes are in force.",
            in_force.len() as f64,
        ),
    ]
}

/// Each limit's use and ceiling (doctor's gauges), two families per limit.
#[allow(clippy::cast_precision_loss)]
fn limit_families(snap: &Snapshot) -> Vec<Family> {
    let mut out = Vec::new();
    let all = gauges::gauges(snap);
    for (id, used_name, ceiling_name, used_help, ceiling_help) in LIMITS {
        let mut used = Family::new(used_name, Kind::Gauge, used_help);
        let mut ceiling = Family::new(ceiling_name, Kind::Gauge, ceiling_help);
        for g in all.iter().filter(|g| g.limit == *id) {
            let l = labels(g);
            let l: Vec<(&'static str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
            used.add(&l, g.used as f64);
            ceiling.add(&l, g.ceiling as f64);
        }
        out.push(used);
        out.push(ceiling);
    }
    out
}

/// Doctor's judgement per limit: the worst finding of each id, and the fullest usage.
fn judgement_families(snap: &Snapshot) -> Vec<Family> {
    let found = findings::findings(snap);
    let mut severity = Family::new(
        "netprofile_limit_severity",
        Kind::Gauge,
        "Doctor's judgement of a limit from one sample: 0 ok, 1 info (counters since boot alone), 2 warning (close), 3 critical (full now).",
    );
    let mut usage = Family::new(
        "netprofile_limit_usage_ratio",
        Kind::Gauge,
        "How full a limit is (use / ceiling), the fullest of its kind.",
    );
    let mut ids: Vec<&str> = found.iter().map(|f| f.limit).collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        let of = || found.iter().filter(move |f| f.limit == id);
        let worst = of().map(|f| f.severity).max().unwrap_or(Severity::Ok);
        severity.add(&[("limit", id)], severity_value(worst));
        if let Some(u) = of().filter_map(|f| f.usage).reduce(f64::max) {
            usage.add(&[("limit", id)], u);
        }
    }
    vec![severity, usage]
}

/// The kernel counters, and the connections established now.
#[allow(clippy::cast_precision_loss)]
fn counter_families(snap: &Snapshot) -> Vec<Family> {
    let mut out = Vec::new();
    for (key, name, help) in COUNTERS {
        let mut f = Family::new(name, Kind::Counter, help);
        if let Some(v) = snap.counters.get(*key) {
            f.add(&[], *v as f64);
        }
        out.push(f);
    }
    let mut estab = Family::new(
        "netprofile_tcp_established",
        Kind::Gauge,
        "TCP connections established now (Tcp CurrEstab).",
    );
    if let Some(v) = snap.counters.get("Tcp.CurrEstab") {
        estab.add(&[], *v as f64);
    }
    out.push(estab);
    out
}

/// `netprofile metrics [--output FILE]`.
pub fn metrics(config: &Config, output: Option<&Path>) -> Result<Output> {
    let snap = Snapshot::read(&config.root)?;
    let (drift, in_force) = drift(&config.root)?;
    let text = render(&families(&snap, &drift, &in_force));
    let Some(path) = output else {
        return Ok(Output {
            code: 0,
            stdout: text,
            stderr: Vec::new(),
        });
    };
    // The textfile collector may read at any moment: write a temporary file in the same
    // folder and rename it over the target, so it sees the old or the new file, never half.
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Err(Error::Usage(format!(
            "--output {}: name a file",
            path.display()
        )));
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    crate::transaction::write_command_output(dir, name, &text)?;
    Ok(Output::default())
}
