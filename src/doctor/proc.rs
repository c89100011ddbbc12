//! What doctor reads from the machine, once, through `Root`: kernel counters (proc/net/netstat,
//! snmp, sockstat), the TCP socket tables, fs.file-nr, conntrack, slab object sizes, and for
//! each process that holds a listening socket its limits, open fds, threads, CPU time, cgroup
//! and epoll registrations (proc/PID/fdinfo). The parsers are pure functions of text; `read`
//! does the I/O. It never writes and never needs privileges: what it cannot read is left out
//! and counted in `unreadable`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use crate::error::{Error, Result};
use crate::profile::keys::KeyName;
use crate::system::processes::Fds;
use crate::system::root::{Namespace, Root};
use crate::system::{read_optional, read_sysctl, sockets};

/// Root-relative paths doctor reads (Root spells the shared ones).
pub const NETSTAT: &str = "proc/net/netstat";
pub const SNMP: &str = "proc/net/snmp";
pub const SOCKSTAT: &str = "proc/net/sockstat";
pub const SLABINFO: &str = "proc/slabinfo";
pub const MEMINFO: &str = "proc/meminfo";
pub const UPTIME: &str = "proc/uptime";
pub const STAT: &str = "proc/stat";
pub const SELF_LIMITS: &str = "proc/self/limits";
pub const CONNTRACK_COUNT: &str = "proc/sys/net/netfilter/nf_conntrack_count";

/// Slab bytes one TCP socket costs when `proc/slabinfo` cannot be read: the object sizes of
/// TCP + sock_inode_cache + dentry + filp + eventpoll_epi + lsm caches measured on Linux 6.18
/// (2368 + 832 + 192 + 192 + 128 + 32 + 24 + 16).
pub const SLAB_PER_SOCKET_DEFAULT: u64 = 3784;

/// The slab caches one accepted, epoll-registered TCP socket allocates an object from.
const SOCKET_CACHES: [&str; 8] = [
    "TCP",
    "sock_inode_cache",
    "dentry",
    "filp",
    "eventpoll_epi",
    "lsm_inode_cache",
    "lsm_file_cache",
    "ep_head",
];

/// The sysctls doctor looks at.
pub const KEYS: &[&str] = &[
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_max_tw_buckets",
    "net.ipv4.tcp_mem",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.netfilter.nf_conntrack_max",
    "fs.file-max",
    "fs.nr_open",
    "fs.epoll.max_user_watches",
];

/// One listening TCP socket.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Listener {
    pub address: String,
    pub port: u16,
    /// Connections waiting in the accept queue now (`rx_queue` of a LISTEN row).
    pub queue: u64,
    /// The backlog in force, min(listen() argument, somaxconn), from sock_diag (system::sockets);
    /// `None` when the tree is not the running kernel's (proc/net/tcp does not show it).
    pub backlog: Option<u64>,
    pub inode: u64,
}

/// A process that holds at least one listening socket.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Process {
    pub pid: u32,
    pub comm: String,
    pub ports: Vec<u16>,
    /// `None` = unlimited.
    pub nofile_soft: Option<u64>,
    pub nofile_hard: Option<u64>,
    pub open_fds: u64,
    pub threads: u64,
    /// Its listening sockets are registered in an epoll instance (fdinfo `tfd:` lines).
    pub epoll: bool,
    /// It has any epoll instance at all.
    pub has_epoll: bool,
    /// The systemd unit (`nginx.service`) from proc/PID/cgroup.
    pub service: Option<String>,
    /// Share of one core used since the process started.
    pub cpu_lifetime: f64,
    /// Share of one core over a short sample (real root only).
    pub cpu_now: Option<f64>,
    /// Real uid (proc/PID/status `Uid:`).
    pub uid: Option<u32>,
    /// Its user's name, from the root's etc/passwd.
    pub user: Option<String>,
    /// proc/PID/loginuid: the uid of the login session it descends from; `None` when it was
    /// not started from a login (4294967295: a daemon, a container, an init script).
    pub login_uid: Option<u32>,
    /// utime + stime in clock ticks when read (rates.rs compares two samples).
    #[serde(skip)]
    pub cpu_ticks: Option<u64>,
    /// proc/PID/cmdline (apps.rs finds a server's configuration file in it).
    #[serde(skip)]
    pub cmdline: Vec<String>,
}

