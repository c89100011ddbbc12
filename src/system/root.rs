//! `Root`: the one file-system boundary of netprofile.
//!
//! Every system path (`/proc/sys/...`, `/etc/...`, `/var/lib/netprofile`, `/run/...`) is
//! spelled here and nowhere else, relative to a base directory that is `/` on a real machine
//! and a temporary tree in tests (`--root DIR`). Other modules ask `Root` for a path; they never
//! build an absolute one. This module resolves paths, reads a few identity facts (network
//! namespace) and owns the one bounded read every file read goes through (`Root::read`,
//! `Root::read_stream`, `Root::read_named`, `read_fd`: non-blocking, no-follow, regular files
//! only, capped); it never writes.

use std::path::{Path, PathBuf};

use crate::profile::keys::KeyName;

/// The sysctl.d folders in systemd's order of precedence: a file in an earlier folder masks a
/// same-named file in a later one (sysctl.d(5)). Debian 12's systemd 252 is built without
/// split-usr and reads exactly these four (`strings /lib/systemd/systemd-sysctl`).
pub const SYSCTL_DIRS: [&str; 4] = [
    "etc/sysctl.d",
    "run/sysctl.d",
    "usr/local/lib/sysctl.d",
    "usr/lib/sysctl.d",
];

/// systemd's manager drop-in folders (`system.conf.d`) in order of precedence, as systemd 252
/// lists them after /etc/systemd/system.conf.
pub const SYSTEMD_CONF_DIRS: [&str; 4] = [
    "etc/systemd/system.conf.d",
    "run/systemd/system.conf.d",
    "usr/local/lib/systemd/system.conf.d",
    "usr/lib/systemd/system.conf.d",
];

/// The name of the drop-ins netprofile owns. `90-` sorts after distribution defaults
/// (`10-`, `50-`) but before the conventional local override `99-`, which an operator may use
/// on purpose; `diff` names any later file that overrides a managed key.
pub const DROPIN_NAME: &str = "90-netprofile.conf";

#[derive(Debug, Clone)]
pub struct Root {
    base: PathBuf,
}

/// Whether the target is the machine's initial network namespace, which boot-time files
/// (sysctl.d) configure, or a private one, where only per-namespace keys exist and nothing is
/// persisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Namespace {
    Initial,
    Private,
}

