//! The files of a plan: the drop-ins netprofile writes (rendered by profile/dropin.rs) against
//! their current text, and a file list as a reader will see it after apply (netprofile's
//! drop-in in its place). Pure.

use super::FileChange;
use super::ports::floor_first;
use super::sysctl::{is_bound, persisted};
use crate::profile::Profile;
use crate::profile::dropin;
use crate::system::LiveState;
use crate::system::root::Root;
use crate::system::sysctld::{BootFile, PORT_FLOOR, PORT_RANGE};

/// systemd-sysctl writes the drop-in's lines in order, and the kernel checks
/// `ip_local_port_range` against `ip_unprivileged_port_start` as it is then (and the other way
/// round). At boot both hold the kernel's defaults (1024, "32768 60999") until then, so the
/// start goes first when it fits under the default range, else last; the file stays the same
/// on every host.
fn boot_port_order(values: &mut [(String, String)]) {
    let at = |name: &str| {
        values
            .iter()
            .position(|(k, _)| k.trim_start_matches('-') == name)
    };
    let (Some(range), Some(floor)) = (at(PORT_RANGE), at(PORT_FLOOR)) else {
        return;
    };
    let first = floor_first(&values[floor].1, Some("32768 60999"));
    if first != (floor < range) {
        values.swap(range, floor);
    }
}

pub(super) fn planned_files(profile: &Profile, live: &LiveState) -> Vec<FileChange> {
    let mut values: Vec<(String, String)> = profile
        .sysctl
        .iter()
        .filter(|(_, setting)| !is_bound(setting))
        .map(|(key, setting)| persisted(key, setting))
        .collect();
    boot_port_order(&mut values);
    let wanted = [
        (Root::sysctl_dropin(), dropin::sysctl(profile, &values)),
        (
            Root::limits_dropin(),
            dropin::limits(profile, &profile.limits),
        ),
        (Root::systemd_dropin(), dropin::systemd(profile)),
        (Root::modules_dropin(), dropin::modules(profile)),
    ];
    // Every unit the profile names, and every unit netprofile had a drop-in for (removed when
    // the profile no longer names it).
    let units = live.units.keys().map(|unit| {
        (
            Root::unit_dropin(unit),
            profile
                .services
                .get(unit)
                .map(|s| dropin::service(profile, s.nofile)),
        )
    });
    wanted
        .into_iter()
        .chain(units)
        .map(|(rel, new)| FileChange {
            path: Root::display(&rel),
            old: live.dropins.get(&rel).cloned().flatten(),
            rel,
            new,
        })
        .collect()
}

/// `current` as it will be after apply: netprofile's drop-in `rel` (its old copy dropped)
/// placed before the first file that `comes_after` it. `None` when the plan has no such file.
pub(super) fn after_apply(
    current: &[BootFile],
    files: &[FileChange],
    rel: &str,
    comes_after: impl Fn(&BootFile) -> bool,
) -> Option<Vec<BootFile>> {
    let change = files.iter().find(|f| f.rel == rel)?;
    let mut out: Vec<BootFile> = current
        .iter()
        .filter(|f| f.path != change.path)
        .cloned()
        .collect();
    if let Some(text) = &change.new {
        let at = out.iter().position(comes_after).unwrap_or(out.len());
        out.insert(
            at,
            BootFile {
                path: change.path.clone(),
                text: text.clone(),
            },
        );
    }
    Some(out)
}

pub(super) fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or_default()
}
