//! Watch: doctor's snapshots over time. From each new snapshot and the one before, the rates
//! of the kernel counters per second, the limits approaching (with the time they would take to
//! bind at the current trend), and the limits binding now; across the whole watch, one finding
//! per limit and subject (present while it binds, past once it stopped) and a proposal: profile
//! TOML that would lift what bound, with the evidence as comments. Pure: never performs I/O and
//! never applies anything (commands/watch.rs reads and prints).

use std::collections::BTreeMap;

use serde::Serialize;

use super::findings;
use super::gauges::{self, Gauge};
use super::proc::Snapshot;

/// The counters whose rates watch reports (netstat and snmp names).
pub const RATE_COUNTERS: &[&str] = &[
    "TcpExt.ListenOverflows",
    "TcpExt.ListenDrops",
    "TcpExt.TCPReqQFullDrop",
    "TcpExt.TCPSynRetrans",
    "TcpExt.TCPTimeWaitOverflow",
    "TcpExt.TCPAbortOnMemory",
    "Tcp.ActiveOpens",
    "Tcp.PassiveOpens",
    "Tcp.AttemptFails",
    "Tcp.EstabResets",
];

/// A gauge limit counts as binding from this share of its ceiling on (a process at 99 % of
/// its nofile is failing accept() or open() in bursts already).
const BINDS_AT: f64 = 0.99;
/// A limit is reported as approaching from this share on, when it grows.
const APPROACH_FROM: f64 = 0.5;

/// A limit that grows toward its ceiling.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Approach {
    pub limit: &'static str,
    pub subject: String,
    pub process: Option<String>,
    pub used: u64,
    pub ceiling: u64,
    pub usage: f64,
    /// Growth of `used` per second over the last interval.
    pub trend_per_s: f64,
    /// Seconds until `used` reaches the ceiling at that trend.
    pub binds_in_s: f64,
}

/// One interval: what changed between two snapshots.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct SampleRow {
    /// Seconds since the watch started, at the end of the interval.
    pub t_s: f64,
    /// Counter increase per second over the interval, by netstat/snmp name.
    pub rates: BTreeMap<String, f64>,
    pub approaching: Vec<Approach>,
    /// Ids of the findings binding in this interval (`accept-queue`, ...).
    pub binding: Vec<String>,
}

/// One name and value read, as doctor's evidence.
pub type Evidence = findings::Evidence;

/// A limit that bound while watching.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct WatchFinding {
    /// The doctor finding id: accept-queue, ephemeral-ports, time-wait-buckets, file-max,
    /// nofile, conntrack, tcp-mem.
    pub id: &'static str,
    /// `present` while it binds in the last interval, `past` once it stopped.
    pub state: &'static str,
    /// The listener (`127.0.0.1:8080`), destination or `pid N` it bound at; empty when
    /// machine-wide.
    pub subject: String,
    /// The process holding the listener, or the process at its limit.
    pub process: Option<String>,
    pub pid: Option<u32>,
    /// The peak rate of what shows it binding, per second (see `rate_of`).
    pub rate_per_s: f64,
    /// The counter or gauge `rate_per_s` is of (`TcpExt.ListenOverflows`).
    pub rate_of: String,
    /// When it first and last bound, seconds since the start.
    pub first_s: f64,
    pub last_s: f64,
    /// The figures when it bound last.
    pub evidence: Vec<Evidence>,
    /// The profile lines (TOML) or advice that lift it.
    pub fix: Vec<String>,
}

/// Follows snapshots and collects what bound.
#[derive(Debug, Default)]
pub struct Watcher {
    prev: Option<(f64, BTreeMap<String, i64>, Vec<Gauge>)>,
    pub samples: Vec<SampleRow>,
    pub findings: Vec<WatchFinding>,
}

