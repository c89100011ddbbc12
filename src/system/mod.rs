//! The live state of a target: what `plan` compares a profile with.
//!
//! Reads, through `Root` only, the current value of each key the profile names, the sysctl.d
//! files that set keys at boot, the limits files, systemd's DefaultLimitNOFILE, the users and
//! groups that limits domains name, listening TCP ports, and netprofile's own drop-ins. It
//! reads everything `plan` needs up front so that `plan` stays pure. It never writes.

pub mod limits;
pub mod root;
pub mod sysctld;

use std::collections::BTreeMap;
use std::io::ErrorKind;

use self::limits::{Entry, Subject};
use self::sysctld::BootFile;
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::profile::keys::KeyName;
use crate::profile::limit::Domain;
use crate::system::root::{Namespace, Root, SYSCTL_DIRS};

/// DefaultLimitNOFILE as the systemd files set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemdNofile {
    pub value: String,
    pub file: String,
    pub line: usize,
}

#[derive(Debug, Clone, Default)]
pub struct LiveState {
    pub namespace: Option<Namespace>,
    /// Each key read, as the kernel prints it (see `read_sysctl_raw`); `None` when the kernel
    /// has no such key. `plan` compares normal forms (value.rs).
    pub sysctl: BTreeMap<KeyName, Option<String>>,
    /// For each absent key, the names that exist in its folder (for "did you mean").
    pub siblings: BTreeMap<KeyName, Vec<String>>,
    /// sysctl.d files in the order they apply at boot.
    pub boot_files: Vec<BootFile>,
    /// limits.conf then limits.d/*.conf, in pam_limits order.
    pub limit_files: Vec<BootFile>,
    pub systemd_nofile: Option<SystemdNofile>,
    /// `user -> (uid, gid)` from etc/passwd and `group -> (gid, members)` from etc/group.
    pub users: BTreeMap<String, (u32, u32)>,
    pub groups: BTreeMap<String, (u32, Vec<String>)>,
    /// Ports with a TCP socket in LISTEN state.
    pub listening: Vec<u16>,
    /// Current content of netprofile's own drop-ins, by root-relative path.
    pub dropins: BTreeMap<String, Option<String>>,
}

/// The most netprofile reads from any one file. Real sysctl.d, limits and state files are a
/// few kilobytes; a larger one (or `/dev/zero`) is refused instead of filling memory.
pub const MAX_READ: u64 = crate::profile::MAX_FILE_BYTES;

/// Whether netprofile reads `rel` without following any symlink: the kernel's keys, its own
/// state and its own drop-ins. Other system files (sysctl.d, limits.conf, passwd) are read as
/// their real readers read them, symlinks included (`99-sysctl.conf -> ../sysctl.conf`).
fn read_nofollow(rel: &str) -> bool {
    rel.starts_with("proc/sys/")
        || rel.starts_with("var/lib/netprofile/")
        || rel.starts_with("run/netprofile/")
        || [
            Root::sysctl_dropin(),
            Root::limits_dropin(),
            Root::systemd_dropin(),
        ]
        .iter()
        .any(|d| d == rel)
}

/// Reads a file that may be absent: a regular file only (a FIFO or device is refused without
/// blocking), at most `MAX_READ` bytes, and never through a symlink where `read_nofollow` says.
pub fn read_optional(root: &Root, rel: &str) -> Result<Option<String>> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = root.path(rel);
    let opened = if read_nofollow(rel) {
        root::beneath::open_file(
            root,
            rel,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK,
            0,
        )
        .map(std::fs::File::from)
    } else {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&path)
    };
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::read(path, e)),
    };
    crate::profile::read_bounded(file, MAX_READ)
        .map(Some)
        .map_err(|e| Error::read(path, e))
}

/// Reads a `/proc/net` table with a large buffer: every read() walks the socket hash again.
fn read_proc_table(root: &Root, rel: &str) -> Result<Option<String>> {
    use std::io::Read;
    let path = root.path(rel);
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::read(path, e)),
    };
    let mut bytes = Vec::with_capacity(1 << 18);
    file.read_to_end(&mut bytes)
        .map_err(|e| Error::read(&path, e))?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// A key's value exactly as the kernel prints it, less the final newline (tabs kept, so undo
/// can restore it byte for byte); `None` when the kernel lacks the key.
pub fn read_sysctl_raw(root: &Root, key: &KeyName) -> Result<Option<String>> {
    match read_optional(root, &Root::sysctl_rel(key)) {
        Ok(v) => Ok(v.map(|text| text.strip_suffix('\n').unwrap_or(&text).to_string())),
        // A directory (net.ipv4) is not a key; treat it as absent so the user hears "unknown".
        Err(Error::Read { source, .. }) if source.kind() == ErrorKind::IsADirectory => Ok(None),
        Err(e) => Err(e),
    }
}

