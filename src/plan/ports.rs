//! The ports section of a plan: the kernel's rule that the ephemeral range starts at or above
//! `ip_unprivileged_port_start`, the order that lets apply and boot write both keys, and
//! listening ports that a new ephemeral range would cover without reserving them. Pure.

use super::{SysctlRow, problem};
use crate::error::Problem;
use crate::profile::{Profile, value};
use crate::system::LiveState;
use crate::system::sysctld::{PORT_FLOOR, PORT_RANGE};

/// The first integer of a value (`"32768 60999"` -> 32768).
fn first(value: &str) -> Option<i64> {
    value.split_whitespace().next()?.parse().ok()
}

/// What a key holds after apply: its planned value, else the value now.
fn after_apply(rows: &[SysctlRow], live: &LiveState, name: &str) -> Option<i64> {
    let row = rows.iter().find(|r| r.key.as_str() == name);
    row.and_then(|r| r.target.clone().or_else(|| r.live.clone()))
        .or_else(|| {
            live.sysctl
                .iter()
                .find(|(k, _)| k.as_str() == name)
                .and_then(|(_, v)| v.clone())
        })
        .as_deref()
        .and_then(first)
}

/// The kernel refuses an `ip_local_port_range` that starts below `ip_unprivileged_port_start`
/// and an `ip_unprivileged_port_start` above the range's low end (net/ipv4/sysctl_net_ipv4.c:
/// ipv4_local_port_range, ipv4_privileged_ports). When the profile sets either key and the two
/// would not hold together after apply, the problem names both and the fix.
pub(super) fn port_floor(
    profile: &Profile,
    rows: &[SysctlRow],
    live: &LiveState,
) -> Option<Problem> {
    let set = |name: &str| profile.sysctl.iter().find(|(k, _)| k.as_str() == name);
    let (range_set, floor_set) = (set(PORT_RANGE), set(PORT_FLOOR));
    let (key, setting) = range_set.or(floor_set)?;
    let low = after_apply(rows, live, PORT_RANGE)?;
    let floor = after_apply(rows, live, PORT_FLOOR)?;
    if low >= floor {
        return None;
    }
    let whose = |is_set: bool| if is_set { "the profile's" } else { "the live" };
    let message = if range_set.is_some() {
        format!(
            "the range would start at {low}, below {} {PORT_FLOOR} ({floor}): the kernel \
             refuses such a range (EINVAL). Start the range at {floor} or above, or set \
             \"{PORT_FLOOR}\" = {low} (or lower) in the profile",
            whose(floor_set.is_some())
        )
    } else {
        format!(
            "{floor} is above the low end of {} {PORT_RANGE} ({low}): the kernel refuses it \
             (EINVAL). Set \"{PORT_RANGE}\" to start at {floor} or above in the profile, or set \
             {PORT_FLOOR} to {low} or lower",
            whose(false)
        )
    };
    Some(problem(
        &setting.origin,
        format!("[sysctl] {:?}", key.as_str()),
        message,
    ))
}

/// Whether apply must write `ip_unprivileged_port_start` before `ip_local_port_range`: the
/// kernel checks each write against the other key as it is then, so a lower start goes first
/// (when it fits under the range now) and a higher one last.
#[must_use]
pub(super) fn floor_first(floor_target: &str, range_now: Option<&str>) -> bool {
    match (first(floor_target), range_now.and_then(first)) {
        (Some(floor), Some(low)) => floor <= low,
        _ => true,
    }
}

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
