//! The sysctl section of a plan: what a key holds now and at boot, what the profile persists
//! for it (exact values in the drop-in, a `min`/`max` held by netprofile.service), unknown keys
//! and their nearest names, and the boot files that would override or cancel the drop-in.
//! Pure: reads only the profile and the `LiveState` it is given.

use super::files::{after_apply, file_name};
use super::{FileChange, Override, SysctlRow, problem};
use crate::error::Problem;
use crate::profile::keys::{self, KeyName};
use crate::profile::value;
use crate::profile::{Origin, Profile, Want};
use crate::system::LiveState;
use crate::system::root::Root;
use crate::system::sysctld::{self, BootFile};

/// A key one or two letters away from a catalogued key is a typo, not a key waiting for its
/// module (`nf_conntrack_maxx` would otherwise stay pending for ever).
pub(super) fn likely_typo(key: &str) -> bool {
    keys::known(key).is_none()
        && keys::CATALOGUE
            .iter()
            .any(|k| strsim::levenshtein(key, k.name) <= 2)
}

pub(super) fn unknown_key(key: &KeyName, origin: &Origin, live: &LiveState) -> Problem {
    let parent = key.as_str().rsplit_once('.').map_or("", |(p, _)| p);
    let siblings: Vec<String> = live
        .siblings
        .get(key)
        .into_iter()
        .flatten()
        .map(|name| format!("{parent}.{name}"))
        .collect();
    let candidates = keys::CATALOGUE
        .iter()
        .map(|k| k.name)
        .chain(siblings.iter().map(String::as_str));
    let hint = keys::nearest(key.as_str(), candidates).map_or_else(
        || " If it comes from a module that is not loaded, add `optional = true`.".to_string(),
        |n| format!(" Did you mean {n:?}?"),
    );
    problem(
        origin,
        format!("[sysctl] {:?}", key.as_str()),
        format!(
            "unknown key: this kernel has no {}.{hint}",
            Root::display(&Root::sysctl_rel(key))
        ),
    )
}

