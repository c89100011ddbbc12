//! The connection-test engine that runs inside one worker process: an event-driven client or
//! server on epoll (through mio), with non-blocking sockets (rustix), one slab entry of a few
//! bytes per connection, and hard bounds on count and time.
//!
//! The client starts at most `concurrency` connects in flight and at most `PASS_CAP` per loop
//! pass, and drains events before it declares a timeout, so the stalls it reports are the
//! kernel's, not its own. The server accepts (optionally slowly), reads, and closes or holds.
//! Only the worker entry point (conntest/mod.rs) talks to the outside.

use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType};
use serde::{Deserialize, Serialize};

use super::hist::{Histogram, Wire};

/// Connects started per loop pass, so the loop keeps draining events under load.
const PASS_CAP: u32 = 64;
/// The longest a hold test may spend opening connections.
pub const RAMP_CAP: Duration = Duration::from_secs(600);
/// A connect that takes this long means a SYN was retransmitted (the first retry is at 1 s).
const STALL: Duration = Duration::from_secs(1);

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Open connections and keep them: how many can be held.
    Hold,
    /// Connect, send, close, again: rate and failures.
    Churn,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Closer {
    Client,
    Server,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema, Deserialize)]
pub struct ClientConfig {
    pub mode: Mode,
    pub targets: Vec<SocketAddrV4>,
    /// Source addresses to spread over (bound with IP_BIND_ADDRESS_NO_PORT); empty: no bind.
    pub sources: Vec<Ipv4Addr>,
    pub connections: u64,
    pub concurrency: u32,
    pub payload: usize,
    pub closer: Closer,
    /// churn: the longest the run may take; hold: how long to hold once all are attempted.
    pub duration_ms: u64,
    pub connect_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema, Deserialize)]
pub struct ServerConfig {
    pub mode: Mode,
    pub listen: Vec<SocketAddrV4>,
    pub backlog: i32,
    /// Time between two accepts (a slow server); 0: accept as fast as possible.
    pub accept_delay_us: u64,
    pub closer: Closer,
    /// The server stops by itself after this long, whatever happens.
    pub max_ms: u64,
}

/// What a worker saw; merged across workers by the orchestrator.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema, Deserialize)]
pub struct WorkerReport {
    pub attempted: u64,
    pub established: u64,
    /// hold: still open at the end; server: open when stopped.
    pub held: u64,
    /// Established connections the peer closed or reset while we held them.
    pub dropped: u64,
    pub accepted: u64,
    pub failures: BTreeMap<String, u64>,
    /// Connects that took 1 s or more (SYN retransmitted).
    pub stalls: u64,
    pub latency: Wire,
    /// Time from the first connect to the last one settled (established or failed), in ms.
    pub ramp_ms: u64,
    /// CLOCK_MONOTONIC at the first connect, in µs: lines workers up on one clock.
    #[serde(default)]
    pub started_mono_us: u64,
    pub elapsed_ms: u64,
    /// (ms since start, connections established so far), every 100 ms.
    pub timeline: Vec<(u64, u64)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    /// Sent the payload; waiting for the server to close.
    AwaitClose,
    Held,
    /// Server side: accepted.
    Serving,
}

/// One connection: 4 bytes of fd, 4 of start time, 1 of phase.
struct Conn {
    fd: OwnedFd,
    start_us: u32,
    phase: Phase,
}

fn errno_name(e: Errno) -> String {
    let names = [
        (Errno::MFILE, "EMFILE"),
        (Errno::NFILE, "ENFILE"),
        (Errno::ADDRNOTAVAIL, "EADDRNOTAVAIL"),
        (Errno::ADDRINUSE, "EADDRINUSE"),
        (Errno::TIMEDOUT, "ETIMEDOUT"),
        (Errno::CONNREFUSED, "ECONNREFUSED"),
        (Errno::CONNRESET, "ECONNRESET"),
        (Errno::NOBUFS, "ENOBUFS"),
        (Errno::NOMEM, "ENOMEM"),
        (Errno::HOSTUNREACH, "EHOSTUNREACH"),
        (Errno::NETUNREACH, "ENETUNREACH"),
        (Errno::PIPE, "EPIPE"),
    ];
    names.iter().find(|(n, _)| *n == e).map_or_else(
        || format!("errno {}", e.raw_os_error()),
        |(_, s)| (*s).to_string(),
    )
}

/// Raises the soft open-files limit to the hard one (never assumes the hard one can move), or
/// lowers it to `nofile` when asked to play a smaller limit. Returns the soft limit in force.
pub fn set_nofile(nofile: Option<u64>) -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum;
    limit.current = match (nofile, hard) {
        (Some(n), Some(h)) => Some(n.min(h)),
        (Some(n), None) => Some(n),
        (None, h) => h,
    };
    let _ = setrlimit(Resource::Nofile, limit);
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

