//! Running processes and the open-files limits they actually have.
//!
//! Reads, through `Root`, `proc/PID/{comm,status,cgroup,limits}`, the listening sockets (from
//! sock_diag on the running kernel, `proc/net/tcp{,6}` on another tree) and the `proc/PID/fd`
//! links that name them, to say which listening process
//! (and which systemd service) holds which nofile limit, and what a fresh start would give it
//! (the service's LimitNOFILE by systemd's rules, the manager's DefaultLimitNOFILE, or
//! pam_limits' value for its user). It never changes a limit: `transaction` does, with prlimit.
//! On a `--root` tree these files come from the tree; prlimit acts on real pids, so the
//! identity of a process is checked against the running kernel's `/proc` (`Root::KERNEL_PROC`).

use std::collections::BTreeMap;

use crate::error::Result;
use crate::profile::limit::{Domain, Item, LimitValue};
use crate::system::limits::Kind;
use crate::system::root::Root;
use crate::system::units::{self, UnitFiles};
use crate::system::{LiveState, read_optional};

/// One process as `proc` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    pub comm: String,
    pub uid: Option<u32>,
    /// The systemd service whose cgroup holds it (`nginx.service`), if any.
    pub unit: Option<String>,
    /// Open files (soft, hard); `u64::MAX` is unlimited.
    pub nofile: Option<(u64, u64)>,
    /// TCP ports it listens on.
    pub ports: Vec<u16>,
}

/// The "Max open files" line of a `proc/PID/limits`.
#[must_use]
pub fn parse_limits(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let fields: Vec<&str> = line["Max open files".len()..].split_whitespace().collect();
    let value = |s: &str| match s {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    };
    Some((value(fields.first()?)?, value(fields.get(1)?)?))
}

/// The service of a `proc/PID/cgroup` (`0::/system.slice/nginx.service`), if any.
#[must_use]
pub fn unit_of(cgroup: &str) -> Option<String> {
    cgroup.lines().find_map(|line| {
        let path = line.splitn(3, ':').nth(2)?;
        path.split('/')
            .rev()
            .find(|part| part.ends_with(".service"))
            .map(String::from)
    })
}

/// Socket inode -> port for the sockets in LISTEN state of proc/net/tcp and tcp6.
#[must_use]
pub fn listening_inodes(tables: &[String]) -> BTreeMap<u64, u16> {
    let mut out = BTreeMap::new();
    for line in tables.iter().flat_map(|t| t.lines().skip(1)) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(3) != Some(&"0A") {
            continue;
        }
        let port = fields
            .get(1)
            .and_then(|l| l.rsplit_once(':'))
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
        let inode = fields.get(9).and_then(|i| i.parse::<u64>().ok());
        if let (Some(port), Some(inode)) = (port, inode)
            && inode != 0
        {
            out.insert(inode, port);
        }
    }
    out
}

fn pids(root: &Root) -> Vec<u32> {
    let mut pids: Vec<u32> = std::fs::read_dir(root.path("proc"))
        .map(|entries| {
            entries
                .filter_map(std::result::Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    pids.sort_unstable();
    pids
}

/// Reads one process; `None` when it is gone (or is a kernel thread without a name).
fn read_process(root: &Root, pid: u32) -> Option<Process> {
    let at = |file: &str| format!("proc/{pid}/{file}");
    // A process may exit between listing and reading, and other users' files may be closed to
    // us: either way there is nothing to report about it.
    let comm = read_optional(root, &at("comm")).ok()??.trim().to_string();
    let uid = read_optional(root, &at("status"))
        .ok()
        .flatten()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next()?.parse().ok())
        });
    let unit = read_optional(root, &at("cgroup"))
        .ok()
        .flatten()
        .and_then(|c| unit_of(&c));
    let nofile = read_optional(root, &at("limits"))
        .ok()
        .flatten()
        .and_then(|l| parse_limits(&l));
    Some(Process {
        pid,
        comm,
        uid,
        unit,
        nofile,
        ports: Vec::new(),
    })
}

/// Every process under the root's `proc`, by pid.
#[must_use]
pub fn all(root: &Root) -> Vec<Process> {
    pids(root)
        .into_iter()
        .filter_map(|pid| read_process(root, pid))
        .collect()
}

/// Socket inode -> port of the root's listeners: from sock_diag on the running kernel (the
/// cost of the listeners only), from proc/net/tcp{,6} on any other tree.
pub fn listener_ports(root: &Root) -> Result<BTreeMap<u64, u16>> {
    if crate::system::sockets::answers_for(root)
        && let Ok(listeners) = crate::system::sockets::listeners()
    {
        return Ok(listeners
            .iter()
            .filter(|s| s.inode != 0)
            .map(|s| (s.inode, s.local_port))
            .collect());
    }
    let mut tables = Vec::new();
    for rel in Root::PROC_NET_TCP {
        tables.extend(crate::system::read_proc_table(root, rel)?);
    }
    Ok(listening_inodes(&tables))
}

