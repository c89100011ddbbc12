//! The built-in connection test: reproduce "timeouts after a few thousand connections", name
//! the limit, and show what a profile gains.
//!
//! The orchestrator (this module) starts worker processes by re-executing the binary
//! (`netprofile __worker`), so per-process descriptor limits are passed by sharding; workers
//! run the engine (engine.rs) and print one JSON report. Places: loopback (default), a sandbox
//! of two private network namespaces joined by veth with 198.18.0.0/15 addresses, or a remote
//! server (`test serve` on one machine, `--target` on another). Every run is bounded in count
//! and time, and every child is killed when the orchestrator returns.

pub mod counters;
pub mod engine;
pub mod hist;
pub mod plot;
pub mod report;
pub mod sandbox;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::profile::keys::KeyName;
use crate::system::root::Root;
use engine::{ClientConfig, Closer, Mode, ServerConfig, WorkerReport};
use report::{Facts, Report};
pub use sandbox::holder;

/// Everything `netprofile test` was asked to do, resolved.
#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    pub connections: u64,
    pub duration_ms: u64,
    pub concurrency: u32,
    pub payload: usize,
    pub closer: Closer,
    pub backlog: i32,
    pub accept_delay_us: u64,
    /// Worker processes per side; 0: chosen by `resolve`.
    pub workers: u32,
    /// Destination addresses to spread over (127.0.0.1.. on loopback); 0: chosen by `resolve`.
    pub addresses: u8,
    /// Source addresses to spread over (127.0.1.1.. on loopback, 198.19.0.1.. in the
    /// sandbox); 0: let the kernel choose.
    pub sources: u8,
    /// Play a smaller per-process open-files limit in the workers.
    pub nofile: Option<u64>,
    pub connect_timeout_ms: u64,
    pub sandbox: bool,
    /// Applied inside both sandbox hosts (the "after" side of a comparison).
    pub profile: Option<String>,
    /// Applied first inside both sandbox hosts (the "before" side; default kernel defaults).
    pub baseline: Option<String>,
    /// A remote server started with `netprofile test serve`.
    pub target: Option<SocketAddrV4>,
    /// Draw a progress bar on stderr (a terminal only).
    pub progress: bool,
}

/// What a worker process is told to do (passed as JSON on its command line).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema, Deserialize)]
pub enum WorkerTask {
    Client {
        config: ClientConfig,
        nofile: Option<u64>,
        /// Print `progress ATTEMPTED ESTABLISHED` lines while running.
        progress: bool,
    },
    Server {
        config: ServerConfig,
        nofile: Option<u64>,
    },
}

/// What a worker prints when it is done.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema, Deserialize)]
pub struct WorkerOutput {
    pub report: WorkerReport,
    pub nofile: u64,
    /// The settings of the worker's own network namespace.
    pub facts: Facts,
}

/// Runs inside `netprofile __worker JSON`.
pub fn worker(root: &Root, task_json: &str) -> Result<String> {
    let task: WorkerTask = serde_json::from_str(task_json)
        .map_err(|e| Error::Usage(format!("bad worker task: {e}")))?;
    let io = |e: std::io::Error| Error::State(format!("worker: {e}"));
    let output = match task {
        WorkerTask::Client {
            config,
            nofile,
            progress,
        } => {
            let limit = engine::set_nofile(nofile);
            // Wait for the start: the orchestrator closes our stdin once every client worker
            // is running, so process start-up is not part of the ramp they measure together.
            let _ = std::io::stdin().read_line(&mut String::new());
            let mut show = |attempted: u64, established: u64| {
                if progress {
                    println!("progress {attempted} {established}");
                    let _ = std::io::stdout().flush();
                }
            };
            WorkerOutput {
                report: engine::run_client(&config, &mut show).map_err(io)?,
                nofile: limit,
                facts: own_facts(root),
            }
        }
        WorkerTask::Server { config, nofile } => {
            let limit = engine::set_nofile(nofile);
            let mut listeners = Vec::new();
            for addr in &config.listen {
                listeners.push(
                    engine::listener(*addr, config.backlog)
                        .map_err(|e| Error::State(format!("cannot listen on {addr}: {e}")))?,
                );
            }
            // Tell the orchestrator we listen; it stops us by closing our stdin.
            println!("ready");
            let _ = std::io::stdout().flush();
            let stdin = std::io::stdin();
            let report = engine::run_server(&config, listeners, &stdin).map_err(io)?;
            WorkerOutput {
                report,
                nofile: limit,
                facts: own_facts(root),
            }
        }
    };
    Ok(serde_json::to_string(&output).unwrap_or_default() + "\n")
}

