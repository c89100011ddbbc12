//! The listen backlog of each listening TCP socket, from the kernel's sock_diag netlink
//! interface (what `ss -lnt` shows as Send-Q). /proc/net/tcp prints the accept queue of a
//! listener (`rx_queue`) but not its backlog (`tx_queue` is 0 there), so only sock_diag can
//! tell an application's small listen() argument from somaxconn. It answers for the network
//! namespace this process runs in, so doctor asks it only when the root's `proc` is the running
//! kernel's. Sends one dump request per address family; never changes anything.

use std::collections::BTreeMap;

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const TCP_LISTEN: u32 = 10;
/// Bytes of an `inet_diag_msg` that are read: up to and including `idiag_inode`.
const MSG_LEN: usize = 72;

/// Accept queue and backlog of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queues {
    pub queue: u64,
    pub backlog: u64,
}

/// The request: nlmsghdr (16 bytes) + inet_diag_req_v2 (56 bytes) for LISTEN sockets.
fn request(family: u8, seq: u32) -> [u8; 72] {
    let mut b = [0u8; 72];
    b[0..4].copy_from_slice(&72u32.to_ne_bytes());
    b[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    let flags = u16::try_from(libc::NLM_F_REQUEST | libc::NLM_F_DUMP).unwrap_or(0x301);
    b[6..8].copy_from_slice(&flags.to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    b[16] = family;
    b[17] = u8::try_from(libc::IPPROTO_TCP).unwrap_or(6);
    b[20..24].copy_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    b
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses the messages of one datagram into `out`; returns true at the end of the dump.
fn parse(buf: &[u8], out: &mut BTreeMap<u64, Queues>) -> bool {
    let mut at = 0;
    while at + 16 <= buf.len() {
        let Some(len) = u32_at(buf, at).and_then(|l| usize::try_from(l).ok()) else {
            return true;
        };
        let kind = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
        if len < 16 || at + len > buf.len() {
            return true;
        }
        match kind {
            NLMSG_DONE | NLMSG_ERROR => return true,
            SOCK_DIAG_BY_FAMILY if len >= 16 + MSG_LEN => {
                let m = &buf[at + 16..at + len];
                if let (Some(rq), Some(wq), Some(inode)) =
                    (u32_at(m, 56), u32_at(m, 60), u32_at(m, 68))
                {
                    out.insert(
                        u64::from(inode),
                        Queues {
                            queue: u64::from(rq),
                            backlog: u64::from(wq),
                        },
                    );
                }
            }
            _ => {}
        }
        at += (len + 3) & !3;
    }
    false
}

/// Listeners of this network namespace by socket inode; empty if sock_diag is unavailable.
#[must_use]
pub fn listeners() -> BTreeMap<u64, Queues> {
    let mut out = BTreeMap::new();
    // SAFETY: plain system calls on a socket this function owns and closes; buffers are local
    // and their lengths are passed with them.
    unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        );
        if fd < 0 {
            return out;
        }
        let tv = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            u32::try_from(std::mem::size_of::<libc::timeval>()).unwrap_or(16),
        );
        for (seq, family) in [(1u32, libc::AF_INET), (2, libc::AF_INET6)] {
            let req = request(u8::try_from(family).unwrap_or(2), seq);
            let mut addr: libc::sockaddr_nl = std::mem::zeroed();
            addr.nl_family = u16::try_from(libc::AF_NETLINK).unwrap_or(16);
            let sent = libc::sendto(
                fd,
                req.as_ptr().cast(),
                req.len(),
                0,
                (&raw const addr).cast(),
                u32::try_from(std::mem::size_of::<libc::sockaddr_nl>()).unwrap_or(12),
            );
            if sent < 0 {
                break;
            }
            let mut buf = vec![0u8; 1 << 16];
            // Bounded: a dump of a million listeners is about 15 000 datagrams.
            for _ in 0..100_000 {
                let n = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
                let Ok(n) = usize::try_from(n) else {
                    break;
                };
                if n == 0 || parse(&buf[..n], &mut out) {
                    break;
                }
            }
        }
        libc::close(fd);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_namespace_listeners() {
        use rustix::net::{AddressFamily, SocketType, bind, getsockname, listen, socket};
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
        let q = super::listeners()[&inode];
        assert_eq!((q.queue, q.backlog), (1, 77));
    }
}
