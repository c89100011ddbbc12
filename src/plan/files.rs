//! The files of a plan: the drop-ins netprofile writes (rendered by profile/dropin.rs) against
//! their current text, and a file list as a reader will see it after apply (netprofile's
//! drop-in in its place). Pure.

use super::FileChange;
use super::sysctl::{is_bound, persisted};
use crate::profile::Profile;
use crate::profile::dropin;
use crate::system::LiveState;
use crate::system::root::Root;
use crate::system::sysctld::BootFile;

pub(super) fn planned_files(profile: &Profile, live: &LiveState) -> Vec<FileChange> {
    let values: Vec<(String, String)> = profile
        .sysctl
        .iter()
        .filter(|(_, setting)| !is_bound(setting))
        .map(|(key, setting)| persisted(key, setting))
        .collect();
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