/// What a process's `proc/PID/fd` folder shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fds {
    /// Open fds.
    pub open: u64,
    /// (fd, socket inode) of the fds whose socket `wanted` accepted.
    pub sockets: Vec<(u64, u64)>,
    /// The fds that are epoll instances.
    pub epolls: Vec<u64>,
}

/// Reads `proc/PID/fd` of one process: one getdents pass over the folder and one readlinkat
/// per fd, relative to the opened folder and into a stack buffer (no path walk and no
/// allocation per fd, unlike `ss -p`'s readlink of each full path). `None` when the folder
/// cannot be opened (the process is gone, or is another user's).
#[must_use]
pub fn scan_fds(root: &Root, pid: u32, wanted: &dyn Fn(u64) -> bool) -> Option<Fds> {
    use rustix::fs::{Mode, OFlags};
    let path = root.path(&format!("proc/{pid}/fd"));
    let dir = rustix::fs::open(
        &path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let entries = std::fs::read_dir(&path).ok()?;
    let mut fds = Fds::default();
    let mut buf = [0u8; 64];
    for entry in entries.filter_map(std::result::Result::ok) {
        let name = entry.file_name();
        let Some(num) = name.to_str().and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        fds.open += 1;
        let Ok(len) = rustix::fs::readlinkat_raw(&dir, name.as_os_str(), &mut buf[..]) else {
            continue;
        };
        let target = &buf[..len.min(buf.len())];
        if let Some(inode) = target
            .strip_prefix(b"socket:[")
            .and_then(|t| t.strip_suffix(b"]"))
            .and_then(|t| std::str::from_utf8(t).ok()?.parse::<u64>().ok())
        {
            if wanted(inode) {
                fds.sockets.push((num, inode));
            }
        } else if target == b"anon_inode:[eventpoll]" {
            fds.epolls.push(num);
        }
    }
    Some(fds)
}

/// The ports of the listeners among a process's fds, sorted; `None` when its fds cannot be read.
fn ports_of(root: &Root, pid: u32, inodes: &BTreeMap<u64, u16>) -> Option<Vec<u16>> {
    let fds = scan_fds(root, pid, &|inode| inodes.contains_key(&inode))?;
    let mut ports: Vec<u16> = fds
        .sockets
        .iter()
        .filter_map(|(_, inode)| inodes.get(inode).copied())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    Some(ports)
}

/// The running kernel's fs.nr_open, which bounds what prlimit may set on a real pid.
#[must_use]
pub fn kernel_nr_open() -> Option<u64> {
    read_optional(&Root::kernel(), "proc/sys/fs/nr_open")
        .ok()??
        .trim()
        .parse()
        .ok()
}

/// A real process's nofile limits and name, from the running kernel's `/proc`; `None` when
/// the pid does not exist.
#[must_use]
pub fn kernel_nofile(pid: u32) -> Option<(String, (u64, u64))> {
    let kernel = Root::kernel();
    let comm = read_optional(&kernel, &format!("proc/{pid}/comm")).ok()??;
    let limits = read_optional(&kernel, &format!("proc/{pid}/limits")).ok()??;
    Some((comm.trim().to_string(), parse_limits(&limits)?))
}

/// When a real process started (clock ticks after boot, field 22 of `/proc/PID/stat`): with
/// its name, what tells it apart from a later process that reuses the pid.
#[must_use]
pub fn kernel_started(pid: u32) -> Option<u64> {
    let stat = read_optional(&Root::kernel(), &format!("proc/{pid}/stat")).ok()??;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the running `pid` is still the process that was named `comm` and started at
/// `started` (when known).
#[must_use]
pub fn same_process(pid: u32, comm: &str, started: Option<u64>) -> bool {
    kernel_nofile(pid).is_some_and(|(now, _)| now == comm)
        && started.is_none_or(|s| kernel_started(pid) == Some(s))
}

/// What a fresh start of a process would get, where that comes from, and what it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreshStart {
    pub nofile: (u64, u64),
    /// `LimitNOFILE= in FILE:LINE`, `DefaultLimitNOFILE= in …`, `limits in FILE:LINE`.
    pub source: String,
    /// What it takes for the process to get it: a restart, a daemon-reexec, a new login.
    pub needs: String,
}

/// systemd's built-in DefaultLimitNOFILE (since v240).
const SYSTEMD_DEFAULT: (u64, u64) = (1024, 524_288);

/// What a fresh start of `process` gets from the files now: a service by systemd's rules, any
/// other process from pam_limits for its user. `None` when nothing sets its limit.
#[must_use]
pub fn fresh_start(
    process: &Process,
    nr_open: Option<i64>,
    unit: Option<&UnitFiles>,
    live: &LiveState,
    entries: &[crate::system::limits::Entry],
) -> Option<FreshStart> {
    if let Some(name) = &process.unit {
        if let Some(a) = unit.and_then(UnitFiles::limit_nofile) {
            return Some(FreshStart {
                nofile: units::parse_nofile(&a.value)?,
                source: format!("LimitNOFILE={} in {}:{}", a.value, a.file, a.line),
                needs: format!("`systemctl daemon-reload`, then restart {name}"),
            });
        }
        return Some(match &live.systemd_nofile {
            Some(d) => FreshStart {
                nofile: units::parse_nofile(&d.value)?,
                source: format!("DefaultLimitNOFILE={} in {}:{}", d.value, d.file, d.line),
                needs: format!("`systemctl daemon-reexec`, then restart {name}"),
            },
            None => FreshStart {
                nofile: SYSTEMD_DEFAULT,
                source: "systemd's default DefaultLimitNOFILE=1024:524288".into(),
                needs: format!("restart {name}"),
            },
        });
    }
    let user = process.uid.and_then(|uid| {
        live.users
            .iter()
            .find(|(_, (u, _))| *u == uid)
            .map(|(name, _)| name.clone())
    });
    let mut subject = match &user {
        Some(name) => live.subject(&Domain::User(name.clone())),
        None => crate::system::limits::Subject::default(),
    };
    subject.uid = subject.uid.or(process.uid);
    let (soft, hard) = crate::system::limits::resolve(entries, &subject, Item::Nofile, nr_open);
    let num = |v: LimitValue| match v {
        LimitValue::Num(n) => u64::try_from(n).ok(),
        LimitValue::Unlimited => Some(u64::MAX),
    };
    let (soft, hard) = (soft?, hard?);
    Some(FreshStart {
        nofile: (num(soft.value)?, num(hard.value)?),
        source: format!(
            "limits soft {}:{}, hard {}:{}",
            soft.file, soft.line, hard.file, hard.line
        ),
        needs: "a new login (pam_limits), then restart it".into(),
    })
}

/// A listening process that runs with less than a fresh start would give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    pub process: Process,
    pub now: (u64, u64),
    pub fresh: FreshStart,
}

