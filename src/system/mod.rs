//! The live state of a target: what `plan` compares a profile with.
//!
//! Reads, through `Root` only, the current value of each key the profile names, the sysctl.d
//! files that set keys at boot, the limits files, systemd's DefaultLimitNOFILE, the users and
//! groups that limits domains name, listening TCP ports, and netprofile's own drop-ins. It
//! reads everything `plan` needs up front so that `plan` stays pure. It never writes.
//!
//! Config folders are listed as the real readers list them: `*.conf` names as bytes, dotfiles
//! skipped, C-locale order; a name that is a directory, a device or a dangling link reads as
//! nothing; text is read as bytes, so a Latin-1 byte is never fatal. The rules of each reader
//! live in sysctld.rs (systemd-sysctl), limits.rs (pam_limits) and systemd.rs (PID 1's
//! system.conf); tests/oracle_*.rs prove the first two against the real programs.

pub mod limits;
pub mod processes;
pub mod root;
pub mod sockets;
pub mod sysctld;
pub mod systemd;
pub mod units;
pub mod versions;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::ErrorKind;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use self::limits::{Entry, Subject};
use self::sysctld::BootFile;
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::profile::keys::KeyName;
use crate::profile::limit::Domain;
use crate::system::root::{Namespace, Root, SYSCTL_DIRS, SYSTEMD_CONF_DIRS};

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
    /// system.conf then the system.conf.d drop-ins, in the order systemd parses them.
    pub systemd_files: Vec<BootFile>,
    /// Whether pam_limits.so is installed (usr/lib{,64}/[triplet/]security).
    pub pam_limits_installed: bool,
    /// `user -> (uid, gid)` from etc/passwd and `group -> (gid, members)` from etc/group.
    pub users: BTreeMap<String, (u32, u32)>,
    pub groups: BTreeMap<String, (u32, Vec<String>)>,
    /// Ports with a TCP socket in LISTEN state.
    pub listening: Vec<u16>,
    /// Current content of netprofile's own drop-ins, by root-relative path.
    pub dropins: BTreeMap<String, Option<String>>,
    /// The unit files and drop-ins of each service the profile names or netprofile has a
    /// drop-in for (systemd's precedence, units.rs).
    pub units: BTreeMap<String, units::UnitFiles>,
    /// Whether netprofile.service is enabled (its multi-user.target.wants link exists): it
    /// holds `min` and `max` keys at boot, which the sysctl drop-in does not carry.
    pub boot_unit_enabled: bool,
    /// The systemd and pam_limits package versions of the root (dpkg status or rpm): which
    /// rules the models follow.
    pub versions: versions::Versions,
    /// Why pam_limits would refuse logins on this root today, one per cause (a limits.d link
    /// it cannot open, a `maxlogins 0` line, limits.conf missing under 1.5); read only when
    /// the profile has limits and pam_limits is installed.
    pub login_lockouts: Vec<limits::Failure>,
}

/// The most netprofile reads from any one file (see `root::MAX_READ`).
pub const MAX_READ: u64 = root::MAX_READ;

/// Reads a file that may be absent through `Root::read`, the one bounded read: a regular file
/// only (a FIFO or device is refused without blocking), at most `MAX_READ` bytes, and never
/// through a symlink under `proc`, the state folders or netprofile's own drop-ins.
pub fn read_optional(root: &Root, rel: &str) -> Result<Option<String>> {
    // Bytes, not UTF-8: a Latin-1 comment in a config file is read, as systemd and PAM read it.
    root.read(rel, MAX_READ)
        .map(|bytes| bytes.map(text))
        .map_err(|e| Error::read(root.path(rel), e))
}

/// The bytes of a file as text: kept as they are when they are UTF-8 (no copy: a socket
/// table at a million connections is 150 MB), else with each invalid sequence replaced.
pub(crate) fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The live fs.nr_open: the ceiling of any nofile, and what pam_limits uses for a nofile of
/// `unlimited`. `None` when it cannot be read.
#[must_use]
pub fn nr_open(root: &Root) -> Option<i64> {
    let key = KeyName::parse("fs.nr_open").ok()?;
    read_sysctl(root, &key)
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse().ok())
}