impl Root {
    #[must_use]
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Root { base: base.into() }
    }

    /// The running kernel's root, `/`, whatever `--root` says: what prlimit and the checks
    /// of a recorded pid read (`proc/PID/...` of this kernel).
    #[must_use]
    pub fn kernel() -> Self {
        Root::new("/")
    }

    /// True when this is the machine's real root (`/`), where writes need privileges.
    #[must_use]
    pub fn is_real(&self) -> bool {
        self.base == Path::new("/")
    }

    #[must_use]
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// A root-relative path (`etc/sysctl.d/x.conf`) resolved under the base.
    #[must_use]
    pub fn path(&self, rel: &str) -> PathBuf {
        self.base.join(rel.trim_start_matches('/'))
    }

    /// A root-relative path resolved as the target machine would resolve it: every symlink on
    /// the way is followed inside the root (an absolute target `/etc/x` means `BASE/etc/x`,
    /// `..` stops at the base), never on the host. The result names no symlink but may not
    /// exist (a dangling link resolves to where it points). `None` after 40 links (a loop).
    #[must_use]
    pub fn resolve(&self, rel: &str) -> Option<PathBuf> {
        let mut todo: Vec<String> = rel
            .split('/')
            .rev()
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect();
        let mut done: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(part) = todo.pop() {
            match part.as_str() {
                "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            let here = self.base.join(done.join("/")).join(&part);
            match std::fs::symlink_metadata(&here) {
                Ok(m) if m.file_type().is_symlink() => {
                    links += 1;
                    if links > 40 {
                        return None;
                    }
                    let target = std::fs::read_link(&here).ok()?;
                    let target = target.to_string_lossy();
                    if target.starts_with('/') {
                        done.clear();
                    }
                    todo.extend(
                        target
                            .split('/')
                            .rev()
                            .filter(|p| !p.is_empty())
                            .map(String::from),
                    );
                }
                _ => done.push(part),
            }
        }
        let joined = done.join("/");
        let path = self.base.join(&joined);
        // Every machine has /dev/null; a --root tree usually has no dev/ of its own.
        if joined == "dev/null" && std::fs::symlink_metadata(&path).is_err() {
            return Some(PathBuf::from("/dev/null"));
        }
        Some(path)
    }

    /// How a root-relative path is shown to the user: as it is on the target machine.
    #[must_use]
    pub fn display(rel: &str) -> String {
        format!("/{}", rel.trim_start_matches('/'))
    }

    /// The root-relative `proc/sys` path of a key.
    #[must_use]
    pub fn sysctl_rel(key: &KeyName) -> String {
        format!("proc/sys/{}", key.as_str().replace('.', "/"))
    }

    #[must_use]
    pub fn sysctl_path(&self, key: &KeyName) -> PathBuf {
        self.path(&Self::sysctl_rel(key))
    }

    /// The folder that holds a key's file, for suggesting siblings of an unknown key.
    #[must_use]
    pub fn sysctl_dir(&self, key: &KeyName) -> PathBuf {
        let rel = Self::sysctl_rel(key);
        let parent = rel.rsplit_once('/').map_or("proc/sys", |(dir, _)| dir);
        self.path(parent)
    }

    /// Where the common servers' packages put their configuration, as the server process
    /// sees it (doctor reads them through `proc/PID/root`, never the host's own /etc).
    pub const NGINX_CONF: &'static str = "/etc/nginx/nginx.conf";
    pub const HAPROXY_CONF: &'static str = "/etc/haproxy/haproxy.cfg";
    pub const REDIS_CONF: &'static str = "/etc/redis/redis.conf";
    pub const MYSQL_CONFS: [&'static str; 3] = [
        "/etc/mysql/my.cnf",
        "/etc/mysql/mariadb.conf.d/50-server.cnf",
        "/etc/mysql/mysql.conf.d/mysqld.cnf",
    ];
    pub const APACHE_CONFS: [&'static str; 5] = [
        "/etc/apache2/apache2.conf",
        "/etc/apache2/mods-enabled/mpm_event.conf",
        "/etc/apache2/mods-enabled/mpm_worker.conf",
        "/etc/apache2/mods-enabled/mpm_prefork.conf",
        "/etc/httpd/conf/httpd.conf",
    ];

    pub const SYSCTL_CONF: &'static str = "etc/sysctl.conf";
    pub const LIMITS_CONF: &'static str = "etc/security/limits.conf";
    /// dpkg's database of installed packages: the versions the models follow (versions.rs).
    pub const DPKG_STATUS: &'static str = "var/lib/dpkg/status";
    /// rpm's database folders, newest layout first: Fedora 36+ and SUSE keep it in
    /// usr/lib/sysimage/rpm (with var/lib/rpm a link to it), RHEL 8 and 9 in var/lib/rpm.
    pub const RPM_DBS: [&'static str; 2] = ["usr/lib/sysimage/rpm", "var/lib/rpm"];
    pub const LIMITS_D: &'static str = "etc/security/limits.d";
    pub const SYSTEMD_CONF: &'static str = "etc/systemd/system.conf";
    pub const SYSTEMD_CONF_D: &'static str = "etc/systemd/system.conf.d";
    pub const PASSWD: &'static str = "etc/passwd";
    pub const GROUP: &'static str = "etc/group";
    pub const PROC_NET_TCP: [&'static str; 2] = ["proc/net/tcp", "proc/net/tcp6"];
    pub const STATE_DIR: &'static str = "var/lib/netprofile";
    /// The running kernel's /proc, whatever the root: a sandbox host's private state root links
    /// its `proc` here so that `proc/sys/net` shows the host's own network namespace.
    pub const KERNEL_PROC: &'static str = "/proc";
    pub const RUN_DIR: &'static str = "run/netprofile";
    pub const LOCK: &'static str = "run/netprofile.lock";
    /// The packaged boot unit's enablement link: the unit re-applies raise-only and
    /// lower-only keys after systemd-sysctl (packaging/systemd/netprofile.service).
    pub const BOOT_UNIT_WANTS: &'static str =
        "etc/systemd/system/multi-user.target.wants/netprofile.service";

    /// Root-relative paths of the drop-ins netprofile writes.
    #[must_use]
    pub fn sysctl_dropin() -> String {
        format!("{}/{DROPIN_NAME}", SYSCTL_DIRS[0])
    }
    #[must_use]
    pub fn limits_dropin() -> String {
        format!("{}/{DROPIN_NAME}", Self::LIMITS_D)
    }
    #[must_use]
    pub fn systemd_dropin() -> String {
        format!("{}/{DROPIN_NAME}", Self::SYSTEMD_CONF_D)
    }

    /// Which network namespace the target is. Linux registers its global `net.*` tables
    /// (`net.ipv4.tcp_mem` among them) for the initial namespace only, so a `proc/sys` that has
    /// the per-namespace `net.core.somaxconn` but not `net.ipv4.tcp_mem` belongs to a private
    /// one. This needs no privileges, unlike comparing with PID 1's namespace.
    #[must_use]
    pub fn namespace(&self) -> Namespace {
        let has = |rel: &str| self.path(rel).exists();
        if !has("proc/sys/net/ipv4/tcp_mem") && has("proc/sys/net/core/somaxconn") {
            Namespace::Private
        } else {
            Namespace::Initial
        }
    }
}

/// The most netprofile reads from any one file: a profile, a sysctl.d, limits or state file,
/// a `/proc` value. Real ones are a few kilobytes; 100 000 profile keys take about 5 MB.
pub const MAX_READ: u64 = 16 << 20;

/// The most netprofile reads from a `/proc/net/tcp{,6}` table: about 150 bytes a socket, so
/// room for some 3.5 million sockets in one namespace, and a bound on memory for anything else.
/// Also the most it scans of one epoll instance's fdinfo (`Root::read_stream`, about 80 bytes
/// a watched fd).
pub const MAX_TABLE_READ: u64 = 512 << 20;

/// How `Root::read` opens a path. Decided by `Root::read_policy`, in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Every component opened with `O_NOFOLLOW` (see `beneath`): the kernel's files under
    /// `proc` (procfs' own links such as `proc/net -> self/net` excepted), netprofile's state
    /// and its own drop-ins. A symlink is an error naming it.
    Never,
    /// Followed as the real reader follows it: systemd-sysctl reads `99-sysctl.conf ->
    /// ../sysctl.conf`, pam_limits and PID 1 their files through links. Still non-blocking,
    /// regular files only and capped.
    AsReaders,
}

impl Root {
    /// Whether `rel` is read without following symlinks (`Follow::Never`) or as the real
    /// readers of configuration read it. Everything under `proc`, the state folders and
    /// netprofile's own drop-ins never follow a link.
    #[must_use]
    pub fn read_policy(rel: &str) -> Follow {
        let rel = rel.trim_start_matches('/');
        let own = [
            Root::sysctl_dropin(),
            Root::limits_dropin(),
            Root::systemd_dropin(),
        ];
        if rel == "proc"
            || rel.starts_with("proc/")
            || rel.starts_with("var/lib/netprofile/")
            || rel.starts_with("run/netprofile/")
            || rel == Root::LOCK
            || own.iter().any(|d| d == rel)
        {
            Follow::Never
        } else {
            Follow::AsReaders
        }
    }

    /// THE way netprofile reads a file below its root (issue 16, "one bounded read"): the
    /// open never blocks (`O_NONBLOCK`, so a FIFO cannot hang a read-only command), follows no
    /// symlink where `read_policy` says so, and then only a regular file (checked with fstat
    /// on the opened descriptor, so nothing can be swapped in between) of at most `cap`
    /// bytes is read. `None` when the file is absent. Errors name the shown path.
    pub fn read(&self, rel: &str, cap: u64) -> std::io::Result<Option<Vec<u8>>> {
        match self.open_to_read(rel)? {
            Some(fd) => read_fd(fd, cap).map(Some),
            None => Ok(None),
        }
    }

    /// `read` for a file that is scanned as a stream and may stop early, rather than held
    /// whole (an epoll instance's fdinfo: a line per watched fd, 80 MB for a server holding a
    /// million connections): the same open (non-blocking, no symlink followed where
    /// `read_policy` says so) and the same check (a regular file), then a reader that ends
    /// after `cap` bytes. The caller bounds its own lines. `None` when the file is absent.
    pub fn read_stream(
        &self,
        rel: &str,
        cap: u64,
    ) -> std::io::Result<Option<std::io::Take<std::fs::File>>> {
        use std::io::Read;
        match self.open_to_read(rel)? {
            Some(fd) => Ok(Some(regular(fd)?.0.take(cap))),
            None => Ok(None),
        }
    }

    /// The open of `read` and `read_stream`: `None` when the file is absent.
    fn open_to_read(&self, rel: &str) -> std::io::Result<Option<std::os::fd::OwnedFd>> {
        use rustix::fs::OFlags;
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let opened = match Self::read_policy(rel) {
            Follow::Never => beneath::open_file(self, rel, flags, 0),
            // Links are followed as the target machine follows them: inside the root
            // (`resolve`: an absolute target is under the base, never the host's).
            Follow::AsReaders => beneath::components(rel).and_then(|_| {
                let path = self
                    .resolve(rel)
                    .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ELOOP))?;
                rustix::fs::open(path, flags, rustix::fs::Mode::empty())
                    .map_err(std::io::Error::from)
            }),
        };
        match opened {
            Ok(fd) => Ok(Some(fd)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Opens the folder `rel_dir` below the root as `read` opens the folders of a path that
    /// follows no symlink (`beneath::open_dir`), for several reads in it with `read_in`.
    pub fn open_folder(&self, rel_dir: &str) -> std::io::Result<std::os::fd::OwnedFd> {
        beneath::open_dir(self, rel_dir, false)
    }

    /// Opens `name`, one component, in a folder `open_folder` (or this) opened: a folder, no
    /// symlink followed. What a scan of `proc/PID` folders uses so that each costs one open.
    pub fn open_in(
        dir: &std::os::fd::OwnedFd,
        name: &str,
    ) -> std::io::Result<std::os::fd::OwnedFd> {
        use rustix::fs::OFlags;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        Ok(rustix::fs::openat(
            dir,
            one_component(name)?,
            flags,
            rustix::fs::Mode::empty(),
        )?)
    }

    /// Reads the file `name` (one component) of a folder `open_folder` or `open_in` opened,
    /// with `read`'s guarantees: non-blocking, no symlink followed, regular files only, at
    /// most `cap` bytes. `None` when the file is absent.
    pub fn read_in(
        dir: &std::os::fd::OwnedFd,
        name: &str,
        cap: u64,
    ) -> std::io::Result<Option<Vec<u8>>> {
        use rustix::fs::OFlags;
        let flags =
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::openat(dir, one_component(name)?, flags, rustix::fs::Mode::empty()) {
            Ok(fd) => read_fd(fd, cap).map(Some),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a file the user named on the command line (a profile, a path outside any root),
    /// following links as a shell would, with the same guarantees as `Root::read`.
    pub fn read_named(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
        use rustix::fs::OFlags;
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let fd = rustix::fs::open(path, flags, rustix::fs::Mode::empty())?;
        read_fd(fd, cap)
    }
}

/// `name` when it is one path component (not empty, `.`, `..`, nor containing `/`).
fn one_component(name: &str) -> std::io::Result<&str> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{name:?} is not one path component"),
        ));
    }
    Ok(name)
}