/// The current value of one key in normal form, or `None` when the kernel lacks it.
pub fn read_sysctl(root: &Root, key: &KeyName) -> Result<Option<String>> {
    Ok(read_sysctl_raw(root, key)?.map(|raw| crate::profile::value::of_key(key.as_str(), &raw)))
}

/// `*.conf` names in a folder, sorted in C-locale (byte) order.
fn conf_names(root: &Root, rel_dir: &str) -> Result<Vec<String>> {
    let dir = root.path(rel_dir);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::read(dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::read(&dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".conf") {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// sysctl.d files in boot order (see sysctld).
pub fn boot_files(root: &Root) -> Result<Vec<BootFile>> {
    let mut found = Vec::new();
    for (rank, dir) in SYSCTL_DIRS.iter().enumerate() {
        for name in conf_names(root, dir)? {
            let rel = format!("{dir}/{name}");
            let text = read_optional(root, &rel)?.unwrap_or_default();
            found.push((
                rank,
                name,
                BootFile {
                    path: Root::display(&rel),
                    text,
                },
            ));
        }
    }
    let conf = read_optional(root, Root::SYSCTL_CONF)?.map(|text| BootFile {
        path: Root::display(Root::SYSCTL_CONF),
        text,
    });
    Ok(sysctld::order(found, conf))
}

/// A main file, then `*.conf` in its drop-in folder in name order (how pam_limits reads
/// limits.conf and limits.d, and systemd reads system.conf and system.conf.d).
fn main_then_dropins(root: &Root, main: &str, dir: &str) -> Result<Vec<BootFile>> {
    let mut rels = vec![main.to_string()];
    rels.extend(
        conf_names(root, dir)?
            .into_iter()
            .map(|name| format!("{dir}/{name}")),
    );
    let mut files = Vec::new();
    for rel in rels {
        if let Some(text) = read_optional(root, &rel)? {
            files.push(BootFile {
                path: Root::display(&rel),
                text,
            });
        }
    }
    Ok(files)
}

/// limits.conf, then limits.d/*.conf in name order.
pub fn limit_files(root: &Root) -> Result<Vec<BootFile>> {
    main_then_dropins(root, Root::LIMITS_CONF, Root::LIMITS_D)
}

/// All limits entries of the given files, in order.
#[must_use]
pub fn entries(files: &[BootFile]) -> Vec<Entry> {
    files
        .iter()
        .flat_map(|f| limits::parse(&f.text, &f.path))
        .collect()
}

/// The last `DefaultLimitNOFILE=` in the `[Manager]` section of the given systemd files.
#[must_use]
pub fn systemd_nofile_in(files: &[BootFile]) -> Option<SystemdNofile> {
    let mut found = None;
    for file in files {
        let mut in_manager = false;
        for (index, line) in file.text.lines().enumerate() {
            let line = line.trim();
            if line.starts_with('[') {
                in_manager = line == "[Manager]";
            } else if in_manager && let Some(value) = line.strip_prefix("DefaultLimitNOFILE=") {
                found = Some(SystemdNofile {
                    value: value.trim().to_string(),
                    file: file.path.clone(),
                    line: index + 1,
                });
            }
        }
    }
    found
}

/// system.conf then system.conf.d/*.conf.
pub fn systemd_files(root: &Root) -> Result<Vec<BootFile>> {
    main_then_dropins(root, Root::SYSTEMD_CONF, Root::SYSTEMD_CONF_D)
}

/// Ports in LISTEN state (`st` 0A) in proc/net/tcp and tcp6.
#[must_use]
pub fn listening_ports(tables: &[String]) -> Vec<u16> {
    let mut ports: Vec<u16> = tables
        .iter()
        .flat_map(|t| t.lines().skip(1))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            if *fields.get(3)? != "0A" {
                return None;
            }
            let port = local.rsplit_once(':')?.1;
            u16::from_str_radix(port, 16).ok()
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

impl LiveState {
    /// Reads everything `plan` needs for `profile`. `extra` keys are read too (fs.nr_open).
    pub fn read(root: &Root, profile: &Profile) -> Result<Self> {
        let mut live = LiveState {
            namespace: Some(root.namespace()),
            ..LiveState::default()
        };
        // fs.nr_open bounds nofile; reserved ports decide which listeners are exposed.
        let extra = ["fs.nr_open", "net.ipv4.ip_local_reserved_ports"]
            .map(|k| KeyName::parse(k).expect("valid key"));
        for key in profile.sysctl.keys().chain(extra.iter()) {
            let value = read_sysctl_raw(root, key)?;
            if value.is_none() {
                let dir = root.sysctl_dir(key);
                let mut names: Vec<String> = std::fs::read_dir(&dir)
                    .map(|entries| {
                        entries
                            .filter_map(|e| e.ok())
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                names.sort();
                live.siblings.insert(key.clone(), names);
            }
            live.sysctl.insert(key.clone(), value);
        }
        live.boot_files = boot_files(root)?;
        live.limit_files = limit_files(root)?;
        live.systemd_nofile = systemd_nofile_in(&systemd_files(root)?);
        if let Some(passwd) = read_optional(root, Root::PASSWD)? {
            for line in passwd.lines() {
                let f: Vec<&str> = line.split(':').collect();
                if let (Some(name), Some(uid), Some(gid)) = (f.first(), f.get(2), f.get(3))
                    && let (Ok(uid), Ok(gid)) = (uid.parse(), gid.parse())
                {
                    live.users.insert((*name).to_string(), (uid, gid));
                }
            }
        }
        if let Some(group) = read_optional(root, Root::GROUP)? {
            for line in group.lines() {
                let f: Vec<&str> = line.split(':').collect();
                if let (Some(name), Some(gid)) = (f.first(), f.get(2))
                    && let Ok(gid) = gid.parse()
                {
                    let members = f
                        .get(3)
                        .map(|m| {
                            m.split(',')
                                .filter(|s| !s.is_empty())
                                .map(String::from)
                                .collect()
                        })
                        .unwrap_or_default();
                    live.groups.insert((*name).to_string(), (gid, members));
                }
            }
        }
        // Listening ports matter only when the profile moves the ephemeral range, and walking
        // the kernel's socket tables is the slowest read here (about 1 ms per read() call on a
        // machine with a large ehash), so read them only then, in few large reads.
        if profile
            .sysctl
            .keys()
            .any(|k| k.as_str() == "net.ipv4.ip_local_port_range")
        {
            let mut tables = Vec::new();
            for rel in Root::PROC_NET_TCP {
                tables.extend(read_proc_table(root, rel)?);
            }
            live.listening = listening_ports(&tables);
        }
        for rel in [
            Root::sysctl_dropin(),
            Root::limits_dropin(),
            Root::systemd_dropin(),
        ] {
            let current = read_optional(root, &rel)?;
            live.dropins.insert(rel, current);
        }
        Ok(live)
    }

    /// The login a limits domain stands for, with uid and groups filled in from passwd/group.
    #[must_use]
    pub fn subject(&self, domain: &Domain) -> Subject {
        match domain {
            Domain::All => Subject::default(),
            Domain::Group(g) => Subject {
                groups: vec![g.clone()],
                ..Subject::default()
            },
            Domain::UidRange(lo, hi) => Subject {
                uid: lo.or(*hi),
                ..Subject::default()
            },
            Domain::User(name) => {
                let ids = self.users.get(name).copied();
                let groups = self
                    .groups
                    .iter()
                    .filter(|(_, (gid, members))| {
                        members.contains(name) || ids.is_some_and(|(_, g)| g == *gid)
                    })
                    .map(|(g, _)| g.clone())
                    .collect();
                Subject {
                    user: Some(name.clone()),
                    uid: ids.map(|(uid, _)| uid),
                    groups,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_ports_from_proc_net_tcp() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n\
   1: 0100007F:0016 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1\n";
        let tcp6 = "  sl  local_address header\n\
   0: 00000000000000000000000000000000:2328 00000000000000000000000000000000:0000 0A 0\n";
        assert_eq!(
            listening_ports(&[tcp.into(), tcp6.into()]),
            vec![8080, 9000]
        );
    }

    #[test]
    fn systemd_manager_section_only() {
        let files = [
            BootFile {
                path: Root::display(Root::SYSTEMD_CONF),
                text: "[Manager]\n#DefaultLimitNOFILE=1\nDefaultLimitNOFILE=1024:524288\n".into(),
            },
            BootFile {
                path: Root::display(&format!("{}/x.conf", Root::SYSTEMD_CONF_D)),
                text: "[Other]\nDefaultLimitNOFILE=5\n".into(),
            },
        ];
        let got = systemd_nofile_in(&files).unwrap();
        assert_eq!((got.value.as_str(), got.line), ("1024:524288", 3));
    }
}