/// Everything doctor looks at, read once.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub namespace: Option<Namespace>,
    /// Live sysctls in normal form, only those the kernel has.
    pub sysctl: BTreeMap<String, String>,
    /// `TcpExt.ListenOverflows`, `Tcp.CurrEstab`, ... from netstat and snmp.
    pub counters: BTreeMap<String, i64>,
    /// `TCP.inuse`, `TCP.tw`, `TCP.mem`, `sockets.used`, ... from sockstat.
    pub sockstat: BTreeMap<String, i64>,
    pub listeners: Vec<Listener>,
    pub states: TcpStates,
    /// allocated, unused (always 0 since 2.6), max.
    pub file_nr: Option<(u64, u64, u64)>,
    /// count, max when nf_conntrack is loaded.
    pub conntrack: Option<(u64, u64)>,
    pub processes: Vec<Process>,
    /// This process's nofile (soft, hard): what a login session started here gets.
    pub own_nofile: Option<(Option<u64>, Option<u64>)>,
    pub slab_per_socket: u64,
    /// `proc/slabinfo` or the built-in figure.
    pub slab_source: &'static str,
    pub mem_available_kb: Option<u64>,
    pub cpus: u64,
    /// Processes whose fds could not be read (another user's without privileges).
    pub unreadable: u64,
    /// Processes that hold no listener but 70 % or more of their soft nofile (clients, load
    /// generators, proxies' outgoing sides), with at least `CLIENT_MIN_FDS` open.
    pub clients: Vec<Process>,
}

/// A process without a listener is looked at only from this many open fds on.
pub const CLIENT_MIN_FDS: u64 = 100;

/// How many destinations `TcpStates::destinations` keeps (the most used).
pub const TOP_DESTINATIONS: usize = 10;

/// Counts of one local port (a listening port) from the TCP tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStates {
    /// ESTABLISHED connections on it (accepted, or waiting in its queue).
    pub established: u64,
    /// Connections this side closed first: FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSING.
    pub closed_here: u64,
}

/// Counts from the TCP tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpStates {
    pub established: u64,
    pub time_wait: u64,
    pub syn_recv: u64,
    /// TIME_WAIT sockets whose local port is a listening port: accepted connections this
    /// host closed first, which tcp_tw_reuse (connect() only) never touches.
    pub time_wait_accepted: u64,
    /// The destination ip:port with most sockets (established + TIME_WAIT) from a local
    /// ephemeral port, and how many: what one destination has used of the port range. The
    /// first of `destinations`.
    pub busiest_destination: Option<(String, u64)>,
    /// The `TOP_DESTINATIONS` most used destination ip:ports and their sockets from a local
    /// ephemeral port, most used first (ties in address order). Each has the whole port range
    /// to itself; the rest are left out so a host talking to 100 000 destinations does not
    /// export 100 000 gauges.
    pub destinations: Vec<(String, u64)>,
    /// Per listening port: its established and locally closed connections.
    pub by_port: BTreeMap<u16, PortStates>,
}

/// `Name: a b c` / `Name: 1 2 3` line pairs (netstat, snmp) into `Name.a` = 1.
#[must_use]
pub fn parse_counters(text: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        let (Some((prefix, names)), Some((_, values))) =
            (names.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
            if let Ok(v) = value.parse() {
                out.insert(format!("{}.{name}", prefix.trim()), v);
            }
        }
    }
    out
}

/// `TCP: inuse 7 orphan 0 tw 1 alloc 9 mem 3` into `TCP.inuse` = 7, ...
#[must_use]
pub fn parse_sockstat(text: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((prefix, rest)) = line.split_once(':') else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        for pair in words.chunks(2) {
            if let [name, value] = pair
                && let Ok(v) = value.parse()
            {
                out.insert(format!("{}.{name}", prefix.trim()), v);
            }
        }
    }
    out
}