fn bind_no_port(fd: &OwnedFd) {
    let one: libc::c_int = 1;
    // SAFETY: a valid socket fd and a pointer to a c_int of the stated size.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            std::ptr::addr_of!(one).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// CLOCK_MONOTONIC now, in µs (the clock `Instant` reads, but comparable across processes).
fn mono_us() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0) / 1000
}

fn micros_since(start: Instant) -> u32 {
    u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX)
}

fn register(poll: &Poll, fd: &OwnedFd, key: usize, interest: Interest) -> std::io::Result<()> {
    poll.registry()
        .register(&mut SourceFd(&fd.as_raw_fd()), Token(key), interest)
}

fn reregister(poll: &Poll, fd: &OwnedFd, key: usize, interest: Interest) -> std::io::Result<()> {
    poll.registry()
        .reregister(&mut SourceFd(&fd.as_raw_fd()), Token(key), interest)
}

/// Reads until the socket would block. Returns true when the peer closed or failed.
fn drain(fd: &OwnedFd) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match rustix::io::read(fd, &mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(Errno::AGAIN) => return false,
            Err(Errno::INTR) => {}
            Err(_) => return true,
        }
    }
}

/// Runs the client side until every connection was attempted and settled, or time runs out.
/// `progress` is called with (attempted, established) about every 250 ms.
pub fn run_client(
    config: &ClientConfig,
    progress: &mut dyn FnMut(u64, u64),
) -> std::io::Result<WorkerReport> {
    let mut next_progress = Duration::ZERO;
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut conns: slab::Slab<Conn> =
        slab::Slab::with_capacity(usize::try_from(config.concurrency.max(1)).unwrap_or(1024));
    let mut report = WorkerReport::default();
    let mut hist = Histogram::default();
    let payload = vec![b'x'; config.payload];
    // Connects in flight, oldest first, as (slab key, start): the connect-timeout check looks
    // only at the front instead of walking every held connection (a hold keeps ~18 000 per
    // worker). Entries whose connect settled are skipped when they reach the front.
    let mut pending: VecDeque<(u32, u32)> = VecDeque::new();
    let start = Instant::now();
    report.started_mono_us = mono_us();
    // Churn stops starting at `duration`; hold ramps for at most RAMP_CAP, then holds for
    // `duration`. Either way the loop ends by itself.
    let ramp_cap = match config.mode {
        Mode::Churn => Duration::ZERO,
        Mode::Hold => RAMP_CAP,
    };
    let hard_stop =
        start + ramp_cap + Duration::from_millis(config.duration_ms + config.connect_timeout_ms);
    let connect_timeout = Duration::from_millis(config.connect_timeout_ms);
    let mut in_flight: u32 = 0;
    let mut next_sample = Duration::ZERO;
    let mut hold_until: Option<Instant> = None;
    let mut last_timeout_scan = Instant::now();
    let mut backoff_until: Option<Instant> = None;
    let mut target_i = 0usize;
    let mut source_i = 0usize;

    loop {
        let now = Instant::now();
        if now >= hard_stop {
            break;
        }
        let may_start = match config.mode {
            Mode::Hold => now < start + RAMP_CAP,
            Mode::Churn => now < start + Duration::from_millis(config.duration_ms),
        };
        // Start connects, bounded per pass and in flight.
        let mut started = 0;
        while may_start
            && report.attempted < config.connections
            && in_flight < config.concurrency
            && started < PASS_CAP
            && backoff_until.is_none_or(|t| now >= t)
        {
            started += 1;
            report.attempted += 1;
            let fd = match rustix::net::socket_with(
                AddressFamily::INET,
                SocketType::STREAM,
                SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
                None,
            ) {
                Ok(fd) => fd,
                Err(e) => {
                    *report.failures.entry(errno_name(e)).or_default() += 1;
                    // Out of descriptors. Churn frees them as connections close: let that catch
                    // up. Hold never frees them: the remaining attempts fail the same way now.
                    if config.mode == Mode::Churn {
                        backoff_until = Some(now + Duration::from_millis(1));
                        break;
                    }
                    continue;
                }
            };
            if !config.sources.is_empty() {
                let source = config.sources[source_i % config.sources.len()];
                source_i += 1;
                bind_no_port(&fd);
                if let Err(e) = rustix::net::bind(&fd, &SocketAddrV4::new(source, 0)) {
                    *report.failures.entry(errno_name(e)).or_default() += 1;
                    continue;
                }
            }
            let target = config.targets[target_i % config.targets.len()];
            target_i += 1;
            match rustix::net::connect(&fd, &target) {
                Ok(()) | Err(Errno::INPROGRESS) => {}
                Err(e) => {
                    *report.failures.entry(errno_name(e)).or_default() += 1;
                    continue;
                }
            }
            let entry = conns.vacant_entry();
            let key = entry.key();
            register(&poll, &fd, key, Interest::WRITABLE)?;
            let start_us = micros_since(start);
            entry.insert(Conn {
                fd,
                start_us,
                phase: Phase::Connecting,
            });
            pending.push_back((u32::try_from(key).unwrap_or(u32::MAX), start_us));
            in_flight += 1;
        }
        if backoff_until.is_some_and(|t| now >= t) {
            backoff_until = None;
        }

        let all_attempted = report.attempted >= config.connections || !may_start;
        if all_attempted && in_flight == 0 && report.ramp_ms == 0 {
            // The ramp ends when the last connect settled, as the C reference measures it.
            report.ramp_ms = u64::try_from(start.elapsed().as_millis())
                .unwrap_or(0)
                .max(1);
        }
        if all_attempted && in_flight == 0 {
            match config.mode {
                Mode::Churn => {
                    if conns.is_empty() {
                        break;
                    }
                }
                Mode::Hold => {
                    let until = *hold_until
                        .get_or_insert_with(|| now + Duration::from_millis(config.duration_ms));
                    if now >= until {
                        break;
                    }
                }
            }
        }

        let timeout = if started == PASS_CAP || backoff_until.is_some() {
            Duration::ZERO
        } else {
            Duration::from_millis(10)
        };
        poll.poll(&mut events, Some(timeout))?;
        for event in &events {
            let key = event.token().0;
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            match conn.phase {
                Phase::Connecting => {
                    in_flight -= 1;
                    let elapsed_us = u64::from(micros_since(start).saturating_sub(conn.start_us));
                    match rustix::net::sockopt::socket_error(&conn.fd) {
                        Ok(Ok(())) if !event.is_error() || event.is_writable() => {
                            report.established += 1;
                            hist.record(elapsed_us);
                            if elapsed_us >= u64::try_from(STALL.as_micros()).unwrap_or(u64::MAX) {
                                report.stalls += 1;
                            }
                            if !payload.is_empty() {
                                let _ = rustix::io::write(&conn.fd, &payload);
                            }
                            match (config.mode, config.closer) {
                                (Mode::Churn, Closer::Client) => {
                                    conns.remove(key);
                                }
                                (Mode::Churn, Closer::Server) => {
                                    conn.phase = Phase::AwaitClose;
                                    reregister(&poll, &conn.fd, key, Interest::READABLE)?;
                                }
                                (Mode::Hold, _) => {
                                    conn.phase = Phase::Held;
                                    reregister(&poll, &conn.fd, key, Interest::READABLE)?;
                                }
                            }
                        }
                        Ok(Err(e)) => {
                            *report.failures.entry(errno_name(e)).or_default() += 1;
                            conns.remove(key);
                        }
                        _ => {
                            *report.failures.entry("connect error".into()).or_default() += 1;
                            conns.remove(key);
                        }
                    }
                }
                Phase::AwaitClose => {
                    if drain(&conn.fd) {
                        conns.remove(key);
                    }
                }
                Phase::Held => {
                    if drain(&conn.fd) {
                        report.dropped += 1;
                        conns.remove(key);
                    }
                }
                Phase::Serving => {}
            }
        }

        let now = Instant::now();
        if now.duration_since(last_timeout_scan) >= Duration::from_millis(100) {
            last_timeout_scan = now;
            // Events were drained above, so a connect still pending here really is late.
            let limit = u32::try_from(connect_timeout.as_micros()).unwrap_or(u32::MAX);
            let now_us = micros_since(start);
            let still_connecting = |conns: &slab::Slab<Conn>, &(key, start_us): &(u32, u32)| {
                conns
                    .get(key as usize)
                    .is_some_and(|c| c.phase == Phase::Connecting && c.start_us == start_us)
            };
            while let Some(&front) = pending.front() {
                if !still_connecting(&conns, &front) {
                    pending.pop_front();
                } else if now_us.saturating_sub(front.1) >= limit {
                    pending.pop_front();
                    conns.remove(front.0 as usize);
                    in_flight -= 1;
                    *report.failures.entry("ETIMEDOUT".into()).or_default() += 1;
                } else {
                    break;
                }
            }
            // A stalled connect at the front keeps settled ones behind it: compact now and
            // then so the queue stays about the size of what is in flight.
            if pending.len() > 4 * in_flight as usize + 4096 {
                pending.retain(|p| still_connecting(&conns, p));
            }
        }
        if start.elapsed() >= next_progress {
            progress(report.attempted, report.established);
            next_progress += Duration::from_millis(250);
        }
        if start.elapsed() >= next_sample {
            report.timeline.push((
                u64::try_from(start.elapsed().as_millis()).unwrap_or(0),
                report.established,
            ));
            next_sample += Duration::from_millis(100);
        }
    }
    report.held = conns.iter().filter(|(_, c)| c.phase == Phase::Held).count() as u64;
    let pending = conns
        .iter()
        .filter(|(_, c)| c.phase == Phase::Connecting)
        .count() as u64;
    if pending > 0 {
        *report.failures.entry("ETIMEDOUT".into()).or_default() += pending;
    }
    if report.ramp_ms == 0 {
        report.ramp_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(0);
    }
    report.elapsed_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(0);
    report
        .timeline
        .push((report.elapsed_ms, report.established));
    report.latency = Wire::from(&hist);
    drop(conns);
    Ok(report)
}