#[allow(clippy::cast_precision_loss)]
fn per_s(delta: i64, dt: f64) -> f64 {
    if dt <= 0.0 {
        0.0
    } else {
        (delta as f64 / dt).max(0.0)
    }
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The text of a value from the system inside a TOML comment or a terminal line: on one line
/// (a newline in a process name would start a live TOML line) with every control character,
/// bidi and zero-width ones included, shown visibly, as `render::terminal` shows them.
#[must_use]
pub fn printable(s: &str) -> String {
    crate::render::terminal::one_line(s)
}

fn who(g: &Gauge) -> String {
    match (g.process.is_empty(), g.pid) {
        (false, Some(pid)) => format!("{} (pid {pid})", printable(&g.process)),
        (false, None) => printable(&g.process),
        (true, Some(pid)) => format!("pid {pid}"),
        (true, None) => String::new(),
    }
}

impl Watcher {
    #[must_use]
    pub fn new() -> Self {
        Watcher::default()
    }

    /// Takes the snapshot read at `t_s` seconds; from the second one on, records an interval.
    /// Returns the new interval's row and the findings that started or stopped binding in it.
    pub fn push(&mut self, t_s: f64, snap: &Snapshot) -> Option<&SampleRow> {
        let gauges = gauges::gauges(snap);
        let counters = snap.counters.clone();
        // The first snapshot only sets the starting point.
        let (t0, before, old) = self.prev.replace((t_s, counters.clone(), gauges.clone()))?;
        let dt = t_s - t0;
        let delta = |name: &str| {
            counters.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0)
        };
        let rates: BTreeMap<String, f64> = RATE_COUNTERS
            .iter()
            .filter(|c| counters.contains_key(**c))
            .map(|c| ((*c).to_string(), round(per_s(delta(c), dt))))
            .collect();
        let (approaching, mut bound) = approaching_and_bound(&gauges, &old, dt);
        // Accept queues: the overflow counter is the proof; a full queue names the listener.
        let overflows = per_s(delta("TcpExt.ListenOverflows"), dt);
        bound.extend(accept_queues_bound(&gauges, &old, overflows));
        // Limits only a counter shows binding: one machine-wide finding each.
        for (counter, id) in [
            ("TcpExt.TCPTimeWaitOverflow", "time-wait-buckets"),
            ("TcpExt.TCPAbortOnMemory", "tcp-mem"),
        ] {
            let r = per_s(delta(counter), dt);
            if r > 0.0 && !bound.iter().any(|b| b.id == id) {
                let g = gauges.iter().find(|g| g.limit == id).cloned();
                bound.push(Bound {
                    gauge: g.unwrap_or_else(|| machine_wide(id)),
                    id,
                    rate: r,
                    rate_of: counter.into(),
                });
            }
        }
        let mut ids = self.record(bound, snap, &rates, t0, t_s);
        let now = round(t_s);
        for f in &mut self.findings {
            if f.last_s < now {
                f.state = "past";
            }
        }
        ids.sort();
        ids.dedup();
        self.samples.push(SampleRow {
            t_s: now,
            rates,
            approaching,
            binding: ids,
        });
        self.samples.last()
    }

    /// Records each limit that bound in the interval `t0`..`t_s`: the finding of the same id
    /// and subject is present again (its peak rate kept, its evidence and fix the latest), or
    /// a new one starts. Returns the ids that bound.
    fn record(
        &mut self,
        bound: Vec<Bound>,
        snap: &Snapshot,
        rates: &BTreeMap<String, f64>,
        t0: f64,
        t_s: f64,
    ) -> Vec<String> {
        let doctor = findings::findings(snap);
        let mut ids = Vec::new();
        for Bound {
            gauge: g,
            id,
            rate,
            rate_of,
        } in bound
        {
            ids.push(id.to_string());
            let evidence = evidence(&g, id, rates);
            let fix = fix_for(&g, id, &doctor);
            let process = (!g.process.is_empty()).then(|| g.process.clone());
            match self
                .findings
                .iter_mut()
                .find(|f| f.id == id && f.subject == g.subject)
            {
                Some(f) => {
                    f.state = "present";
                    f.last_s = round(t_s);
                    f.rate_per_s = f.rate_per_s.max(round(rate));
                    f.evidence = evidence;
                    f.fix = fix;
                    if f.process.is_none() {
                        f.process = process;
                        f.pid = g.pid;
                    }
                }
                None => self.findings.push(WatchFinding {
                    id,
                    state: "present",
                    subject: g.subject.clone(),
                    process,
                    pid: g.pid,
                    rate_per_s: round(rate),
                    rate_of,
                    first_s: round(t0),
                    last_s: round(t_s),
                    evidence,
                    fix,
                }),
            }
        }
        ids
    }

    /// The profile lifting every limit that bound, as TOML to review; `None` when none bound.
    #[must_use]
    pub fn proposal(&self) -> Option<String> {
        proposal(&self.findings)
    }
}

