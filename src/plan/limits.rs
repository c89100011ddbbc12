//! The limits section of a plan: what a login gets after apply by pam_limits' precedence,
//! the files that override the profile's limits, and the passwd logins a limits line claims
//! but does not reach. Pure.

use super::files::after_apply;
use super::{Action, FileChange, LimitRow, Override, Section, Source, problem};
use crate::error::Problem;
use crate::profile::keys::KeyName;
use crate::profile::limit::{Domain, Item, LimitValue};
use crate::profile::{Limit, Profile};
use crate::system::limits::{self, Resolved};
use crate::system::root::Root;
use crate::system::{self as live, LiveState};
use std::collections::BTreeMap;

/// Logins that pam_limits refuses on this root today (read by `LiveState` when the profile has
/// limits): the profile's limits never reach a session that fails, so each cause is a warning
/// with its file and fix, whether or not the drop-in changes.
pub(super) fn lockout_warnings(live: &LiveState) -> Vec<String> {
    let conf = Root::display(Root::LIMITS_CONF);
    live.login_lockouts
        .iter()
        .map(|f| {
            // pam_limits 1.6 and later skip a missing limits.conf; 1.5 fails every session.
            if f.file == conf && f.why.contains("does not exist") {
                format!(
                    "{conf} is missing: wherever PAM runs pam_limits, it fails every session \
                     without it, so no login gets these limits and logins through `session \
                     required pam_limits.so` are refused. Create it (it may be empty)"
                )
            } else {
                format!("login lockout: {}. Fix: {}", f.why, f.fix)
            }
        })
        .collect()
}

/// Limits files that would override the profile's limits for their own domain, and the logins
/// in passwd that the drop-in's lines claim but do not reach (a uid range, a group line, a
/// user's own soft-only line or a `<domain> -` line elsewhere).
pub(super) fn limit_warnings(
    profile: &Profile,
    live: &LiveState,
    files: &[FileChange],
    nr_open: Option<i64>,
) -> Vec<String> {
    let dropin = Root::display(&Root::limits_dropin());
    // limits.conf first, then limits.d in name order.
    let Some(all) = after_apply(&live.limit_files, files, &Root::limits_dropin(), |f| {
        f.path.starts_with(&Root::display(Root::LIMITS_D)) && f.path > dropin
    }) else {
        return Vec::new();
    };
    let entries = live::entries(&all);
    let mut warnings = Vec::new();
    let mut seen = BTreeMap::new();
    for limit in &profile.limits {
        let (soft, hard) =
            limits::resolve(&entries, &live.subject(&limit.domain), limit.item, nr_open);
        for (want, got) in [(limit.soft, soft), (limit.hard, hard)] {
            let (Some(want), Some(Resolved { value, file, line })) = (want, got) else {
                continue;
            };
            // Reported as an override (plan::Override) with the limit rows; remembered here so
            // the unreached-logins warning does not name the same line again.
            if value != want && file != dropin {
                seen.insert((file.clone(), line), ());
            }
        }
        warnings.extend(unreached_logins(limit, live, &entries, nr_open, &seen));
    }
    warnings
}

/// Whether a profile's limits domain names this login. As Debian's pam_limits reads them, `*`
/// and `@group` never name root.
fn claims(domain: &Domain, who: &limits::Subject) -> bool {
    let root = who.uid == Some(0);
    match domain {
        Domain::All => !root,
        Domain::User(name) => who.user.as_deref() == Some(name.as_str()),
        Domain::Group(group) => !root && who.groups.iter().any(|g| g == group),
        Domain::UidRange(lo, hi) => who.uid.is_some_and(|uid| match (lo, hi) {
            (None, Some(b)) => uid == *b,
            (Some(a), None) => uid >= *a,
            (Some(a), Some(b)) => (*a..=*b).contains(&uid),
            (None, None) => false,
        }),
    }
}

/// One warning per cause: the passwd logins that `limit` claims but that end up with another
/// value (or none) at login, after apply.
fn unreached_logins(
    limit: &crate::profile::Limit,
    live: &LiveState,
    entries: &[limits::Entry],
    nr_open: Option<i64>,
    reported: &BTreeMap<(String, usize), ()>,
) -> Vec<String> {
    let mut missed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in live.users.keys() {
        let who = live.login(name);
        if !claims(&limit.domain, &who) {
            continue;
        }
        let o = limits::outcome(entries, &who, limit.item, nr_open);
        if let Some((file, line)) = &o.stopped_at {
            missed
                .entry(format!(
                    "{file}:{line} is a `-` line for them, so pam_limits sets no limit at all"
                ))
                .or_default()
                .push(name.clone());
            continue;
        }
        for (half, want, got) in [("soft", limit.soft, o.soft), ("hard", limit.hard, o.hard)] {
            let Some(want) = want else { continue };
            let cause = match got {
                Some(r) if r.value == want => continue,
                Some(r) if reported.contains_key(&(r.file.clone(), r.line)) => continue,
                Some(r) => format!("{}:{} gives them {half} {}", r.file, r.line, r.value),
                None => format!("no line gives them a {half} value"),
            };
            missed.entry(cause).or_default().push(name.clone());
        }
    }
    missed
        .into_iter()
        .map(|(cause, mut users)| {
            users.dedup();
            let shown = users.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
            let more = users.len().saturating_sub(5);
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            format!(
                "{} {} {} does not reach {}{more} at login: {cause}; change that line or name \
                 these logins in the profile",
                limit.domain,
                limit.item,
                [
                    limit.soft.map(|v| format!("soft {v}")),
                    limit.hard.map(|v| format!("hard {v}"))
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" "),
                shown
            )
        })
        .collect()
}