/// pam_limits gives a login's nofile only from a soft and a hard line (fresh_start needs both):
/// without them no process outside a service can be behind, whoever runs it.
fn logins_set_nofile(entries: &[crate::system::limits::Entry]) -> bool {
    let has = |kind: Kind| {
        entries
            .iter()
            .any(|e| e.item == Item::Nofile && (e.kind == kind || e.kind == Kind::Both))
    };
    has(Kind::Soft) && has(Kind::Hard)
}

/// A file of an opened proc/PID, as text; `None` when it cannot be read.
fn read_in(dir: &std::os::fd::OwnedFd, file: &str) -> Option<String> {
    Root::read_in(dir, file, crate::system::MAX_READ)
        .ok()
        .flatten()
        .map(crate::system::text)
}

/// What decides a process's fresh start: its service (only where `services` run), then, for a
/// process in one or when `logins` set nofile, its limits, and its user only outside any
/// service. A process that cannot be behind costs one read (its cgroup) or none.
/// `None` when it cannot be behind or is gone. Its name is read later, once it is reported.
fn candidate(
    dir: &std::os::fd::OwnedFd,
    pid: u32,
    services: bool,
    logins: bool,
) -> Option<Process> {
    // The service first: a process in none, when logins do not set nofile, is passed over
    // without reading its limits (kernel threads, session processes).
    let unit = if services {
        read_in(dir, "cgroup").and_then(|c| unit_of(&c))
    } else {
        None
    };
    if unit.is_none() && !logins {
        return None;
    }
    let now = read_in(dir, "limits").and_then(|l| parse_limits(&l))?;
    let uid = if unit.is_none() {
        read_in(dir, "status").and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next()?.parse().ok())
        })
    } else {
        None
    };
    Some(Process {
        pid,
        comm: String::new(),
        uid,
        unit,
        nofile: Some(now),
        ports: Vec::new(),
    })
}

