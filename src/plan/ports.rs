//! The ports section of a plan: listening ports that a new ephemeral range would cover
//! without reserving them. Pure.

use super::SysctlRow;
use crate::profile::value;
use crate::system::LiveState;

/// Listening ports that the new ephemeral range would cover without reserving them.
pub(super) fn port_warnings(rows: &[SysctlRow], live: &LiveState) -> Vec<String> {
    let find = |name: &str| rows.iter().find(|r| r.key.as_str() == name);
    let Some(range) = find("net.ipv4.ip_local_port_range").and_then(|r| r.target.clone()) else {
        return Vec::new();
    };
    let bounds: Vec<u16> = range
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let [lo, hi] = bounds[..] else {
        return Vec::new();
    };
    let reserved_text = find("net.ipv4.ip_local_reserved_ports")
        .and_then(|r| r.target.clone().or_else(|| r.live.clone()))
        .or_else(|| {
            live.sysctl
                .iter()
                .find(|(k, _)| k.as_str() == "net.ipv4.ip_local_reserved_ports")
                .and_then(|(_, v)| v.clone())
        })
        .unwrap_or_default();
    let reserved = value::parse_port_list(&reserved_text).unwrap_or_default();
    let exposed: Vec<String> = live
        .listening
        .iter()
        .filter(|p| (lo..=hi).contains(*p) && !value::port_in(&reserved, **p))
        .map(ToString::to_string)
        .collect();
    if exposed.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "listening port(s) {} lie inside the new ephemeral range {lo}-{hi}: an outgoing \
         connection can take such a port and the service then fails to bind after a restart. \
         Add them to [ports] reserved = [{}]",
        exposed.join(", "),
        exposed
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )]
}