/// Reads a `/proc/net` table (`proc/net/tcp{,6}`) through `Root::read`, with the larger cap of
/// a socket table and large blocks: every read() walks the socket hash again.
pub fn read_proc_table(root: &Root, rel: &str) -> Result<Option<String>> {
    root.read(rel, root::MAX_TABLE_READ)
        .map(|bytes| bytes.map(text))
        .map_err(|e| Error::read(root.path(rel), e))
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

/// `*.conf` names in a folder, dotfiles left out (systemd skips hidden files and glob(3) does
/// not match them), sorted in C-locale (byte) order. Names are kept as bytes: a Latin-1 name
/// is listed and read like any other. A folder that is a symlink (`run/sysctl.d ->
/// /srv/sysctl.d`) is followed inside the root, as systemd (`chase` with the root as prefix)
/// and pam_limits on the target follow it, never on the host; a loop lists nothing.
fn conf_names(root: &Root, rel_dir: &str) -> Result<Vec<OsString>> {
    let Some(dir) = root.resolve(rel_dir) else {
        return Ok(Vec::new());
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::read(dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::read(&dir, e))?;
        let name = entry.file_name();
        if name.as_bytes().ends_with(b".conf") && !name.as_bytes().starts_with(b".") {
            names.push(name);
        }
    }
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

/// Opens a config file as its reader would on the target: symlinks followed inside the root
/// (`Root::resolve`), a regular file read up to `MAX_READ` bytes, anything else (a directory,
/// a device) read as nothing. `Err` with the io error when it cannot be opened (a dangling link
/// is `NotFound`, a loop is `FilesystemLoop`/ELOOP).
fn open_conf(root: &Root, rel: &str) -> std::io::Result<String> {
    let path = root
        .resolve(rel)
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ELOOP))?;
    let meta = std::fs::metadata(&path)?;
    if !meta.is_file() {
        return Ok(String::new());
    }
    Root::read_named(&path, MAX_READ).map(text)
}

/// One listed config file: its display path and text. A name that is not a regular file (a
/// directory, a /dev/null link, a dangling link) reads as nothing, as systemd's and pam's
/// `fopen` + `fgets` read it: it masks (sysctl.d) and sets nothing. Symlinks resolve inside the
/// root.
fn read_conf(root: &Root, rel_dir: &str, name: &OsStr) -> Result<BootFile> {
    let lossy = name.to_string_lossy();
    let rel = format!("{rel_dir}/{lossy}");
    let text = match name.to_str() {
        Some(_) => match open_conf(root, &rel) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => String::new(),
            Err(e) => return Err(Error::read(root.path(&rel), e)),
        },
        // A name that is not UTF-8 cannot be spelled as a root-relative &str.
        None => {
            let full = root
                .resolve(rel_dir)
                .unwrap_or_else(|| root.path(rel_dir))
                .join(name);
            if std::fs::metadata(&full).is_ok_and(|m| m.is_file()) {
                root::Root::read_named(&full, MAX_READ)
                    .map(text)
                    .map_err(|e| Error::read(&full, e))?
            } else {
                String::new()
            }
        }
    };
    Ok(BootFile {
        path: Root::display(&rel),
        text,
    })
}

/// sysctl.d files in the order systemd-sysctl parses them (see sysctld). Dotfiles are not
/// listed; a name that is a directory, a device (/dev/null) or a dangling link masks the same
/// name in later folders and reads as nothing, as it does for systemd.
pub fn boot_files(root: &Root) -> Result<Vec<BootFile>> {
    let mut found = Vec::new();
    for (rank, dir) in SYSCTL_DIRS.iter().enumerate() {
        for name in conf_names(root, dir)? {
            let file = read_conf(root, dir, &name)?;
            found.push((rank, name.into_vec(), file));
        }
    }
    Ok(sysctld::order(found))
}

/// A main file that may be absent: `None` when it is (a dangling link too); a directory or
/// device reads as nothing. Symlinks resolve inside the root.
fn read_main(root: &Root, rel: &str) -> Result<Option<BootFile>> {
    match open_conf(root, rel) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::read(root.path(rel), e)),
        Ok(text) => Ok(Some(BootFile {
            path: Root::display(rel),
            text,
        })),
    }
}

