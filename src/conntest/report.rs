//! The connection test's report: worker results merged, failures mapped to the limit each one
//! points to, kernel counter deltas per host, and a one-line verdict naming the binding limit.
//! Pure: built from worker reports and counters, rendered as text or JSON (docs/test.md).

use std::collections::BTreeMap;

use serde::Serialize;

use super::engine::{Closer, Mode, WorkerReport};
use super::hist::Histogram;

/// The limit an errno points to.
#[must_use]
pub fn limit_of(errno: &str) -> &'static str {
    match errno {
        "EMFILE" => "nofile (per-process open files)",
        "ENFILE" => "fs.file-max (open files machine-wide)",
        "EADDRNOTAVAIL" => "ephemeral ports / TIME_WAIT",
        "ETIMEDOUT" => "SYN retransmits: accept queue or SYN queue overflow",
        "ECONNREFUSED" => "nothing listening, or the accept queue with tcp_abort_on_overflow",
        "ENOBUFS" | "ENOMEM" => "socket memory (net.ipv4.tcp_mem)",
        "ECONNRESET" => "the server reset the connection",
        _ => "other",
    }
}

/// The names `limit_of` gives, for reading a stored report back.
const FAILURE_LIMITS: &[&str] = &[
    "nofile (per-process open files)",
    "fs.file-max (open files machine-wide)",
    "ephemeral ports / TIME_WAIT",
    "SYN retransmits: accept queue or SYN queue overflow",
    "nothing listening, or the accept queue with tcp_abort_on_overflow",
    "socket memory (net.ipv4.tcp_mem)",
    "the server reset the connection",
    "other",
];

/// The limits a verdict names (Verdict::limit).
const VERDICT_LIMITS: &[&str] = &[
    "none",
    "nofile",
    "file-max",
    "ephemeral-ports",
    "accept-queue",
    "netdev-backlog",
    "syn-retransmits",
    "cpu",
    "refused",
    "tcp-mem",
    "server-closed",
    "other",
    "duration",
];

/// A report stored in a generation (`apply --verify`) is read back: its names are this
/// module's own, so each maps back to the static name (an unknown one, from a newer
/// netprofile, to `other`).
fn one_of<'de, D: serde::Deserializer<'de>>(
    d: D,
    known: &[&'static str],
) -> Result<&'static str, D::Error> {
    let name = <String as serde::Deserialize>::deserialize(d)?;
    Ok(known
        .iter()
        .copied()
        .find(|k| *k == name)
        .unwrap_or("other"))
}

/// A name spelled by this module. An alias, not `&'static str` in the struct, because serde's
/// derive would otherwise borrow it from the input (and refuse any reader but a `'static` one).
pub type Name = &'static str;

fn failure_limit<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    one_of(d, FAILURE_LIMITS)
}

fn verdict_limit<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    one_of(d, VERDICT_LIMITS)
}

fn command_test<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    one_of(d, &["test"])
}

fn exit_meaning_ok<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    one_of(d, &[crate::render::json::exit_meaning(0)])
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema, serde::Deserialize)]
pub struct Failure {
    pub errno: String,
    pub count: u64,
    #[serde(deserialize_with = "failure_limit")]
    pub limit: Name,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema, serde::Deserialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema, serde::Deserialize)]
pub struct Verdict {
    /// `none`, `nofile`, `file-max`, `ephemeral-ports`, `accept-queue`, `netdev-backlog`,
    /// `syn-retransmits`, `cpu`, `refused`, `tcp-mem`, `server-closed` (a hold whose
    /// connections the server closed or reset), `other` (failures with an errno no
    /// setting explains), or `duration` (the time limit cut the run before all connections
    /// were attempted, and no limit was hit).
    #[serde(deserialize_with = "verdict_limit")]
    pub limit: Name,
    pub text: String,
}

/// Settings of the hosts that the verdict quotes.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema, serde::Deserialize)]
pub struct Facts {
    pub nofile: Option<u64>,
    pub port_range: Option<(u64, u64)>,
    pub somaxconn: Option<u64>,
    pub tcp_tw_reuse: Option<u64>,
}

/// What was run: the part of a report that comes from the options, not the results.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema, serde::Deserialize)]
pub struct Settings {
    pub mode: Mode,
    /// `loopback`, `sandbox`, `remote` or `serve`.
    pub place: String,
    pub profile: Option<String>,
    pub target: String,
    pub connections: u64,
    pub concurrency: u32,
    pub workers: u32,
    pub closer: Closer,
    pub backlog: i32,
    pub accept_delay_us: u64,
    /// churn: the longest the run may take; serve: how long it serves.
    #[serde(default)]
    pub duration_ms: u64,
}

/// Counters that the kernel keeps for the whole machine, not per network namespace: socket
/// memory in pages (`sockstat.mem`, tcp_memory_allocated) and the per-CPU input-backlog drops
/// (softnet_stat). Every host of a sandbox reads the same numbers, so they are shown once.
pub const MACHINE_WIDE: &[&str] = &["sockstat.mem", "softnet.dropped"];

/// How `--closer` is written on the command line (never Rust's `Client`).
#[must_use]
pub fn closer_name(closer: Closer) -> &'static str {
    match closer {
        Closer::Client => "client",
        Closer::Server => "server",
    }
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema, serde::Deserialize)]
pub struct Report {
    pub schema: crate::render::json::Version,
    /// Always `test` (docs/json.md: every document names its command).
    #[serde(deserialize_with = "command_test")]
    pub command: Name,
    /// 0: a run that finished is a report, whatever it found.
    pub exit_code: i32,
    #[serde(deserialize_with = "exit_meaning_ok")]
    pub exit_meaning: Name,
    #[serde(flatten)]
    pub settings: Settings,
    pub attempted: u64,
    pub established: u64,
    pub held: u64,
    pub dropped: u64,
    pub failed: u64,
    pub accepted: u64,
    pub seconds: f64,
    pub connects_per_s: f64,
    pub latency: Latency,
    pub stalls: u64,
    pub failures: Vec<Failure>,
    /// Counter deltas (sockstat values as they are at the end), per host.
    pub counters: BTreeMap<String, BTreeMap<String, i64>>,
    /// The machine-wide counters (MACHINE_WIDE), once.
    pub machine: BTreeMap<String, i64>,
    /// True when the time limit stopped the run before all connections were attempted.
    pub cut_by_duration: bool,
    pub facts: Facts,
    pub verdict: Verdict,
    /// (upper edge in µs, count) of the connect latency histogram.
    pub latency_buckets: Vec<(u64, u64)>,
    /// (ms, established so far), summed over client workers.
    pub timeline: Vec<(u64, u64)>,
}

