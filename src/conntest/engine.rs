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

/// What one readiness event said, as the engine uses it.
#[derive(Clone, Copy)]
struct Ready {
    /// EPOLLIN.
    readable: bool,
    /// EPOLLOUT.
    writable: bool,
    /// EPOLLERR.
    error: bool,
    /// EPOLLHUP or EPOLLRDHUP: the peer closed (or the socket failed).
    closed: bool,
}

impl Ready {
    fn of(event: &mio::event::Event) -> Ready {
        Ready {
            readable: event.is_readable(),
            writable: event.is_writable(),
            error: event.is_error(),
            closed: event.is_read_closed() || event.is_write_closed(),
        }
    }
}

/// Reads what the socket holds. Returns true when the peer closed or failed. Registrations
/// are edge-triggered, and every arrival of data or of the peer's FIN after a read starts
/// raises a new event, so a read shorter than the buffer has emptied the queue: unless the
/// event said the peer closed (then the read goes on to the end of the stream), there is no
/// need for the second read that would only say EAGAIN (one syscall per connection).
fn drain(fd: &OwnedFd, ready: Ready) -> bool {
    let mut buf = [0u8; 4096];
    let to_end = ready.closed || ready.error;
    loop {
        match rustix::io::read(fd, &mut buf) {
            Ok(0) => return true,
            Ok(n) if n < buf.len() && !to_end => return false,
            Ok(_) => {}
            Err(Errno::AGAIN) => return false,
            Err(Errno::INTR) => {}
            Err(_) => return true,
        }
    }
}

/// What one client worker keeps while it runs: the connections, the report being built, and
/// where the round robins over destinations and sources stand.
struct Client<'a> {
    config: &'a ClientConfig,
    poll: Poll,
    conns: slab::Slab<Conn>,
    report: WorkerReport,
    hist: Histogram,
    payload: Vec<u8>,
    /// Connects in flight, oldest first, as (slab key, start): the connect-timeout check looks
    /// only at the front instead of walking every held connection (a hold keeps ~18 000 per
    /// worker). Entries whose connect settled are skipped when they reach the front.
    pending: VecDeque<(u32, u32)>,
    start: Instant,
    in_flight: u32,
    backoff_until: Option<Instant>,
    target_i: usize,
    source_i: usize,
}

impl<'a> Client<'a> {
    fn new(config: &'a ClientConfig) -> std::io::Result<Self> {
        let start = Instant::now();
        Ok(Client {
            config,
            poll: Poll::new()?,
            conns: slab::Slab::with_capacity(
                usize::try_from(config.concurrency.max(1)).unwrap_or(1024),
            ),
            report: WorkerReport {
                started_mono_us: mono_us(),
                ..WorkerReport::default()
            },
            hist: Histogram::default(),
            payload: vec![b'x'; config.payload],
            pending: VecDeque::new(),
            start,
            in_flight: 0,
            backoff_until: None,
            target_i: 0,
            source_i: 0,
        })
    }

    fn fail(&mut self, what: String) {
        *self.report.failures.entry(what).or_default() += 1;
    }

    /// Starts connects, bounded per pass and in flight. Returns how many were started.
    fn start_connects(&mut self, now: Instant, may_start: bool) -> std::io::Result<u32> {
        let mut started = 0;
        while may_start
            && self.report.attempted < self.config.connections
            && self.in_flight < self.config.concurrency
            && started < PASS_CAP
            && self.backoff_until.is_none_or(|t| now >= t)
        {
            started += 1;
            if !self.start_one(now)? {
                break;
            }
        }
        if self.backoff_until.is_some_and(|t| now >= t) {
            self.backoff_until = None;
        }
        Ok(started)
    }