/// An address of proc/net/tcp (`0100007F:1F90`, or 32 hex digits for tcp6).
fn address_ip(hex: &str) -> Option<(IpAddr, u16)> {
    let (ip, port) = hex.rsplit_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match ip.len() {
        8 => {
            let n = u32::from_str_radix(ip, 16).ok()?;
            IpAddr::V4(std::net::Ipv4Addr::from(n.swap_bytes()))
        }
        32 => {
            let mut bytes = [0u8; 16];
            for (word, chunk) in ip.as_bytes().chunks(8).enumerate() {
                let w = u32::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
                bytes[word * 4..word * 4 + 4].copy_from_slice(&w.to_le_bytes());
            }
            IpAddr::V6(std::net::Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some((ip, port))
}

/// State counts, fed one socket at a time from proc/net/tcp text or from sock_diag.
#[derive(Default)]
struct StateCount {
    states: TcpStates,
    per_dest: HashMap<(IpAddr, u16), u64>,
    tw_ports: Vec<u16>,
    /// Per local port: established, and closed by this host (FIN_WAIT1/2, CLOSING,
    /// TIME_WAIT); only listening ports are kept in the end.
    local_ports: HashMap<u16, PortStates>,
}

impl StateCount {
    fn add(&mut self, state: u8, lport: u16, remote: IpAddr, rport: u16, ephemeral: (u16, u16)) {
        match state {
            sockets::ESTABLISHED => self.local_ports.entry(lport).or_default().established += 1,
            sockets::FIN_WAIT1 | sockets::FIN_WAIT2 | sockets::TIME_WAIT | sockets::CLOSING => {
                self.local_ports.entry(lport).or_default().closed_here += 1;
            }
            _ => {}
        }
        match state {
            sockets::ESTABLISHED | sockets::TIME_WAIT => {
                if state == sockets::ESTABLISHED {
                    self.states.established += 1;
                } else {
                    self.states.time_wait += 1;
                    self.tw_ports.push(lport);
                }
                if (ephemeral.0..=ephemeral.1).contains(&lport) {
                    *self.per_dest.entry((remote, rport)).or_default() += 1;
                }
            }
            sockets::SYN_RECV => self.states.syn_recv += 1,
            _ => {}
        }
    }

    fn finish(mut self, listeners: &[Listener]) -> TcpStates {
        let listening: BTreeSet<u16> = listeners.iter().map(|l| l.port).collect();
        self.states.time_wait_accepted = self
            .tw_ports
            .iter()
            .filter(|p| listening.contains(p))
            .count() as u64;
        self.states.by_port = listening
            .iter()
            .map(|p| (*p, self.local_ports.get(p).copied().unwrap_or_default()))
            .collect();
        // The most used first, in linear time: a host may talk to 100 000s of destinations.
        let mut top: Vec<(u64, IpAddr, u16)> = self
            .per_dest
            .iter()
            .map(|((ip, port), n)| (*n, *ip, *port))
            .collect();
        let order = |d: &(u64, IpAddr, u16)| (std::cmp::Reverse(d.0), d.1, d.2);
        if top.len() > TOP_DESTINATIONS {
            top.select_nth_unstable_by_key(TOP_DESTINATIONS - 1, order);
            top.truncate(TOP_DESTINATIONS);
        }
        top.sort_unstable_by_key(order);
        self.states.destinations = top
            .into_iter()
            .map(|(n, ip, port)| (format!("{}:{port}", sockets::show(ip)), n))
            .collect();
        self.states.busiest_destination = self.states.destinations.first().cloned();
        self.states
    }
}

/// Listeners and state counts from proc/net/tcp and tcp6 (a tree that is not the running
/// kernel's). For a LISTEN row the kernel prints the current accept queue in `rx_queue`;
/// `tx_queue` is write_seq - snd_una, 0 for a listener (net/ipv4/tcp_ipv4.c, get_tcp4_sock), so
/// the backlog is known only from sock_diag. `ephemeral` is the local port range: a socket
/// whose local port lies in it is counted against its destination.
#[must_use]
pub fn parse_tcp(tables: &[String], ephemeral: (u16, u16)) -> (Vec<Listener>, TcpStates) {
    let mut listeners = Vec::new();
    let mut count = StateCount::default();
    for line in tables.iter().flat_map(|t| t.lines().skip(1)) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(remote), Some(st), Some(queues)) =
            (f.get(1), f.get(2), f.get(3), f.get(4))
        else {
            continue;
        };
        let (Ok(state), Some((ip, port))) = (u8::from_str_radix(st, 16), address_ip(local)) else {
            continue;
        };
        if state == sockets::LISTEN {
            let rx = queues.split_once(':').map_or("0", |(_, rx)| rx);
            listeners.push(Listener {
                address: sockets::show(ip),
                port,
                queue: u64::from_str_radix(rx, 16).unwrap_or(0),
                backlog: None,
                inode: f.get(9).and_then(|i| i.parse().ok()).unwrap_or(0),
            });
        } else if let Some((rip, rport)) = address_ip(remote) {
            count.add(state, port, rip, rport, ephemeral);
        }
    }
    listeners.sort_by(|a, b| (a.port, &a.address).cmp(&(b.port, &b.address)));
    let states = count.finish(&listeners);
    (listeners, states)
}

/// Listeners and state counts of the running kernel from sock_diag: one dump of the
/// listeners and the ESTABLISHED, TIME_WAIT, SYN_RECV and closing sockets, filtered by the
/// kernel (one walk of its tables for both families), decoded without text or allocation per
/// socket.
fn diag_tcp(ephemeral: (u16, u16)) -> std::io::Result<(Vec<Listener>, TcpStates)> {
    let mut listeners = Vec::new();
    let mut count = StateCount::default();
    let states = sockets::mask(sockets::LISTEN)
        | sockets::mask(sockets::ESTABLISHED)
        | sockets::mask(sockets::TIME_WAIT)
        | sockets::mask(sockets::SYN_RECV)
        | sockets::mask(sockets::FIN_WAIT1)
        | sockets::mask(sockets::FIN_WAIT2)
        | sockets::mask(sockets::CLOSING);
    sockets::dump(states, |s| {
        if s.state == sockets::LISTEN {
            listeners.push(Listener {
                address: sockets::show(s.local),
                port: s.local_port,
                queue: u64::from(s.rqueue),
                backlog: Some(u64::from(s.wqueue)),
                inode: s.inode,
            });
        } else {
            count.add(s.state, s.local_port, s.remote, s.remote_port, ephemeral);
        }
    })?;
    listeners.sort_by(|a, b| (a.port, &a.address).cmp(&(b.port, &b.address)));
    let states = count.finish(&listeners);
    Ok((listeners, states))
}

/// `Max open files  1024  524288  files` of proc/PID/limits: (soft, hard), `None` = unlimited
/// (system::processes reads the line; `u64::MAX` is its unlimited).
#[must_use]
pub fn parse_nofile(limits: &str) -> Option<(Option<u64>, Option<u64>)> {
    let (soft, hard) = crate::system::processes::parse_limits(limits)?;
    let finite = |n: u64| (n != u64::MAX).then_some(n);
    Some((finite(soft), finite(hard)))
}

/// The fds an epoll instance watches, from its fdinfo (`tfd:       5 events: ...`).
#[must_use]
pub fn epoll_targets(fdinfo: &str) -> Vec<u64> {
    fdinfo
        .lines()
        .filter_map(|l| l.trim().strip_prefix("tfd:"))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

/// The longest line of an epoll fdinfo netprofile reads (a real one is under 100 bytes).
const FDINFO_LINE: u64 = 4096;

/// Whether the epoll instance `efd` of `pid` watches one of `fds`. Its fdinfo has a line per
/// watched fd (80 MB for a server that holds a million connections), so it is read as a
/// stream that stops at the first match, not as one file held whole: through
/// `Root::read_stream` (non-blocking, no symlink followed, regular files only, at most
/// `MAX_TABLE_READ` bytes), line by line, each line at most `FDINFO_LINE` bytes. A FIFO,
/// device, link, runaway file or overlong line is not an epoll instance's: that fd is skipped.
fn watches_any(root: &Root, pid: u32, efd: u64, fds: &[u64]) -> bool {
    use std::io::{BufRead, Read};
    let rel = format!("proc/{pid}/fdinfo/{efd}");
    let Ok(Some(file)) = root.read_stream(&rel, crate::system::root::MAX_TABLE_READ) else {
        return false;
    };
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader).take(FDINFO_LINE).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return false,
            Ok(n) if n as u64 == FDINFO_LINE && line.last() != Some(&b'\n') => return false,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        if epoll_targets(&text).iter().any(|t| fds.contains(t)) {
            return true;
        }
    }
}