/// The listening processes whose nofile limits are below what a fresh start would get.
///
/// A process's limits, service and user are a few small reads; its fds may be a million
/// sockets. So the fds are read only for the processes whose limits are old, which are the
/// only ones this can report: on a busy host whose servers are up to date, `status` costs what
/// the process count costs, not what the connections cost.
pub fn stale(root: &Root, live: &LiveState) -> Result<Vec<Stale>> {
    let nr_open = super::nr_open(root);
    let entries = crate::system::entries(&live.limit_files);
    let logins = logins_set_nofile(&entries);
    // Without systemd running (a container, another init) no process is in a service: the
    // live root's cgroup paths then name scopes of whatever manages it, not units to read.
    let services = !root.is_real() || root.path("run/systemd/system").is_dir();
    let mut unit_cache: BTreeMap<String, UnitFiles> = BTreeMap::new();
    let mut inodes: Option<BTreeMap<u64, u16>> = None;
    let mut out = Vec::new();
    // With no service manager and no login that sets nofile, no process has a fresh start
    // to compare with: nothing to read.
    if !services && !logins {
        return Ok(out);
    }
    // `proc` opened once and each `proc/PID` once, its files read relative to it: a process
    // costs an open and a read per file, not a walk of the path per file.
    let Ok(proc) = root.open_folder("proc") else {
        return Ok(out);
    };
    for pid in pids(root) {
        let Ok(dir) = Root::open_in(&proc, &pid.to_string()) else {
            continue;
        };
        let Some(mut process) = candidate(&dir, pid, services, logins) else {
            continue;
        };
        let now = process.nofile.unwrap_or_default();
        let unit = match &process.unit {
            Some(name) => {
                if !unit_cache.contains_key(name) {
                    unit_cache.insert(name.clone(), units::unit_files(root, name)?);
                }
                unit_cache.get(name)
            }
            None => None,
        };
        let Some(fresh) = fresh_start(&process, nr_open, unit, live, &entries) else {
            continue;
        };
        if now.0 >= fresh.nofile.0 && now.1 >= fresh.nofile.1 {
            continue;
        }
        if inodes.is_none() {
            inodes = Some(listener_ports(root)?);
        }
        let Some(inodes) = inodes.as_ref().filter(|i| !i.is_empty()) else {
            return Ok(Vec::new());
        };
        match ports_of(root, pid, inodes) {
            Some(ports) if !ports.is_empty() => process.ports = ports,
            _ => continue,
        }
        // Gone since (or a kernel thread): nothing to report.
        let Some(comm) = read_in(&dir, "comm") else {
            continue;
        };
        process.comm = comm.trim().to_string();
        out.push(Stale {
            process,
            now,
            fresh,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
Max cpu time              unlimited            unlimited            seconds   \n\
Max open files            1024                 524288               files     \n";
        assert_eq!(parse_limits(limits), Some((1024, 524_288)));
        assert_eq!(
            parse_limits("Max open files  unlimited unlimited files\n"),
            Some((u64::MAX, u64::MAX))
        );
        assert_eq!(
            unit_of("0::/system.slice/nginx.service\n"),
            Some("nginx.service".into())
        );
        assert_eq!(
            unit_of("0::/system.slice/docker.service/inner\n"),
            Some("docker.service".into())
        );
        assert_eq!(
            unit_of("0::/user.slice/user-0.slice/session-3.scope\n"),
            None
        );
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1\n\
   1: 0100007F:0016 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 77 1\n";
        assert_eq!(
            listening_inodes(&[tcp.into()]),
            BTreeMap::from([(4242, 8080)])
        );
    }

    /// pam_limits gives `unlimited` nofile as fs.nr_open: a login's fresh start must read the
    /// live fs.nr_open, which `stale` once looked up in a LiveState that never held it.
    #[test]
    fn an_unlimited_nofile_at_login_is_fs_nr_open() {
        let live = LiveState {
            limit_files: vec![super::super::sysctld::BootFile {
                path: "/etc/security/limits.conf".into(),
                text: "* - nofile unlimited\n".into(),
            }],
            ..LiveState::default()
        };
        let process = Process {
            pid: 1,
            comm: "server".into(),
            uid: Some(1000),
            unit: None,
            nofile: Some((1024, 4096)),
            ports: vec![8080],
        };
        let entries = crate::system::entries(&live.limit_files);
        let got = fresh_start(&process, Some(1_048_576), None, &live, &entries).expect("a limit");
        assert_eq!(got.nofile, (1_048_576, 1_048_576));
        // fs.nr_open unreadable: left unlimited rather than guessed.
        let unknown = fresh_start(&process, None, None, &live, &entries).expect("a limit");
        assert_eq!(unknown.nofile, (u64::MAX, u64::MAX));
    }

    #[test]
    fn this_process_is_itself_and_not_another() {
        let pid = std::process::id();
        let (comm, _) = kernel_nofile(pid).expect("own /proc entry");
        let started = kernel_started(pid);
        assert!(started.is_some());
        assert!(same_process(pid, &comm, started));
        assert!(!same_process(pid, &comm, started.map(|s| s + 1)));
        assert!(!same_process(pid, "not-this", None));
    }
}
