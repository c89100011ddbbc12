//! TCP sockets of the running kernel, from its sock_diag netlink interface (`inet_diag`, what
//! `ss` uses), with a state filter applied by the kernel: a dump of LISTEN sockets costs what
//! the listeners cost, however many connections are established. It answers for the network
//! namespace this process runs in, so callers ask it only when the root's `proc` is the running
//! kernel's (`answers_for`); other `--root` trees are read from their `proc/net/tcp{,6}` text.
//! The socket calls go through rustix (no `unsafe` here); the fixed-layout request and reply
//! records (`inet_diag_req_v2`, `inet_diag_msg`, linux/inet_diag.h) are encoded and decoded by
//! hand, without allocating per socket. It only reads; it never changes a socket.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::sockopt::{Timeout, set_socket_timeout};
use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType, recv, sendto, socket_with,
};

use crate::system::root::Root;

/// TCP states (include/net/tcp_states.h), for `Socket::state` and the masks of `dump`.
pub const ESTABLISHED: u8 = 1;
pub const SYN_RECV: u8 = 3;
pub const FIN_WAIT1: u8 = 4;
pub const FIN_WAIT2: u8 = 5;
pub const TIME_WAIT: u8 = 6;
pub const CLOSING: u8 = 11;
pub const LISTEN: u8 = 10;

const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `TCPDIAG_GETSOCK` (linux/inet_diag.h): the first inet_diag request, which every kernel still
/// answers (`inet_diag_dump_compat`). Its dump is for no one family (`AF_UNSPEC`), so IPv4 and
/// IPv6 sockets come from one walk of the kernel's socket tables, where `SOCK_DIAG_BY_FAMILY`
/// walks them once per family. The walk of the established table costs its size even when it
/// is empty (a millisecond on a host with a large table), so this halves the cost of a dump
/// that is not only listeners. Replies carry the request's type.
const TCPDIAG_GETSOCK: u16 = 18;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
/// nlmsghdr (16) + inet_diag_req_v2 (56).
const REQUEST_LEN: usize = 72;
/// nlmsghdr (16) + inet_diag_req (60): family (0: any), lengths, ext, the socket id (48 bytes),
/// the state mask, and a field the kernel does not read.
const COMPAT_LEN: usize = 76;
/// The part of an `inet_diag_msg` that is read: up to and including `idiag_inode`.
const MSG_LEN: usize = 72;
/// A dump of a million sockets is about 30 000 datagrams of this size: the bound of one dump.
const MAX_DATAGRAMS: usize = 1_000_000;

/// One TCP socket as sock_diag reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Socket {
    pub state: u8,
    pub local: IpAddr,
    pub local_port: u16,
    pub remote: IpAddr,
    pub remote_port: u16,
    /// For a listener: connections waiting in the accept queue; else bytes unread.
    pub rqueue: u32,
    /// For a listener: its backlog, min(listen() argument, somaxconn); else bytes unsent.
    pub wqueue: u32,
    pub inode: u64,
}

/// Whether sock_diag answers for `root`: its `proc` is the running kernel's (`--root /`, or a
/// tree whose `proc` links to `/proc`, as the connection test's sandbox hosts have). A
/// temporary tree with its own `proc/net/tcp` text is not, and is read as text.
#[must_use]
pub fn answers_for(root: &Root) -> bool {
    if root.is_real() {
        return true;
    }
    let kernel = std::path::Path::new(Root::KERNEL_PROC);
    std::fs::canonicalize(root.path("proc")).is_ok_and(|p| p == kernel)
}