    /// Starts one connect (or counts why it could not). Returns false to end this pass.
    fn start_one(&mut self, now: Instant) -> std::io::Result<bool> {
        self.report.attempted += 1;
        let fd = match rustix::net::socket_with(
            AddressFamily::INET,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        ) {
            Ok(fd) => fd,
            Err(e) => {
                self.fail(errno_name(e));
                // Out of descriptors. Churn frees them as connections close: let that catch
                // up. Hold never frees them: the remaining attempts fail the same way now.
                if self.config.mode == Mode::Churn {
                    self.backoff_until = Some(now + Duration::from_millis(1));
                    return Ok(false);
                }
                return Ok(true);
            }
        };
        let sources = &self.config.sources;
        if !sources.is_empty() {
            let source = sources[self.source_i % sources.len()];
            self.source_i += 1;
            bind_no_port(&fd);
            if let Err(e) = rustix::net::bind(&fd, &SocketAddrV4::new(source, 0)) {
                self.fail(errno_name(e));
                return Ok(true);
            }
        }
        let target = self.config.targets[self.target_i % self.config.targets.len()];
        self.target_i += 1;
        match rustix::net::connect(&fd, &target) {
            Ok(()) | Err(Errno::INPROGRESS) => {}
            Err(e) => {
                self.fail(errno_name(e));
                return Ok(true);
            }
        }
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        // Readable too from the start: the connection stays registered as it is once
        // connected (held, or waiting for the server to close), with no epoll_ctl to change
        // it. Edge-triggered, so a connected socket's writability is reported once.
        register(
            &self.poll,
            &fd,
            key,
            Interest::WRITABLE | Interest::READABLE,
        )?;
        let start_us = micros_since(self.start);
        entry.insert(Conn {
            fd,
            start_us,
            phase: Phase::Connecting,
        });
        self.pending
            .push_back((u32::try_from(key).unwrap_or(u32::MAX), start_us));
        self.in_flight += 1;
        Ok(true)
    }

    /// Handles one readiness event of connection `key`.
    fn on_event(&mut self, key: usize, ready: Ready) -> std::io::Result<()> {
        let Some(conn) = self.conns.get(key) else {
            return Ok(());
        };
        match conn.phase {
            // Writable with no error: the handshake completed (what SO_ERROR would say).
            // Neither: the socket is still connecting (an edge of no interest here).
            Phase::Connecting if ready.writable && !ready.error => {
                self.in_flight -= 1;
                let elapsed_us = u64::from(micros_since(self.start).saturating_sub(conn.start_us));
                self.connected(key, elapsed_us);
                // Data or the peer's close came with the handshake: this edge will not be
                // raised again, so it is handled now, in the connection's new phase.
                if ready.readable || ready.closed {
                    return self.on_event(key, ready);
                }
            }
            Phase::Connecting if ready.error || ready.closed => {
                self.in_flight -= 1;
                match rustix::net::sockopt::socket_error(&conn.fd) {
                    Ok(Err(e)) => self.fail(errno_name(e)),
                    _ => self.fail("connect error".into()),
                }
                self.conns.remove(key);
            }
            Phase::Connecting => {}
            Phase::AwaitClose => {
                if drain(&conn.fd, ready) {
                    self.conns.remove(key);
                }
            }
            Phase::Held => {
                if drain(&conn.fd, ready) {
                    self.report.dropped += 1;
                    self.conns.remove(key);
                }
            }
            Phase::Serving => {}
        }
        Ok(())
    }