/// utime + stime and start time (both in clock ticks) from proc/PID/stat.
#[must_use]
pub fn cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    // comm may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): utime is field 14, stime 15, starttime 22.
    let at = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    Some((at(14)? + at(15)?, at(22)?))
}

/// The bytes of slab one socket costs: the sum of the object sizes of `SOCKET_CACHES`.
#[must_use]
pub fn slab_per_socket(slabinfo: &str) -> Option<u64> {
    let mut total = 0;
    let mut found = 0;
    for line in slabinfo.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let (Some(name), Some(size)) = (f.first(), f.get(3))
            && SOCKET_CACHES.contains(name)
            && let Ok(size) = size.parse::<u64>()
        {
            total += size;
            found += 1;
        }
    }
    // Without the TCP cache itself the sum means nothing.
    (found > 0 && slabinfo.lines().any(|l| l.starts_with("TCP "))).then_some(total)
}

fn meminfo_kb(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Reads a file that may be absent or unreadable (another user's process): `None` then.
fn read_quiet(root: &Root, rel: &str) -> Option<String> {
    read_optional(root, rel).unwrap_or_default()
}

/// The local port range as `(low, high)`, from its normal form `"32768 60999"`.
#[must_use]
pub fn port_range(value: Option<&String>) -> (u16, u16) {
    let mut it = value
        .map(String::as_str)
        .unwrap_or("32768 60999")
        .split_whitespace()
        .filter_map(|p| p.parse().ok());
    (it.next().unwrap_or(32768), it.next().unwrap_or(60999))
}

/// Whether the root's `proc/net` is the network namespace this process runs in (the real
/// root, or a tree whose `proc` links to the kernel's), where sock_diag answers for it.
pub fn shows_this_kernel(root: &Root) -> bool {
    let kernel = std::path::Path::new(Root::KERNEL_PROC);
    std::fs::canonicalize(root.path("proc")).is_ok_and(|p| p == kernel)
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|t| *t > 0).unwrap_or(100)
}

/// What a process uses of the CPUs now, in cores, without waiting: the sum over its threads
/// of the scheduler's utilization average (`se.avg.util_avg` of proc/PID/task/TID/sched, 1024
/// = one CPU busy; a running average over the last ~100 ms, PELT's 32 ms half-life). `None`
/// when the kernel does not show it (built without CONFIG_SCHED_DEBUG) or the process has too
/// many threads to read each.
fn cpu_now(root: &Root, pid: u32) -> Option<f64> {
    let tasks = std::fs::read_dir(root.path(&format!("proc/{pid}/task"))).ok()?;
    let mut total = 0u64;
    for (n, task) in tasks.filter_map(std::result::Result::ok).enumerate() {
        if n >= 256 {
            return None;
        }
        let tid = task.file_name();
        let text = read_quiet(
            root,
            &format!("proc/{pid}/task/{}/sched", tid.to_string_lossy()),
        )?;
        total += parse_util_avg(&text)?;
    }
    #[allow(clippy::cast_precision_loss)]
    Some(total as f64 / 1024.0)
}

/// The `se.avg.util_avg : 683` line of a proc/PID/sched.
#[must_use]
pub fn parse_util_avg(sched: &str) -> Option<u64> {
    sched.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        (name.trim() == "se.avg.util_avg").then(|| value.trim().parse().ok())?
    })
}