/// fs.nr_open as it will be after apply: the profile's target, else the live value.
/// When the profile sets fs.nr_open, the lower of that and what holds after a reboot: a `min`
/// is held at boot as its bound (netprofile.service raises it to the bound, no further), so
/// after a reboot nr_open may be lower than now, and a nofile above it would then lock logins
/// out.
pub(super) fn effective_nr_open(
    profile: &Profile,
    live: &LiveState,
    rows: &[SysctlRow],
) -> Option<i64> {
    let key = KeyName::parse("fs.nr_open").ok()?;
    let planned = rows
        .iter()
        .find(|r| r.key == key)
        .and_then(|r| r.target.clone());
    let now: Option<i64> = planned
        .or_else(|| live.sysctl.get(&key).cloned().flatten())
        .and_then(|v| v.trim().parse().ok());
    let at_boot: Option<i64> = profile
        .sysctl
        .get(&key)
        .and_then(|setting| persisted(&key, setting).1.trim().parse().ok());
    match (now, at_boot) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Whether an absent key looks like a typo of a known key rather than a real one.
pub(super) fn is_typo(key: &KeyName, live: &LiveState) -> bool {
    let siblings: Vec<&str> = live
        .siblings
        .get(key)
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    let leaf = key.as_str().rsplit('.').next().unwrap_or_default();
    keys::known(key.as_str()).is_none()
        && (keys::nearest(key.as_str(), keys::CATALOGUE.iter().map(|k| k.name)).is_some()
            || keys::nearest(leaf, siblings).is_some())
}

/// The value a setting holds at boot: the profile's own figure, never the host's live value.
/// Exact values are persisted in the drop-in (`optional` keys carry systemd-sysctl's `-`,
/// ignore if absent); a `min` or `max` is not (see `is_bound`), its bound is held by
/// netprofile.service.
#[must_use]
pub fn persisted(key: &KeyName, setting: &crate::profile::Setting) -> (String, String) {
    let value = match &setting.want {
        Want::Exact(v) => v.clone(),
        Want::Min(n) | Want::Max(n) => n.to_string(),
    };
    let name = if setting.optional {
        format!("-{key}")
    } else {
        key.to_string()
    };
    (name, value)
}

/// Whether a setting is raise-only or lower-only. Such a key is not written to the sysctl
/// drop-in: systemd-sysctl *sets* what the file says, which would lower a value that boot
/// raised (systemd 240 and later raises fs.file-max to its maximum before systemd-sysctl
/// runs). netprofile.service, ordered after systemd-sysctl, raises (lowers) it to the bound
/// recorded in the generation, only in that direction, so the drop-in holds exact values only
/// and is the same on every host.
#[must_use]
pub fn is_bound(setting: &crate::profile::Setting) -> bool {
    matches!(setting.want, Want::Min(_) | Want::Max(_))
}

/// One line when the profile has `min`/`max` keys and netprofile.service, which holds them at
/// boot, is not enabled on this root.
pub(super) fn boot_unit_warning(
    profile: &Profile,
    rows: &[SysctlRow],
    live: &LiveState,
) -> Option<String> {
    if live.boot_unit_enabled {
        return None;
    }
    let keys: Vec<String> = rows
        .iter()
        .filter(|r| r.target.is_some())
        .filter(|r| profile.sysctl.get(&r.key).is_some_and(is_bound))
        .map(|r| r.key.to_string())
        .collect();
    if keys.is_empty() {
        return None;
    }
    Some(format!(
        "netprofile.service holds the min/max keys ({}) at boot, not the sysctl drop-in, and it \
         is not enabled ({} is absent): run `systemctl enable netprofile.service`",
        keys.join(", "),
        Root::display(Root::BOOT_UNIT_WANTS)
    ))
}

/// Boot files that would set a managed key to something else after netprofile's drop-in.
pub(super) fn boot_overrides(
    profile: &Profile,
    rows: &[SysctlRow],
    live: &LiveState,
    files: &[FileChange],
) -> Vec<Override> {
    let dropin = Root::display(&Root::sysctl_dropin());
    let Some(boot) = boot_after_apply(live, files) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for row in rows {
        let Some(setting) = profile.sysctl.get(&row.key) else {
            continue;
        };
        // A min or max is held by netprofile.service, which runs after systemd-sysctl: what a
        // boot file sets first is raised (lowered) again, so no file overrides it.
        let Want::Exact(v) = &setting.want else {
            continue;
        };
        if row.target.is_none() {
            continue;
        }
        let ints = sysctld::ints_of(row.key.as_str(), row.live.as_deref());
        let Some(at_boot) =
            sysctld::boot_value_with(&boot, row.key.as_str(), ints, row.live.as_deref())
        else {
            continue;
        };
        let holds = value::same(row.key.as_str(), &at_boot.value, v);
        if at_boot.file != dropin && !holds {
            out.push(Override {
                setting: row.key.to_string(),
                wanted: persisted(&row.key, setting).1,
                value: at_boot.value,
                file: at_boot.file,
                line: at_boot.line,
                when: "boot".into(),
                accepted: false,
            });
        }
    }
    out
}

/// The boot files as they will be after apply: netprofile's drop-in in place (it masks a
/// same-named file in a later folder), in systemd-sysctl's order.
pub(super) fn boot_after_apply(live: &LiveState, files: &[FileChange]) -> Option<Vec<BootFile>> {
    let dropin = Root::display(&Root::sysctl_dropin());
    let mut boot = after_apply(&live.boot_files, files, &Root::sysctl_dropin(), |f| {
        file_name(&f.path) > file_name(&dropin)
    })?;
    boot.retain(|f| f.path == dropin || file_name(&f.path) != file_name(&dropin));
    Some(boot)
}

/// Lines after netprofile's drop-in that leave the kernel's default at boot: a `-key` line that
/// cancels the assignment, or a value the kernel refuses.
pub(super) fn boot_cancels(
    profile: &Profile,
    rows: &[SysctlRow],
    live: &LiveState,
    files: &[FileChange],
) -> Vec<String> {
    let dropin = Root::display(&Root::sysctl_dropin());
    let Some(boot) = boot_after_apply(live, files) else {
        return Vec::new();
    };
    let mut warnings = Vec::new();
    for row in rows {
        let Some(target) = &row.target else { continue };
        // netprofile.service holds a min or max whatever the boot files leave.
        if profile.sysctl.get(&row.key).is_some_and(is_bound) {
            continue;
        }
        let ints = sysctld::ints_of(row.key.as_str(), row.live.as_deref());
        if sysctld::boot_value_with(&boot, row.key.as_str(), ints, row.live.as_deref()).is_none()
            && let Some((raw, file, line)) = sysctld::explicit_line(&boot, row.key.as_str())
            && file != dropin
        {
            let what = match raw {
                None => format!("cancels {} with `-{}`", row.key, row.key),
                Some(raw) => format!("sets {} = {raw:?}, which the kernel refuses,", row.key),
            };
            warnings.push(format!(
                "{file}:{line} {what} after netprofile's drop-in: at boot the kernel's default \
                 stays, not {target}. Remove that line or the file"
            ));
        }
    }
    warnings
}
