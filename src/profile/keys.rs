//! Sysctl key names and the catalogue of keys netprofile knows about.
//!
//! A `KeyName` is a validated dotted name that maps to a path under `proc/sys` and can never
//! escape it. The catalogue tags each known key with its scope (per network namespace or
//! global), the shape of its value, and which keys Linux has removed. Pure data and string
//! work; never performs I/O.

use std::fmt;

/// A sysctl key such as `net.core.somaxconn`, checked to stay inside `proc/sys`.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, schemars::JsonSchema,
)]
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
            if segment.len() > 255 {
                return Err(format!(
                    "key has a segment of {} characters; a /proc/sys name has at most 255 \
                     (NAME_MAX)",
                    segment.len()
                ));
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Netns,
    Global,
}

/// The textual shape of a key's value: how it is split and normalised (value.rs).
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

/// What values a key takes: the type and range that the plan checks before anything is touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One integer in `min..=max`.
    Int { min: i64, max: i64 },
    /// 0 or 1.
    Bool,
    /// One of a few integers, each with a meaning.
    Enum(&'static [(i64, &'static str)]),
    /// Two ports, first below last (`ip_local_port_range`).
    PortRange,
    /// Three integers, each at least `min`, not decreasing (`tcp_rmem`: min default max).
    Triplet { min: i64 },
    /// Ports and ranges separated by commas (`ip_local_reserved_ports`).
    PortList,
    /// One name out of the list the running kernel prints in another key.
    Choice { from: &'static str },
    /// Names separated by spaces, each out of the list another key prints.
    List { from: &'static str },
    /// One of a fixed set of names.
    Names(&'static [&'static str]),
}

impl Kind {
    /// The textual shape of values of this kind.
    #[must_use]
    pub const fn shape(self) -> Shape {
        match self {
            Kind::Int { .. } | Kind::Bool | Kind::Enum(_) => Shape::Int,
            Kind::PortRange => Shape::Ints(2),
            Kind::Triplet { .. } => Shape::Ints(3),
            Kind::PortList => Shape::PortList,
            Kind::Choice { .. } | Kind::List { .. } | Kind::Names(_) => Shape::Text,
        }
    }

    /// The type's name in docs/keys.md.
    #[must_use]
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::Int { .. } => "int",
            Kind::Bool => "bool",
            Kind::Enum(_) => "enum",
            Kind::PortRange => "port range",
            Kind::Triplet { .. } => "triplet",
            Kind::PortList => "port list",
            Kind::Choice { .. } => "choice",
            Kind::List { .. } => "list",
            Kind::Names(_) => "name",
        }
    }

    /// The valid values, as error messages and docs/keys.md show them.
    #[must_use]
    pub fn range(self) -> String {
        match self {
            Kind::Int { min, max } => format!("{min}-{max}"),
            Kind::Bool => "0 or 1".to_string(),
            Kind::Enum(values) => values
                .iter()
                .map(|(v, meaning)| format!("{v} ({meaning})"))
                .collect::<Vec<_>>()
                .join(", "),
            Kind::PortRange => "two ports \"FIRST LAST\", 1 <= FIRST < LAST <= 65535, FIRST >= \
                 net.ipv4.ip_unprivileged_port_start"
                .to_string(),
            Kind::Triplet { min } => {
                format!("three integers \"MIN DEFAULT MAX\", each >= {min}, not decreasing")
            }
            Kind::PortList => "ports and ranges 1-65535, e.g. \"8080,9000-9010\"".to_string(),
            Kind::Choice { from } => format!("one name listed in {from}"),
            Kind::List { from } => format!("names listed in {from}, separated by spaces"),
            Kind::Names(names) => format!("one of {}", names.join(", ")),
        }
    }

    /// Checks a value (in normal form) that the profile gives. `choices` is what the running
    /// kernel lists for `Choice` and `List` kinds, when known. The error names the valid range.
    pub fn check(self, value: &str, choices: Option<&str>) -> Result<(), String> {
        let ints = || self.integers(value);
        let out_of_range = || format!("{value} is out of range; valid: {}", self.range());
        match self {
            Kind::Int { min, max } => match ints()?[..] {
                [v] if (min..=max).contains(&v) => Ok(()),
                [_] => Err(out_of_range()),
                _ => Err(format!("expects one integer, got {value:?}")),
            },
            Kind::Bool => match ints()?[..] {
                [0 | 1] => Ok(()),
                [_] => Err(out_of_range()),
                _ => Err(format!("expects 0 or 1, got {value:?}")),
            },
            Kind::Enum(values) => match ints()?[..] {
                [v] if values.iter().any(|(x, _)| *x == v) => Ok(()),
                [_] => Err(out_of_range()),
                _ => Err(format!("expects one integer, got {value:?}")),
            },
            Kind::PortRange => self.check_port_range(value),
            Kind::Triplet { min } => match ints()?[..] {
                [a, b, c] if a < min || b < min || c < min => Err(out_of_range()),
                [a, b, c] if a > b || b > c => Err(format!(
                    "{value} decreases; the fields are MIN DEFAULT MAX, so each is at least the \
                     one before"
                )),
                [_, _, _] => Ok(()),
                _ => Err(format!(
                    "expects 3 integers separated by spaces, got {value:?}"
                )),
            },
            Kind::PortList => crate::profile::value::parse_port_list(value).map(|_| ()),
            Kind::Names(names) => {
                if names.contains(&value) {
                    Ok(())
                } else {
                    Err(format!("{value:?} is not known; valid: {}", self.range()))
                }
            }
            Kind::Choice { from } | Kind::List { from } => {
                self.check_available(from, value, choices)
            }
        }
    }

    /// The integers of a value, or an error naming the field that is not one.
    fn integers(self, value: &str) -> Result<Vec<i64>, String> {
        value
            .split_whitespace()
            .map(|f| {
                f.parse::<i64>()
                    .map_err(|_| format!("{f:?} is not an integer; valid: {}", self.range()))
            })
            .collect()
    }

    /// `PortRange`: two ports in order. Whether the range starts at or above
    /// `ip_unprivileged_port_start` depends on that key's value, so the plan checks it
    /// (`plan::ports::port_floor`), not this.
    fn check_port_range(self, value: &str) -> Result<(), String> {
        match self.integers(value)?[..] {
            [lo, hi] if !(1..=65535).contains(&lo) || !(1..=65535).contains(&hi) => Err(format!(
                "ports must lie in 1-65535, got {value:?}; valid: {}",
                self.range()
            )),
            [lo, hi] if lo >= hi => Err(format!(
                "the first port must be below the last, got {value:?} (the kernel refuses a \
                 reversed range); write \"{} {}\"",
                lo.min(hi),
                lo.max(hi)
            )),
            [_, _] => Ok(()),
            _ => Err(format!("expects two ports \"FIRST LAST\", got {value:?}")),
        }
    }

    /// `Choice` and `List`: every name must be one the running kernel lists in `from` (when
    /// that list is known); `Choice` takes exactly one.
    fn check_available(self, from: &str, value: &str, choices: Option<&str>) -> Result<(), String> {
        let Some(choices) = choices else {
            return Ok(());
        };
        let available: Vec<&str> = choices.split_whitespace().collect();
        let wanted: Vec<&str> = value.split_whitespace().collect();
        if matches!(self, Kind::Choice { .. }) && wanted.len() != 1 {
            return Err(format!("expects one name, got {value:?}"));
        }
        match wanted.iter().find(|w| !available.contains(w)) {
            None => Ok(()),
            Some(missing) => Err(format!(
                "{missing:?} is not available on this kernel: {from} lists {}. Load its \
                 module first (e.g. `modprobe tcp_{missing}`) or choose one of those",
                available.join(", ")
            )),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct KnownKey {
    pub name: &'static str,
    /// Other names of the same kernel setting (`net.nf_conntrack_max`).
    pub aliases: &'static [&'static str],
    pub scope: Scope,
    pub kind: Kind,
    pub shape: Shape,
    pub unit: &'static str,
    /// The Linux release that added the key ("2.6.12" stands for "in the first git release").
    pub since: &'static str,
    /// The failure that setting this key prevents.
    pub prevents: &'static str,
}

const fn k(
    name: &'static str,
    scope: Scope,
    kind: Kind,
    unit: &'static str,
    since: &'static str,
    prevents: &'static str,
) -> KnownKey {
    KnownKey {
        name,
        aliases: &[],
        scope,
        kind,
        shape: kind.shape(),
        unit,
        since,
        prevents,
    }
}

const fn aka(key: KnownKey, aliases: &'static [&'static str]) -> KnownKey {
    KnownKey { aliases, ..key }
}

