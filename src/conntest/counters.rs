//! Kernel counters of one network namespace, read before and after a test: TcpExt from
//! /proc/net/netstat, Tcp from /proc/net/snmp, and the socket counts in /proc/net/sockstat.
//! Parsing is pure; `read` takes the folder to read from (`proc/net` under the root, or
//! `/proc/PID/net` for a sandbox host, through `Root`).

use std::collections::BTreeMap;

use crate::system::root::Root;

/// The counters the report shows, in the order it shows them.
pub const SHOWN: &[&str] = &[
    "ListenOverflows",
    "ListenDrops",
    "TCPSynRetrans",
    "TCPTimeWaitOverflow",
    "TCPAbortOnMemory",
    "ActiveOpens",
    "PassiveOpens",
    "AttemptFails",
    "softnet.dropped",
    "sockstat.tw",
    "sockstat.inuse",
    "sockstat.mem",
];

/// Parses the two-line "Prefix: names / Prefix: values" tables of netstat and snmp.
#[must_use]
pub fn parse_tables(text: &str, prefixes: &[&str]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        let (Some((p1, names)), Some((p2, values))) =
            (names.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        if p1 != p2 || !prefixes.contains(&p1) {
            continue;
        }
        for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
            if let Ok(v) = v.parse() {
                out.insert(n.to_string(), v);
            }
        }
    }
    out
}

/// Parses `TCP: inuse 5 orphan 0 tw 3 alloc 7 mem 1` from sockstat.
#[must_use]
pub fn parse_sockstat(text: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("TCP:") {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            for pair in fields.chunks(2) {
                if let [k, v] = pair
                    && let Ok(v) = v.parse()
                {
                    out.insert(format!("sockstat.{k}"), v);
                }
            }
        }
    }
    out
}

/// Sums the second (hex) column of softnet_stat: packets each CPU dropped because its input
/// backlog (net.core.netdev_max_backlog) was full. Loopback traffic goes through it too.
#[must_use]
pub fn parse_softnet(text: &str) -> BTreeMap<String, i64> {
    let dropped: i64 = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|h| i64::from_str_radix(h, 16).ok())
        .sum();
    BTreeMap::from([("softnet.dropped".to_string(), dropped)])
}

/// Reads the counters under `net_dir` (root-relative, e.g. `proc/net` or `proc/1234/net`).
#[must_use]
pub fn read(root: &Root, net_dir: &str) -> BTreeMap<String, i64> {
    let text = |name: &str| {
        crate::system::read_optional(root, &format!("{net_dir}/{name}"))
            .ok()
            .flatten()
            .ok_or(())
    };
    let mut out = BTreeMap::new();
    if let Ok(t) = text("netstat") {
        out.extend(parse_tables(&t, &["TcpExt"]));
    }
    if let Ok(t) = text("snmp") {
        out.extend(parse_tables(&t, &["Tcp"]));
    }
    if let Ok(t) = text("sockstat") {
        out.extend(parse_sockstat(&t));
    }
    if let Ok(t) = text("softnet_stat") {
        out.extend(parse_softnet(&t));
    }
    out.retain(|k, _| SHOWN.contains(&k.as_str()));
    out
}

/// After minus before for cumulative counters; the after value for gauges (sockstat).
#[must_use]
pub fn delta(
    before: &BTreeMap<String, i64>,
    after: &BTreeMap<String, i64>,
) -> BTreeMap<String, i64> {
    after
        .iter()
        .map(|(k, v)| {
            let d = if k.starts_with("sockstat.") {
                *v
            } else {
                v - before.get(k).copied().unwrap_or(0)
            };
            (k.clone(), d)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_netstat_snmp_and_sockstat() {
        let netstat = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 12 13\n\
                       IpExt: InNoRoutes\nIpExt: 0\n";
        let t = parse_tables(netstat, &["TcpExt"]);
        assert_eq!(t["ListenOverflows"], 12);
        assert_eq!(t["ListenDrops"], 13);
        assert!(!t.contains_key("InNoRoutes"));
        let s = parse_sockstat("sockets: used 5\nTCP: inuse 3 orphan 0 tw 28232 alloc 4 mem 2\n");
        assert_eq!(s["sockstat.tw"], 28232);
        let before = BTreeMap::from([("ListenOverflows".to_string(), 10)]);
        let after = BTreeMap::from([
            ("ListenOverflows".to_string(), 15),
            ("sockstat.tw".to_string(), 7),
        ]);
        let d = delta(&before, &after);
        assert_eq!((d["ListenOverflows"], d["sockstat.tw"]), (5, 7));
        let soft = parse_softnet("0000a 00000010 00 00\n0000b 00000001 00 00\n");
        assert_eq!(soft["softnet.dropped"], 17);
    }
}