pub struct Inputs {
    pub settings: Settings,
    pub clients: Vec<WorkerReport>,
    pub servers: Vec<WorkerReport>,
    pub counters: BTreeMap<String, BTreeMap<String, i64>>,
    pub facts: Facts,
}

#[allow(clippy::cast_precision_loss)]
fn ms(us: u64) -> f64 {
    (us as f64 / 10.0).round() / 100.0
}

/// The client workers' results summed: latencies, counts, failures by errno, the longest ramp
/// and run, and the timeline.
#[derive(Default)]
struct ClientTotals {
    hist: Histogram,
    failures: BTreeMap<String, u64>,
    attempted: u64,
    established: u64,
    held: u64,
    dropped: u64,
    stalls: u64,
    ramp_ms: u64,
    elapsed_ms: u64,
    timeline: BTreeMap<u64, u64>,
}

fn client_totals(clients: &[WorkerReport]) -> ClientTotals {
    let mut sum = ClientTotals::default();
    for c in clients {
        sum.hist.merge(&Histogram::from(&c.latency));
        sum.attempted += c.attempted;
        sum.established += c.established;
        sum.held += c.held;
        sum.dropped += c.dropped;
        sum.stalls += c.stalls;
        sum.ramp_ms = sum.ramp_ms.max(c.ramp_ms);
        sum.elapsed_ms = sum.elapsed_ms.max(c.elapsed_ms);
        for (k, v) in &c.failures {
            *sum.failures.entry(k.clone()).or_default() += v;
        }
        // Per worker, the last value in each 100 ms slot; summed across workers.
        let mut own: BTreeMap<u64, u64> = BTreeMap::new();
        for (t, n) in &c.timeline {
            own.insert(t / 100 * 100, *n);
        }
        for (slot, n) in own {
            *sum.timeline.entry(slot).or_default() += n;
        }
    }
    sum
}

/// Moves the MACHINE_WIDE counters out of each host into one map (the largest reading).
fn take_machine_wide(
    counters: &mut BTreeMap<String, BTreeMap<String, i64>>,
) -> BTreeMap<String, i64> {
    let mut machine: BTreeMap<String, i64> = BTreeMap::new();
    for host in counters.values_mut() {
        for name in MACHINE_WIDE {
            if let Some(v) = host.remove(*name) {
                let slot = machine.entry((*name).to_string()).or_insert(v);
                *slot = (*slot).max(v);
            }
        }
    }
    machine
}

/// Failures by errno with the limit each points to, most frequent first.
fn failure_list(failures: &BTreeMap<String, u64>) -> Vec<Failure> {
    let mut list: Vec<Failure> = failures
        .iter()
        .map(|(errno, count)| Failure {
            limit: limit_of(errno.trim_start_matches("server ")),
            errno: errno.clone(),
            count: *count,
        })
        .collect();
    list.sort_by_key(|f| std::cmp::Reverse(f.count));
    list
}

#[must_use]
#[allow(clippy::cast_precision_loss)]
pub fn build(input: Inputs) -> Report {
    let ClientTotals {
        hist,
        mut failures,
        attempted,
        established,
        held,
        dropped,
        stalls,
        ramp_ms,
        elapsed_ms,
        timeline,
    } = client_totals(&input.clients);
    let accepted = input.servers.iter().map(|s| s.accepted).sum();
    for s in &input.servers {
        for (k, v) in &s.failures {
            *failures.entry(format!("server {k}")).or_default() += v;
        }
    }
    let failed = failures
        .iter()
        .filter(|(k, _)| !k.starts_with("server "))
        .map(|(_, v)| v)
        .sum();
    let seconds = match input.settings.mode {
        Mode::Hold => ramp_ms.max(1) as f64 / 1000.0,
        Mode::Churn => elapsed_ms.max(1) as f64 / 1000.0,
    };
    let failure_list = failure_list(&failures);
    let mut counters = input.counters;
    let machine = take_machine_wide(&mut counters);
    let cut_by_duration = !input.clients.is_empty() && attempted < input.settings.connections;
    let seconds = if input.settings.place == "serve" {
        input.settings.duration_ms.max(1) as f64 / 1000.0
    } else {
        seconds
    };
    let mut report = Report {
        schema: crate::render::json::Version,
        command: "test",
        exit_code: 0,
        exit_meaning: crate::render::json::exit_meaning(0),
        settings: input.settings,
        attempted,
        established,
        held,
        dropped,
        failed,
        accepted,
        seconds,
        connects_per_s: (established as f64 / seconds).round(),
        latency: Latency {
            p50_ms: ms(hist.quantile(0.5)),
            p99_ms: ms(hist.quantile(0.99)),
            max_ms: ms(hist.max()),
        },
        stalls,
        failures: failure_list,
        counters,
        machine,
        cut_by_duration,
        facts: input.facts,
        verdict: Verdict {
            limit: "none",
            text: String::new(),
        },
        latency_buckets: hist.buckets(),
        timeline: timeline.into_iter().collect(),
    };
    report.verdict = verdict(&report);
    report
}

fn counter(report: &Report, name: &str) -> i64 {
    report
        .counters
        .values()
        .filter_map(|c| c.get(name))
        .sum::<i64>()
        + report.machine.get(name).copied().unwrap_or(0)
}

/// When the client's TIME_WAIT sockets hold half its ephemeral range or more: the sentence
/// naming connect()'s search for a free port. connect() looks from a random offset and walks
/// the range; with most ports held each search walks far, so connects slow long before any
/// fails with EADDRNOTAVAIL (the seed: 24 384 TIME_WAIT in 28 232 ports, 809 connects/s).
fn port_search(r: &Report) -> Option<String> {
    let tw = counter(r, "sockstat.tw").max(0).unsigned_abs();
    let (lo, hi) = r.facts.port_range?;
    if hi < lo || r.settings.closer != Closer::Client {
        return None;
    }
    let size = hi - lo + 1;
    (tw.saturating_mul(2) >= size).then(|| {
        format!(
            "connect() searching a nearly full ephemeral range: {tw} TIME_WAIT sockets in \
             the {size}-port range {lo}-{hi} ({}% used), so each connect scanned for a free \
             port and the rate fell to {} connects/s. Widen net.ipv4.ip_local_port_range, set \
             net.ipv4.tcp_tw_reuse=1, or spread over more --addresses or --sources",
            tw.saturating_mul(100) / size,
            r.connects_per_s
        )
    })
}