impl Snapshot {
    /// Reads the machine (or the tree) under `root`.
    pub fn read(root: &Root) -> Result<Snapshot> {
        let mut snap = Snapshot {
            namespace: Some(root.namespace()),
            ..Snapshot::default()
        };
        for key in KEYS {
            let name = KeyName::parse(key).map_err(Error::State)?;
            if let Some(v) = read_sysctl(root, &name)? {
                snap.sysctl.insert((*key).to_string(), v);
            }
        }
        for rel in [NETSTAT, SNMP] {
            if let Some(text) = read_optional(root, rel)? {
                snap.counters.extend(parse_counters(&text));
            }
        }
        if let Some(text) = read_optional(root, SOCKSTAT)? {
            snap.sockstat = parse_sockstat(&text);
        }
        let range = port_range(snap.sysctl.get("net.ipv4.ip_local_port_range"));
        // The running kernel answers sock_diag; a tree (or a kernel without inet_diag) has
        // only its proc/net/tcp text.
        let diag = if sockets::answers_for(root) {
            diag_tcp(range).ok()
        } else {
            None
        };
        if let Some(found) = diag {
            (snap.listeners, snap.states) = found;
        } else {
            let mut tables = Vec::new();
            for rel in Root::PROC_NET_TCP {
                tables.extend(crate::system::read_proc_table(root, rel)?);
            }
            (snap.listeners, snap.states) = parse_tcp(&tables, range);
        }
        if let Some(text) = read_optional(root, "proc/sys/fs/file-nr")? {
            let v: Vec<u64> = text
                .split_whitespace()
                .filter_map(|s| s.parse().ok())
                .collect();
            if let [a, u, m] = v[..] {
                snap.file_nr = Some((a, u, m));
            }
        }
        let count = read_quiet(root, CONNTRACK_COUNT).and_then(|t| t.trim().parse().ok());
        let max = snap
            .sysctl
            .get("net.netfilter.nf_conntrack_max")
            .and_then(|v| v.parse().ok());
        if let (Some(c), Some(m)) = (count, max) {
            snap.conntrack = Some((c, m));
        }
        snap.own_nofile = read_quiet(root, SELF_LIMITS).and_then(|t| parse_nofile(&t));
        match read_quiet(root, SLABINFO).and_then(|t| slab_per_socket(&t)) {
            Some(bytes) => {
                snap.slab_per_socket = bytes;
                snap.slab_source = "proc/slabinfo";
            }
            None => {
                snap.slab_per_socket = SLAB_PER_SOCKET_DEFAULT;
                snap.slab_source = "built-in (proc/slabinfo unreadable)";
            }
        }
        snap.mem_available_kb =
            read_quiet(root, MEMINFO).and_then(|t| meminfo_kb(&t, "MemAvailable"));
        snap.cpus = read_quiet(root, STAT)
            .map(|t| {
                t.lines()
                    .filter(|l| {
                        l.strip_prefix("cpu")
                            .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
                    })
                    .count() as u64
            })
            .filter(|n| *n > 0)
            .unwrap_or(1);
        snap.read_processes(root)?;
        Ok(snap)
    }

