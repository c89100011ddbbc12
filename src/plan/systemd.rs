//! The systemd section of a plan: the manager's DefaultLimitNOFILE and each named service's
//! LimitNOFILE, now and after apply, by systemd's precedence, and the drop-ins that would beat
//! netprofile's. Pure.

use super::files::{after_apply, file_name};
use super::{Action, FileChange, Override, Section, ServiceRow, Source, SystemdRow, problem};
use crate::error::Problem;
use crate::profile::Profile;
use crate::profile::dropin;
use crate::system::LiveState;
use crate::system::root::Root;

fn source_of(a: &crate::system::units::Assignment) -> Source {
    Source {
        file: a.file.clone(),
        line: a.line,
    }
}

/// A row per `[systemd.services."NAME.service"]`, with what wins now and after apply.
fn service_rows(
    profile: &Profile,
    live: &LiveState,
    nr_open: Option<i64>,
    private: bool,
    problems: &mut Vec<Problem>,
) -> Vec<ServiceRow> {
    let mut out = Vec::new();
    for (unit, service) in &profile.services {
        let label = format!("[systemd.services.{unit:?}] limit_nofile");
        if !private
            && let Some(nr_open) = nr_open
            && service.nofile.hard > u64::try_from(nr_open).unwrap_or(0)
        {
            problems.push(problem(
                &service.origin,
                label,
                format!(
                    "hard {} is above fs.nr_open {nr_open}; {unit} would fail to start. Lower \
                     it, or raise fs.nr_open in [sysctl] (as an exact value where a boot file \
                     sets it lower: services start before netprofile.service raises a `min`)",
                    service.nofile.hard
                ),
            ));
        }
        let wanted = dropin::nofile_value(service.nofile);
        let files = live.units.get(unit).cloned().unwrap_or_default();
        let now = files.limit_nofile();
        let ours = Root::display(&Root::unit_dropin(unit));
        // A private namespace writes no files: nothing changes what wins.
        let after = if private {
            now.clone()
        } else {
            files
                .with_ours(&ours, Some(&dropin::service(profile, service.nofile)))
                .limit_nofile()
        };
        let pair = |v: &str| crate::system::units::parse_nofile(v);
        out.push(ServiceRow {
            unit: unit.clone(),
            action: if private {
                Action::SkipGlobal
            } else if now.as_ref().and_then(|a| pair(&a.value))
                == Some((service.nofile.soft, service.nofile.hard))
            {
                Action::Keep
            } else if after.as_ref().is_some_and(|a| {
                a.file != ours && pair(&a.value) != Some((service.nofile.soft, service.nofile.hard))
            }) {
                Action::Overridden
            } else {
                Action::Set
            },
            live: now.as_ref().map(|a| a.value.clone()),
            source: now.as_ref().map(source_of),
            wanted,
            after: after.as_ref().map(|a| a.value.clone()),
            after_source: after.as_ref().map(source_of),
        });
    }
    out
}

/// Drop-ins that would beat netprofile's for a service, with another value, as overrides.
fn service_overrides(rows: &[ServiceRow]) -> Vec<Override> {
    let pair = |v: &str| crate::system::units::parse_nofile(v);
    rows.iter()
        .filter(|r| r.action != Action::SkipGlobal)
        .filter_map(|r| {
            let src = r.after_source.as_ref()?;
            let after = r.after.as_deref()?;
            let ours = Root::display(&Root::unit_dropin(&r.unit));
            (src.file != ours && pair(after) != pair(&r.wanted)).then(|| Override {
                setting: format!("LimitNOFILE of {}", r.unit),
                wanted: r.wanted.clone(),
                value: after.to_string(),
                file: src.file.clone(),
                line: src.line,
                when: "service start".into(),
                accepted: false,
            })
        })
        .collect()
}