/// The opened file when fstat on its descriptor shows a regular file: a directory is
/// `IsADirectory`, any other non-regular file (FIFO, device, socket) an error saying so.
fn regular(fd: std::os::fd::OwnedFd) -> std::io::Result<(std::fs::File, std::fs::Metadata)> {
    let file = std::fs::File::from(fd);
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(std::io::Error::from(std::io::ErrorKind::IsADirectory));
    }
    if !meta.is_file() {
        return Err(std::io::Error::other(
            "is not a regular file (a FIFO, device or socket); netprofile reads only regular \
             files: replace it with one",
        ));
    }
    Ok((file, meta))
}

/// The one bounded read every file read of netprofile ends in, for a descriptor that
/// `Root::read`, `Root::read_named` or a writer's trusted open (transaction/state.rs) made:
/// a directory is `IsADirectory`, any other non-regular file (FIFO, device, socket) an error,
/// and more than `cap` bytes an error stating the cap. The caller's error names the path.
pub fn read_fd(fd: std::os::fd::OwnedFd, cap: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let (file, meta) = regular(fd)?;
    // procfs reports size 0. Read straight into the result, which grows by doubling, so a
    // large socket table still takes few read() calls (each walks the kernel's hash again) and
    // a small proc file costs no zero-filled block (a 256 KiB one per file was most of what
    // `status` spent per process). At most one byte past the cap, to tell "too large" apart.
    let first = usize::try_from(meta.len().min(cap)).unwrap_or(0).max(4096);
    let mut bytes = Vec::with_capacity(first + 1);
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(std::io::Error::other(format!(
            "is larger than {} MiB; netprofile refuses to read more (a link to a device, or a \
             runaway file?)",
            cap >> 20
        )));
    }
    Ok(bytes)
}

