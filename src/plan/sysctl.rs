//! The sysctl section of a plan: what a key holds now and at boot, what the profile persists
//! for it (exact values in the drop-in, a `min`/`max` held by netprofile.service), unknown keys
//! and their nearest names, and the boot files that would override or cancel the drop-in.
//! Pure: reads only the profile and the `LiveState` it is given.

use super::files::{after_apply, file_name};
use super::modules::module_of;
use super::{Action, BootValue, FileChange, Override, Section, SysctlRow, problem};
use crate::error::Problem;
use crate::profile::keys::{self, KeyName, Scope};
use crate::profile::value;
use crate::profile::{Origin, Profile, Setting, Want};
use crate::system::LiveState;
use crate::system::root::{Namespace, Root};
use crate::system::sysctld::{self, BootFile};

/// A key one or two letters away from a catalogued key is a typo, not a key waiting for its
/// module (`nf_conntrack_maxx` would otherwise stay pending for ever).
fn likely_typo(key: &str) -> bool {
    keys::known(key).is_none()
        && keys::CATALOGUE
            .iter()
            .any(|k| strsim::levenshtein(key, k.name) <= 2)
}

fn unknown_key(key: &KeyName, origin: &Origin, live: &LiveState) -> Problem {
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

/// fs.nr_open from boot until netprofile.service runs, where the profile holds it with a
/// `min`: a bound is not written to the drop-in (`is_bound`), so until the unit raises it the
/// other boot files' value stands, and systemd starts services with their LimitNOFILE against
/// that (a site file lowering it failed every service on Debian 13, systemd 257:
/// tests/vm/README.md). `None` when the profile sets it exactly or no boot file sets it.
pub(super) fn nr_open_before_the_unit(profile: &Profile, rows: &[SysctlRow]) -> Option<i64> {
    let key = KeyName::parse("fs.nr_open").ok()?;
    if !profile.sysctl.get(&key).is_some_and(is_bound) {
        return None;
    }
    rows.iter()
        .find(|r| r.key == key)
        .and_then(|r| r.boot.as_ref())
        .and_then(|b| b.value.trim().parse().ok())
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
    now.into_iter().chain(at_boot).min()
}

/// The value the kernel holds now for `key`'s `port_peer` (the key that bounds it), which
/// stands for its value before boot writes.
pub(super) fn peer_live(live: &LiveState, key: &str) -> Option<String> {
    let peer = KeyName::parse(sysctld::port_peer(key)?).ok()?;
    live.sysctl.get(&peer).cloned().flatten()
}

/// Whether an absent key looks like a typo of a known key rather than a real one.
fn is_typo(key: &KeyName, live: &LiveState) -> bool {
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
        let Some(at_boot) = sysctld::boot_value_with(
            &boot,
            row.key.as_str(),
            ints,
            row.live.as_deref(),
            peer_live(live, row.key.as_str()).as_deref(),
        ) else {
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
fn boot_after_apply(live: &LiveState, files: &[FileChange]) -> Option<Vec<BootFile>> {
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
        if sysctld::boot_value_with(
            &boot,
            row.key.as_str(),
            ints,
            row.live.as_deref(),
            peer_live(live, row.key.as_str()).as_deref(),
        )
        .is_none()
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

/// The sysctl section: a row per key of the profile, or the problem that stops it.
pub(super) fn plan(
    profile: &Profile,
    live: &LiveState,
    namespace: Namespace,
) -> Section<SysctlRow> {
    let mut out = Section::default();
    for (key, setting) in &profile.sysctl {
        match row(key, setting, live, namespace, &mut out.warnings) {
            Ok(row) => out.rows.push(row),
            Err(problem) => out.problems.push(problem),
        }
    }
    out
}

/// One key: its value now and at boot, and what apply would do with it.
fn row(
    key: &KeyName,
    setting: &Setting,
    live: &LiveState,
    namespace: Namespace,
    warnings: &mut Vec<String>,
) -> std::result::Result<SysctlRow, Problem> {
    let scope = keys::scope(key);
    let raw_now = live.sysctl.get(key).cloned().flatten();
    let current = raw_now
        .as_deref()
        .map(|raw| value::of_key(key.as_str(), raw));
    let ints = sysctld::ints_of(key.as_str(), raw_now.as_deref());
    let boot = sysctld::boot_value_with(
        &live.boot_files,
        key.as_str(),
        ints,
        raw_now.as_deref(),
        peer_live(live, key.as_str()).as_deref(),
    )
    .map(BootValue::from);
    let wanted = match &setting.want {
        Want::Exact(v) => v.clone(),
        Want::Min(n) => format!(">= {n}"),
        Want::Max(n) => format!("<= {n}"),
    };
    let mut row = SysctlRow {
        key: key.clone(),
        scope,
        live: current.clone(),
        boot,
        wanted,
        target: None,
        action: Action::Keep,
        module: None,
    };
    if namespace == Namespace::Private && scope == Scope::Global {
        row.action = Action::SkipGlobal;
        return Ok(row);
    }
    let Some(current) = current else {
        return absent(row, setting, live, namespace, warnings);
    };
    refuse_bad_choice(key, setting, live)?;
    let target = target(key, setting, &current)?;
    row.action = if value::same(key.as_str(), &target, &current) {
        Action::Keep
    } else {
        Action::Set
    };
    row.target = Some(target);
    Ok(row)
}

/// A key this kernel lacks: skipped when optional, pending when a module that is not loaded
/// provides it, skipped as global in a private namespace, else unknown.
fn absent(
    mut row: SysctlRow,
    setting: &Setting,
    live: &LiveState,
    namespace: Namespace,
    warnings: &mut Vec<String>,
) -> std::result::Result<SysctlRow, Problem> {
    let key = &row.key;
    if setting.optional {
        row.action = Action::SkipAbsent;
    } else if let Some(module) = module_of(key.as_str())
        && !likely_typo(key.as_str())
    {
        // Not loaded yet: persisted so that it holds at boot, applied when it appears.
        row.action = Action::Pending;
        row.module = Some(module);
        row.target = Some(match &setting.want {
            Want::Exact(v) => v.clone(),
            Want::Min(n) | Want::Max(n) => n.to_string(),
        });
    } else if namespace == Namespace::Private && !is_typo(key, live) {
        // Linux registers its global tables (net.core.busy_poll, default_qdisc, ...)
        // in the initial namespace only: a private one lacks them, and that is not a
        // missing feature of this kernel.
        warnings.push(format!(
            "{key} is not in this private network namespace: Linux keeps it only in the \
             initial namespace (a global key), so it was skipped"
        ));
        row.action = Action::SkipGlobal;
    } else {
        return Err(unknown_key(key, &setting.origin, live));
    }
    Ok(row)
}

/// An exact value of a key whose values come from a list the kernel gives (a congestion
/// control, a qdisc) that is not on that list.
fn refuse_bad_choice(
    key: &KeyName,
    setting: &Setting,
    live: &LiveState,
) -> std::result::Result<(), Problem> {
    if let (Some(known), Want::Exact(v)) = (keys::known(key.as_str()), &setting.want)
        && let keys::Kind::Choice { from } | keys::Kind::List { from } = known.kind
    {
        let choices = KeyName::parse(from)
            .ok()
            .and_then(|k| live.sysctl.get(&k).cloned().flatten());
        if let Err(why) = known.kind.check(v, choices.as_deref()) {
            return Err(problem(
                &setting.origin,
                format!("[sysctl] {:?}", key.as_str()),
                why,
            ));
        }
    }
    Ok(())
}

/// The value after apply: the exact value, or the bound when `current` is past it (a `min`
/// keeps a higher value, a `max` a lower one).
fn target(key: &KeyName, setting: &Setting, current: &str) -> std::result::Result<String, Problem> {
    Ok(match &setting.want {
        Want::Exact(v) => v.clone(),
        Want::Min(n) | Want::Max(n) => {
            let Ok(now) = current.parse::<i64>() else {
                return Err(problem(
                    &setting.origin,
                    format!("[sysctl] {:?}", key.as_str()),
                    format!(
                        "min and max need a single-integer key, but the kernel reads {current:?}; \
                         give the exact value"
                    ),
                ));
            };
            let keep = if matches!(setting.want, Want::Min(_)) {
                now >= *n
            } else {
                now <= *n
            };
            if keep {
                current.to_string()
            } else {
                n.to_string()
            }
        }
    })
}