/// What slowed a run that the time limit cut: the first cause the counters show.
fn slowed_by(r: &Report) -> String {
    let rate = r.connects_per_s;
    if let Some(text) = port_search(r) {
        return text;
    }
    if r.stalls > 0 {
        return format!(
            "{} connect{} took 1 s or more (SYN retransmits or a busy CPU), at {rate} connects/s",
            r.stalls,
            if r.stalls == 1 { "" } else { "s" }
        );
    }
    format!(
        "nothing the kernel counted: the rate ({rate} connects/s) was too low to attempt all in \
         time. Give a longer --duration, a higher --concurrency or more --workers"
    )
}

/// The sentence for a run the time limit cut.
fn cut_text(r: &Report) -> String {
    let limit = match r.settings.mode {
        Mode::Churn => format!("--duration {} s", r.settings.duration_ms as f64 / 1000.0),
        Mode::Hold => "the ramp time limit".to_string(),
    };
    format!(
        "stopped by {limit}: {} of {} connections attempted ({} established). Slowed by {}",
        r.attempted,
        r.settings.connections,
        r.established,
        slowed_by(r)
    )
}

/// The errnos the verdict maps to a limit of its own.
const MAPPED: &[&str] = &[
    "EMFILE",
    "ENFILE",
    "EADDRNOTAVAIL",
    "ETIMEDOUT",
    "ECONNREFUSED",
    "ENOBUFS",
    "ENOMEM",
];

/// Client failures whose errno points to no limit (ENETUNREACH: lo down, no route;
/// ECONNRESET: the server reset).
fn unmapped(r: &Report) -> impl Iterator<Item = &Failure> {
    r.failures
        .iter()
        .filter(|f| !f.errno.starts_with("server ") && !MAPPED.contains(&f.errno.as_str()))
}

fn other_failures(r: &Report) -> u64 {
    unmapped(r).map(|f| f.count).sum()
}

/// How many client connects failed with `errno`.
fn failed_with(r: &Report, errno: &str) -> u64 {
    r.failures
        .iter()
        .filter(|f| f.errno == errno)
        .map(|f| f.count)
        .sum::<u64>()
}

/// The counter readings the verdict weighs, read once from a report.
struct Evidence {
    /// ListenOverflows: accept queues that were full.
    overflows: u64,
    /// Packets the CPUs' input queues dropped (softnet_stat).
    backlog_drops: u64,
    /// Connects that took 1 s or more or timed out: each one had a SYN retransmitted.
    retransmitted: u64,
}

impl Evidence {
    fn of(r: &Report) -> Self {
        Evidence {
            overflows: counter(r, "ListenOverflows").max(0).unsigned_abs(),
            backlog_drops: counter(r, "softnet.dropped").max(0).unsigned_abs(),
            retransmitted: r.stalls + failed_with(r, "ETIMEDOUT"),
        }
    }
}

/// Names the limit that stopped the test, from failures, stalls and counters.
#[must_use]
pub fn verdict(r: &Report) -> Verdict {
    let ev = Evidence::of(r);
    let found = heaviest_limit(r, &ev);
    if let Some(closed) = server_closed(r, &ev, found.map(|(limit, _)| limit)) {
        return closed;
    }
    let Some((limit, _)) = found else {
        return no_limit(r);
    };
    let text = limit_text(r, &ev, limit);
    let text = if r.cut_by_duration {
        format!(
            "{text}. The run was also cut by the time limit: {} of {} connections attempted",
            r.attempted, r.settings.connections
        )
    } else {
        text
    };
    Verdict { limit, text }
}

/// Where the slow connects lost their SYN, as counts for (accept queue, input backlog,
/// unexplained SYN retransmits, nothing dropped): all of them go to the first place the
/// counters show.
fn slow_connects(r: &Report, ev: &Evidence) -> (u64, u64, u64, u64) {
    // A SYN retransmit means a packet was dropped; the counters say where.
    let syn_retrans = counter(r, "TCPSynRetrans").max(0).unsigned_abs();
    let retransmitted = ev.retransmitted;
    if ev.overflows > 0 {
        (retransmitted.max(1), 0, 0, 0)
    } else if retransmitted == 0 {
        // softnet_stat is machine-wide: drops without a slow connect are someone else's.
        (0, 0, 0, 0)
    } else if ev.backlog_drops > 0 {
        (0, retransmitted, 0, 0)
    } else if syn_retrans > 0 || failed_with(r, "ETIMEDOUT") > 0 {
        (0, 0, retransmitted, 0)
    } else {
        // Slow connects with no SYN retransmitted: the kernel was not dropping anything.
        (0, 0, 0, r.stalls)
    }
}

/// The limit with the most failed or slow connects behind it, and how many.
fn heaviest_limit(r: &Report, ev: &Evidence) -> Option<(&'static str, u64)> {
    let count = |e: &str| failed_with(r, e);
    let (accept_queue, netdev, unexplained, late) = slow_connects(r, ev);
    let searching = port_search(r).is_some();
    let candidates = [
        ("nofile", count("EMFILE")),
        ("file-max", count("ENFILE")),
        ("ephemeral-ports", count("EADDRNOTAVAIL")),
        ("accept-queue", accept_queue),
        ("netdev-backlog", netdev),
        ("syn-retransmits", unexplained),
        // Slow connects with no SYN lost while TIME_WAIT fills the range: connect()'s port
        // search, not the CPU.
        ("cpu", if searching { 0 } else { late }),
        ("ephemeral-ports", if searching { late } else { 0 }),
        ("refused", count("ECONNREFUSED")),
        ("tcp-mem", count("ENOBUFS") + count("ENOMEM")),
        ("other", other_failures(r)),
    ];
    candidates
        .iter()
        .filter(|(_, n)| *n > 0)
        .max_by_key(|(_, n)| *n)
        .copied()
}