    /// A connect of `key` succeeded after `elapsed_us`: count it, send, then close or hold.
    fn connected(&mut self, key: usize, elapsed_us: u64) {
        self.report.established += 1;
        self.hist.record(elapsed_us);
        if elapsed_us >= u64::try_from(STALL.as_micros()).unwrap_or(u64::MAX) {
            self.report.stalls += 1;
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !self.payload.is_empty() {
            let _ = rustix::io::write(&conn.fd, &self.payload);
        }
        match (self.config.mode, self.config.closer) {
            (Mode::Churn, Closer::Client) => {
                self.conns.remove(key);
            }
            (Mode::Churn, Closer::Server) => conn.phase = Phase::AwaitClose,
            (Mode::Hold, _) => conn.phase = Phase::Held,
        }
    }

    /// Fails the connects pending longer than the connect timeout. Events were drained just
    /// before, so a connect still pending here really is late.
    fn expire(&mut self) {
        let timeout = Duration::from_millis(self.config.connect_timeout_ms);
        let limit = u32::try_from(timeout.as_micros()).unwrap_or(u32::MAX);
        let now_us = micros_since(self.start);
        let still_connecting = |conns: &slab::Slab<Conn>, &(key, start_us): &(u32, u32)| {
            conns
                .get(key as usize)
                .is_some_and(|c| c.phase == Phase::Connecting && c.start_us == start_us)
        };
        while let Some(&front) = self.pending.front() {
            if !still_connecting(&self.conns, &front) {
                self.pending.pop_front();
            } else if now_us.saturating_sub(front.1) >= limit {
                self.pending.pop_front();
                self.conns.remove(front.0 as usize);
                self.in_flight -= 1;
                self.fail("ETIMEDOUT".into());
            } else {
                break;
            }
        }
        // A stalled connect at the front keeps settled ones behind it: compact now and then
        // so the queue stays about the size of what is in flight.
        if self.pending.len() > 4 * self.in_flight as usize + 4096 {
            let conns = &self.conns;
            self.pending.retain(|p| still_connecting(conns, p));
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(0)
    }

    /// The report once the loop ended: what is held, and what never settled.
    fn finish(mut self) -> WorkerReport {
        let count = |phase| self.conns.iter().filter(|(_, c)| c.phase == phase).count() as u64;
        self.report.held = count(Phase::Held);
        let pending = count(Phase::Connecting);
        if pending > 0 {
            *self.report.failures.entry("ETIMEDOUT".into()).or_default() += pending;
        }
        if self.report.ramp_ms == 0 {
            self.report.ramp_ms = self.elapsed_ms();
        }
        self.report.elapsed_ms = self.elapsed_ms();
        self.report
            .timeline
            .push((self.report.elapsed_ms, self.report.established));
        self.report.latency = Wire::from(&self.hist);
        self.report
    }
}

/// Runs the client side until every connection was attempted and settled, or time runs out.
/// `progress` is called with (attempted, established) about every 250 ms.
pub fn run_client(
    config: &ClientConfig,
    progress: &mut dyn FnMut(u64, u64),
) -> std::io::Result<WorkerReport> {
    let mut c = Client::new(config)?;
    let mut events = Events::with_capacity(1024);
    let start = c.start;
    // Churn stops starting at `duration`; hold ramps for at most RAMP_CAP, then holds for
    // `duration`. Either way the loop ends by itself.
    let ramp_cap = match config.mode {
        Mode::Churn => Duration::ZERO,
        Mode::Hold => RAMP_CAP,
    };
    let hard_stop =
        start + ramp_cap + Duration::from_millis(config.duration_ms + config.connect_timeout_ms);
    let (mut next_progress, mut next_sample) = (Duration::ZERO, Duration::ZERO);
    let mut hold_until: Option<Instant> = None;
    let mut last_timeout_scan = Instant::now();
    loop {
        let now = Instant::now();
        if now >= hard_stop {
            break;
        }
        let may_start = match config.mode {
            Mode::Hold => now < start + RAMP_CAP,
            Mode::Churn => now < start + Duration::from_millis(config.duration_ms),
        };
        let started = c.start_connects(now, may_start)?;
        let all_attempted = c.report.attempted >= config.connections || !may_start;
        if all_attempted && c.in_flight == 0 {
            if c.report.ramp_ms == 0 {
                // The ramp ends when the last connect settled, as the C reference measures it.
                c.report.ramp_ms = c.elapsed_ms().max(1);
            }
            let done = match config.mode {
                Mode::Churn => c.conns.is_empty(),
                Mode::Hold => {
                    now >= *hold_until
                        .get_or_insert_with(|| now + Duration::from_millis(config.duration_ms))
                }
            };
            if done {
                break;
            }
        }
        let timeout = if started == PASS_CAP || c.backoff_until.is_some() {
            Duration::ZERO
        } else {
            Duration::from_millis(10)
        };
        c.poll.poll(&mut events, Some(timeout))?;
        for event in &events {
            c.on_event(event.token().0, Ready::of(event))?;
        }
        if last_timeout_scan.elapsed() >= Duration::from_millis(100) {
            last_timeout_scan = Instant::now();
            c.expire();
        }
        if start.elapsed() >= next_progress {
            progress(c.report.attempted, c.report.established);
            next_progress += Duration::from_millis(250);
        }
        if start.elapsed() >= next_sample {
            let sample = (c.elapsed_ms(), c.report.established);
            c.report.timeline.push(sample);
            next_sample += Duration::from_millis(100);
        }
    }
    Ok(c.finish())
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

/// What one server worker keeps while it runs.
struct Server<'a> {
    config: &'a ServerConfig,
    listeners: Vec<OwnedFd>,
    poll: Poll,
    conns: slab::Slab<Conn>,
    report: WorkerReport,
    delay: Duration,
    next_accept: Instant,
    /// Listeners that may still hold queued connections (mio is edge-triggered).
    pending_accept: Vec<bool>,
    accept_backoff: Option<Instant>,
}

/// The token of the stop pipe, and the first of the listeners'.
const STOP_TOKEN: usize = usize::MAX - 1;
const LISTEN_BASE: usize = usize::MAX - 1000;

impl Server<'_> {
    /// Accepts all that are queued, or one per `delay` for a slow server. mio is
    /// edge-triggered, so a listener that may still hold connections is retried here.
    fn accept_ready(&mut self, now: Instant) -> std::io::Result<()> {
        for i in 0..self.listeners.len() {
            let mut budget = if self.delay.is_zero() { 1024 } else { 0 };
            if !self.delay.is_zero() && now >= self.next_accept {
                budget = 1;
            }
            while self.pending_accept[i] && budget > 0 && self.accept_backoff.is_none() {
                let l = &self.listeners[i];
                match rustix::net::accept_with(l, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC) {
                    Ok(fd) => {
                        budget -= 1;
                        self.report.accepted += 1;
                        if !self.delay.is_zero() {
                            self.next_accept = now + self.delay;
                        }
                        let entry = self.conns.vacant_entry();
                        register(&self.poll, &fd, entry.key(), Interest::READABLE)?;
                        entry.insert(Conn {
                            fd,
                            start_us: 0,
                            phase: Phase::Serving,
                        });
                    }
                    Err(Errno::AGAIN) => self.pending_accept[i] = false,
                    Err(Errno::INTR | Errno::CONNABORTED) => {}
                    Err(e) => {
                        // EMFILE/ENFILE and the like: the connection stays queued; count it and
                        // retry after a pause instead of spinning on a listener that stays
                        // readable.
                        *self.report.failures.entry(errno_name(e)).or_default() += 1;
                        self.accept_backoff = Some(now + Duration::from_millis(10));
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// How long the next poll may wait: not past a backoff or the next slow accept, not at
    /// all while a listener may hold connections, and never over 50 ms.
    fn poll_timeout(&self) -> Duration {
        let timeout = if let Some(t) = self.accept_backoff {
            t.saturating_duration_since(Instant::now())
        } else if self.pending_accept.iter().any(|p| *p) {
            if self.delay.is_zero() {
                Duration::ZERO
            } else {
                self.next_accept.saturating_duration_since(Instant::now())
            }
        } else {
            Duration::from_millis(50)
        };
        timeout.min(Duration::from_millis(50))
    }

    /// Handles one readiness event. Returns true when the stop pipe became readable.
    fn on_event(&mut self, key: usize, ready: Ready) -> bool {
        if key == STOP_TOKEN {
            return true;
        }
        if key >= LISTEN_BASE {
            self.pending_accept[key - LISTEN_BASE] = true;
            return false;
        }
        let Some(conn) = self.conns.get(key) else {
            return false;
        };
        let closed = drain(&conn.fd, ready);
        if closed || (self.config.mode == Mode::Churn && self.config.closer == Closer::Server) {
            self.conns.remove(key);
        }
        false
    }
}

/// Runs the server side until `stop` becomes readable (its writer closed) or `max_ms` passes.
pub fn run_server(
    config: &ServerConfig,
    listeners: Vec<OwnedFd>,
    stop: &impl AsFd,
) -> std::io::Result<WorkerReport> {
    let start = Instant::now();
    let mut s = Server {
        config,
        poll: Poll::new()?,
        conns: slab::Slab::new(),
        report: WorkerReport::default(),
        delay: Duration::from_micros(config.accept_delay_us),
        next_accept: start,
        pending_accept: vec![false; listeners.len()],
        listeners,
        accept_backoff: None,
    };
    let mut events = Events::with_capacity(1024);
    let deadline = start + Duration::from_millis(config.max_ms);
    s.poll.registry().register(
        &mut SourceFd(&stop.as_fd().as_raw_fd()),
        Token(STOP_TOKEN),
        Interest::READABLE,
    )?;
    for (i, l) in s.listeners.iter().enumerate() {
        register(&s.poll, l, LISTEN_BASE + i, Interest::READABLE)?;
    }
    let mut stopping = false;
    while !stopping && Instant::now() < deadline {
        let now = Instant::now();
        if s.accept_backoff.is_some_and(|t| now >= t) {
            s.accept_backoff = None;
        }
        s.accept_ready(now)?;
        s.poll.poll(&mut events, Some(s.poll_timeout()))?;
        for event in &events {
            stopping |= s.on_event(event.token().0, Ready::of(event));
        }
    }
    s.report.held = s.conns.len() as u64;
    s.report.elapsed_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(0);
    Ok(s.report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// The server's side of a loopback connection whose client sent `data` (and closed when
    /// `close`), registered as the engine registers it, and the one event epoll reports.
    fn served(data: &[u8], close: bool) -> (OwnedFd, Ready, Option<std::net::TcpStream>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        s.set_nonblocking(true).unwrap();
        let fd = OwnedFd::from(s);
        let mut poll = Poll::new().unwrap();
        register(&poll, &fd, 7, Interest::READABLE).unwrap();
        c.write_all(data).unwrap();
        let c = if close {
            drop(c);
            // Wait (poll(2), which leaves epoll's edge alone) until the FIN is in too, so
            // that both are in before the one epoll poll, however loaded the machine is.
            let mut pfd = [rustix::event::PollFd::new(
                &fd,
                rustix::event::PollFlags::RDHUP,
            )];
            let deadline = Instant::now() + Duration::from_secs(10);
            while !pfd[0].revents().contains(rustix::event::PollFlags::RDHUP) {
                assert!(Instant::now() < deadline, "the FIN never came");
                let second = rustix::event::Timespec {
                    tv_sec: 1,
                    tv_nsec: 0,
                };
                rustix::event::poll(&mut pfd, Some(&second)).unwrap();
            }
            None
        } else {
            Some(c)
        };
        let mut events = Events::with_capacity(8);
        poll.poll(&mut events, Some(Duration::from_secs(30)))
            .unwrap();
        let event = events.iter().next().expect("an event");
        (fd, Ready::of(event), c)
    }

    #[test]
    fn data_and_close_in_one_edge_are_both_seen() {
        // One edge for both: a short read of the data alone would miss the close for good.
        let (fd, ready, _) = served(b"hello world\n", true);
        assert!(ready.closed);
        assert!(drain(&fd, ready));
    }

    #[test]
    fn data_alone_is_read_in_one_call_and_the_connection_stays() {
        let (fd, ready, _client) = served(b"hello world\n", false);
        assert!(!ready.closed);
        assert!(!drain(&fd, ready));
        // Nothing was left behind.
        let mut buf = [0u8; 16];
        assert_eq!(rustix::io::read(&fd, &mut buf), Err(Errno::AGAIN));
    }
}