/// limits.conf, then limits.d/*.conf in name order, as pam_limits reads them (glob(3): no
/// dotfiles; a directory or /dev/null link reads as nothing). When limits.conf is absent the
/// list does not start with it (`login_lockouts` says what pam_limits does then).
pub fn limit_files(root: &Root) -> Result<Vec<BootFile>> {
    let mut files: Vec<BootFile> = read_main(root, Root::LIMITS_CONF)?.into_iter().collect();
    for name in conf_names(root, Root::LIMITS_D)? {
        files.push(read_conf(root, Root::LIMITS_D, &name)?);
    }
    Ok(files)
}

/// The limits entries pam_limits `rules` acts on, in its order, with a `Kind::Unreadable`
/// entry where it cannot open a file: limits.conf when it is missing, a limits.d `*.conf`
/// that is a dangling link or a loop. This is what `limits::session` models a login from.
pub fn session_entries(root: &Root, rules: limits::PamRules) -> Result<Vec<Entry>> {
    let unreadable = |rel: &str, missing: bool| Entry {
        domain: String::new(),
        kind: limits::Kind::Unreadable { missing },
        item: crate::profile::limit::Item::Nofile,
        value: crate::profile::limit::LimitValue::Unlimited,
        file: Root::display(rel),
        line: 0,
    };
    let mut out = Vec::new();
    let read = |rel: &str, out: &mut Vec<Entry>| -> Result<()> {
        match open_conf(root, rel) {
            Ok(text) => out.extend(limits::parse_with(&text, &Root::display(rel), rules)),
            Err(e) if e.kind() == ErrorKind::NotFound => out.push(unreadable(rel, true)),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => out.push(unreadable(rel, false)),
            Err(e) => return Err(Error::read(root.path(rel), e)),
        }
        Ok(())
    };
    read(Root::LIMITS_CONF, &mut out)?;
    for name in conf_names(root, Root::LIMITS_D)? {
        let rel = format!("{}/{}", Root::LIMITS_D, name.to_string_lossy());
        read(&rel, &mut out)?;
    }
    Ok(out)
}

/// What every login in the root's passwd gets for `item` at its next session under the root's
/// pam_limits version, in passwd order, and the model used.
pub fn login_sessions(
    root: &Root,
    item: crate::profile::limit::Item,
) -> Result<Vec<limits::LoginReport>> {
    login_sessions_under(root, item, versions(root).pam_rules())
}

/// `login_sessions` under pam_limits `rules` (a caller that has read the versions already:
/// dpkg's status file is most of the cost).
fn login_sessions_under(
    root: &Root,
    item: crate::profile::limit::Item,
    rules: limits::PamRules,
) -> Result<Vec<limits::LoginReport>> {
    let entries = session_entries(root, rules)?;
    let mut live = LiveState::default();
    live.read_accounts(root)?;
    let nr_open = nr_open(root);
    let mut names: Vec<(u32, String)> = Vec::new();
    if let Some(passwd) = read_optional(root, Root::PASSWD)? {
        for line in passwd.lines() {
            if let Some(name) = line.split(':').next()
                && let Some((uid, _)) = live.users.get(name)
                && !names.iter().any(|(_, n)| n == name)
            {
                names.push((*uid, name.to_string()));
            }
        }
    }
    Ok(names
        .into_iter()
        .map(|(uid, name)| {
            limits::session(&entries, &live.login(&name), item, nr_open, rules)
                .report(&name, Some(uid))
        })
        .collect())
}

/// Why pam_limits refuses logins under the root, one per cause, in the order of the files:
/// every login of passwd modelled as `login_sessions` does (a session fails for all items at
/// once, so nofile stands for them).
pub fn login_lockouts(root: &Root) -> Result<Vec<limits::Failure>> {
    login_lockouts_under(root, versions(root).pam_rules())
}