/// The limits section: a row per soft and hard value of each `[[limits]]` entry, with what a
/// login gets now and the file that would override it after apply.
pub(super) fn plan(
    profile: &Profile,
    live: &LiveState,
    files: &[FileChange],
    nr_open: Option<i64>,
    private: bool,
) -> Section<LimitRow> {
    let mut out = Section::default();
    let old_entries = live::entries(&live.limit_files);
    // The limits files as pam_limits will read them after apply (netprofile's drop-in in its
    // place): what a login gets.
    let limits_dropin = Root::display(&Root::limits_dropin());
    let after_entries = after_apply(&live.limit_files, files, &Root::limits_dropin(), |f| {
        f.path.starts_with(&Root::display(Root::LIMITS_D)) && f.path > limits_dropin
    })
    .map(|all| live::entries(&all));
    let live_nr_open = live
        .sysctl
        .get(&KeyName::parse("fs.nr_open").expect("valid key"))
        .cloned()
        .flatten()
        .and_then(|v| v.trim().parse().ok());
    for limit in &profile.limits {
        if !private {
            out.problems.extend(above_nr_open(limit, nr_open));
        }
        let subject = live.subject(&limit.domain);
        let (soft_now, hard_now) =
            limits::resolve(&old_entries, &subject, limit.item, live_nr_open);
        if !private {
            out.problems
                .extend(soft_above_hard(limit, hard_now.as_ref()));
        }
        let (soft_after, hard_after) = after_entries.as_ref().map_or((None, None), |entries| {
            limits::resolve(entries, &subject, limit.item, nr_open)
        });
        for (half, want, now, after) in [
            ("soft", limit.soft, soft_now, soft_after),
            ("hard", limit.hard, hard_now, hard_after),
        ] {
            let Some(want) = want else { continue };
            let (row, overridden) =
                half_row(limit, half, want, now, after, private, &limits_dropin);
            out.rows.push(row);
            out.overrides.extend(overridden);
        }
    }
    out
}

/// One soft or hard value: what a login gets now, and whether apply sets it, keeps it, or
/// another file overrides it at login.
fn half_row(
    limit: &Limit,
    half: &'static str,
    want: LimitValue,
    now: Option<Resolved>,
    after: Option<Resolved>,
    private: bool,
    limits_dropin: &str,
) -> (LimitRow, Option<Override>) {
    let overridden = after
        .filter(|a| !private && a.value != want && a.file != limits_dropin)
        .map(|a| Override {
            setting: format!("{} {half} {}", limit.domain, limit.item),
            wanted: want.to_string(),
            value: a.value.to_string(),
            file: a.file.clone(),
            line: a.line,
            when: "login".into(),
            accepted: false,
        });
    let row = LimitRow {
        domain: limit.domain.to_string(),
        item: limit.item.to_string(),
        half,
        live: now.as_ref().map(|r| r.value.to_string()),
        source: now.as_ref().map(|r| Source {
            file: r.file.clone(),
            line: r.line,
        }),
        wanted: want.to_string(),
        action: if private {
            Action::SkipGlobal
        } else if now.as_ref().map(|r| r.value) == Some(want) {
            Action::Keep
        } else if overridden.is_some() {
            Action::Overridden
        } else {
            Action::Set
        },
    };
    (row, overridden)
}

/// A hard nofile above fs.nr_open as it will be: pam_limits would fail at login.
fn above_nr_open(limit: &Limit, nr_open: Option<i64>) -> Option<Problem> {
    if limit.item == Item::Nofile
        && let (Some(LimitValue::Num(hard)), Some(nr_open)) = (limit.hard, nr_open)
        && hard > nr_open
    {
        return Some(problem(
            &limit.origin,
            format!("[[limits]] {} {}", limit.domain, limit.item),
            format!(
                "hard nofile {hard} is above fs.nr_open {nr_open}: pam_limits would fail at \
                 login and lock users out. Lower it, or raise fs.nr_open in [sysctl]"
            ),
        ));
    }
    None
}

/// A soft value alone above the hard limit another line sets.
fn soft_above_hard(limit: &Limit, hard_now: Option<&Resolved>) -> Option<Problem> {
    if let (Some(soft), None, Some(hard_now)) = (limit.soft, limit.hard, hard_now)
        && soft > hard_now.value
    {
        return Some(problem(
            &limit.origin,
            format!("[[limits]] {} {}", limit.domain, limit.item),
            format!(
                "soft {soft} is above the hard limit {} set at {}:{}; set a hard value too",
                hard_now.value, hard_now.file, hard_now.line
            ),
        ));
    }
    None
}