/// A server that closes or resets held connections right after accepting them is its own
/// verdict: its queue filling and the SYN retransmits that follow are symptoms of it (a
/// server at its fd limit or its own connection cap), not of somaxconn. Only a limit of
/// this client's own side (`found`) outranks it.
fn server_closed(r: &Report, ev: &Evidence, found: Option<&str>) -> Option<Verdict> {
    let resets = failed_with(r, "ECONNRESET");
    let closed = r.dropped + resets;
    let client_side = matches!(
        found,
        Some("nofile" | "file-max" | "ephemeral-ports" | "tcp-mem")
    );
    if r.settings.mode != Mode::Hold || closed == 0 || client_side {
        return None;
    }
    let (overflows, retransmitted) = (ev.overflows, ev.retransmitted);
    Some(Verdict {
        limit: "server-closed",
        text: format!(
            "the server closed or reset connections right after accepting them: {} of {} \
             established were closed by it before the hold ended{}{}. The kernel let them \
             in; the server let them go: its own connection cap (nginx worker_connections, \
             haproxy maxconn, redis maxclients, max_connections) or its open-files limit \
             (EMFILE at accept). Run `netprofile doctor` where {} runs: it names the \
             process and the setting",
            r.dropped,
            r.established,
            if resets > 0 {
                format!(", {resets} connects were reset")
            } else {
                String::new()
            },
            if overflows > 0 || retransmitted > 0 {
                format!(
                    "; meanwhile its queue filled ({retransmitted} connects took 1 s or \
                     more, ListenOverflows +{overflows}), a symptom of the same"
                )
            } else {
                String::new()
            },
            r.settings.target
        ),
    })
}

/// The verdict when no limit was met: a serve run's tally, a run the time limit cut, or a
/// clean run.
fn no_limit(r: &Report) -> Verdict {
    if r.settings.place == "serve" {
        return Verdict {
            limit: "none",
            text: format!(
                "served {} connection{} in {} s, no listen queue overflowed",
                r.accepted,
                if r.accepted == 1 { "" } else { "s" },
                r.seconds
            ),
        };
    }
    if r.cut_by_duration {
        return Verdict {
            limit: "duration",
            text: cut_text(r),
        };
    }
    Verdict {
        limit: "none",
        text: format!(
            "no limit reached: {} of {} connections established{}, {} connects/s, no \
             failures and no connect took 1 s",
            r.established,
            r.attempted,
            if r.settings.mode == Mode::Hold {
                format!(", {} held", r.held)
            } else {
                String::new()
            },
            r.connects_per_s
        ),
    }
}

/// The sentence for the binding `limit`: what was seen and which setting to change.
fn limit_text(r: &Report, ev: &Evidence, limit: &str) -> String {
    let count = |e: &str| failed_with(r, e);
    let (overflows, backlog_drops, retransmitted) =
        (ev.overflows, ev.backlog_drops, ev.retransmitted);
    match limit {
        "nofile" => format!(
            "file descriptors: {} connects failed with EMFILE (too many open files) at a \
             per-process limit of {}. Raise nofile (limits.conf, systemd LimitNOFILE) or spread \
             over more --workers",
            count("EMFILE"),
            r.facts.nofile.map_or("?".into(), |n| n.to_string())
        ),
        "file-max" => format!(
            "file descriptors machine-wide: {} connects failed with ENFILE; raise fs.file-max",
            count("ENFILE")
        ),
        "ephemeral-ports" => ephemeral_ports_text(r),
        "accept-queue" => accept_queue_text(r, overflows, retransmitted),
        "netdev-backlog" => format!(
            "input backlog: {retransmitted} connects took 1 s or more (SYN retransmits) while \
             the CPUs' input queues dropped {backlog_drops} packets (/proc/net/softnet_stat) and \
             no listen queue overflowed. Bursts of packets, loopback included, queue per CPU up \
             to net.core.netdev_max_backlog; raise it (a global key) or lower --concurrency"
        ),
        "cpu" => format!(
            "CPU: {} connects took 1 s or more, yet the kernel retransmitted no SYN and no \
             queue overflowed, so the handshakes were done and the processes were not running \
             to see them ({} worker processes per side). connect() itself also slows once more \
             than half the ephemeral ports to one destination are in use: spread over more \
             --addresses",
            r.stalls, r.settings.workers
        ),
        "syn-retransmits" => format!(
            "SYN retransmits: {retransmitted} connects took 1 s or more, but no listen queue \
             overflowed and no input queue dropped: look at conntrack (`nf_conntrack: table \
             full` in dmesg, net.netfilter.nf_conntrack_max), the SYN queue \
             (net.ipv4.tcp_max_syn_backlog) and packet loss on the path"
        ),
        "refused" => format!(
            "{} connects were refused: nothing listening on {}, or the accept queue overflowed \
             with net.ipv4.tcp_abort_on_overflow=1",
            count("ECONNREFUSED"),
            r.settings.target
        ),
        "other" => format!(
            "failures that no setting explains: {} connects failed with {}. Check that the \
             path to {} works (an interface down, no route, a firewall)",
            other_failures(r),
            unmapped(r)
                .map(|f| format!("{} ({})", f.errno, f.count))
                .collect::<Vec<_>>()
                .join(", "),
            r.settings.target
        ),
        _ => {
            "socket memory: connects failed with ENOBUFS/ENOMEM; raise net.ipv4.tcp_mem".to_string()
        }
    }
}

/// Ephemeral ports: used up (EADDRNOTAVAIL), or, with no failure, connect()'s search through
/// a nearly full range.
fn ephemeral_ports_text(r: &Report) -> String {
    let unavailable = failed_with(r, "EADDRNOTAVAIL");
    if unavailable == 0 {
        return format!(
            "ephemeral ports: {} connects took 1 s or more with no SYN retransmitted; {}",
            r.stalls,
            port_search(r).unwrap_or_default()
        );
    }
    let range = r.facts.port_range.map_or_else(
        || "the ephemeral range".to_string(),
        |(lo, hi)| format!("the range {lo}-{hi} ({} ports)", hi - lo + 1),
    );
    format!(
        "ephemeral ports: {} connections succeeded, then {} failed with EADDRNOTAVAIL. \
         Each connection to one ip:port needs its own local port, {range} was used up, \
         and a closed port stays in TIME_WAIT for 60 s ({} TIME_WAIT sockets now). Widen \
         net.ipv4.ip_local_port_range, set net.ipv4.tcp_tw_reuse=1 (outgoing \
         connections), or spread over more addresses",
        r.established,
        unavailable,
        counter(r, "sockstat.tw")
    )
}