/// A worker child, killed if still running when dropped.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Worker {
    fn spawn(root: &Root, task: &WorkerTask, netns: Option<&sandbox::Host>) -> Result<Worker> {
        let exe = std::env::current_exe().map_err(|e| Error::State(format!("current_exe: {e}")))?;
        let mut command = Command::new(exe);
        command
            .arg("--root")
            .arg(root.base())
            .arg("__worker")
            .arg(serde_json::to_string(task).unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(host) = netns {
            host.enter_on_spawn(&mut command);
        }
        let mut child = command
            .spawn()
            .map_err(|e| Error::State(format!("cannot start a worker: {e}")))?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Ok(Worker {
            child,
            stdin,
            stdout,
        })
    }

    fn line(&mut self) -> Result<String> {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|e| Error::State(format!("worker: {e}")))?;
        if line.is_empty() {
            return Err(Error::State(
                "a worker stopped without a report (see the message above)".into(),
            ));
        }
        Ok(line)
    }

    /// Waits for the worker's report; `progress` gets its `progress` lines' established count.
    fn finish_with(mut self, progress: &dyn Fn(u64)) -> Result<WorkerOutput> {
        drop(self.stdin.take());
        loop {
            let line = self.line()?;
            if let Some(rest) = line.strip_prefix("progress ") {
                if let Some(n) = rest.split_whitespace().nth(1).and_then(|n| n.parse().ok()) {
                    progress(n);
                }
                continue;
            }
            return serde_json::from_str(&line)
                .map_err(|e| Error::State(format!("worker report: {e}")));
        }
    }

    fn finish(self) -> Result<WorkerOutput> {
        self.finish_with(&|_| {})
    }
}

/// A free TCP port on `addr`, chosen by the kernel.
fn free_port(addr: Ipv4Addr) -> Result<u16> {
    let l = std::net::TcpListener::bind(SocketAddrV4::new(addr, 0))
        .map_err(|e| Error::State(format!("cannot find a free port on {addr}: {e}")))?;
    Ok(l.local_addr().map(|a| a.port()).unwrap_or(0))
}

fn split(total: u64, parts: u32, i: u32) -> u64 {
    let parts = u64::from(parts.max(1));
    total / parts + u64::from(u64::from(i) < total % parts)
}

/// The settings of this process's own network namespace that the verdict quotes. Each worker
/// reports them, since a sandbox host's namespace cannot be read from outside.
fn own_facts(root: &Root) -> Facts {
    let read = |key: &str| {
        KeyName::parse(key)
            .ok()
            .and_then(|k| crate::system::read_sysctl(root, &k).ok().flatten())
    };
    let num = |key: &str| read(key).and_then(|v| v.parse().ok());
    Facts {
        nofile: None,
        port_range: read("net.ipv4.ip_local_port_range").and_then(|v| {
            let (lo, hi) = v.split_once(' ')?;
            Some((lo.parse().ok()?, hi.parse().ok()?))
        }),
        somaxconn: num("net.core.somaxconn"),
        tcp_tw_reuse: num("net.ipv4.tcp_tw_reuse"),
    }
}

/// Connections one worker is given at most: 90 % of the per-process hard limit, less a few
/// descriptors of its own. The margin also covers the server side, where SO_REUSEPORT spreads
/// connections by hash, not evenly (about 18 000 ± 130 per worker at 1 000 000 over 56).
fn per_worker(hard_nofile: u64) -> u64 {
    (hard_nofile.saturating_sub(32) / 10 * 9).max(1)
}

