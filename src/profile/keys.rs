//! Sysctl key names and the catalogue of keys netprofile knows about.
//!
//! A `KeyName` is a validated dotted name that maps to a path under `proc/sys` and can never
//! escape it. The catalogue tags each known key with its scope (per network namespace or
//! global), the shape of its value, and which keys Linux has removed. Pure data and string
//! work; never performs I/O.

use std::fmt;

/// A sysctl key such as `net.core.somaxconn`, checked to stay inside `proc/sys`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct KeyName(String);

impl KeyName {
    /// Accepts `a.b.c` with segments of letters, digits, `_` and `-` (as in `fs.file-max`).
    /// A `/`-separated key (`net/core/somaxconn`, as sysctl.d allows) is read the same way.
    /// Empty, absolute or `..` segments are refused, so the key cannot leave `proc/sys`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = if raw.contains('/') && !raw.contains('.') {
            raw.replace('/', ".")
        } else {
            raw.to_string()
        };
        if name.is_empty() {
            return Err("empty key name".into());
        }
        if name.starts_with('.') || name.starts_with('/') {
            return Err("key names are relative to /proc/sys: remove the leading separator".into());
        }
        for segment in name.split('.') {
            if segment.is_empty() {
                return Err(
                    "key has an empty segment (two dots in a row or a trailing dot)".into(),
                );
            }
            if let Some(bad) = segment
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
            {
                return Err(format!(
                    "key has the character {bad:?}; sysctl keys use letters, digits, '_', '-' and '.'"
                ));
            }
        }
        if name.contains('/') {
            return Err("key mixes '/' and '.' separators".into());
        }
        Ok(KeyName(name))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a key lives in each network namespace or once for the whole machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Netns,
    Global,
}

/// The shape of a key's value, used to check profile values before anything is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One integer.
    Int,
    /// A fixed number of whitespace-separated integers (`tcp_rmem`: 3).
    Ints(usize),
    /// A comma-separated list of ports and ranges (`ip_local_reserved_ports`).
    PortList,
    /// Free text (`tcp_congestion_control`).
    Text,
}

#[derive(Debug, Clone, Copy)]
pub struct KnownKey {
    pub name: &'static str,
    pub scope: Scope,
    pub shape: Shape,
}

const fn k(name: &'static str, scope: Scope, shape: Shape) -> KnownKey {
    KnownKey { name, scope, shape }
}

use Scope::{Global, Netns};
use Shape::{Int, Ints, PortList, Text};

/// Keys that matter for many connections. Scope follows the kernel's registration: keys in
/// `netns_core_table`/`ipv4_net_table` are per namespace; `net_core_table`, `ipv4_table`,
/// netfilter's table size and `fs.*` are global (DESIGN.md, "Per-namespace and global keys").
pub const CATALOGUE: &[KnownKey] = &[
    k("net.core.somaxconn", Netns, Int),
    k("net.ipv4.tcp_max_syn_backlog", Netns, Int),
    k("net.ipv4.tcp_syncookies", Netns, Int),
    k("net.ipv4.tcp_abort_on_overflow", Netns, Int),
    k("net.ipv4.tcp_synack_retries", Netns, Int),
    k("net.ipv4.tcp_syn_retries", Netns, Int),
    k("net.ipv4.tcp_tw_reuse", Netns, Int),
    k("net.ipv4.tcp_fin_timeout", Netns, Int),
    k("net.ipv4.tcp_max_tw_buckets", Netns, Int),
    k("net.ipv4.ip_local_port_range", Netns, Ints(2)),
    k("net.ipv4.ip_local_reserved_ports", Netns, PortList),
    k("net.ipv4.tcp_rmem", Netns, Ints(3)),
    k("net.ipv4.tcp_wmem", Netns, Ints(3)),
    k("net.ipv4.tcp_keepalive_time", Netns, Int),
    k("net.ipv4.tcp_keepalive_intvl", Netns, Int),
    k("net.ipv4.tcp_keepalive_probes", Netns, Int),
    k("net.ipv4.tcp_slow_start_after_idle", Netns, Int),
    k("net.ipv4.tcp_notsent_lowat", Netns, Int),
    k("net.ipv4.tcp_fastopen", Netns, Int),
    k("net.ipv4.tcp_timestamps", Netns, Int),
    k("net.ipv4.tcp_orphan_retries", Netns, Int),
    k("net.ipv4.tcp_mtu_probing", Netns, Int),
    k("net.ipv4.tcp_congestion_control", Netns, Text),
    k("net.unix.max_dgram_qlen", Netns, Int),
    k("net.core.rmem_max", Global, Int),
    k("net.core.wmem_max", Global, Int),
    k("net.core.rmem_default", Global, Int),
    k("net.core.wmem_default", Global, Int),
    k("net.core.optmem_max", Global, Int),
    k("net.core.netdev_max_backlog", Global, Int),
    k("net.ipv4.tcp_mem", Global, Ints(3)),
    k("net.ipv4.udp_mem", Global, Ints(3)),
    k("net.ipv4.tcp_max_orphans", Global, Int),
    k("net.netfilter.nf_conntrack_max", Global, Int),
    k("net.nf_conntrack_max", Global, Int),
    k("net.netfilter.nf_conntrack_buckets", Global, Int),
    k("fs.file-max", Global, Int),
    k("fs.nr_open", Global, Int),
    k("fs.epoll.max_user_watches", Global, Int),
];