/// A limit that bound in an interval: its gauge, its finding id, and the rate that shows it
/// binding with what that rate is of (a counter, or the gauge's growth).
struct Bound {
    gauge: Gauge,
    id: &'static str,
    rate: f64,
    rate_of: String,
}

/// A machine-wide gauge with nothing measured, for a limit only a counter shows binding.
fn machine_wide(limit: &'static str) -> Gauge {
    Gauge::machine_wide(limit, 0, 0, "")
}

/// From each gauge now and `old` (`dt` seconds before): those approaching their ceiling (from
/// half of it, growing; with the time to bind at that trend) and those binding (99 % of it;
/// accept queues aside, the overflow counter decides those).
fn approaching_and_bound(gauges: &[Gauge], old: &[Gauge], dt: f64) -> (Vec<Approach>, Vec<Bound>) {
    let trend = |g: &Gauge| {
        let was = old
            .iter()
            .find(|o| o.key() == g.key())
            .map_or(g.used, |o| o.used);
        #[allow(clippy::cast_precision_loss)]
        let d = g.used as f64 - was as f64;
        if dt > 0.0 { d / dt } else { 0.0 }
    };
    let mut approaching = Vec::new();
    let mut bound = Vec::new();
    for g in gauges {
        let usage = g.usage();
        let t = trend(g);
        let binds = g.ceiling > 0 && usage >= BINDS_AT;
        if !binds && t > 0.0 && usage >= APPROACH_FROM {
            #[allow(clippy::cast_precision_loss)]
            let left = (g.ceiling - g.used.min(g.ceiling)) as f64;
            approaching.push(Approach {
                limit: g.limit,
                subject: g.subject.clone(),
                process: (!g.process.is_empty()).then(|| g.process.clone()),
                used: g.used,
                ceiling: g.ceiling,
                usage: round(usage),
                trend_per_s: round(t),
                binds_in_s: round(left / t),
            });
        }
        if binds && g.limit != "accept-queue" {
            bound.push(Bound {
                gauge: g.clone(),
                id: g.limit,
                rate: t.max(0.0),
                rate_of: format!("{} growth", g.limit),
            });
        }
    }
    (approaching, bound)
}