use Scope::{Global, Netns};

const INT: i64 = 2_147_483_647;
const UINT: i64 = 4_294_967_295;
const LONG: i64 = 9_223_372_036_854_775_807;
const fn int(min: i64, max: i64) -> Kind {
    Kind::Int { min, max }
}
const BOOL: Kind = Kind::Bool;
const SECONDS: &str = "seconds";
const BYTES: &str = "bytes";
const OLD: &str = "2.6.12";

/// The known keys. Ranges are what the kernel accepts, narrowed where the kernel accepts
/// nonsense (a negative timeout, a boolean of 5); scope is what a private network namespace
/// shows on Linux 6.18 (tests/values.rs checks both against the running kernel). docs/keys.md
/// is generated from this table.
pub const CATALOGUE: &[KnownKey] = &[
    // Accept queue and handshakes.
    k(
        "net.core.somaxconn",
        Netns,
        int(0, INT),
        "connections",
        OLD,
        "an accept queue capped low: connects stall 1 s, 3 s and ListenOverflows grows",
    ),
    k(
        "net.ipv4.tcp_max_syn_backlog",
        Netns,
        int(1, INT),
        "connections",
        OLD,
        "SYNs dropped or answered with cookies while many handshakes are in flight",
    ),
    k(
        "net.ipv4.tcp_syncookies",
        Netns,
        Kind::Enum(&[
            (0, "off"),
            (1, "when the SYN queue overflows"),
            (2, "always"),
        ]),
        "",
        OLD,
        "a SYN flood filling the SYN queue and refusing real clients",
    ),
    k(
        "net.ipv4.tcp_abort_on_overflow",
        Netns,
        BOOL,
        "",
        OLD,
        "clients that wait for a reply from a server whose accept queue silently dropped them",
    ),
    k(
        "net.ipv4.tcp_synack_retries",
        Netns,
        int(0, 255),
        "retransmissions",
        OLD,
        "half-open connections held for a minute by clients that never answer",
    ),
    k(
        "net.ipv4.tcp_syn_retries",
        Netns,
        int(1, 127),
        "retransmissions",
        OLD,
        "connects to a dead host hanging for over two minutes",
    ),
    k(
        "net.ipv4.tcp_migrate_req",
        Netns,
        BOOL,
        "",
        "5.14",
        "handshakes lost when one SO_REUSEPORT listener of several closes",
    ),
    // TIME_WAIT and ephemeral ports.
    k(
        "net.ipv4.tcp_tw_reuse",
        Netns,
        Kind::Enum(&[
            (0, "off"),
            (1, "on for outgoing connections"),
            (2, "loopback only"),
        ]),
        "",
        OLD,
        "EADDRNOTAVAIL after about 28 000 quick connections to one address and port",
    ),
    k(
        "net.ipv4.tcp_fin_timeout",
        Netns,
        int(1, 2_147_483),
        SECONDS,
        OLD,
        "orphaned FIN_WAIT_2 sockets holding memory and ports for a minute each",
    ),
    k(
        "net.ipv4.tcp_max_tw_buckets",
        Netns,
        int(0, INT),
        "sockets",
        OLD,
        "TIME_WAIT sockets destroyed early (\"TCP: time wait bucket table overflow\")",
    ),
    k(
        "net.ipv4.ip_local_port_range",
        Netns,
        Kind::PortRange,
        "ports",
        OLD,
        "connect() failing with EADDRNOTAVAIL once the 28 232 default ephemeral ports are taken",
    ),
    k(
        "net.ipv4.ip_local_reserved_ports",
        Netns,
        Kind::PortList,
        "ports",
        "2.6.35",
        "a service failing to bind after restart because an outgoing connection took its port",
    ),
    k(
        "net.ipv4.ip_unprivileged_port_start",
        Netns,
        int(0, 65535),
        "port",
        "4.11",
        "an ephemeral range the kernel refuses because it starts among privileged ports",
    ),
    k(
        "net.ipv4.tcp_timestamps",
        Netns,
        Kind::Enum(&[
            (0, "off"),
            (1, "on, random offset per connection"),
            (2, "on, no offset"),
        ]),
        "",
        OLD,
        "tcp_tw_reuse doing nothing, since it needs timestamps to reuse a port safely",
    ),
    k(
        "net.ipv4.tcp_orphan_retries",
        Netns,
        int(0, 255),
        "retransmissions",
        OLD,
        "closed sockets to dead peers holding memory for many minutes",
    ),
    k(
        "net.ipv4.tcp_max_orphans",
        Global,
        int(0, INT),
        "sockets",
        OLD,
        "\"too many orphaned sockets\" resets when many connections close at once",
    ),
    k(
        "net.ipv4.tcp_retries1",
        Netns,
        int(0, 255),
        "retransmissions",
        OLD,
        "route problems reported to the application too late or too early",
    ),
    k(
        "net.ipv4.tcp_retries2",
        Netns,
        int(0, 255),
        "retransmissions",
        OLD,
        "established connections to a dead peer lingering for 15 minutes",
    ),
    k(
        "net.ipv4.tcp_child_ehash_entries",
        Netns,
        int(0, 16_777_216),
        "entries",
        "6.1",
        "a child network namespace sharing (and filling) the host's socket hash table",
    ),
    // Keepalive.
    k(
        "net.ipv4.tcp_keepalive_time",
        Netns,
        int(1, 32_767),
        SECONDS,
        OLD,
        "idle connections dropped by a firewall or NAT before the first keepalive is sent",
    ),
    k(
        "net.ipv4.tcp_keepalive_intvl",
        Netns,
        int(1, 32_767),
        SECONDS,
        OLD,
        "dead peers noticed only after many minutes",
    ),
    k(
        "net.ipv4.tcp_keepalive_probes",
        Netns,
        int(1, 127),
        "probes",
        OLD,
        "dead peers kept as connections (the kernel takes 0-255; TCP_KEEPCNT stops at 127)",
    ),
    // Socket memory.
    k(
        "net.ipv4.tcp_rmem",
        Netns,
        Kind::Triplet { min: 1 },
        BYTES,
        OLD,
        "receive windows too small for the path, or per-socket buffers that exhaust memory",
    ),
    k(
        "net.ipv4.tcp_wmem",
        Netns,
        Kind::Triplet { min: 1 },
        BYTES,
        OLD,
        "send buffers too small for the path, or per-socket buffers that exhaust memory",
    ),
    k(
        "net.ipv4.tcp_mem",
        Global,
        Kind::Triplet { min: 1 },
        "pages",
        OLD,
        "\"TCP: out of memory\" and ENOBUFS when many sockets hold data",
    ),
    k(
        "net.ipv4.udp_mem",
        Global,
        Kind::Triplet { min: 1 },
        "pages",
        "2.6.25",
        "UDP datagrams dropped under memory pressure",
    ),
    k(
        "net.ipv4.udp_rmem_min",
        Netns,
        int(1, INT),
        BYTES,
        "2.6.25",
        "UDP sockets starved of receive buffer under memory pressure",
    ),
    k(
        "net.ipv4.udp_wmem_min",
        Netns,
        int(1, INT),
        BYTES,
        "2.6.25",
        "UDP sockets starved of send buffer under memory pressure",
    ),
    k(
        "net.core.rmem_max",
        Global,
        int(4096, INT),
        BYTES,
        OLD,
        "SO_RCVBUF requests silently capped below what the application asked for",
    ),
    k(
        "net.core.wmem_max",
        Global,
        int(4608, INT),
        BYTES,
        OLD,
        "SO_SNDBUF requests silently capped below what the application asked for",
    ),
    k(
        "net.core.rmem_default",
        Global,
        int(4096, INT),
        BYTES,
        OLD,
        "non-TCP sockets dropping bursts with a small default receive buffer",
    ),
    k(
        "net.core.wmem_default",
        Global,
        int(4608, INT),
        BYTES,
        OLD,
        "non-TCP sockets blocking with a small default send buffer",
    ),
    k(
        "net.core.optmem_max",
        Netns,
        int(0, INT),
        BYTES,
        OLD,
        "setsockopt failing with ENOBUFS for large socket options and filters (per namespace \
         since 6.x; global before)",
    ),
    k(
        "net.ipv4.tcp_notsent_lowat",
        Netns,
        int(0, UINT),
        BYTES,
        "3.12",
        "unsent data piling up in the kernel and adding latency",
    ),
    k(
        "net.ipv4.tcp_moderate_rcvbuf",
        Netns,
        BOOL,
        "",
        OLD,
        "receive buffers that never grow past the default on fast long paths",
    ),
    k(
        "net.ipv4.tcp_adv_win_scale",
        Netns,
        int(-31, 31),
        "",
        OLD,
        "receive windows that understate or overstate the buffer space",
    ),
    k(
        "net.ipv4.tcp_limit_output_bytes",
        Netns,
        int(0, INT),
        BYTES,
        "3.6",
        "bulk flows filling qdisc queues and adding latency for the rest",
    ),
    // Device backlog and NAPI.
    k(
        "net.core.netdev_max_backlog",
        Global,
        int(1, INT),
        "packets",
        OLD,
        "packets dropped (softnet_stat column 2) when a core receives bursts faster than it \
         processes them",
    ),
    k(
        "net.core.netdev_budget",
        Global,
        int(1, INT),
        "packets",
        "2.6",
        "softirq stopping early (time_squeeze) while packets wait",
    ),
    k(
        "net.core.netdev_budget_usecs",
        Global,
        int(1, INT),
        "microseconds",
        "4.12",
        "softirq stopping early (time_squeeze) while packets wait",
    ),
    k(
        "net.core.dev_weight",
        Global,
        int(1, INT),
        "packets",
        OLD,
        "one device starving the others in the per-core backlog",
    ),
    // Busy polling.
    k(
        "net.core.busy_poll",
        Global,
        int(0, INT),
        "microseconds",
        "3.11",
        "interrupt latency on poll() and select() of latency-critical sockets",
    ),
    k(
        "net.core.busy_read",
        Global,
        int(0, INT),
        "microseconds",
        "3.11",
        "interrupt latency on blocking reads of latency-critical sockets",
    ),
    // Queueing and congestion control.
    k(
        "net.core.default_qdisc",
        Global,
        Kind::Names(&[
            "pfifo_fast",
            "fq",
            "fq_codel",
            "fq_pie",
            "cake",
            "sfq",
            "pfifo",
            "bfifo",
            "noqueue",
        ]),
        "",
        "3.12",
        "bufferbloat on busy links, or pacing that BBR needs missing",
    ),
    k(
        "net.ipv4.tcp_congestion_control",
        Netns,
        Kind::Choice {
            from: "net.ipv4.tcp_available_congestion_control",
        },
        "",
        "2.6.13",
        "a congestion control that collapses throughput on lossy or long paths",
    ),
    k(
        "net.ipv4.tcp_allowed_congestion_control",
        Global,
        Kind::List {
            from: "net.ipv4.tcp_available_congestion_control",
        },
        "",
        "2.6.19",
        "applications unable to pick the congestion control they were tuned for",
    ),
    k(
        "net.ipv4.tcp_slow_start_after_idle",
        Netns,
        BOOL,
        "",
        "2.6.18",
        "long-lived connections falling back to slow start after each idle pause",
    ),
    k(
        "net.ipv4.tcp_fastopen",
        Netns,
        int(0, 0x7FF),
        "flags",
        "3.7",
        "an extra round trip on every repeated connect (TFO off)",
    ),
    k(
        "net.ipv4.tcp_mtu_probing",
        Netns,
        Kind::Enum(&[(0, "off"), (1, "after an ICMP black hole"), (2, "always")]),
        "",
        "2.6.17",
        "connections that hang once data flows, behind an ICMP black hole",
    ),
    k(
        "net.ipv4.tcp_min_snd_mss",
        Netns,
        int(48, 65_535),
        BYTES,
        "5.2",
        "peers forcing a tiny MSS that burns CPU (CVE-2019-11479)",
    ),
    k(
        "net.ipv4.tcp_sack",
        Netns,
        BOOL,
        "",
        OLD,
        "slow recovery from multiple losses per window",
    ),
    k(
        "net.ipv4.tcp_window_scaling",
        Netns,
        BOOL,
        "",
        OLD,
        "windows capped at 64 KiB, so throughput falls with distance",
    ),
    k(
        "net.ipv4.tcp_ecn",
        Netns,
        Kind::Enum(&[(0, "off"), (1, "request and accept"), (2, "accept only")]),
        "",
        OLD,
        "packet loss used as the only congestion signal",
    ),
    k(
        "net.ipv4.tcp_autocorking",
        Netns,
        BOOL,
        "",
        "3.14",
        "many tiny segments from applications doing small writes",
    ),
    k(
        "net.ipv4.tcp_no_metrics_save",
        Netns,
        BOOL,
        "",
        OLD,
        "one bad connection's metrics slowing the next ones to the same host",
    ),
    k(
        "net.ipv4.tcp_rfc1337",
        Netns,
        BOOL,
        "",
        OLD,
        "TIME_WAIT sockets killed early by stray RSTs (TIME-WAIT assassination)",
    ),
    k(
        "net.ipv4.tcp_early_retrans",
        Netns,
        int(0, 4),
        "",
        "3.5",
        "tail losses recovered only by a full retransmission timeout",
    ),
    k(
        "net.ipv4.tcp_comp_sack_nr",
        Netns,
        int(0, 255),
        "ACKs",
        "4.18",
        "a flood of SACKs costing CPU on lossy high-rate flows",
    ),
    // Addresses and forwarding.
    k(
        "net.ipv4.ip_forward",
        Netns,
        BOOL,
        "",
        OLD,
        "a proxy or router host that silently drops forwarded packets",
    ),
    k(
        "net.ipv4.ip_nonlocal_bind",
        Netns,
        BOOL,
        "",
        OLD,
        "services failing to start before their (floating) address is up",
    ),
    k(
        "net.unix.max_dgram_qlen",
        Netns,
        int(0, INT),
        "datagrams",
        OLD,
        "EAGAIN on busy Unix datagram sockets such as /dev/log",
    ),
    // Connection tracking.
    aka(
        k(
            "net.netfilter.nf_conntrack_max",
            Global,
            int(0, INT),
            "entries",
            "2.6.15",
            "\"nf_conntrack: table full, dropping packet\" under many connections",
        ),
        &["net.nf_conntrack_max"],
    ),
    k(
        "net.netfilter.nf_conntrack_buckets",
        Global,
        int(1, 268_435_455),
        "buckets",
        "2.6.15",
        "long hash chains slowing every packet when the table is large",
    ),
    k(
        "net.netfilter.nf_conntrack_tcp_timeout_time_wait",
        Netns,
        int(1, 2_147_483),
        SECONDS,
        "2.6.15",
        "closed connections occupying the conntrack table for two minutes",
    ),
    k(
        "net.netfilter.nf_conntrack_tcp_timeout_established",
        Netns,
        int(1, 2_147_483),
        SECONDS,
        "2.6.15",
        "idle connections occupying the conntrack table for five days",
    ),
    // Files.
    k(
        "fs.file-max",
        Global,
        int(1, LONG),
        "files",
        OLD,
        "ENFILE (\"too many open files in system\") across all processes",
    ),
    k(
        "fs.nr_open",
        Global,
        int(64, 2_147_483_584),
        "files",
        "2.6.25",
        "a nofile limit above it, which makes setrlimit and logins fail",
    ),
    k(
        "fs.epoll.max_user_watches",
        Global,
        int(1, LONG),
        "watches",
        "2.6.28",
        "ENOSPC from epoll_ctl for a user with very many connections",
    ),
];