    fn read_processes(&mut self, root: &Root) -> Result<()> {
        let by_inode: BTreeMap<u64, u16> = self
            .listeners
            .iter()
            .filter(|l| l.inode != 0)
            .map(|l| (l.inode, l.port))
            .collect();
        let proc_dir = root.path("proc");
        let Ok(entries) = std::fs::read_dir(&proc_dir) else {
            return Ok(());
        };
        let mut pids: Vec<u32> = entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        pids.sort_unstable();
        let uptime: Option<f64> =
            read_quiet(root, UPTIME).and_then(|t| t.split_whitespace().next()?.parse().ok());
        let ticks = clock_ticks();
        let users = read_quiet(root, "etc/passwd").unwrap_or_default();
        // A client counts when it lives in the network namespace doctor looks at: its sockets
        // are this namespace's (another namespace's clients are that one's business).
        let netns = |pid: &str| std::fs::read_link(root.path(&format!("proc/{pid}/ns/net"))).ok();
        let own_netns = netns("self");
        let mut samples = Vec::new();
        // On the running kernel the listeners are this network namespace's: a process in
        // another one (a container's) cannot hold them, so its fds are not read at all.
        let skip_netns = sockets::answers_for(root)
            .then(|| own_netns.clone())
            .flatten();
        for pid in pids {
            if let Some(own) = &skip_netns
                && netns(&pid.to_string()).is_some_and(|theirs| &theirs != own)
            {
                continue;
            }
            let Some(fds) = crate::system::processes::scan_fds(root, pid, &|inode| {
                by_inode.contains_key(&inode)
            }) else {
                self.unreadable += 1;
                continue;
            };
            let Some(mut p) = worth_reading(root, pid, &fds, &by_inode) else {
                continue;
            };
            if p.ports.is_empty() {
                // A client near its limit: the same identity, no listener facts.
                let near = p.nofile_soft.is_some_and(|soft| {
                    p.open_fds >= CLIENT_MIN_FDS && p.open_fds * 10 >= soft * 7
                }) && (own_netns.is_none() || netns(&pid.to_string()) == own_netns);
                if near {
                    identify(root, &users, &mut p);
                    self.clients.push(p);
                }
                continue;
            }
            identify(root, &users, &mut p);
            let listen_fds: Vec<u64> = fds.sockets.iter().map(|(fd, _)| *fd).collect();
            p.epoll = fds
                .epolls
                .iter()
                .any(|efd| watches_any(root, pid, *efd, &listen_fds));
            if let Some(used) = lifetime_cpu(root, &mut p, uptime, ticks) {
                samples.push((self.processes.len(), used));
            }
            if root.is_real() {
                p.cpu_now = cpu_now(root, pid);
            }
            self.processes.push(p);
        }
        self.cpu_over_a_quarter_second(root, samples, ticks);
        Ok(())
    }

    /// On a real machine, what each listener in `samples` (index, CPU ticks then) uses now,
    /// when the scheduler's running average did not say: its ticks over a quarter second.
    fn cpu_over_a_quarter_second(
        &mut self,
        root: &Root,
        mut samples: Vec<(usize, u64)>,
        ticks: u64,
    ) {
        samples.retain(|(index, _)| self.processes[*index].cpu_now.is_none());
        if root.is_real() && !samples.is_empty() {
            let wait = std::time::Duration::from_millis(250);
            std::thread::sleep(wait);
            for (index, before) in samples {
                let pid = self.processes[index].pid;
                if let Some((after, _)) = read_quiet(root, &format!("proc/{pid}/stat"))
                    .as_deref()
                    .and_then(cpu_ticks)
                {
                    #[allow(clippy::cast_precision_loss)]
                    let share = after.saturating_sub(before) as f64 / ticks as f64 / 0.25;
                    self.processes[index].cpu_now = Some(share);
                }
            }
        }
    }
}