/// The accept queues that bound: each full one, or when the counter rose but every queue has
/// drained, the fullest then or now; machine-wide when there is no listener to name.
fn accept_queues_bound(gauges: &[Gauge], old: &[Gauge], overflows: f64) -> Vec<Bound> {
    let queues: Vec<&Gauge> = gauges
        .iter()
        .filter(|g| g.limit == "accept-queue")
        .collect();
    let mut full: Vec<&Gauge> = queues
        .iter()
        .copied()
        .filter(|g| g.used >= g.ceiling)
        .collect();
    if full.is_empty() && overflows > 0.0 {
        // Overflowed in the interval but drained by now: the fullest listener then or now.
        let fullest = queues.iter().copied().max_by(|a, b| {
            let then = |g: &Gauge| {
                old.iter()
                    .find(|o| o.key() == g.key())
                    .map_or(0.0, Gauge::usage)
                    .max(g.usage())
            };
            then(a)
                .partial_cmp(&then(b))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        full.extend(fullest);
    }
    let bound = |gauge: Gauge| Bound {
        gauge,
        id: "accept-queue",
        rate: overflows,
        rate_of: "TcpExt.ListenOverflows".into(),
    };
    let mut out = Vec::new();
    if overflows > 0.0 || !full.is_empty() {
        out.extend(full.iter().map(|g| bound((*g).clone())));
        if full.is_empty() {
            out.push(bound(machine_wide("accept-queue")));
        }
    }
    out
}

fn evidence(g: &Gauge, id: &str, rates: &BTreeMap<String, f64>) -> Vec<Evidence> {
    let mut out = Vec::new();
    let ev = |name: &str, value: String| Evidence {
        name: name.to_string(),
        value,
    };
    if !g.subject.is_empty() {
        out.push(ev(
            match id {
                "accept-queue" => "listener",
                "ephemeral-ports" => "destination",
                _ => "subject",
            },
            printable(&g.subject),
        ));
    }
    let w = who(g);
    if !w.is_empty() {
        out.push(ev("process", w));
    }
    if g.ceiling > 0 {
        out.push(ev(
            "use",
            format!("{} of {} ({})", g.used, g.ceiling, g.ceiling_from),
        ));
    }
    for (name, rate) in rates {
        if *rate > 0.0 {
            out.push(ev(name, format!("{rate}/s")));
        }
    }
    out
}

/// What lifts a limit that bound: doctor's fix lines for it, except for an accept queue whose
/// listen() backlog is below somaxconn, where no sysctl helps.
fn fix_for(g: &Gauge, id: &str, doctor: &[findings::Finding]) -> Vec<String> {
    if id == "accept-queue" && g.ceiling_from == "listen() backlog" {
        return vec![format!(
            "the application's listen() backlog ({}) binds, not net.core.somaxconn: raise the \
             backlog in {}'s configuration",
            g.ceiling,
            if g.process.is_empty() {
                "the application".to_string()
            } else {
                printable(&g.process)
            }
        )];
    }
    let of = doctor.iter().filter(|f| f.limit == id);
    let mine = match g.pid {
        // The finding of this process (its title reads "(pid N)" when nothing else is known).
        Some(pid) if id == "nofile" => of
            .filter(|f| f.process.as_ref().is_some_and(|p| p.pid == pid))
            .find(|f| !f.fix.is_empty()),
        _ => of.clone().find(|f| !f.fix.is_empty()),
    };
    if let Some(f) = mine {
        return f.fix.clone();
    }
    match id {
        "accept-queue" if g.ceiling >= 65535 => vec![
            "net.core.somaxconn is at its 65535 ceiling already: run more listeners \
             (SO_REUSEPORT) or accept faster"
                .into(),
        ],
        "accept-queue" => vec![
            "[sysctl] \"net.core.somaxconn\" = 65535".into(),
            "[sysctl] \"net.ipv4.tcp_max_syn_backlog\" = { min = 65535 }".into(),
        ],
        _ => Vec::new(),
    }
}

/// One of doctor's fix lines as TOML: a key of a `[section]`, a `[[table]]` entry, or advice
/// (kept as a comment).
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Key { section: String, line: String },
    Table { header: String, lines: Vec<String> },
    Note(String),
}

fn parses(text: &str) -> bool {
    text.parse::<toml::Table>().is_ok()
}

fn piece(fix: &str) -> Piece {
    if let Some(rest) = fix.strip_prefix("[[")
        && let Some((header, body)) = rest.split_once("]]")
    {
        let lines: Vec<String> = body.split(", ").map(|l| l.trim().to_string()).collect();
        if parses(&format!("[[{header}]]\n{}\n", lines.join("\n"))) {
            return Piece::Table {
                header: header.to_string(),
                lines,
            };
        }
    } else if let Some(rest) = fix.strip_prefix('[')
        && let Some((section, body)) = rest.split_once(']')
    {
        let (line, note) = match body.split_once("  (") {
            Some((line, note)) => (line.trim(), Some(note.trim_end_matches(')'))),
            None => (body.trim(), None),
        };
        if parses(&format!("[{section}]\n{line}\n")) {
            let line = match note {
                Some(n) => format!("{line}  # {}", printable(n)),
                None => line.to_string(),
            };
            return Piece::Key {
                section: section.to_string(),
                line,
            };
        }
    }
    Piece::Note(fix.to_string())
}

/// The comment above a finding's lines in the proposal: what bound, where, of which process,
/// its peak rate and its use.
fn why(f: &WatchFinding) -> String {
    let mut why = format!("{} ({})", f.id, f.state);
    if !f.subject.is_empty() {
        why.push_str(&format!(" at {}", printable(&f.subject)));
    }
    if let Some(p) = &f.process {
        why.push_str(&format!(" of {}", printable(p)));
        if let Some(pid) = f.pid {
            why.push_str(&format!(" (pid {pid})"));
        }
    }
    why.push_str(&format!(": {}/s {} at peak", f.rate_per_s, f.rate_of));
    if let Some(u) = f.evidence.iter().find(|e| e.name == "use") {
        why.push_str(&format!("; {}", u.value));
    }
    format!("# {}", printable(&why))
}

/// The profile TOML lifting what bound, each key under a comment with its evidence.
#[must_use]
pub fn proposal(found: &[WatchFinding]) -> Option<String> {
    if found.is_empty() {
        return None;
    }
    let mut sections: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut tables: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for f in found {
        let why = why(f);
        for fix in &f.fix {
            match piece(fix) {
                Piece::Key { section, line } => {
                    let lines = sections.entry(section).or_default();
                    // One key once, however many findings ask for it.
                    let key = line.split('=').next().unwrap_or("").trim().to_string();
                    if seen.contains(&key) {
                        continue;
                    }
                    seen.push(key);
                    if !lines.contains(&why) {
                        lines.push(why.clone());
                    }
                    lines.push(line);
                }
                Piece::Table { header, lines } => {
                    let block = format!("{why}\n[[{header}]]\n{}\n", lines.join("\n"));
                    if !tables.contains(&block) {
                        tables.push(block);
                    }
                }
                Piece::Note(n) => {
                    let n = format!("{why}\n#   {}", printable(&n));
                    if !notes.contains(&n) {
                        notes.push(n);
                    }
                }
            }
        }
    }
    let mut out = String::from(
        "# Proposed by `netprofile watch` from what bound while it watched; nothing was applied.\n\
         # Review it, then `netprofile diff FILE` and `netprofile apply FILE`.\n\
         [profile]\n\
         name = \"watch-proposal\"\n\
         description = \"Lifts the limits netprofile watch saw binding\"\n",
    );
    for (section, lines) in &sections {
        out.push_str(&format!("\n[{section}]\n"));
        for l in lines {
            out.push_str(l);
            out.push('\n');
        }
    }
    for t in &tables {
        out.push('\n');
        out.push_str(t);
    }
    if !notes.is_empty() {
        out.push_str("\n# Not a profile setting:\n");
        for n in &notes {
            out.push_str(n);
            out.push('\n');
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::proc::{Listener, Process};

    fn snap(overflows: i64, queue: u64) -> Snapshot {
        let mut s = Snapshot::default();
        s.sysctl.insert("net.core.somaxconn".into(), "8".into());
        s.counters
            .insert("TcpExt.ListenOverflows".into(), overflows);
        s.listeners.push(Listener {
            address: "127.0.0.1".into(),
            port: 8080,
            queue,
            backlog: Some(8),
            inode: 1,
        });
        s.processes.push(Process {
            pid: 42,
            comm: "slow\nsrv".into(),
            ports: vec![8080],
            ..Process::default()
        });
        s
    }

    #[test]
    fn an_overflow_binds_then_becomes_past_and_proposes_somaxconn() {
        let mut w = Watcher::new();
        assert!(w.push(0.0, &snap(0, 0)).is_none());
        let row = w.push(1.0, &snap(500, 9)).expect("row").clone();
        assert_eq!(row.binding, ["accept-queue"]);
        assert_eq!(row.rates["TcpExt.ListenOverflows"], 500.0);
        assert_eq!(w.findings[0].state, "present");
        let row = w.push(2.0, &snap(500, 0)).expect("row").clone();
        assert!(row.binding.is_empty());
        let f = &w.findings[0];
        assert_eq!(
            (f.state, f.subject.as_str(), f.process.as_deref(), f.pid),
            ("past", "127.0.0.1:8080", Some("slow\nsrv"), Some(42))
        );
        let p = w.proposal().expect("proposal");
        let doc: toml::Table = p.parse().expect("the proposal is TOML");
        assert_eq!(
            doc["sysctl"]["net.core.somaxconn"].as_integer(),
            Some(65535)
        );
        // The process name's newline stays inside its comment, shown as `\n`.
        assert!(p.contains("of slow\\nsrv (pid 42)"), "{p}");
    }

    #[test]
    fn every_destination_and_a_client_near_its_nofile_are_followed() {
        // 100 ports per destination; two destinations grow toward them, and a client (no
        // listener) reaches its nofile.
        let snap = |a: u64, b: u64, fds: u64| {
            let mut s = Snapshot::default();
            s.sysctl
                .insert("net.ipv4.ip_local_port_range".into(), "1024\t1123".into());
            s.states.destinations = vec![("10.0.0.5:443".into(), a), ("10.0.0.6:443".into(), b)];
            s.states.busiest_destination = s.states.destinations.first().cloned();
            s.clients.push(Process {
                pid: 9,
                comm: "loadgen".into(),
                nofile_soft: Some(1000),
                open_fds: fds,
                ..Process::default()
            });
            s
        };
        let mut w = Watcher::new();
        assert!(w.push(0.0, &snap(60, 50, 800)).is_none());
        let row = w.push(2.0, &snap(70, 60, 1000)).expect("row").clone();
        let near: Vec<(&str, &str, f64, f64)> = row
            .approaching
            .iter()
            .map(|a| (a.limit, a.subject.as_str(), a.trend_per_s, a.binds_in_s))
            .collect();
        assert_eq!(
            near,
            [
                ("ephemeral-ports", "10.0.0.5:443", 5.0, 6.0),
                ("ephemeral-ports", "10.0.0.6:443", 5.0, 8.0),
            ]
        );
        assert_eq!(row.binding, ["nofile"]);
        let f = &w.findings[0];
        assert_eq!(
            (f.id, f.subject.as_str(), f.process.as_deref(), f.pid),
            ("nofile", "pid 9", Some("loadgen"), Some(9))
        );
        assert_eq!(f.rate_per_s, 100.0);
    }

    #[test]
    fn doctor_fix_lines_become_toml() {
        let cases = [
            (
                "[sysctl] \"net.core.somaxconn\" = 65535",
                Piece::Key {
                    section: "sysctl".into(),
                    line: "\"net.core.somaxconn\" = 65535".into(),
                },
            ),
            (
                "[ports] local_range = [1024, 65535]",
                Piece::Key {
                    section: "ports".into(),
                    line: "local_range = [1024, 65535]".into(),
                },
            ),
            (
                "[[limits]] domain = \"*\", type = \"-\", item = \"nofile\", value = 1048576",
                Piece::Table {
                    header: "limits".into(),
                    lines: vec![
                        "domain = \"*\"".into(),
                        "type = \"-\"".into(),
                        "item = \"nofile\"".into(),
                        "value = 1048576".into(),
                    ],
                },
            ),
            (
                "[sysctl] \"net.ipv4.tcp_mem\" = \"2 4 6\"  (only with the RAM for it)",
                Piece::Key {
                    section: "sysctl".into(),
                    line: "\"net.ipv4.tcp_mem\" = \"2 4 6\"  # only with the RAM for it".into(),
                },
            ),
            (
                "then start x again from a new login",
                Piece::Note("then start x again from a new login".into()),
            ),
        ];
        for (fix, want) in cases {
            assert_eq!(piece(fix), want, "{fix}");
        }
    }
}