/// Keys Linux has removed: name, release, what to do instead.
pub const REMOVED: &[(&str, &str, &str)] = &[
    (
        "net.ipv4.tcp_tw_recycle",
        "4.12",
        "it dropped connections from clients behind NAT. TIME_WAIT sockets are handled by \
         net.ipv4.tcp_tw_reuse (outgoing connections only) and a wider \
         net.ipv4.ip_local_port_range",
    ),
    (
        "net.ipv4.tcp_dma_copybreak",
        "3.18",
        "it went with the NET_DMA engine; delete the line",
    ),
    (
        "net.ipv4.ip_conntrack_max",
        "2.6.25",
        "it went with ip_conntrack; use net.netfilter.nf_conntrack_max",
    ),
    (
        "net.ipv4.netfilter.ip_conntrack_max",
        "2.6.25",
        "it went with ip_conntrack; use net.netfilter.nf_conntrack_max",
    ),
    ("net.ipv4.tcp_frto_response", "3.10", "delete the line"),
];

/// The catalogue entry of `name` or of one of its aliases.
#[must_use]
pub fn known(name: &str) -> Option<&'static KnownKey> {
    CATALOGUE
        .iter()
        .find(|key| key.name == name || key.aliases.contains(&name))
}

/// What the kernel's handler takes for each integer of every integer-valued catalogue key: the
/// smallest and the largest value one field may hold. A one-integer write outside them is refused
/// (EINVAL) and the old value stays; a write of several integers (`tcp_rmem`) stores each field
/// as it is read and stops at the first bad one, so the fields before it are kept, except
/// `ip_local_port_range`, whose handler checks the pair before storing anything.
///
/// Per-namespace keys were probed on Linux 6.18 in a private user + network namespace (binary
/// search on each bound); `tests/kernel_values.rs` writes each bound and the value past it again
/// on the running kernel and compares. u8 keys take 0-255 whatever they mean, jiffies keys
/// (`tcp_fin_timeout`, keepalive times) take +-INT_MAX/HZ (HZ is 250 there; the catalogue's own
/// ranges stop at INT_MAX/1000, which every HZ takes), several keys take any int. Global keys
/// cannot be written in a namespace: their bounds are read from the kernel's source (file and
/// symbol in the comment; `proc_dointvec` is any int, `proc_doulongvec_minmax` refuses a minus
/// sign). Two rules span two keys and are not bounds (`sysctld::kernel_takes`):
/// `ip_local_port_range` is refused when its low end is above its high end or below
/// `ip_unprivileged_port_start`, and `ip_unprivileged_port_start` when it is above the range's
/// low end (net/ipv4/sysctl_net_ipv4.c: ipv4_local_port_range, ipv4_privileged_ports).
pub const KERNEL_RANGES: &[(&str, i128, i128)] = &[
    ("net.core.somaxconn", 0, 2147483647),
    ("net.ipv4.tcp_max_syn_backlog", -2147483648, 2147483647),
    ("net.ipv4.tcp_syncookies", 0, 255),
    ("net.ipv4.tcp_abort_on_overflow", 0, 255),
    ("net.ipv4.tcp_synack_retries", 0, 255),
    ("net.ipv4.tcp_syn_retries", 1, 127),
    ("net.ipv4.tcp_migrate_req", 0, 1),
    ("net.ipv4.tcp_tw_reuse", 0, 2),
    ("net.ipv4.tcp_fin_timeout", -8589934, 8589934),
    ("net.ipv4.tcp_max_tw_buckets", -2147483648, 2147483647),
    // ipv4_local_port_range: extra1/extra2 ip_local_port_range_min/max {1, 1}/{65535, 65535}.
    ("net.ipv4.ip_local_port_range", 1, 65535),
    // ipv4_privileged_ports: extra1/extra2 ip_privileged_port_min/max, 0 and 65535.
    ("net.ipv4.ip_unprivileged_port_start", 0, 65535),
    ("net.ipv4.tcp_timestamps", 0, 255),
    ("net.ipv4.tcp_orphan_retries", 0, 255),
    // net/ipv4/sysctl_net_ipv4.c ipv4_table "tcp_max_orphans": proc_dointvec, no bounds.
    ("net.ipv4.tcp_max_orphans", -2147483648, 2147483647),
    ("net.ipv4.tcp_retries1", 0, 255),
    ("net.ipv4.tcp_retries2", 0, 255),
    ("net.ipv4.tcp_child_ehash_entries", 0, 16777216),
    ("net.ipv4.tcp_keepalive_time", -8589934, 8589934),
    ("net.ipv4.tcp_keepalive_intvl", -8589934, 8589934),
    ("net.ipv4.tcp_keepalive_probes", 0, 255),
    // "tcp_rmem"/"tcp_wmem": proc_dointvec_minmax, extra1 = SYSCTL_ONE, each of 3 ints.
    ("net.ipv4.tcp_rmem", 1, 2147483647),
    ("net.ipv4.tcp_wmem", 1, 2147483647),
    // ipv4_table "tcp_mem"/"udp_mem": proc_doulongvec_minmax, no extra1/extra2 (unsigned long).
    ("net.ipv4.tcp_mem", 0, 18446744073709551615),
    ("net.ipv4.udp_mem", 0, 18446744073709551615),
    ("net.ipv4.udp_rmem_min", 1, 2147483647),
    ("net.ipv4.udp_wmem_min", 1, 2147483647),
    // net/core/sysctl_net_core.c net_core_table "rmem_max"/"rmem_default": proc_dointvec_minmax,
    // extra1 = &min_rcvbuf (SOCK_MIN_RCVBUF: 2048 + an aligned struct sk_buff, 2304 on x86-64
    // and arm64; the test reads it back from SO_RCVBUF 0 on the running kernel).
    ("net.core.rmem_max", 2304, 2147483647),
    ("net.core.rmem_default", 2304, 2147483647),
    // "wmem_max"/"wmem_default": extra1 = &min_sndbuf (SOCK_MIN_SNDBUF, twice that: 4608).
    ("net.core.wmem_max", 4608, 2147483647),
    ("net.core.wmem_default", 4608, 2147483647),
    ("net.core.optmem_max", 0, 2147483647),
    ("net.ipv4.tcp_notsent_lowat", 0, 4294967295),
    ("net.ipv4.tcp_moderate_rcvbuf", 0, 255),
    ("net.ipv4.tcp_adv_win_scale", -31, 31),
    ("net.ipv4.tcp_limit_output_bytes", -2147483648, 2147483647),
    // net_core_table "netdev_max_backlog", "netdev_budget": proc_dointvec, no bounds.
    ("net.core.netdev_max_backlog", -2147483648, 2147483647),
    ("net.core.netdev_budget", -2147483648, 2147483647),
    // "netdev_budget_usecs": proc_dointvec_minmax, extra1 = SYSCTL_ZERO.
    ("net.core.netdev_budget_usecs", 0, 2147483647),
    // "dev_weight": proc_do_dev_weight, which calls proc_dointvec (no bounds).
    ("net.core.dev_weight", -2147483648, 2147483647),
    // "busy_poll"/"busy_read": proc_dointvec_minmax, extra1 = SYSCTL_ZERO.
    ("net.core.busy_poll", 0, 2147483647),
    ("net.core.busy_read", 0, 2147483647),
    ("net.ipv4.tcp_slow_start_after_idle", 0, 255),
    ("net.ipv4.tcp_fastopen", -2147483648, 2147483647),
    ("net.ipv4.tcp_mtu_probing", 0, 255),
    ("net.ipv4.tcp_min_snd_mss", 48, 65535),
    ("net.ipv4.tcp_sack", 0, 255),
    ("net.ipv4.tcp_window_scaling", 0, 255),
    ("net.ipv4.tcp_ecn", 0, 2),
    ("net.ipv4.tcp_autocorking", 0, 1),
    ("net.ipv4.tcp_no_metrics_save", 0, 255),
    ("net.ipv4.tcp_rfc1337", 0, 255),
    ("net.ipv4.tcp_early_retrans", 0, 4),
    ("net.ipv4.tcp_comp_sack_nr", 0, 255),
    ("net.ipv4.ip_forward", -2147483648, 2147483647),
    ("net.ipv4.ip_nonlocal_bind", 0, 255),
    ("net.unix.max_dgram_qlen", -2147483648, 2147483647),
    // net/netfilter/nf_conntrack_standalone.c nf_ct_netfilter_table "nf_conntrack_max":
    // proc_dointvec_minmax, extra1 = SYSCTL_ZERO, extra2 = SYSCTL_INT_MAX.
    ("net.netfilter.nf_conntrack_max", 0, 2147483647),
    // "nf_conntrack_buckets": nf_conntrack_hash_sysctl (proc_dointvec), then
    // nf_conntrack_hash_resize refuses 0 and nf_ct_alloc_hashtable a table over INT_MAX bytes
    // (INT_MAX / sizeof(struct hlist_nulls_head) buckets); a refused size is not kept.
    ("net.netfilter.nf_conntrack_buckets", 1, 268435455),
    (
        "net.netfilter.nf_conntrack_tcp_timeout_time_wait",
        -8589934,
        8589934,
    ),
    (
        "net.netfilter.nf_conntrack_tcp_timeout_established",
        -8589934,
        8589934,
    ),
    // fs/file_table.c fs_stat_sysctls "file-max": proc_doulongvec_minmax,
    // extra1/extra2 = SYSCTL_LONG_ZERO/SYSCTL_LONG_MAX.
    ("fs.file-max", 0, 9223372036854775807),
    // fs_stat_sysctls "nr_open": proc_douintvec_minmax (proc_dointvec_minmax before 6.13),
    // extra1 = &sysctl_nr_open_min (BITS_PER_LONG), extra2 = &sysctl_nr_open_max
    // (fs/file.c: min(INT_MAX, ~0 / sizeof(void *)) & -BITS_PER_LONG).
    ("fs.nr_open", 64, 2147483584),
    // fs/eventpoll.c epoll_table "max_user_watches": proc_doulongvec_minmax,
    // extra1/extra2 = &long_zero/&long_max.
    ("fs.epoll.max_user_watches", 0, 9223372036854775807),
];