/// A process worth doctor's attention, from its fds: a listener (it holds a listening socket
/// of `by_inode`) or a client with `CLIENT_MIN_FDS` open or more; with its nofile limits.
fn worth_reading(
    root: &Root,
    pid: u32,
    fds: &Fds,
    by_inode: &BTreeMap<u64, u16>,
) -> Option<Process> {
    let ports: BTreeSet<u16> = fds
        .sockets
        .iter()
        .filter_map(|(_, inode)| by_inode.get(inode).copied())
        .collect();
    let mut p = Process {
        pid,
        ports: ports.into_iter().collect(),
        open_fds: fds.open,
        has_epoll: !fds.epolls.is_empty(),
        ..Process::default()
    };
    if p.ports.is_empty() && fds.open < CLIENT_MIN_FDS {
        return None;
    }
    if let Some((soft, hard)) =
        read_quiet(root, &format!("proc/{pid}/limits")).and_then(|t| parse_nofile(&t))
    {
        p.nofile_soft = soft;
        p.nofile_hard = hard;
    }
    Some(p)
}

/// A listener's share of one core over its lifetime (proc/PID/stat against the uptime); sets
/// `cpu_lifetime` and `cpu_ticks` and returns the ticks used, for the sample of now.
fn lifetime_cpu(root: &Root, p: &mut Process, uptime: Option<f64>, ticks: u64) -> Option<u64> {
    let stat = read_quiet(root, &format!("proc/{}/stat", p.pid));
    let (Some((used, start)), Some(up)) = (stat.as_deref().and_then(cpu_ticks), uptime) else {
        return None;
    };
    #[allow(clippy::cast_precision_loss)]
    let alive = up - start as f64 / ticks as f64;
    if alive > 0.0 {
        #[allow(clippy::cast_precision_loss)]
        let share = used as f64 / ticks as f64 / alive;
        p.cpu_lifetime = share;
    }
    p.cpu_ticks = Some(used);
    Some(used)
}