/// Keys Linux has removed, with what to do instead.
pub const REMOVED: &[(&str, &str)] = &[
    (
        "net.ipv4.tcp_tw_recycle",
        "removed in Linux 4.12: it dropped connections from clients behind NAT. TIME_WAIT \
         sockets are handled by net.ipv4.tcp_tw_reuse (outgoing connections only) and a wider \
         net.ipv4.ip_local_port_range",
    ),
    (
        "net.ipv4.tcp_dma_copybreak",
        "removed in Linux 3.18 with the NET_DMA engine; delete the line",
    ),
    (
        "net.ipv4.ip_conntrack_max",
        "removed with ip_conntrack in Linux 2.6.25; use net.netfilter.nf_conntrack_max",
    ),
    (
        "net.ipv4.netfilter.ip_conntrack_max",
        "removed with ip_conntrack; use net.netfilter.nf_conntrack_max",
    ),
    (
        "net.ipv4.tcp_frto_response",
        "removed in Linux 3.10; delete the line",
    ),
];

#[must_use]
pub fn known(name: &str) -> Option<&'static KnownKey> {
    CATALOGUE.iter().find(|key| key.name == name)
}

#[must_use]
pub fn removed(name: &str) -> Option<&'static str> {
    REMOVED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, why)| *why)
}

/// The scope of any key: the catalogue's tag, else `fs.*`, `kernel.*` and `vm.*` are global and
/// other `net.*` keys are taken to be per namespace.
#[must_use]
pub fn scope(name: &KeyName) -> Scope {
    if let Some(key) = known(name.as_str()) {
        return key.scope;
    }
    if name.as_str().starts_with("net.") {
        Scope::Netns
    } else {
        Scope::Global
    }
}

/// The closest of `candidates` to `name`, if it is close enough to be a likely typo.
#[must_use]
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.len() / 3).max(3);
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (strsim::levenshtein(name, c), c))
        .filter(|(distance, _)| *distance <= limit)
        .min()
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("net.core.somaxconn", Ok("net.core.somaxconn")),
            ("fs.file-max", Ok("fs.file-max")),
            ("net/core/somaxconn", Ok("net.core.somaxconn")),
            ("net..core", Err("empty segment")),
            ("net.core.", Err("empty segment")),
            (".net.core", Err("leading separator")),
            ("/net/core/somaxconn", Err("leading separator")),
            ("net.core/../../etc", Err("character '/'")),
            ("net.core.som axconn", Err("character ' '")),
            ("", Err("empty key")),
        ];
        for (raw, want) in cases {
            match (KeyName::parse(raw), want) {
                (Ok(k), Ok(w)) => assert_eq!(k.as_str(), *w, "{raw}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{raw}: {e}"),
                (got, want) => panic!("{raw}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn nearest_suggests_typos_only() {
        let names = CATALOGUE.iter().map(|k| k.name);
        assert_eq!(
            nearest("net.core.somaxcon", names.clone()),
            Some("net.core.somaxconn")
        );
        assert_eq!(
            nearest("net.ipv4.tcp_max_syn_backlg", names.clone()),
            Some("net.ipv4.tcp_max_syn_backlog")
        );
        assert_eq!(nearest("kernel.shmmax", names), None);
    }

    #[test]
    fn scope_of_unknown_keys() {
        let key = |s| KeyName::parse(s).unwrap();
        assert_eq!(scope(&key("net.ipv4.tcp_rmem")), Scope::Netns);
        assert_eq!(scope(&key("net.ipv4.tcp_mem")), Scope::Global);
        assert_eq!(scope(&key("net.ipv4.tcp_ecn")), Scope::Netns);
        assert_eq!(scope(&key("vm.swappiness")), Scope::Global);
    }
}