/// A dump request of `N` bytes: its nlmsghdr (length, `kind`, request + dump, `seq`) and a
/// zeroed body for the caller to fill.
fn dump_request<const N: usize>(kind: u16, seq: u32) -> [u8; N] {
    let mut b = [0u8; N];
    b[0..4].copy_from_slice(&u32::try_from(N).unwrap_or(u32::MAX).to_ne_bytes());
    b[4..6].copy_from_slice(&kind.to_ne_bytes());
    b[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    b
}

/// The request: nlmsghdr + inet_diag_req_v2 for TCP sockets of `family` in the `states` mask.
fn request(family: u8, states: u32, seq: u32) -> [u8; REQUEST_LEN] {
    let mut b = dump_request::<REQUEST_LEN>(SOCK_DIAG_BY_FAMILY, seq);
    b[16] = family;
    b[17] = 6; // IPPROTO_TCP
    b[20..24].copy_from_slice(&states.to_ne_bytes());
    b
}

/// The request for every TCP socket of any family in the `states` mask, in one dump.
fn compat_request(states: u32, seq: u32) -> [u8; COMPAT_LEN] {
    let mut b = dump_request::<COMPAT_LEN>(TCPDIAG_GETSOCK, seq);
    b[16 + 52..16 + 56].copy_from_slice(&states.to_ne_bytes());
    b
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn port_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn addr_at(b: &[u8], at: usize, family: u8) -> Option<IpAddr> {
    if family == 10 {
        let bytes: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
        Some(IpAddr::V6(Ipv6Addr::from(bytes)))
    } else {
        let bytes: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(IpAddr::V4(Ipv4Addr::from(bytes)))
    }
}

/// Decodes one `inet_diag_msg`.
fn decode(m: &[u8]) -> Option<Socket> {
    let family = *m.first()?;
    Some(Socket {
        state: *m.get(1)?,
        local_port: port_at(m, 4)?,
        remote_port: port_at(m, 6)?,
        local: addr_at(m, 8, family)?,
        remote: addr_at(m, 24, family)?,
        rqueue: u32_at(m, 56)?,
        wqueue: u32_at(m, 60)?,
        inode: u64::from(u32_at(m, 68)?),
    })
}

/// What one datagram said.
#[derive(Debug, PartialEq, Eq)]
enum Part {
    More,
    Done,
    Failed(i32),
}

/// Hands the sockets of one datagram to `each`; says whether the dump goes on.
fn parse(buf: &[u8], each: &mut impl FnMut(&Socket)) -> Part {
    let mut at = 0;
    while at + 16 <= buf.len() {
        let Some(len) = u32_at(buf, at).and_then(|l| usize::try_from(l).ok()) else {
            return Part::Done;
        };
        let kind = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
        if len < 16 || at + len > buf.len() {
            return Part::Done;
        }
        match kind {
            NLMSG_DONE => return Part::Done,
            NLMSG_ERROR => {
                let code = u32_at(buf, at + 16).map_or(0, |c| c.cast_signed());
                return if code == 0 {
                    Part::Done
                } else {
                    Part::Failed(-code)
                };
            }
            SOCK_DIAG_BY_FAMILY | TCPDIAG_GETSOCK if len >= 16 + MSG_LEN => {
                if let Some(s) = decode(&buf[at + 16..at + len]) {
                    each(&s);
                }
            }
            _ => {}
        }
        at += (len + 3) & !3;
    }
    Part::More
}

/// The bit of `state` in a `dump` mask.
#[must_use]
pub const fn mask(state: u8) -> u32 {
    1 << state
}

/// Every TCP socket (IPv4 and IPv6) of this network namespace whose state is in `states` (a
/// mask of `mask(..)` bits), handed to `each` as the kernel reports it. The kernel filters by
/// state, so the sockets outside the mask cost nothing here. One dump for both families
/// (`TCPDIAG_GETSOCK`); a kernel that refuses it before answering with any socket is asked
/// per family instead.
pub fn dump(states: u32, mut each: impl FnMut(&Socket)) -> io::Result<()> {
    let fd = socket_with(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        Some(netlink::SOCK_DIAG),
    )?;
    // A kernel that stops answering must not hang a readiness probe.
    set_socket_timeout(&fd, Timeout::Recv, Some(std::time::Duration::from_secs(10)))?;
    // 64 KiB: more than the kernel puts in one dump datagram, so none is truncated.
    let mut buf = vec![0u8; 1 << 16];
    let mut seen = 0u64;
    let both = exchange(
        &fd,
        &compat_request(states, 1),
        &mut buf,
        &mut |s: &Socket| {
            seen += 1;
            each(s);
        },
    );
    match both {
        Err(e)
            if seen == 0
                && matches!(
                    e.raw_os_error(),
                    Some(libc::EINVAL | libc::EOPNOTSUPP | libc::ENOENT)
                ) =>
        {
            // No compatible dump on this kernel: one per family.
            for (seq, family) in [(2u32, 2u8), (3, 10)] {
                exchange(&fd, &request(family, states, seq), &mut buf, &mut each)?;
            }
            Ok(())
        }
        other => other,
    }
}

/// Sends one dump request and hands every socket of its answer to `each`, to its end.
fn exchange(
    fd: &rustix::fd::OwnedFd,
    req: &[u8],
    buf: &mut [u8],
    each: &mut impl FnMut(&Socket),
) -> io::Result<()> {
    sendto(fd, req, SendFlags::empty(), &SocketAddrNetlink::new(0, 0))?;
    for _ in 0..MAX_DATAGRAMS {
        let (n, _) = recv(fd, &mut *buf, RecvFlags::empty())?;
        if n == 0 {
            break;
        }
        match parse(&buf[..n.min(buf.len())], each) {
            Part::More => {}
            Part::Done => return Ok(()),
            Part::Failed(errno) => return Err(io::Error::from_raw_os_error(errno)),
        }
    }
    Err(io::Error::other("sock_diag dump did not end"))
}

/// The listening TCP sockets of this network namespace, sorted by port and address.
pub fn listeners() -> io::Result<Vec<Socket>> {
    let mut out = Vec::new();
    dump(mask(LISTEN), |s| out.push(*s))?;
    out.sort_by_key(|s| (s.local_port, s.local));
    Ok(out)
}

/// An address as netprofile prints it: IPv4 dotted, IPv6 in brackets, an IPv4-mapped IPv6
/// address as its IPv4 form (as proc/net/tcp6 readers print it).
#[must_use]
pub fn show(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("[{v6}]"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_listener_record() {
        let mut msg = vec![0u8; 16 + MSG_LEN];
        #[allow(clippy::cast_possible_truncation)]
        msg[0..4].copy_from_slice(&((16 + MSG_LEN) as u32).to_ne_bytes());
        msg[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        let m = &mut msg[16..];
        m[0] = 2;
        m[1] = LISTEN;
        m[4..6].copy_from_slice(&8080u16.to_be_bytes());
        m[8..12].copy_from_slice(&[127, 0, 0, 1]);
        m[56..60].copy_from_slice(&3u32.to_ne_bytes());
        m[60..64].copy_from_slice(&4096u32.to_ne_bytes());
        m[68..72].copy_from_slice(&777u32.to_ne_bytes());
        let mut done = vec![0u8; 20];
        done[0..4].copy_from_slice(&20u32.to_ne_bytes());
        done[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
        msg.extend(done);
        let mut seen = Vec::new();
        assert_eq!(parse(&msg, &mut |s| seen.push(*s)), Part::Done);
        assert_eq!(seen.len(), 1);
        let s = seen[0];
        assert_eq!(
            (show(s.local), s.local_port),
            ("127.0.0.1".to_string(), 8080)
        );
        assert_eq!((s.rqueue, s.wqueue, s.inode), (3, 4096, 777));
    }

    #[test]
    fn the_one_dump_for_both_families_finds_what_a_dump_per_family_finds() {
        use std::net::{Ipv6Addr, SocketAddrV6, TcpListener, TcpStream};
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let v6 = TcpListener::bind(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 0, 0, 0));
        let _c4 = TcpStream::connect(v4.local_addr().unwrap()).unwrap();
        let _c6 = v6
            .as_ref()
            .map(|l| TcpStream::connect(l.local_addr().unwrap()).unwrap());
        let states = mask(LISTEN) | mask(ESTABLISHED);
        let key = |s: &Socket| (s.state, s.local, s.local_port, s.remote, s.remote_port);
        let mut via_dump = Vec::new();
        dump(states, |s| via_dump.push(key(s))).unwrap();
        let fd = socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            Some(netlink::SOCK_DIAG),
        )
        .unwrap();
        let mut buf = vec![0u8; 1 << 16];
        // This kernel answers the request for both families itself (no fallback).
        let mut one = Vec::new();
        exchange(
            &fd,
            &compat_request(states, 9),
            &mut buf,
            &mut |s: &Socket| {
                one.push(key(s));
            },
        )
        .unwrap();
        let mut per_family = Vec::new();
        for (seq, family) in [(1, 2), (2, 10)] {
            exchange(
                &fd,
                &request(family, states, seq),
                &mut buf,
                &mut |s: &Socket| {
                    per_family.push(key(s));
                },
            )
            .unwrap();
        }
        // Only this test's sockets: other tests open theirs in the same namespace meanwhile.
        let ports: Vec<u16> = [Ok(&v4), v6.as_ref()]
            .into_iter()
            .filter_map(|l| Some(l.ok()?.local_addr().unwrap().port()))
            .collect();
        for all in [&mut via_dump, &mut one, &mut per_family] {
            all.retain(|k| ports.contains(&k.2) || ports.contains(&k.4));
            all.sort_unstable();
        }
        assert_eq!(one, per_family);
        assert_eq!(via_dump, one);
        // Each listener and both ends of each connection are there.
        let port4 = v4.local_addr().unwrap().port();
        assert!(one.contains(&(
            LISTEN,
            IpAddr::from([127, 0, 0, 1]),
            port4,
            IpAddr::from([0u8; 4]),
            0
        )));
        assert_eq!(one.iter().filter(|k| k.0 == LISTEN).count(), ports.len());
        let ends = one.iter().filter(|k| k.0 == ESTABLISHED).count();
        assert_eq!(ends, 2 * ports.len());
    }

    #[test]
    fn reads_this_namespace_listeners() {
        use rustix::net::{bind, getsockname, listen, socket};
        // A listener that asks for backlog 77 and has one connection waiting to be accepted.
        let fd = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
        bind(
            &fd,
            &std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 0),
        )
        .unwrap();
        listen(&fd, 77).unwrap();
        let addr = std::net::SocketAddrV4::try_from(getsockname(&fd).unwrap()).unwrap();
        let _c = std::net::TcpStream::connect(addr).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let inode = rustix::fs::fstat(&fd).unwrap().st_ino;
        let all = listeners().unwrap();
        let l = all.iter().find(|s| s.inode == inode).unwrap();
        assert_eq!((l.rqueue, l.wqueue, l.local_port), (1, 77, addr.port()));
        // The connection itself is not a listener.
        assert!(all.iter().all(|s| s.state == LISTEN));
    }
}