/// The catalogue keys whose value is not integers, with the kernel handler that decides what a
/// write keeps (`sysctld::kernel_takes` applies it).
pub const KERNEL_TEXT_RULES: &[(&str, &str)] = &[
    (
        "net.ipv4.ip_local_reserved_ports",
        "proc_do_large_bitmap: ports 0-65535 and ranges, separated by commas",
    ),
    (
        "net.ipv4.tcp_congestion_control",
        "proc_tcp_congestion_control: one name, tcp_set_default_congestion_control looks it up",
    ),
    (
        "net.ipv4.tcp_allowed_congestion_control",
        "proc_allowed_congestion_control: names tcp_set_allowed_congestion_control knows",
    ),
    (
        "net.core.default_qdisc",
        "set_default_qdisc: one name, qdisc_set_default looks it up",
    ),
];

/// The kernel's bounds for each integer of a catalogue key (`KERNEL_RANGES`).
#[must_use]
pub fn kernel_range(name: &str) -> Option<(i128, i128)> {
    let name = canonical(name);
    KERNEL_RANGES
        .iter()
        .find(|(k, _, _)| *k == name)
        .map(|(_, lo, hi)| (*lo, *hi))
}

/// Why the kernel's handler would refuse `value` (integers separated by spaces) for `name`,
/// field by field against `KERNEL_RANGES`; `None` when it takes every field or has no bounds.
#[must_use]
pub fn kernel_refuses(name: &str, value: &str) -> Option<String> {
    let (lo, hi) = kernel_range(name)?;
    value
        .split_whitespace()
        .filter_map(|f| f.parse::<i128>().ok())
        .find(|v| *v < lo || *v > hi)
        .map(|v| {
            format!(
                "the kernel refuses {v} for {}: it takes {lo}-{hi} (each field)",
                canonical(name)
            )
        })
}