/// `login_lockouts` under pam_limits `rules` (the root's, read by the caller).
pub fn login_lockouts_under(root: &Root, rules: limits::PamRules) -> Result<Vec<limits::Failure>> {
    let item = crate::profile::limit::Item::Nofile;
    let logins = login_sessions_under(root, item, rules)?;
    let failures: Vec<Option<limits::Failure>> = if logins.is_empty() {
        // No passwd to list: root logs in on every system, and a file pam_limits cannot open
        // fails its session too.
        let root_login = limits::Subject {
            user: Some("root".into()),
            uid: Some(0),
            gid: Some(0),
            groups: vec!["root".into()],
            group_ids: vec![0],
        };
        let entries = session_entries(root, rules)?;
        vec![limits::session(&entries, &root_login, item, nr_open(root), rules).fails]
    } else {
        logins.into_iter().map(|l| l.failure).collect()
    };
    let mut out: Vec<limits::Failure> = Vec::new();
    for f in failures.into_iter().flatten() {
        if !out.iter().any(|o| o.file == f.file && o.line == f.line) {
            out.push(f);
        }
    }
    Ok(out)
}

/// The package versions under the root, for the version-aware models: dpkg's status file when
/// it lists systemd or libpam-modules; else, when the root has an rpm database, what `rpm`
/// says of systemd and pam; else dpkg's answer (not installed) or none.
#[must_use]
pub fn versions(root: &Root) -> versions::Versions {
    let dpkg = match read_optional(root, Root::DPKG_STATUS) {
        Ok(Some(text)) => Some(versions::Versions::from_dpkg_status(&text)),
        _ => None,
    };
    if let Some(found) = dpkg.as_ref().filter(|v| v.found_any()) {
        return found.clone();
    }
    match rpm_database(root) {
        Some(db) => rpm_versions(root, &db),
        None => dpkg.unwrap_or_default(),
    }
}

/// The root's rpm database folder, root-relative and with every symlink resolved inside the
/// root (Fedora's var/lib/rpm is a link to ../../usr/lib/sysimage/rpm), so that `rpm` opens
/// exactly that folder and never follows a link out of the root.
fn rpm_database(root: &Root) -> Option<String> {
    Root::RPM_DBS.iter().find_map(|rel| {
        let resolved = root.resolve(rel)?;
        let inside = resolved
            .strip_prefix(root.base())
            .ok()?
            .to_str()?
            .to_string();
        // symlink_metadata: `resolve` leaves no link on the way, and the folder itself must not
        // be one either.
        std::fs::symlink_metadata(&resolved)
            .is_ok_and(|m| m.is_dir())
            .then_some(inside)
    })
}