/// Connections one destination address is given at most: 20 % of the even half of the
/// ephemeral range. connect() tries even ports first and, once they are used, scans them for
/// every new connection (see docs/test.md): the rate falls from over 10 000/s to under 1 000/s
/// near a full half, and each used port it passes costs a lookup well before that. 20 % is
/// the C reference's best address count at 300 000 (benches/conn_best.sh: 48 destinations
/// against 12 at 80 %); a destination is only one more listener per server worker.
fn per_address(port_range: (u64, u64)) -> u64 {
    let size = port_range.1.saturating_sub(port_range.0) + 1;
    (size / 2 / 5).max(1)
}

/// Connects in flight per worker in a hold that chose its own workers: what the C reference
/// runs per process (benches/conn_best.sh), enough that every epoll_wait returns a batch.
const IN_FLIGHT_PER_WORKER: u32 = 256;

/// Fills in what the user left to netprofile (0 workers, 0 addresses, so that
/// `test hold -n 1000000` needs no tuning flags): a hold gets enough workers that each fits in
/// the per-process hard open-files limit (the real one: a limit played with --nofile or a
/// profile is what the test is about, so it is not worked around), enough destination
/// addresses that each stays in the fast part of the ephemeral range, and
/// `IN_FLIGHT_PER_WORKER` connects in flight per worker unless --concurrency says more. Churn keeps one of each, as the seed's
/// demonstrations of running out of ports need.
pub fn resolve(root: &Root, opts: &Options) -> Options {
    let mut o = opts.clone();
    let hold = o.mode == Mode::Hold;
    if o.workers == 0 {
        o.workers = if hold {
            let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
                .maximum
                .unwrap_or(u64::MAX);
            u32::try_from(o.connections.div_ceil(per_worker(hard)))
                .unwrap_or(u32::MAX)
                .clamp(1, 1000)
        } else {
            1
        };
        if hold {
            o.concurrency = o
                .concurrency
                .max(o.workers.saturating_mul(IN_FLIGHT_PER_WORKER));
        }
    }
    if o.addresses == 0 {
        o.addresses = if hold && o.target.is_none() {
            let range = own_facts(root).port_range.unwrap_or((32768, 60999));
            u8::try_from(o.connections.div_ceil(per_address(range)))
                .unwrap_or(u8::MAX)
                .clamp(1, 250)
        } else {
            1
        };
    }
    o
}

/// Runs one test and returns its report.
pub fn run(root: &Root, opts: &Options) -> Result<Report> {
    let opts = &resolve(root, opts);
    if opts.sandbox {
        return sandbox::run(root, opts);
    }
    let workers = opts.workers.max(1);
    let (targets, place, counters_before, mut servers) = if let Some(target) = opts.target {
        (
            consecutive(target, opts.addresses),
            "remote",
            counters::read(root, "proc/net"),
            Vec::new(),
        )
    } else {
        let port = free_port(Ipv4Addr::LOCALHOST)?;
        let listen: Vec<SocketAddrV4> = (1..=opts.addresses.max(1))
            .map(|i| SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, i), port))
            .collect();
        let servers = start_servers(root, opts, &listen, workers, None)?;
        (
            listen,
            "loopback",
            counters::read(root, "proc/net"),
            servers,
        )
    };
    // Loopback sources for a loopback server, ours or a `test serve` one on 127.0.0.0/8.
    let sources: Vec<Ipv4Addr> = if targets.iter().all(|t| t.ip().is_loopback()) {
        (1..=opts.sources)
            .map(|i| Ipv4Addr::new(127, 0, 1, i))
            .collect()
    } else {
        Vec::new()
    };
    let clients = run_clients(root, opts, &targets, &sources, workers, None)?;
    let server_reports = stop_servers(&mut servers)?;
    let mut counters = BTreeMap::new();
    counters.insert(
        place.to_string(),
        counters::delta(&counters_before, &counters::read(root, "proc/net")),
    );
    Ok(assemble(
        settings(opts, place, None, &targets),
        clients,
        server_reports,
        counters,
    ))
}

/// `addresses` destinations from `first` on (`--target 127.0.0.1:P --addresses 2`: .1 and .2),
/// for a server listening on several consecutive addresses.
fn consecutive(first: SocketAddrV4, addresses: u8) -> Vec<SocketAddrV4> {
    let base = u32::from(*first.ip());
    (0..u32::from(addresses.max(1)))
        .map_while(|i| base.checked_add(i))
        .map(|a| SocketAddrV4::new(Ipv4Addr::from(a), first.port()))
        .collect()
}