/// The accept queue: what it holds (the smaller of the listen backlog and somaxconn) and so
/// which of the two to raise.
fn accept_queue_text(r: &Report, overflows: u64, retransmitted: u64) -> String {
    // Against --target the built-in server's backlog is not the one that filled: the
    // target's server stopped accepting or accepts too slowly, and only where it runs can the
    // two be told apart.
    if r.settings.place == "remote" {
        return format!(
            "accept queue of the server at {target}: {retransmitted} connects took 1 s or more \
             or timed out (SYN retransmits: stalls of 1 s, 3 s, 7 s) and ListenOverflows rose \
             by {overflows} on this host. Its queue stayed full: the server stopped accepting \
             (at its open-files limit: EMFILE at accept(), which nginx logs as \"accept4() \
             failed (24: Too many open files)\"; or at its own connection cap) or accepts too \
             slowly; raising net.core.somaxconn does not help a server that does not accept. \
             Run `netprofile doctor` where {target} runs: it names the process and the setting",
            target = r.settings.target
        );
    }
    let backlog = i64::from(r.settings.backlog);
    let (holds, advice) = match r.facts.somaxconn.and_then(|s| i64::try_from(s).ok()) {
        Some(s) if backlog < s => (
            format!("min(listen backlog {backlog}, net.core.somaxconn {s}) = {backlog}"),
            format!(
                "the application's listen backlog ({backlog}) binds, not somaxconn: \
                 raise the backlog it passes to listen() (up to {s}); raising \
                 net.core.somaxconn alone changes nothing"
            ),
        ),
        Some(s) if s < backlog => (
            format!("min(listen backlog {backlog}, net.core.somaxconn {s}) = {s}"),
            format!(
                "net.core.somaxconn ({s}) binds: the kernel cuts the application's \
                 backlog {backlog} to it; raise net.core.somaxconn"
            ),
        ),
        Some(s) => (
            format!("min(listen backlog {backlog}, net.core.somaxconn {s}) = {s}"),
            "both bind: raise net.core.somaxconn and the application's listen \
             backlog together"
                .to_string(),
        ),
        None => (
            format!("listen backlog {backlog}"),
            "raise the application's listen backlog and net.core.somaxconn".to_string(),
        ),
    };
    format!(
        "accept queue: {retransmitted} connects took 1 s or more or timed out (SYN \
         retransmits: stalls of 1 s, 3 s, 7 s) and the server counted ListenOverflows \
         +{overflows}. The queue holds {holds}: {advice}; or accept faster"
    )
}