/// Opening paths under a root without ever following a symlink (DESIGN.md "Persistence").
///
/// Each component is opened with `O_NOFOLLOW` relative to the folder opened before it, so a
/// symlink planted anywhere below the base, or a folder swapped for a symlink between a check
/// and the open, is refused instead of followed: no path under `--root` can lead outside it.
/// This is what `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` does, done one component at a
/// time so it also works on kernels and sandboxes without openat2. The base itself is what the
/// user named and is opened normally. One exception: a top-level `proc` that is a symlink is
/// followed only when it leads to a procfs mount (the connection-test sandbox and the kernel
/// tests link `ROOT/proc` to the real `/proc`); nothing below it is.
pub mod beneath {
    use std::io;
    use std::os::fd::OwnedFd;

    use rustix::fs::{Mode, OFlags};

    use super::Root;

    const PROC_SUPER_MAGIC: i64 = 0x9fa0;

    /// The components of a root-relative path; `..`, `.` and empty parts are refused.
    pub fn components(rel: &str) -> io::Result<Vec<&str>> {
        let parts: Vec<&str> = rel.trim_start_matches('/').split('/').collect();
        if parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == "..")
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{rel:?} is not a plain path below the root"),
            ));
        }
        Ok(parts)
    }

    /// The mode netprofile gives a folder it creates: 0700 for its own state, 0755 elsewhere
    /// (etc drop-in folders must stay readable for systemd-sysctl and pam_limits).
    #[must_use]
    pub fn dir_mode(rel_dir: &str) -> u32 {
        if rel_dir == Root::STATE_DIR
            || rel_dir.starts_with("var/lib/netprofile/")
            || rel_dir == Root::RUN_DIR
        {
            0o700
        } else {
            0o755
        }
    }

    fn symlink_error(shown: &str) -> io::Error {
        io::Error::other(format!(
            "{shown} is a symlink; netprofile never reads or writes through a symlink below its \
             root. Replace it with a regular file or folder"
        ))
    }

    /// Whether an opened file or folder lives on procfs.
    #[must_use]
    // f_type is i64 on x86_64 but narrower elsewhere.
    #[allow(clippy::useless_conversion)]
    pub fn is_procfs(fd: &OwnedFd) -> bool {
        rustix::fs::fstatfs(fd).is_ok_and(|s| i64::from(s.f_type) == PROC_SUPER_MAGIC)
    }

    fn open_base(root: &Root) -> io::Result<OwnedFd> {
        Ok(rustix::fs::open(
            root.base(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?)
    }

    /// Opens the folder `rel_dir` (root-relative; "" is the base). With `create`, missing
    /// folders are made with `dir_mode` (exactly, whatever the umask).
    pub fn open_dir(root: &Root, rel_dir: &str, create: bool) -> io::Result<OwnedFd> {
        let mut fd = open_base(root)?;
        if rel_dir.trim_matches('/').is_empty() {
            return Ok(fd);
        }
        let mut done = String::new();
        for (i, part) in components(rel_dir)?.into_iter().enumerate() {
            if !done.is_empty() {
                done.push('/');
            }
            done.push_str(part);
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
            let next = match rustix::fs::openat(&fd, part, flags | OFlags::NOFOLLOW, Mode::empty())
            {
                Ok(next) => next,
                Err(rustix::io::Errno::NOENT) if create => {
                    let mode = dir_mode(&done);
                    match rustix::fs::mkdirat(&fd, part, Mode::from_raw_mode(mode)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    let next =
                        rustix::fs::openat(&fd, part, flags | OFlags::NOFOLLOW, Mode::empty())?;
                    // mkdir honours the umask: set the mode exactly.
                    rustix::fs::fchmod(&next, Mode::from_raw_mode(mode))?;
                    next
                }
                Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR)
                    if (i == 0 && part == "proc") || (i > 0 && is_procfs(&fd)) =>
                {
                    // procfs' own links (`proc/net -> self/net`) are the kernel's, and lead
                    // only within procfs; that is checked on what they open.
                    let next = rustix::fs::openat(&fd, part, flags, Mode::empty())?;
                    if !is_procfs(&next) {
                        return Err(symlink_error(&Root::display(&done)));
                    }
                    next
                }
                Err(rustix::io::Errno::LOOP) => return Err(symlink_error(&Root::display(&done))),
                Err(rustix::io::Errno::NOTDIR) => {
                    // A symlink to a file, or a file where a folder belongs.
                    let meta =
                        rustix::fs::statat(&fd, part, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)?;
                    if rustix::fs::FileType::from_raw_mode(meta.st_mode)
                        == rustix::fs::FileType::Symlink
                    {
                        return Err(symlink_error(&Root::display(&done)));
                    }
                    return Err(io::Error::from(io::ErrorKind::NotADirectory));
                }
                Err(e) => return Err(e.into()),
            };
            fd = next;
        }
        Ok(fd)
    }

    /// Splits a root-relative file path into its folder and name.
    pub fn split(rel: &str) -> io::Result<(&str, &str)> {
        let rel = rel.trim_start_matches('/');
        components(rel)?;
        Ok(rel.rsplit_once('/').unwrap_or(("", rel)))
    }

    /// Opens the file `rel` with `flags` (O_NOFOLLOW and O_CLOEXEC are added), its folders
    /// opened as `open_dir` does. A symlink as the file itself is refused with a clear error.
    pub fn open_file(root: &Root, rel: &str, flags: OFlags, mode: u32) -> io::Result<OwnedFd> {
        let (dir, name) = split(rel)?;
        let dirfd = open_dir(root, dir, flags.contains(OFlags::CREATE))?;
        match rustix::fs::openat(
            &dirfd,
            name,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        ) {
            Ok(fd) => Ok(fd),
            Err(rustix::io::Errno::LOOP) => Err(symlink_error(&Root::display(rel))),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether `name` in the opened folder is a symlink (not following it).
    pub fn is_symlink_at(dirfd: &OwnedFd, name: &str) -> io::Result<bool> {
        match rustix::fs::statat(dirfd, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
            Ok(meta) => {
                Ok(rustix::fs::FileType::from_raw_mode(meta.st_mode)
                    == rustix::fs::FileType::Symlink)
            }
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Error for a symlinked file, as `open_file` reports it.
    #[must_use]
    pub fn refused(rel: &str) -> io::Error {
        symlink_error(&Root::display(rel))
    }
}