fn server_task(opts: &Options, listen: &[SocketAddrV4]) -> WorkerTask {
    WorkerTask::Server {
        config: ServerConfig {
            mode: opts.mode,
            listen: listen.to_vec(),
            backlog: opts.backlog,
            accept_delay_us: opts.accept_delay_us,
            closer: opts.closer,
            // Bounded: the clients' longest run (a hold may ramp for up to RAMP_CAP) plus a
            // margin, so an orphaned server still stops by itself.
            max_ms: opts.duration_ms
                + opts.connect_timeout_ms
                + 60_000
                + match opts.mode {
                    Mode::Hold => u64::try_from(engine::RAMP_CAP.as_millis()).unwrap_or(0),
                    Mode::Churn => 0,
                },
        },
        nofile: opts.nofile,
    }
}

fn start_servers(
    root: &Root,
    opts: &Options,
    listen: &[SocketAddrV4],
    workers: u32,
    host: Option<&sandbox::Host>,
) -> Result<Vec<Worker>> {
    let task = server_task(opts, listen);
    let mut servers = Vec::new();
    for _ in 0..workers {
        let mut w = Worker::spawn(root, &task, host)?;
        let line = w.line()?;
        if line.trim() != "ready" {
            return Err(Error::State(format!("server worker: {line}")));
        }
        servers.push(w);
    }
    Ok(servers)
}

fn stop_servers(servers: &mut Vec<Worker>) -> Result<Vec<WorkerOutput>> {
    servers.drain(..).map(Worker::finish).collect()
}

fn run_clients(
    root: &Root,
    opts: &Options,
    targets: &[SocketAddrV4],
    sources: &[Ipv4Addr],
    workers: u32,
    host: Option<&sandbox::Host>,
) -> Result<Vec<WorkerOutput>> {
    let mut clients = Vec::new();
    for i in 0..workers {
        let task = WorkerTask::Client {
            config: ClientConfig {
                mode: opts.mode,
                targets: targets.to_vec(),
                sources: sources.to_vec(),
                connections: split(opts.connections, workers, i),
                concurrency: (opts.concurrency / workers).max(1),
                payload: opts.payload,
                closer: opts.closer,
                duration_ms: opts.duration_ms,
                connect_timeout_ms: opts.connect_timeout_ms,
            },
            nofile: opts.nofile,
            progress: opts.progress,
        };
        clients.push(Worker::spawn(root, &task, host)?);
    }
    // Start them together (each waits for its stdin to close).
    for c in &mut clients {
        drop(c.stdin.take());
    }
    if !opts.progress {
        return clients.into_iter().map(Worker::finish).collect();
    }
    // One reader thread per worker; the bar shows the sum of what each has established.
    let counts: Vec<std::sync::atomic::AtomicU64> = (0..clients.len())
        .map(|_| std::sync::atomic::AtomicU64::new(0))
        .collect();
    let bar = indicatif::ProgressBar::new(opts.connections);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:40}] {pos}/{len} established",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(i, w)| {
                let counts = &counts;
                scope.spawn(move || {
                    w.finish_with(&|n| counts[i].store(n, std::sync::atomic::Ordering::Relaxed))
                })
            })
            .collect();
        while !handles
            .iter()
            .all(std::thread::ScopedJoinHandle::is_finished)
        {
            bar.set_position(
                counts
                    .iter()
                    .map(|c| c.load(std::sync::atomic::Ordering::Relaxed))
                    .sum(),
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::State("a progress reader panicked".into())))
            })
            .collect::<Result<Vec<_>>>()
    });
    bar.finish_and_clear();
    results
}

/// What was run, for the report.
fn settings(
    opts: &Options,
    place: &str,
    profile: Option<String>,
    targets: &[SocketAddrV4],
) -> report::Settings {
    let target = match targets {
        [one] => one.to_string(),
        many => format!(
            "{} addresses {}..{}",
            many.len(),
            many.first().map(ToString::to_string).unwrap_or_default(),
            many.last().map(ToString::to_string).unwrap_or_default()
        ),
    };
    report::Settings {
        mode: opts.mode,
        place: place.to_string(),
        profile,
        target,
        connections: opts.connections,
        concurrency: opts.concurrency,
        workers: opts.workers.max(1),
        closer: opts.closer,
        backlog: opts.backlog,
        accept_delay_us: opts.accept_delay_us,
        duration_ms: opts.duration_ms,
    }
}