/// A systemd manager drop-in that sets DefaultLimitNOFILE after netprofile's, read with
/// systemd's precedence (system.conf, then system.conf.d in /etc, /run, /usr/local/lib and
/// /usr/lib by name, a same name in an earlier folder masking a later one).
fn systemd_override(wanted: &str, live: &LiveState, files: &[FileChange]) -> Option<Override> {
    let dropin = Root::display(&Root::systemd_dropin());
    let main = Root::display(Root::SYSTEMD_CONF);
    let mut after = after_apply(&live.systemd_files, files, &Root::systemd_dropin(), |f| {
        f.path != main && file_name(&f.path) > file_name(&dropin)
    })?;
    after.retain(|f| f.path == dropin || file_name(&f.path) != file_name(&dropin));
    let pair = |v: &str| -> (String, String) {
        let (a, b) = v.split_once(':').unwrap_or((v, v));
        (a.trim().to_string(), b.trim().to_string())
    };
    match crate::system::systemd::default_limit_nofile(&after) {
        Some(s) if s.file == dropin || pair(&s.value) == pair(wanted) => None,
        Some(s) => Some(Override {
            setting: "DefaultLimitNOFILE".into(),
            wanted: wanted.to_string(),
            value: s.value.clone(),
            file: s.file.clone(),
            line: s.line,
            when: "service start".into(),
            accepted: false,
        }),
        None => None,
    }
}

/// The manager's DefaultLimitNOFILE: what is in force now, what the profile wants, and the
/// drop-in that would beat netprofile's.
pub(super) fn manager(
    profile: &Profile,
    live: &LiveState,
    files: &[FileChange],
    nr_open: Option<i64>,
    private: bool,
) -> Section<SystemdRow> {
    let mut out = Section::default();
    let Some((pair, origin)) = &profile.systemd_nofile else {
        return out;
    };
    if !private
        && let Some(nr_open) = nr_open
        && pair.hard > u64::try_from(nr_open).unwrap_or(0)
    {
        out.problems.push(problem(
            origin,
            "[systemd] default_limit_nofile".into(),
            format!(
                "hard {} is above fs.nr_open {nr_open}; services would fail to start. Lower \
                 it, or raise fs.nr_open in [sysctl] (as an exact value where a boot file sets \
                 it lower: services start before netprofile.service raises a `min`)",
                pair.hard
            ),
        ));
    }
    let wanted = dropin::nofile_value(*pair);
    let (now, source) = match &live.systemd_nofile {
        Some(s) => (
            s.value.clone(),
            Some(Source {
                file: s.file.clone(),
                line: s.line,
            }),
        ),
        // systemd's built-in default since v240.
        None => ("1024:524288".to_string(), None),
    };
    fn same(v: &str) -> (&str, &str) {
        v.split_once(':').unwrap_or((v, v))
    }
    // systemd reads system.conf, then system.conf.d/*.conf in name order: a later drop-in
    // that sets DefaultLimitNOFILE wins over netprofile's.
    let overridden = if private {
        None
    } else {
        systemd_override(&wanted, live, files)
    };
    out.overrides.extend(overridden.clone());
    out.rows.push(SystemdRow {
        setting: "DefaultLimitNOFILE",
        action: if private {
            Action::SkipGlobal
        } else if same(&now) == same(&wanted) {
            Action::Keep
        } else if overridden.is_some() {
            Action::Overridden
        } else {
            Action::Set
        },
        live: now,
        source,
        wanted,
    });
    out
}

/// The services section: a row per named service, and the drop-ins that would beat
/// netprofile's for it.
pub(super) fn services(
    profile: &Profile,
    live: &LiveState,
    nr_open: Option<i64>,
    private: bool,
) -> Section<ServiceRow> {
    let mut out = Section::default();
    out.rows = service_rows(profile, live, nr_open, private, &mut out.problems);
    // A drop-in that beats netprofile's for a service is an override like any other: refused
    // by apply unless accepted, then recorded, so `check` does not report it as drift for ever.
    out.overrides = service_overrides(&out.rows);
    out
}
