//! The modules section of a plan: which kernel module provides a key the kernel shows only
//! once it is loaded (a `pending` key), and the warning when the profile does not load that
//! module at boot. Pure.

use super::{Action, SysctlRow};
use crate::profile::Profile;

/// The module that provides a key the kernel shows only once it is loaded.
#[must_use]
pub fn module_of(key: &str) -> Option<&'static str> {
    if key.starts_with("net.netfilter.nf_conntrack_") || key == "net.nf_conntrack_max" {
        Some("nf_conntrack")
    } else if key.starts_with("net.bridge.bridge-nf-") {
        Some("br_netfilter")
    } else if key.starts_with("net.ipv4.vs.") {
        Some("ip_vs")
    } else {
        None
    }
}

/// Pending keys whose module the profile does not ask to load at boot.
pub(super) fn pending_warnings(profile: &Profile, rows: &[SysctlRow]) -> Vec<String> {
    rows.iter()
        .filter(|r| r.action == Action::Pending)
        .filter_map(|r| {
            let module = r.module?;
            (!profile.modules.iter().any(|m| m == module)).then(|| {
                format!(
                    "{} is pending: module {module} is not loaded, so the key does not exist yet. \
                     Add [modules] load = [\"{module}\"] so it loads at boot before \
                     systemd-sysctl, or run `netprofile apply --pending` after loading it",
                    r.key
                )
            })
        })
        .collect()
}