/// The one name of a kernel setting: the catalogue name for an alias, else the name itself.
#[must_use]
pub fn canonical(name: &str) -> &str {
    known(name).map_or(name, |k| k.name)
}

/// Why a removed key is refused, with the release that removed it.
#[must_use]
pub fn removed(name: &str) -> Option<String> {
    REMOVED
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, release, why)| format!("removed in Linux {release}: {why}"))
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

/// docs/keys.md: the catalogue as a reference page.
#[must_use]
pub fn markdown() -> String {
    let mut out = String::from(
        "# Known keys\n\n\
         Generated from `src/profile/keys.rs` by `cargo test` (`NETPROFILE_BLESS=1 cargo test \
         --lib keys` rewrites it); do not edit by hand.\n\n\
         netprofile checks every value of these keys before anything is touched: a value the \
         kernel would refuse, or one it accepts but that makes no sense (a negative timeout, a \
         boolean of 5), stops the plan with exit 2 and names the key and its range. Other keys \
         are accepted when the running kernel has them, and checked only for their shape.\n\n\
         *Scope*: `netns` keys exist in every network namespace; `global` keys exist (or are \
         writable) only in the initial one, so inside a container or the test sandbox they are \
         skipped. Scope and most ranges were checked on Linux 6.18 by writing values as an \
         unprivileged user inside a private user and network namespace. *Since*: the Linux \
         release that added the key (2.6.12 means it predates the kernel's git history; \
         `2.6` means some 2.6 release, not pinned down).\n\n\
         ## What is persisted\n\n\
         The sysctl drop-in (`/etc/sysctl.d/90-netprofile.conf`) holds the profile's exact \
         values, never the host's live values, so the same profile writes the same file on \
         every host; an `optional` key carries systemd-sysctl's `-` prefix (ignored where the \
         kernel lacks it). `{ min = N }` and `{ max = N }` are not in it: systemd-sysctl sets \
         what the file says, which would lower a value that boot raised (systemd 240 and later \
         raises fs.file-max to its maximum). They are recorded in the generation, and \
         `netprofile.service`, which runs `netprofile apply --pending` after \
         systemd-sysctl, raises a `min` key that is below its bound (lowers a `max` key above \
         it), never the other way. A later rise above a `min` is not drift, and a boot file \
         that sets such a key lower does not override it. `diff` and `apply` warn when the \
         profile has such keys and the unit is not enabled.\n\n\
         ## Files that override netprofile\n\n\
         A file netprofile does not own that sets a managed value after netprofile's drop-in \
         (a later sysctl.d file or /etc/sysctl.conf at boot, a later limits.d file at login, a \
         later system.conf.d file for services) would make a successful apply untrue. `apply` \
         refuses it (exit 2, nothing touched) naming the file, line and fix; with \
         `--allow-override` it applies and records the override in the generation, and \
         `check`, `diff` and `status` report it as overridden, not as drift. An override that \
         was not accepted makes `check` exit 1.\n\n\
         ## What the kernel keeps at boot\n\n\
         The AT BOOT value `diff` and `explain` show is what the kernel keeps of the winning \
         line, not its text. Numbers are read as the kernel's `proc_get_long` reads them: \
         leading blanks skipped, base 0 (`0x10` is 16, `010` is 8), no `+`, and the number must \
         end at a blank (`5junk` is refused, `12 13` keeps 12). Every key below has the \
         kernel's own rule (`KERNEL_RANGES` and `KERNEL_TEXT_RULES` in `src/profile/keys.rs`, \
         each with its source): a value outside the kernel's bounds is refused and the value \
         before boot stays. Those bounds are not always the ranges below (`tcp_syncookies` \
         takes 0-255, `tcp_keepalive_time` any jiffies value, negative ones included; an \
         unsigned key refuses `-1`; `fs.nr_open` takes 64-2147483584, `net.core.rmem_max` at \
         least 2304 and `wmem_max` at least 4608). Per-namespace bounds were probed on Linux \
         6.18 and `tests/kernel_values.rs` probes them again on the running kernel; global ones \
         come from the kernel's source. A write of several integers changes only those it holds \
         (`tcp_rmem = 205 87380` keeps the third field) and stops at a bad one, keeping the \
         fields before it (`4000 0 6291456` sets the first field only). A congestion control \
         that is not one name (`reno # c`: systemd keeps inline `#` text) is refused.\n\n\
         `ip_local_port_range` is refused when reversed or when it starts below \
         `ip_unprivileged_port_start`, and `ip_unprivileged_port_start` when it is above the \
         range's low end, each against the other as the kernel has it at that moment: \
         systemd-sysctl writes lines in its order, so a file that lowers the start before the \
         range makes room for it and one after it does not (the value now stands for the value \
         before boot). A profile whose range and start would not hold together after apply is \
         refused (exit 2) naming both keys; with both in the profile, `apply` and the drop-in \
         write them in an order the kernel takes. `tests/oracle_sysctl.rs` checks this against \
         the real systemd-sysctl of Debian 12, 13 and sid on the running kernel.\n\n\
         ## Keys\n\n",
    );
    out.push_str("| key | type | valid values | unit | scope | since | prevents |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    for key in CATALOGUE {
        let mut name = format!("`{}`", key.name);
        for alias in key.aliases {
            name.push_str(&format!(" (alias `{alias}`)"));
        }
        let scope = match key.scope {
            Scope::Netns => "netns",
            Scope::Global => "global",
        };
        out.push_str(&format!(
            "| {name} | {} | {} | {} | {scope} | {} | {} |\n",
            key.kind.type_name(),
            key.kind.range().replace('|', "\\|"),
            if key.unit.is_empty() { "-" } else { key.unit },
            key.since,
            key.prevents.replace('|', "\\|"),
        ));
    }
    out.push_str("\n## Removed keys\n\nThese are refused with the reason:\n\n");
    out.push_str("| key | removed in | instead |\n|---|---|---|\n");
    for (name, release, why) in REMOVED {
        out.push_str(&format!("| `{name}` | {release} | {why} |\n"));
    }
    out
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
    fn every_catalogue_key_has_one_kernel_rule_that_its_range_keeps() {
        for key in CATALOGUE {
            let ranges = KERNEL_RANGES
                .iter()
                .filter(|(k, _, _)| *k == key.name)
                .count();
            let texts = KERNEL_TEXT_RULES
                .iter()
                .filter(|(k, _)| *k == key.name)
                .count();
            let want = match key.shape {
                Shape::Int | Shape::Ints(_) => (1, 0),
                Shape::PortList | Shape::Text => (0, 1),
            };
            assert_eq!((ranges, texts), want, "{}: kernel rules", key.name);
            // What the plan lets through, the kernel takes: the catalogue's range lies inside
            // the kernel's bounds.
            let Some((lo, hi)) = kernel_range(key.name) else {
                continue;
            };
            let (min, max) = match key.kind {
                Kind::Int { min, max } => (min, max),
                Kind::Bool => (0, 1),
                Kind::Enum(values) => (
                    values.iter().map(|v| v.0).min().unwrap_or(0),
                    values.iter().map(|v| v.0).max().unwrap_or(0),
                ),
                Kind::PortRange => (1, 65535),
                Kind::Triplet { min } => (min, min),
                _ => continue,
            };
            assert!(
                lo <= i128::from(min) && i128::from(max) <= hi,
                "{}: catalogue {min}-{max} outside the kernel's {lo}-{hi}",
                key.name
            );
        }
        assert_eq!(
            KERNEL_RANGES.len() + KERNEL_TEXT_RULES.len(),
            CATALOGUE.len(),
            "a kernel rule for a key outside the catalogue"
        );
    }

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
    fn docs_keys_md_is_generated_from_the_catalogue() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/keys.md");
        let want = markdown();
        if std::env::var_os("NETPROFILE_BLESS").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "docs/keys.md is out of date: run `NETPROFILE_BLESS=1 cargo test --lib keys`"
        );
    }

    #[test]
    fn catalogue_is_large_unique_and_consistent() {
        assert!(CATALOGUE.len() >= 50, "{}", CATALOGUE.len());
        let mut names: Vec<&str> = CATALOGUE
            .iter()
            .flat_map(|k| std::iter::once(k.name).chain(k.aliases.iter().copied()))
            .collect();
        let all = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all, "a name appears twice");
        for key in CATALOGUE {
            assert!(KeyName::parse(key.name).is_ok(), "{}", key.name);
            assert!(
                !key.prevents.is_empty() && !key.since.is_empty(),
                "{}",
                key.name
            );
            if let Kind::Int { min, max } = key.kind {
                assert!(min < max, "{}", key.name);
            }
            assert!(removed(key.name).is_none(), "{}", key.name);
        }
        // Every key a shipped profile uses is catalogued.
        for (name, text) in crate::profile::SHIPPED {
            let doc: toml::Table = toml::from_str(text).unwrap();
            for key in doc
                .get("sysctl")
                .and_then(|s| s.as_table())
                .into_iter()
                .flatten()
            {
                assert!(known(key.0).is_some(), "{name}: {}", key.0);
            }
        }
    }

    #[test]
    fn values_by_kind() {
        let choices = Some("reno bbr cubic");
        let cases: &[(&str, &str, Result<(), &str>)] = &[
            ("net.core.somaxconn", "65535", Ok(())),
            (
                "net.core.somaxconn",
                "-5",
                Err("-5 is out of range; valid: 0-2147483647"),
            ),
            (
                "net.core.somaxconn",
                "2147483648",
                Err("valid: 0-2147483647"),
            ),
            (
                "net.ipv4.tcp_tw_reuse",
                "7",
                Err("valid: 0 (off), 1 (on for outgoing"),
            ),
            ("net.ipv4.tcp_tw_reuse", "2", Ok(())),
            ("net.ipv4.tcp_abort_on_overflow", "5", Err("valid: 0 or 1")),
            ("net.ipv4.tcp_fin_timeout", "-5", Err("valid: 1-2147483")),
            (
                "net.ipv4.tcp_max_syn_backlog",
                "-5",
                Err("valid: 1-2147483647"),
            ),
            ("net.ipv4.tcp_keepalive_probes", "300", Err("valid: 1-127")),
            (
                "net.ipv4.ip_local_port_range",
                "60000 1024",
                Err("write \"1024 60000\""),
            ),
            ("net.ipv4.ip_local_port_range", "1024 70000", Err("1-65535")),
            // The floor is ip_unprivileged_port_start's value: the plan checks it.
            ("net.ipv4.ip_local_port_range", "80 1024", Ok(())),
            ("net.ipv4.ip_local_port_range", "1024 65535", Ok(())),
            ("net.ipv4.tcp_rmem", "4096 87380 16777216", Ok(())),
            ("net.ipv4.tcp_rmem", "0 2 3", Err("each >= 1")),
            ("net.ipv4.tcp_rmem", "3 2 1", Err("decreases")),
            ("net.ipv4.tcp_congestion_control", "bbr", Ok(())),
            (
                "net.ipv4.tcp_congestion_control",
                "vegas",
                Err("lists reno, bbr, cubic"),
            ),
            (
                "net.ipv4.tcp_allowed_congestion_control",
                "reno cubic",
                Ok(()),
            ),
            ("net.core.default_qdisc", "fq", Ok(())),
            (
                "net.core.default_qdisc",
                "fastest",
                Err("one of pfifo_fast"),
            ),
            (
                "net.ipv4.ip_local_reserved_ports",
                "10-5",
                Err("runs backwards"),
            ),
        ];
        for (key, value, want) in cases {
            let got = known(key).unwrap().kind.check(value, choices);
            match (got, want) {
                (Ok(()), Ok(())) => {}
                (Err(e), Err(w)) => assert!(e.contains(w), "{key} = {value}: {e}"),
                (got, want) => panic!("{key} = {value}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn aliases_name_one_setting() {
        assert_eq!(
            canonical("net.nf_conntrack_max"),
            "net.netfilter.nf_conntrack_max"
        );
        assert_eq!(canonical("net.core.somaxconn"), "net.core.somaxconn");
        assert_eq!(canonical("vm.swappiness"), "vm.swappiness");
        assert!(
            removed("net.ipv4.tcp_tw_recycle")
                .unwrap()
                .starts_with("removed in Linux 4.12")
        );
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
