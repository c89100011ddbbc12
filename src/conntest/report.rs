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

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub errno: String,
    pub count: u64,
    pub limit: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// `none`, `nofile`, `file-max`, `ephemeral-ports`, `accept-queue`, `netdev-backlog`,
    /// `syn-retransmits`, `cpu`, `refused`, `tcp-mem`.
    pub limit: &'static str,
    pub text: String,
}

/// Settings of the hosts that the verdict quotes.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Facts {
    pub nofile: Option<u64>,
    pub port_range: Option<(u64, u64)>,
    pub somaxconn: Option<u64>,
    pub tcp_tw_reuse: Option<u64>,
}

/// What was run: the part of a report that comes from the options, not the results.
#[derive(Debug, Clone, Serialize)]
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
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: u32,
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

#[must_use]
#[allow(clippy::cast_precision_loss)]
pub fn build(input: Inputs) -> Report {
    let mut hist = Histogram::default();
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    let (mut attempted, mut established, mut held, mut dropped, mut stalls) = (0, 0, 0, 0, 0);
    let mut ramp_ms = 0;
    let mut elapsed_ms = 0;
    let mut timeline: BTreeMap<u64, u64> = BTreeMap::new();
    for c in &input.clients {
        hist.merge(&Histogram::from(&c.latency));
        attempted += c.attempted;
        established += c.established;
        held += c.held;
        dropped += c.dropped;
        stalls += c.stalls;
        ramp_ms = ramp_ms.max(c.ramp_ms);
        elapsed_ms = elapsed_ms.max(c.elapsed_ms);
        for (k, v) in &c.failures {
            *failures.entry(k.clone()).or_default() += v;
        }
        // Per worker, the last value in each 100 ms slot; summed across workers.
        let mut own: BTreeMap<u64, u64> = BTreeMap::new();
        for (t, n) in &c.timeline {
            own.insert(t / 100 * 100, *n);
        }
        for (t, n) in own {
            *timeline.entry(t).or_default() += n;
        }
    }
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
    let mut failure_list: Vec<Failure> = failures
        .iter()
        .map(|(errno, count)| Failure {
            limit: limit_of(errno.trim_start_matches("server ")),
            errno: errno.clone(),
            count: *count,
        })
        .collect();
    failure_list.sort_by_key(|f| std::cmp::Reverse(f.count));
    let mut report = Report {
        schema: 1,
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
        counters: input.counters,
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
    report.counters.values().filter_map(|c| c.get(name)).sum()
}

/// Names the limit that stopped the test, from failures, stalls and counters.
#[must_use]
pub fn verdict(r: &Report) -> Verdict {
    let count = |e: &str| {
        r.failures
            .iter()
            .filter(|f| f.errno == e)
            .map(|f| f.count)
            .sum::<u64>()
    };
    let overflows = counter(r, "ListenOverflows").max(0).unsigned_abs();
    let backlog_drops = counter(r, "softnet.dropped").max(0).unsigned_abs();
    let retransmitted = r.stalls + count("ETIMEDOUT");
    // A SYN retransmit means a packet was dropped; the counters say where.
    let syn_retrans = counter(r, "TCPSynRetrans").max(0).unsigned_abs();
    let (accept_queue, netdev, unexplained, late) = if overflows > 0 {
        (retransmitted.max(1), 0, 0, 0)
    } else if retransmitted == 0 {
        // softnet_stat is machine-wide: drops without a slow connect are someone else's.
        (0, 0, 0, 0)
    } else if backlog_drops > 0 {
        (0, retransmitted, 0, 0)
    } else if syn_retrans > 0 || count("ETIMEDOUT") > 0 {
        (0, 0, retransmitted, 0)
    } else {
        // Slow connects with no SYN retransmitted: the kernel was not dropping anything.
        (0, 0, 0, r.stalls)
    };
    let candidates = [
        ("nofile", count("EMFILE")),
        ("file-max", count("ENFILE")),
        ("ephemeral-ports", count("EADDRNOTAVAIL")),
        ("accept-queue", accept_queue),
        ("netdev-backlog", netdev),
        ("syn-retransmits", unexplained),
        ("cpu", late),
        ("refused", count("ECONNREFUSED")),
        ("tcp-mem", count("ENOBUFS") + count("ENOMEM")),
    ];
    let Some((limit, _)) = candidates
        .iter()
        .filter(|(_, n)| *n > 0)
        .max_by_key(|(_, n)| *n)
        .copied()
    else {
        return Verdict {
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
        };
    };
    let text = match limit {
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
        "ephemeral-ports" => {
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
                count("EADDRNOTAVAIL"),
                counter(r, "sockstat.tw")
            )
        }
        "accept-queue" => {
            let backlog = match r.facts.somaxconn {
                Some(s) => format!(
                    "min(listen backlog {}, net.core.somaxconn {s}) = {}",
                    r.settings.backlog,
                    i64::from(r.settings.backlog).min(i64::try_from(s).unwrap_or(i64::MAX))
                ),
                None => format!("listen backlog {}", r.settings.backlog),
            };
            format!(
                "accept queue: {} connects took 1 s or more or timed out (SYN retransmits: \
                 stalls of 1 s, 3 s, 7 s) and the server counted ListenOverflows +{overflows}. \
                 The queue holds {backlog}; raise net.core.somaxconn and the application's \
                 listen backlog, or accept faster",
                retransmitted
            )
        }
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
        _ => {
            "socket memory: connects failed with ENOBUFS/ENOMEM; raise net.ipv4.tcp_mem".to_string()
        }
    };
    Verdict { limit, text }
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
    for (host, counters) in &r.counters {
        let line = counter_line(counters);
        rows.push((
            host.clone(),
            if line.is_empty() { "-".into() } else { line },
        ));
    }
    rows
}

/// Two reports side by side, and the gain.
#[must_use]
pub fn compare(before: &Report, after: &Report) -> String {
    let label = |r: &Report| {
        r.settings
            .profile
            .clone()
            .unwrap_or_else(|| "kernel defaults".into())
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
    let mut out = format!("{:<12} {before_label:<width$}  after: {b}\n", "");
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
    let gain = if before.established > 0 {
        #[allow(clippy::cast_precision_loss)]
        let g = after.established as f64 / before.established as f64;
        format!("{g:.2}x established")
    } else {
        "n/a".into()
    };
    out.push_str(&format!(
        "gain: {gain}; failures {} -> {}; stalls {} -> {}; {} -> {} connects/s\n",
        before.failed,
        after.failed,
        before.stalls,
        after.stalls,
        before.connects_per_s,
        after.connects_per_s
    ));
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
        ];
        for (r, limit, text) in cases {
            assert_eq!(r.verdict.limit, limit, "{}", r.verdict.text);
            assert!(r.verdict.text.contains(text), "{limit}: {}", r.verdict.text);
        }
    }
}
