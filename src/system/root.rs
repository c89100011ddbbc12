//! `Root`: the one file-system boundary of netprofile.
//!
//! Every system path (`/proc/sys/...`, `/etc/...`, `/var/lib/netprofile`, `/run/...`) is
//! spelled here and nowhere else, relative to a base directory that is `/` on a real machine
//! and a temporary tree in tests (`--root DIR`). Other modules ask `Root` for a path; they never
//! build an absolute one. This module resolves paths and reads a few identity facts (network
//! namespace); it never writes.

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
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

    pub const SYSCTL_CONF: &'static str = "etc/sysctl.conf";
    pub const LIMITS_CONF: &'static str = "etc/security/limits.conf";
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