/// Opens a listening socket with the given backlog (SO_REUSEPORT, so several workers share it).
pub fn listener(addr: SocketAddrV4, backlog: i32) -> std::io::Result<OwnedFd> {
    let fd = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::net::sockopt::set_socket_reuseaddr(&fd, true)?;
    rustix::net::sockopt::set_socket_reuseport(&fd, true)?;
    rustix::net::bind(&fd, &addr)?;
    rustix::net::listen(&fd, backlog)?;
    Ok(fd)
}

/// Runs the server side until `stop` becomes readable (its writer closed) or `max_ms` passes.
pub fn run_server(
    config: &ServerConfig,
    listeners: Vec<OwnedFd>,
    stop: &impl AsFd,
) -> std::io::Result<WorkerReport> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut conns: slab::Slab<Conn> = slab::Slab::new();
    let mut report = WorkerReport::default();
    let start = Instant::now();
    let deadline = start + Duration::from_millis(config.max_ms);
    let stop_token = usize::MAX - 1;
    let listen_base = usize::MAX - 1000;
    poll.registry().register(
        &mut SourceFd(&stop.as_fd().as_raw_fd()),
        Token(stop_token),
        Interest::READABLE,
    )?;
    for (i, l) in listeners.iter().enumerate() {
        register(&poll, l, listen_base + i, Interest::READABLE)?;
    }
    let delay = Duration::from_micros(config.accept_delay_us);
    let mut next_accept = start;
    let mut pending_accept = vec![false; listeners.len()];
    let mut stopping = false;
    let mut accept_backoff: Option<Instant> = None;
    while !stopping && Instant::now() < deadline {
        let now = Instant::now();
        if accept_backoff.is_some_and(|t| now >= t) {
            accept_backoff = None;
        }
        // Accept: all that are queued, or one per `delay` for a slow server. mio is
        // edge-triggered, so a listener that may still hold connections is retried here.
        for (i, l) in listeners.iter().enumerate() {
            let mut budget = if delay.is_zero() { 1024 } else { 0 };
            if !delay.is_zero() && now >= next_accept {
                budget = 1;
            }
            while pending_accept[i] && budget > 0 && accept_backoff.is_none() {
                match rustix::net::accept_with(l, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC) {
                    Ok(fd) => {
                        budget -= 1;
                        report.accepted += 1;
                        if !delay.is_zero() {
                            next_accept = now + delay;
                        }
                        let entry = conns.vacant_entry();
                        let key = entry.key();
                        register(&poll, &fd, key, Interest::READABLE)?;
                        entry.insert(Conn {
                            fd,
                            start_us: 0,
                            phase: Phase::Serving,
                        });
                    }
                    Err(Errno::AGAIN) => pending_accept[i] = false,
                    Err(Errno::INTR | Errno::CONNABORTED) => {}
                    Err(e) => {
                        // EMFILE/ENFILE and the like: the connection stays queued; count it and
                        // retry after a pause instead of spinning on a listener that stays
                        // readable.
                        *report.failures.entry(errno_name(e)).or_default() += 1;
                        accept_backoff = Some(now + Duration::from_millis(10));
                        break;
                    }
                }
            }
        }
        let timeout = if let Some(t) = accept_backoff {
            t.saturating_duration_since(Instant::now())
        } else if pending_accept.iter().any(|p| *p) {
            if delay.is_zero() {
                Duration::ZERO
            } else {
                next_accept.saturating_duration_since(Instant::now())
            }
        } else {
            Duration::from_millis(50)
        };
        poll.poll(&mut events, Some(timeout.min(Duration::from_millis(50))))?;
        for event in &events {
            let key = event.token().0;
            if key == stop_token {
                stopping = true;
                continue;
            }
            if key >= listen_base {
                pending_accept[key - listen_base] = true;
                continue;
            }
            let Some(conn) = conns.get(key) else { continue };
            let closed = drain(&conn.fd);
            if closed || (config.mode == Mode::Churn && config.closer == Closer::Server) {
                conns.remove(key);
            }
        }
    }
    report.held = conns.len() as u64;
    report.elapsed_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(0);
    Ok(report)
}