fn counter_line(counters: &BTreeMap<String, i64>) -> String {
    counters
        .iter()
        .filter(|(_, v)| **v != 0)
        .map(|(k, v)| {
            if k.starts_with("sockstat.") {
                format!("{k} {v}")
            } else {
                format!("{k} {v:+}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The human form of one report.
#[must_use]
pub fn human(r: &Report) -> String {
    let mut out = String::new();
    let mode = match r.settings.mode {
        Mode::Hold => "hold",
        Mode::Churn => "churn",
    };
    if r.settings.place == "serve" {
        out.push_str(&format!(
            "served {} for {} s, backlog {}, closer {}, {} worker{}\n",
            r.settings.target,
            r.seconds,
            r.settings.backlog,
            closer_name(r.settings.closer),
            r.settings.workers,
            if r.settings.workers == 1 { "" } else { "s" }
        ));
        for line in body(r) {
            out.push_str(&format!("  {:<12} {}\n", line.0, line.1));
        }
        out.push_str(&format!("verdict: {}\n", r.verdict.text));
        return out;
    }
    out.push_str(&format!(
        "{mode} over {} to {}{}, {} connections, concurrency {}, {} worker{}\n",
        r.settings.place,
        r.settings.target,
        r.settings
            .profile
            .as_ref()
            .map_or_else(String::new, |p| format!(" with {p}")),
        r.settings.connections,
        r.settings.concurrency,
        r.settings.workers,
        if r.settings.workers == 1 { "" } else { "s" }
    ));
    for line in body(r) {
        out.push_str(&format!("  {:<12} {}\n", line.0, line.1));
    }
    out.push_str(&format!("verdict: {}\n", r.verdict.text));
    out
}

fn body(r: &Report) -> Vec<(String, String)> {
    if r.settings.place == "serve" {
        let mut rows = vec![(
            "connections".to_string(),
            format!(
                "{} accepted, {} still open when stopped, {} dropped by the client",
                r.accepted, r.held, r.dropped
            ),
        )];
        rows.extend(counter_rows(r));
        return rows;
    }
    let mut rows = vec![
        (
            "connections".to_string(),
            format!(
                "{} attempted, {} established, {} failed{}",
                r.attempted,
                r.established,
                r.failed,
                if r.settings.mode == Mode::Hold {
                    format!(", {} held", r.held)
                } else {
                    String::new()
                }
            ),
        ),
        (
            "rate".to_string(),
            format!("{} connects/s over {:.2} s", r.connects_per_s, r.seconds),
        ),
        (
            "latency".to_string(),
            format!(
                "p50 {} ms, p99 {} ms, max {} ms; {} connect{} took >= 1 s",
                r.latency.p50_ms,
                r.latency.p99_ms,
                r.latency.max_ms,
                r.stalls,
                if r.stalls == 1 { "" } else { "s" }
            ),
        ),
    ];
    for f in &r.failures {
        rows.push((
            "failure".to_string(),
            format!("{} {} -> {}", f.errno, f.count, f.limit),
        ));
    }
    rows.extend(counter_rows(r));
    rows
}

/// One row per host, then the machine-wide counters once.
fn counter_rows(r: &Report) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    for (host, counters) in &r.counters {
        let line = counter_line(counters);
        rows.push((
            host.clone(),
            if line.is_empty() { "-".into() } else { line },
        ));
    }
    let line = counter_line(&r.machine);
    if !line.is_empty() {
        rows.push(("machine".to_string(), line));
    }
    rows
}

/// The median and the range of one measure over repeated runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    #[must_use]
    pub fn of(values: &[f64]) -> Spread {
        let mut v: Vec<f64> = values.to_vec();
        v.sort_by(f64::total_cmp);
        let median = match v.len() {
            0 => 0.0,
            n if n % 2 == 1 => v[n / 2],
            n => f64::midpoint(v[n / 2 - 1], v[n / 2]),
        };
        Spread {
            median,
            min: v.first().copied().unwrap_or(0.0),
            max: v.last().copied().unwrap_or(0.0),
        }
    }

    fn text(self) -> String {
        if (self.max - self.min).abs() < f64::EPSILON {
            format!("{}", self.median)
        } else {
            format!("{} ({}..{})", self.median, self.min, self.max)
        }
    }
}

/// One measure compared across the two sides.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct MetricChange {
    pub metric: &'static str,
    pub before: Spread,
    pub after: Spread,
    /// after / before of the medians; `null` when before is 0.
    pub ratio: Option<f64>,
    /// True only when the ranges of the two sides do not overlap over two or more runs each.
    pub significant: bool,
}

/// What a comparison may claim.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Change {
    /// Runs of each side.
    pub runs: usize,
    pub metrics: Vec<MetricChange>,
    pub significant: bool,
    pub text: String,
}

/// The measures a comparison judges, most telling first: how many connections a run held or
/// established, then how fast it connected (churn only).
#[allow(clippy::cast_precision_loss)]
fn measures(r: &Report) -> Vec<(&'static str, f64)> {
    match r.settings.mode {
        Mode::Hold => vec![("held", r.held as f64)],
        Mode::Churn => vec![
            ("established", r.established as f64),
            ("connects/s", r.connects_per_s),
        ],
    }
}

/// Compares repeated runs of two sides; a difference inside the spread is no change.
#[must_use]
pub fn change(before: &[Report], after: &[Report]) -> Change {
    let runs = before.len().min(after.len());
    let names: Vec<&'static str> = before
        .first()
        .map(|r| measures(r).into_iter().map(|m| m.0).collect())
        .unwrap_or_default();
    let pick = |side: &[Report], i: usize| -> Vec<f64> {
        side.iter()
            .filter_map(|r| measures(r).get(i).map(|m| m.1))
            .collect()
    };
    let metrics: Vec<MetricChange> = names
        .iter()
        .enumerate()
        .map(|(i, metric)| {
            let (b, a) = (Spread::of(&pick(before, i)), Spread::of(&pick(after, i)));
            MetricChange {
                metric,
                before: b,
                after: a,
                ratio: (b.median > 0.0).then(|| (a.median / b.median * 100.0).round() / 100.0),
                significant: runs >= 2 && (a.min > b.max || a.max < b.min),
            }
        })
        .collect();
    let significant = metrics.iter().any(|m| m.significant);
    let text = if let Some(m) = metrics.iter().find(|m| m.significant) {
        format!(
            "{}: {} {} -> {}{}, beyond the spread of {runs} runs each",
            if m.after.median > m.before.median {
                "gain"
            } else {
                "loss"
            },
            m.metric,
            m.before.text(),
            m.after.text(),
            m.ratio.map_or_else(String::new, |r| format!(" ({r:.2}x)"))
        )
    } else if runs >= 2 {
        format!(
            "no significant change: {} over {runs} runs each, the difference lies inside the \
             spread",
            metrics
                .iter()
                .map(|m| format!("{} {} vs {}", m.metric, m.before.text(), m.after.text()))
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        format!(
            "no gain claimed: one run each, so the noise is unknown ({}); `netprofile test \
             --compare P1 P2 --repeat 3` measures it",
            metrics
                .iter()
                .map(|m| format!("{} {} -> {}", m.metric, m.before.text(), m.after.text()))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Change {
        runs,
        metrics,
        significant,
        text,
    }
}

/// The run whose first measure is the median of its side (the one a comparison shows).
#[must_use]
pub fn median_run(runs: &[Report]) -> Option<&Report> {
    let mut sorted: Vec<&Report> = runs.iter().collect();
    sorted.sort_by(|a, b| {
        let key = |r: &Report| measures(r).iter().map(|m| m.1).collect::<Vec<f64>>();
        key(a)
            .partial_cmp(&key(b))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    sorted.get(sorted.len().saturating_sub(1) / 2).copied()
}

/// Two sides side by side (the median run of each), their verdicts, and what the repeated
/// runs allow to claim.
#[must_use]
pub fn compare(before_runs: &[Report], after_runs: &[Report]) -> String {
    let (Some(before), Some(after)) = (median_run(before_runs), median_run(after_runs)) else {
        return String::new();
    };
    let label = |r: &Report| {
        r.settings.profile.as_deref().map_or_else(
            || "kernel defaults".into(),
            crate::render::terminal::one_line,
        )
    };
    let (a, b) = (label(before), label(after));
    let rows_a = body(before);
    let rows_b = body(after);
    let width = rows_a
        .iter()
        .map(|r| r.1.len())
        .max()
        .unwrap_or(0)
        .max(a.len());
    let before_label = format!("before: {a}");
    let mut out = String::new();
    if before_runs.len() > 1 {
        out.push_str(&format!(
            "{} runs of each side; the median run of each is shown\n",
            before_runs.len()
        ));
    }
    out.push_str(&format!("{:<12} {before_label:<width$}  after: {b}\n", ""));
    let n = rows_a.len().max(rows_b.len());
    for i in 0..n {
        let key = rows_a
            .get(i)
            .or_else(|| rows_b.get(i))
            .map(|r| r.0.clone())
            .unwrap_or_default();
        out.push_str(&format!(
            "{key:<12} {:<width$}  {}\n",
            rows_a.get(i).map_or("", |r| r.1.as_str()),
            rows_b.get(i).map_or("", |r| r.1.as_str())
        ));
    }
    out.push_str(&format!("before: {}\n", before.verdict.text));
    out.push_str(&format!("after:  {}\n", after.verdict.text));
    out.push_str(&change(before_runs, after_runs).text);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(failures: &[(&str, u64)], stalls: u64, counters: &[(&str, i64)]) -> Report {
        let clients = vec![WorkerReport {
            attempted: 100,
            established: 100 - failures.iter().map(|f| f.1).sum::<u64>(),
            stalls,
            failures: failures
                .iter()
                .map(|(e, n)| ((*e).to_string(), *n))
                .collect(),
            ..WorkerReport::default()
        }];
        build(Inputs {
            settings: Settings {
                mode: Mode::Churn,
                place: "loopback".into(),
                profile: None,
                target: "127.0.0.1:1".into(),
                connections: 100,
                concurrency: 10,
                workers: 1,
                closer: Closer::Client,
                backlog: 4096,
                accept_delay_us: 0,
                duration_ms: 30_000,
            },
            clients,
            servers: Vec::new(),
            counters: BTreeMap::from([(
                "loopback".to_string(),
                counters
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), *v))
                    .collect(),
            )]),
            facts: Facts {
                nofile: Some(1024),
                port_range: Some((32768, 60999)),
                somaxconn: Some(128),
                tcp_tw_reuse: Some(2),
            },
        })
    }

    #[test]
    fn verdicts_by_table() {
        let cases: Vec<(Report, &str, &str)> = vec![
            (report(&[], 0, &[]), "none", "no limit reached"),
            (
                report(&[("EMFILE", 20)], 0, &[]),
                "nofile",
                "per-process limit of 1024",
            ),
            (report(&[("ENFILE", 5)], 0, &[]), "file-max", "fs.file-max"),
            (
                report(&[("EADDRNOTAVAIL", 30)], 0, &[("sockstat.tw", 28232)]),
                "ephemeral-ports",
                "the range 32768-60999 (28232 ports)",
            ),
            (
                report(&[], 40, &[("ListenOverflows", 90), ("TCPSynRetrans", 40)]),
                "accept-queue",
                "min(listen backlog 4096, net.core.somaxconn 128) = 128",
            ),
            (
                report(&[], 40, &[("softnet.dropped", 7), ("TCPSynRetrans", 40)]),
                "netdev-backlog",
                "net.core.netdev_max_backlog",
            ),
            (
                report(&[], 0, &[("softnet.dropped", 7)]),
                "none",
                "no limit reached",
            ),
            (
                report(&[("ETIMEDOUT", 3)], 0, &[("TCPSynRetrans", 9)]),
                "syn-retransmits",
                "conntrack",
            ),
            (report(&[], 12, &[]), "cpu", "retransmitted no SYN"),
            (
                report(&[("ECONNREFUSED", 100)], 0, &[]),
                "refused",
                "refused",
            ),
            (report(&[("ENOBUFS", 1)], 0, &[]), "tcp-mem", "tcp_mem"),
            // Never "no limit reached ... no failures" when connects failed.
            (
                report(&[("ENETUNREACH", 100)], 0, &[]),
                "other",
                "100 connects failed with ENETUNREACH (100)",
            ),
        ];
        for (r, limit, text) in cases {
            assert_eq!(r.verdict.limit, limit, "{}", r.verdict.text);
            assert!(r.verdict.text.contains(text), "{limit}: {}", r.verdict.text);
        }
    }

    /// A run as the client and server workers and the counters of each host saw it.
    struct Run {
        mode: Mode,
        connections: u64,
        attempted: u64,
        established: u64,
        held: u64,
        elapsed_ms: u64,
        backlog: i32,
        somaxconn: u64,
        stalls: u64,
        dropped: u64,
        hosts: Vec<(&'static str, Vec<(&'static str, i64)>)>,
    }

    impl Default for Run {
        fn default() -> Self {
            Run {
                mode: Mode::Churn,
                connections: 100,
                attempted: 100,
                established: 100,
                held: 0,
                elapsed_ms: 1000,
                backlog: 4096,
                somaxconn: 4096,
                stalls: 0,
                dropped: 0,
                hosts: vec![("loopback", Vec::new())],
            }
        }
    }

    impl Run {
        fn build(self) -> Report {
            build(Inputs {
                settings: Settings {
                    mode: self.mode,
                    place: "sandbox".into(),
                    profile: None,
                    target: "198.18.0.1:5001".into(),
                    connections: self.connections,
                    concurrency: 512,
                    workers: 1,
                    closer: Closer::Client,
                    backlog: self.backlog,
                    accept_delay_us: 0,
                    duration_ms: 30_000,
                },
                clients: vec![WorkerReport {
                    attempted: self.attempted,
                    established: self.established,
                    held: self.held,
                    stalls: self.stalls,
                    elapsed_ms: self.elapsed_ms,
                    ramp_ms: self.elapsed_ms,
                    dropped: self.dropped,
                    ..WorkerReport::default()
                }],
                servers: Vec::new(),
                counters: self
                    .hosts
                    .into_iter()
                    .map(|(h, c)| {
                        (
                            h.to_string(),
                            c.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                        )
                    })
                    .collect(),
                facts: Facts {
                    nofile: Some(1_048_576),
                    port_range: Some((32768, 60999)),
                    somaxconn: Some(self.somaxconn),
                    tcp_tw_reuse: Some(2),
                },
            })
        }
    }

    #[test]
    fn a_server_that_closes_held_connections_is_its_own_verdict_not_the_accept_queue() {
        // nginx at its fd limit or redis at maxclients: 100 of 600 held connections closed by
        // the server while its queue overflowed. The closes are the verdict; the overflows are
        // named as their symptom.
        let r = Run {
            mode: Mode::Hold,
            connections: 600,
            attempted: 600,
            established: 600,
            held: 500,
            dropped: 100,
            stalls: 40,
            hosts: vec![("loopback", vec![("ListenOverflows", 90)])],
            ..Run::default()
        }
        .build();
        assert_eq!(r.verdict.limit, "server-closed", "{}", r.verdict.text);
        assert!(
            r.verdict
                .text
                .contains("100 of 600 established were closed by it")
                && r.verdict
                    .text
                    .contains("ListenOverflows +90), a symptom of the same"),
            "{}",
            r.verdict.text
        );
        // The same overflows without a close stay an accept-queue verdict.
        let r = Run {
            mode: Mode::Hold,
            held: 600,
            stalls: 40,
            hosts: vec![("loopback", vec![("ListenOverflows", 90)])],
            ..Run::default()
        }
        .build();
        assert_eq!(r.verdict.limit, "accept-queue", "{}", r.verdict.text);
    }

    #[test]
    fn a_run_cut_by_duration_says_so_and_names_the_nearly_full_port_range() {
        // The seed: `test churn --sandbox -n 40000` stopped at 30 s with 24 384 done at
        // 809/s while 24 384 TIME_WAIT sockets sat in the 28 232-port range.
        let r = Run {
            connections: 40_000,
            attempted: 24_384,
            established: 24_384,
            elapsed_ms: 30_140,
            hosts: vec![
                ("client", vec![("sockstat.tw", 24_384)]),
                ("server", vec![]),
            ],
            ..Run::default()
        }
        .build();
        assert!(r.cut_by_duration);
        assert_eq!(r.verdict.limit, "duration", "{}", r.verdict.text);
        let text = &r.verdict.text;
        assert!(!text.contains("no limit reached"), "{text}");
        assert!(
            text.starts_with(
                "stopped by --duration 30 s: 24384 of 40000 connections attempted (24384 \
                 established). Slowed by connect() searching a nearly full ephemeral range: \
                 24384 TIME_WAIT sockets in the 28232-port range 32768-60999 (86% used)"
            ),
            "{text}"
        );
        assert!(text.contains("the rate fell to 809 connects/s"), "{text}");
        assert!(human(&r).contains(&format!("verdict: {text}\n")));
    }

    #[test]
    fn slow_connects_while_time_wait_fills_the_range_are_the_port_search_not_the_cpu() {
        // Seen on a busy 2-core machine: 16 896 of 40 000 in 57 s, 360 connects over 1 s and
        // no SYN retransmitted, 16 896 TIME_WAIT in 28 232 ports.
        let r = Run {
            connections: 40_000,
            attempted: 16_896,
            established: 16_896,
            elapsed_ms: 57_054,
            stalls: 360,
            hosts: vec![("client", vec![("sockstat.tw", 16_896)])],
            ..Run::default()
        }
        .build();
        assert_eq!(r.verdict.limit, "ephemeral-ports", "{}", r.verdict.text);
        assert!(
            r.verdict.text.starts_with(
                "ephemeral ports: 360 connects took 1 s or more with no SYN retransmitted; \
                 connect() searching a nearly full ephemeral range: 16896 TIME_WAIT sockets in \
                 the 28232-port range 32768-60999 (59% used)"
            ) && r.verdict.text.ends_with(
                "The run was also cut by the time limit: 16896 of 40000 connections attempted"
            ),
            "{}",
            r.verdict.text
        );
        // The same stalls with a mostly free range stay a CPU verdict.
        let r = Run {
            stalls: 12,
            hosts: vec![("client", vec![("sockstat.tw", 100)])],
            ..Run::default()
        }
        .build();
        assert_eq!(r.verdict.limit, "cpu", "{}", r.verdict.text);
    }

    #[test]
    fn a_run_cut_by_duration_without_a_kernel_cause_says_the_rate_was_too_low() {
        let r = Run {
            connections: 1_000_000,
            attempted: 5000,
            established: 5000,
            hosts: vec![("loopback", vec![("sockstat.tw", 5000)])],
            ..Run::default()
        }
        .build();
        assert_eq!(r.verdict.limit, "duration");
        assert!(
            r.verdict
                .text
                .contains("5000 of 1000000 connections attempted")
                && r.verdict.text.contains("too low to attempt all in time"),
            "{}",
            r.verdict.text
        );
        // All attempted: not cut, whatever the time.
        let r = Run::default().build();
        assert!(!r.cut_by_duration);
        assert_eq!(r.verdict.limit, "none");
    }

    #[test]
    fn accept_queue_advice_names_the_binding_term() {
        let overflow = || {
            vec![(
                "server",
                vec![("ListenOverflows", 90), ("TCPSynRetrans", 40)],
            )]
        };
        let cases = [
            (
                64,
                4096,
                "The queue holds min(listen backlog 64, net.core.somaxconn 4096) = 64: the \
                 application's listen backlog (64) binds, not somaxconn: raise the backlog it \
                 passes to listen() (up to 4096); raising net.core.somaxconn alone changes \
                 nothing",
            ),
            (
                4096,
                128,
                "= 128: net.core.somaxconn (128) binds: the kernel cuts the application's \
                 backlog 4096 to it; raise net.core.somaxconn",
            ),
            (512, 512, "both bind"),
        ];
        for (backlog, somaxconn, want) in cases {
            let r = Run {
                backlog,
                somaxconn,
                stalls: 40,
                hosts: overflow(),
                ..Run::default()
            }
            .build();
            assert_eq!(r.verdict.limit, "accept-queue");
            assert!(r.verdict.text.contains(want), "{}", r.verdict.text);
        }
    }

    #[test]
    fn machine_wide_counters_are_shown_once() {
        let r = Run {
            hosts: vec![
                (
                    "client",
                    vec![
                        ("sockstat.mem", 70),
                        ("softnet.dropped", 3),
                        ("ActiveOpens", 100),
                    ],
                ),
                (
                    "server",
                    vec![
                        ("sockstat.mem", 71),
                        ("softnet.dropped", 3),
                        ("PassiveOpens", 100),
                    ],
                ),
            ],
            ..Run::default()
        }
        .build();
        assert_eq!(r.machine["sockstat.mem"], 71);
        assert_eq!(r.machine["softnet.dropped"], 3);
        assert!(r.counters.values().all(|c| !c.contains_key("sockstat.mem")));
        let text = human(&r);
        assert_eq!(text.matches("sockstat.mem").count(), 1, "{text}");
        assert!(
            text.contains("  machine      sockstat.mem 71, softnet.dropped +3\n"),
            "{text}"
        );
        let text = compare(std::slice::from_ref(&r), std::slice::from_ref(&r));
        assert_eq!(
            text.lines().filter(|l| l.contains("sockstat.mem")).count(),
            1,
            "{text}"
        );
    }

    fn churn(established: u64, per_s_ms: u64) -> Report {
        Run {
            attempted: established,
            established,
            connections: established,
            elapsed_ms: per_s_ms,
            ..Run::default()
        }
        .build()
    }

    #[test]
    fn a_gain_is_claimed_only_beyond_the_spread() {
        // connects/s: 100 over 1000, 1100 and 900 ms = 100, 91, 111.
        let before = [churn(100, 1000), churn(100, 1100), churn(100, 900)];
        let inside = [churn(100, 950), churn(100, 1050), churn(100, 1000)];
        let c = change(&before, &inside);
        assert!(!c.significant);
        assert_eq!(
            c.text,
            "no significant change: established 100 vs 100, connects/s 100 (91..111) vs 100 \
             (95..105) over 3 runs each, the difference lies inside the spread"
        );
        let faster = [churn(100, 500), churn(100, 400), churn(100, 450)];
        let c = change(&before, &faster);
        assert!(c.significant);
        assert_eq!(
            c.text,
            "gain: connects/s 100 (91..111) -> 222 (200..250) (2.22x), beyond the spread of 3 \
             runs each"
        );
        let more = [churn(140, 1000), churn(141, 1000), churn(139, 1000)];
        assert!(
            change(&before, &more)
                .text
                .starts_with("gain: established 100 -> 140")
        );
        let c = change(&before[..1], &faster[..1]);
        assert!(!c.significant);
        assert!(
            c.text.starts_with("no gain claimed: one run each"),
            "{}",
            c.text
        );
        assert_eq!(median_run(&before).map(|r| r.connects_per_s), Some(100.0));
    }

    #[test]
    fn no_rust_debug_spellings_in_any_verdict_or_report() {
        let mut reports = vec![
            Run::default().build(),
            Run {
                mode: Mode::Hold,
                held: 100,
                ..Run::default()
            }
            .build(),
            Run {
                connections: 1000,
                ..Run::default()
            }
            .build(),
        ];
        reports.extend(
            [("EMFILE", 3), ("EADDRNOTAVAIL", 3), ("ECONNREFUSED", 3)]
                .iter()
                .map(|f| report(&[*f], 0, &[])),
        );
        for r in &reports {
            let mut serve = r.clone();
            serve.settings.place = "serve".into();
            for text in [
                human(r),
                human(&serve),
                compare(std::slice::from_ref(r), std::slice::from_ref(r)),
            ] {
                for debug in ["Client", "Server", "Churn", "Hold", "Some(", "None", "{:?}"] {
                    assert!(!text.contains(debug), "{debug:?} in\n{text}");
                }
            }
        }
    }
}