/// The identity of a process: name, threads, uid and user, systemd unit, login uid, command
/// line.
fn identify(root: &Root, users: &str, p: &mut Process) {
    let pid = p.pid;
    p.comm = read_quiet(root, &format!("proc/{pid}/comm"))
        .map(|c| c.trim().to_string())
        .unwrap_or_default();
    let status = read_quiet(root, &format!("proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
    };
    p.threads = field("Threads:").unwrap_or(1);
    p.uid = field("Uid:").and_then(|u| u32::try_from(u).ok());
    p.user = p.uid.and_then(|uid| user_name(users, uid));
    p.service = read_quiet(root, &format!("proc/{pid}/cgroup"))
        .and_then(|t| crate::system::processes::unit_of(&t));
    p.login_uid = read_quiet(root, &format!("proc/{pid}/loginuid"))
        .and_then(|t| t.trim().parse::<u32>().ok())
        .filter(|u| *u != u32::MAX);
    p.cmdline = read_quiet(root, &format!("proc/{pid}/cmdline"))
        .map(|c| {
            c.split('\0')
                .filter(|a| !a.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
}

/// The name of `uid` in a passwd file.
#[must_use]
pub fn user_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.get(2)?.parse::<u32>().ok()? == uid).then(|| f[0].to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_sockstat() {
        let netstat = "TcpExt: ListenOverflows ListenDrops\nTcpExt: 12 14\n\
                       IpExt: InOctets\nIpExt: 99\n";
        let c = parse_counters(netstat);
        assert_eq!(c["TcpExt.ListenOverflows"], 12);
        assert_eq!(c["TcpExt.ListenDrops"], 14);
        assert_eq!(c["IpExt.InOctets"], 99);
        let s = parse_sockstat("sockets: used 33\nTCP: inuse 7 orphan 0 tw 1 alloc 9 mem 3\n");
        assert_eq!((s["TCP.inuse"], s["TCP.tw"], s["sockets.used"]), (7, 1, 33));
    }

    #[test]
    fn the_ten_most_used_destinations_are_kept_most_used_first() {
        // 10.0.0.N:443 has N sockets (N = 1..=12, half of them TIME_WAIT), and 10.0.0.13:443
        // ties with 10.0.0.12 at 12; one socket from outside the ephemeral range is not counted.
        let mut tcp = String::from("  sl  local_address rem_address   st\n");
        let mut lport = 32768u16;
        for (host, n) in (1..=12u8).map(|h| (h, u16::from(h))).chain([(13, 12)]) {
            for i in 0..n {
                let state = if i % 2 == 0 { "01" } else { "06" };
                tcp.push_str(&format!(
                    "0: 0100000A:{lport:04X} {host:02X}00000A:01BB {state} 0:0 0 0 0 0 0 0\n"
                ));
                lport += 1;
            }
        }
        tcp.push_str("0: 0100000A:0400 0D00000A:01BB 01 0:0 0 0 0 0 0 0\n");
        let (_, s) = parse_tcp(&[tcp], (32768, 60999));
        let want: Vec<(String, u64)> = [12u64, 13, 11, 10, 9, 8, 7, 6, 5, 4]
            .iter()
            .map(|h| (format!("10.0.0.{h}:443"), if *h == 13 { 12 } else { *h }))
            .collect();
        assert_eq!(s.destinations, want);
        assert_eq!(s.destinations.len(), TOP_DESTINATIONS);
        assert_eq!(s.busiest_destination, Some(("10.0.0.12:443".into(), 12)));
    }

    #[test]
    fn tcp_rows() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000:1F90 00000000:0000 0A 00000080:00000081 00:00000000 00000000     0        0 111 1\n\
   1: 0100007F:8000 0100007F:1F90 06 00000000:00000000 00:00000000 00000000     0        0 0 1\n\
   2: 0100007F:8001 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 5 1\n\
   3: 0100007F:1F90 0100007F:8001 01 00000000:00000000 00:00000000 00000000     0        0 6 1\n";
        let tcp6 = "  sl  local_address remote\n\
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00001000:00000000 00:00000000 00000000 0 0 222 1\n";
        let (l, s) = parse_tcp(&[tcp.into(), tcp6.into()], (32768, 60999));
        assert_eq!(l.len(), 2);
        assert_eq!(
            (l[0].port, l[0].backlog, l[0].queue, l[0].inode),
            (80, None, 0, 222)
        );
        assert_eq!(l[0].address, "[::]");
        assert_eq!((l[1].port, l[1].queue), (8080, 129));
        assert_eq!(l[1].address, "0.0.0.0");
        assert_eq!((s.established, s.time_wait), (2, 1));
        assert_eq!(
            s.busiest_destination,
            Some(("127.0.0.1:8080".to_string(), 2))
        );
    }

    #[test]
    fn small_parsers() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_nofile(limits), Some((Some(1024), Some(524288))));
        let unl = "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_nofile(unl), Some((None, None)));
        let info = "pos:\t0\nflags:\t02\nmnt_id:\t15\ntfd:        3 events:       19 data:                3  pos:0 ino:5 sdev:8\n\
                    tfd:        7 events:       19 data: 7\n";
        assert_eq!(epoll_targets(info), vec![3, 7]);
        assert_eq!(
            crate::system::processes::unit_of("0::/system.slice/nginx.service\n"),
            Some("nginx.service".into())
        );
        assert_eq!(
            crate::system::processes::unit_of("0::/user.slice/user-0.slice/session-1.scope\n"),
            None
        );
        let stat =
            "42 (my (odd) srv) S 1 42 42 0 -1 4194560 100 0 0 0 700 300 0 0 20 0 1 0 500 0 0";
        assert_eq!(cpu_ticks(stat), Some((1000, 500)));
        let slab = "slabinfo - version: 2.1\n# name <active_objs> <num_objs> <objsize>\n\
                    TCP 10 10 2368 13 8\nfilp 5 5 192 21 1\nkmalloc-8 1 1 8 1 1\n";
        assert_eq!(slab_per_socket(slab), Some(2560));
        assert_eq!(slab_per_socket("filp 5 5 192 21 1\n"), None);
        let sched = "yes (4242, #threads: 1)\n---------\nse.exec_start : 1.5\n\
                     se.avg.util_avg                              :                  683\n";
        assert_eq!(parse_util_avg(sched), Some(683));
        assert_eq!(parse_util_avg("se.avg.load_avg : 3\n"), None);
    }
}