fn assemble(
    settings: report::Settings,
    clients: Vec<WorkerOutput>,
    servers: Vec<WorkerOutput>,
    counters: BTreeMap<String, BTreeMap<String, i64>>,
) -> Report {
    // Workers start one after another: put their ramps on one clock, from the first connect of
    // any worker to the last one settled, so the rate is the machine's, not one worker's.
    let mut clients = clients;
    let first = clients
        .iter()
        .map(|c| c.report.started_mono_us)
        .filter(|s| *s > 0)
        .min();
    if let Some(first) = first {
        for c in &mut clients {
            let late_ms = c.report.started_mono_us.saturating_sub(first) / 1000;
            if c.report.started_mono_us > 0 {
                c.report.ramp_ms += late_ms;
                c.report.elapsed_ms += late_ms;
            }
        }
    }
    // The client side knows its port range and limit, the server side its somaxconn.
    let client = clients.first().map(|c| &c.facts);
    let facts = Facts {
        nofile: clients.iter().map(|c| c.nofile).min(),
        port_range: client.and_then(|f| f.port_range),
        tcp_tw_reuse: client.and_then(|f| f.tcp_tw_reuse),
        somaxconn: servers.first().and_then(|s| s.facts.somaxconn),
    };
    report::build(report::Inputs {
        settings,
        clients: clients.into_iter().map(|c| c.report).collect(),
        servers: servers.into_iter().map(|s| s.report).collect(),
        counters,
        facts,
    })
}

/// `netprofile test serve --listen ADDR`: a server for a remote client, bounded in time.
pub fn serve(root: &Root, opts: &Options, listen: SocketAddrV4) -> Result<Report> {
    let mut servers = start_servers(root, opts, &[listen], opts.workers.max(1), None)?;
    eprintln!(
        "netprofile: serving on {listen} for {} s (closer {}, backlog {})",
        opts.duration_ms / 1000,
        report::closer_name(opts.closer),
        opts.backlog
    );
    let before = counters::read(root, "proc/net");
    std::thread::sleep(std::time::Duration::from_millis(opts.duration_ms));
    let reports = stop_servers(&mut servers)?;
    let mut counters = BTreeMap::new();
    counters.insert(
        "server".to_string(),
        counters::delta(&before, &counters::read(root, "proc/net")),
    );
    Ok(assemble(
        settings(opts, "serve", None, &[listen]),
        Vec::new(),
        reports,
        counters,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_million_held_fits_this_machines_limits_without_flags() {
        // Hard nofile 20 000: 56 workers of at most 17 964, the server side's hash imbalance
        // included; the range a profile sets (1024-65535): 156 destinations of at most 6 451,
        // 47 for 300 000.
        assert_eq!(per_worker(20_000), 17_964);
        assert_eq!(1_000_000_u64.div_ceil(per_worker(20_000)), 56);
        assert_eq!(per_address((1024, 65535)), 6_451);
        assert_eq!(1_000_000_u64.div_ceil(per_address((1024, 65535))), 156);
        assert_eq!(300_000_u64.div_ceil(per_address((1024, 65535))), 47);
        // The kernel's default range needs more addresses than the 250 allowed: resolve()
        // clamps to 250, 4 000 per destination, still under 30 % of the even half.
        assert_eq!(1_000_000_u64.div_ceil(per_address((32768, 60999))), 355);
        // Tiny or unlimited inputs never give 0.
        assert_eq!(per_worker(10), 1);
        assert!(per_worker(u64::MAX) > 1_000_000);
    }

    #[test]
    fn a_target_and_addresses_name_consecutive_destinations() {
        let first = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 80);
        assert_eq!(
            consecutive(first, 2),
            vec![first, SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), 80)]
        );
        assert_eq!(consecutive(first, 0), vec![first]);
        let last = SocketAddrV4::new(Ipv4Addr::BROADCAST, 80);
        assert_eq!(consecutive(last, 3), vec![last]);
    }
}