/// How long `rpm -q` may take before it is stopped and the versions are called unknown (a
/// query of two packages takes some 20 ms; a database locked or on a hung mount must not hang
/// `diff`).
const RPM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Asks `rpm --root BASE --dbpath /DB -q systemd pam` (no shell: each argument is passed as
/// it is; the base made absolute so that it can never read as an option). rpm prints a line for
/// each package and exits 1 when one is not installed, so only its stdout counts.
fn rpm_versions(root: &Root, db: &str) -> versions::Versions {
    use std::process::{Command, Stdio};
    let shown = Root::display(db);
    let unread = |why: String| versions::Versions {
        database: Some(shown.clone()),
        kind: versions::Database::Rpm,
        unread: Some(why),
        ..versions::Versions::default()
    };
    let Ok(base) = std::path::absolute(root.base()) else {
        return unread("the root's path cannot be made absolute".into());
    };
    let spawned = Command::new("rpm")
        .arg("--root")
        .arg(&base)
        .arg("--dbpath")
        .arg(&shown)
        .args(["-q", "--qf", versions::RPM_QUERY_FORMAT])
        .args(versions::RPM_PACKAGES)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return unread("this host has no `rpm` program to read it: install rpm".into());
        }
        Err(e) => return unread(format!("`rpm` could not be run: {e}")),
    };
    let started = std::time::Instant::now();
    while matches!(child.try_wait(), Ok(None)) {
        if started.elapsed() > RPM_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return unread(format!(
                "`rpm -q` did not answer within {} s",
                RPM_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let mut text = String::new();
    if let Some(mut out) = child.stdout.take() {
        use std::io::Read;
        // Two short lines; the cap keeps a runaway rpm from filling memory.
        let _ = (&mut out).take(64 << 10).read_to_string(&mut text);
    }
    versions::Versions::from_rpm_query(&text, &shown)
}

/// Whether pam_limits.so is installed under the root: in usr/lib/security, usr/lib64/security
/// or a multiarch usr/lib/TRIPLET/security (where /lib points on merged-/usr systems).
#[must_use]
pub fn pam_limits_installed(root: &Root) -> bool {
    let mut dirs = vec![
        root.path("usr/lib/security"),
        root.path("usr/lib64/security"),
    ];
    if let Ok(entries) = std::fs::read_dir(root.path("usr/lib")) {
        dirs.extend(
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().contains("-linux-"))
                .map(|e| e.path().join("security")),
        );
    }
    dirs.iter().any(|d| d.join("pam_limits.so").exists())
}

/// All limits entries of the given files, in order.
#[must_use]
pub fn entries(files: &[BootFile]) -> Vec<Entry> {
    files
        .iter()
        .flat_map(|f| limits::parse(&f.text, &f.path))
        .collect()
}

/// /etc/systemd/system.conf, then the system.conf.d drop-ins of the four folders in the order
/// systemd 252 parses them (see systemd.rs): masking by name as for sysctl.d.
pub fn systemd_files(root: &Root) -> Result<Vec<BootFile>> {
    let mut files: Vec<BootFile> = read_main(root, Root::SYSTEMD_CONF)?.into_iter().collect();
    let mut found = Vec::new();
    for (rank, dir) in SYSTEMD_CONF_DIRS.iter().enumerate() {
        for name in conf_names(root, dir)? {
            let file = read_conf(root, dir, &name)?;
            found.push((rank, name.into_vec(), file));
        }
    }
    files.extend(sysctld::order(found));
    Ok(files)
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

/// The root's listening TCP ports. On the running kernel, from sock_diag with a LISTEN
/// filter, so the cost is that of the listeners, not of every established socket (reading
/// proc/net/tcp as text walks them all: 0.5 s at 200 000 connections); a tree that is not the
/// running kernel's is read from its proc/net/tcp{,6}, and so is the running kernel when
/// sock_diag is not there (a kernel without inet_diag, a seccomp filter that refuses netlink).
pub fn read_listening_ports(root: &Root) -> Result<Vec<u16>> {
    if sockets::answers_for(root)
        && let Ok(listeners) = sockets::listeners()
    {
        let mut ports: Vec<u16> = listeners.iter().map(|s| s.local_port).collect();
        ports.sort_unstable();
        ports.dedup();
        return Ok(ports);
    }
    let mut tables = Vec::new();
    for rel in Root::PROC_NET_TCP {
        tables.extend(read_proc_table(root, rel)?);
    }
    Ok(listening_ports(&tables))
}

impl LiveState {
    /// Reads everything `plan` needs for `profile`. `extra` keys are read too (fs.nr_open).
    pub fn read(root: &Root, profile: &Profile) -> Result<Self> {
        let mut live = LiveState {
            namespace: Some(root.namespace()),
            ..LiveState::default()
        };
        // fs.nr_open bounds nofile; reserved ports decide which listeners are exposed.
        let mut extra = ["fs.nr_open", "net.ipv4.ip_local_reserved_ports"]
            .map(|k| KeyName::parse(k).expect("valid key"))
            .to_vec();
        // A key whose values are names the kernel lists elsewhere (the congestion controls in
        // tcp_available_congestion_control): read that list so that plan can check the name.
        extra.extend(
            profile
                .sysctl
                .keys()
                .filter_map(|k| crate::profile::keys::known(k.as_str()))
                .filter_map(|k| match k.kind {
                    crate::profile::keys::Kind::Choice { from }
                    | crate::profile::keys::Kind::List { from } => KeyName::parse(from).ok(),
                    _ => None,
                }),
        );
        // The port range and ip_unprivileged_port_start bound each other (sysctld::port_peer).
        extra.extend(
            profile
                .sysctl
                .keys()
                .filter_map(|k| sysctld::port_peer(k.as_str()))
                .filter_map(|k| KeyName::parse(k).ok()),
        );
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
        live.versions = versions(root);
        live.limit_files = limit_files(root)?;
        live.pam_limits_installed = pam_limits_installed(root);
        if live.pam_limits_installed && !profile.limits.is_empty() {
            live.login_lockouts = login_lockouts_under(root, live.versions.pam_rules())?;
        }
        // symlink_metadata: the enablement is the link itself, whatever it points to.
        live.boot_unit_enabled =
            std::fs::symlink_metadata(root.path(Root::BOOT_UNIT_WANTS)).is_ok();
        live.systemd_files = systemd_files(root)?;
        live.systemd_nofile = systemd::default_limit_nofile(&live.systemd_files);
        live.read_accounts(root)?;
        // Listening ports matter only when the profile moves the ephemeral range, so read them
        // only then.
        if profile
            .sysctl
            .keys()
            .any(|k| k.as_str() == "net.ipv4.ip_local_port_range")
        {
            live.listening = read_listening_ports(root)?;
        }
        for rel in [
            Root::sysctl_dropin(),
            Root::limits_dropin(),
            Root::systemd_dropin(),
        ] {
            let current = read_optional(root, &rel)?;
            live.dropins.insert(rel, current);
        }
        live.read_units(root, profile)?;
        Ok(live)
    }

    /// Reads the units the profile names and those netprofile has a drop-in for, and the
    /// modules-load.d drop-in.
    fn read_units(&mut self, root: &Root, profile: &Profile) -> Result<()> {
        let mut names: Vec<String> = profile.services.keys().cloned().collect();
        names.extend(units::units_with_our_dropin(root)?);
        for unit in names {
            if self.units.contains_key(&unit) {
                continue;
            }
            let rel = Root::unit_dropin(&unit);
            self.dropins.insert(rel.clone(), read_optional(root, &rel)?);
            self.units
                .insert(unit.clone(), units::unit_files(root, &unit)?);
        }
        let rel = Root::modules_dropin();
        self.dropins.insert(rel.clone(), read_optional(root, &rel)?);
        Ok(())
    }

    /// Users and groups from etc/passwd and etc/group, as glibc's files NSS module reads
    /// them: the first line for a name wins; a line that does not parse is skipped; bytes that
    /// are not UTF-8 (a Latin-1 GECOS) are read, not fatal.
    pub fn read_accounts(&mut self, root: &Root) -> Result<()> {
        if let Some(passwd) = read_optional(root, Root::PASSWD)? {
            for line in passwd.lines() {
                let f: Vec<&str> = line.split(':').collect();
                if let (Some(name), Some(uid), Some(gid)) = (f.first(), f.get(2), f.get(3))
                    && let (Ok(uid), Ok(gid)) = (uid.parse(), gid.parse())
                {
                    self.users.entry((*name).to_string()).or_insert((uid, gid));
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
                    self.groups
                        .entry((*name).to_string())
                        .or_insert((gid, members));
                }
            }
        }
        Ok(())
    }

    /// The login a limits domain stands for, with uid and groups filled in from passwd/group.
    #[must_use]
    pub fn subject(&self, domain: &Domain) -> Subject {
        match domain {
            Domain::All => Subject::default(),
            Domain::Group(g) => Subject {
                groups: vec![g.clone()],
                group_ids: self
                    .groups
                    .get(g)
                    .map(|(gid, _)| *gid)
                    .into_iter()
                    .collect(),
                ..Subject::default()
            },
            Domain::UidRange(lo, hi) => Subject {
                uid: lo.or(*hi),
                ..Subject::default()
            },
            Domain::User(name) => self.login(name),
        }
    }

    /// A user from passwd as pam_limits sees them: name, uid, primary gid, and every group
    /// whose gid is the primary one or whose member list names them.
    #[must_use]
    pub fn login(&self, name: &str) -> Subject {
        let ids = self.users.get(name).copied();
        let (groups, mut group_ids): (Vec<String>, Vec<u32>) = self
            .groups
            .iter()
            .filter(|(_, (gid, members))| {
                members.iter().any(|m| m == name) || ids.is_some_and(|(_, g)| g == *gid)
            })
            .map(|(g, (gid, _))| (g.clone(), *gid))
            .unzip();
        if let Some((_, gid)) = ids
            && !group_ids.contains(&gid)
        {
            group_ids.push(gid);
        }
        Subject {
            user: Some(name.to_string()),
            uid: ids.map(|(uid, _)| uid),
            gid: ids.map(|(_, gid)| gid),
            groups,
            group_ids,
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
}
