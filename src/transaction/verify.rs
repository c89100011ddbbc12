//! "What is written re-parses to the plan": before a drop-in is written, it is read back by the
//! same parsers `diff` uses (system/sysctld.rs, system/limits.rs, the systemd manager reader),
//! and it must mean exactly what the profile asks for: the same keys and values in the same
//! order, the same limits, nothing else. A profile text that smuggles a line in (a name or value
//! with a newline) or a character a reader treats differently (CR, NUL) is refused before
//! anything changes. Pure: never performs I/O.

use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::profile::Profile;
use crate::profile::dropin;
use crate::profile::value;
use crate::system::limits::{self, Kind};
use crate::system::root::Root;
use crate::system::sysctld;

/// The lines of a drop-in that are not blank and not comments.
fn meaningful(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .collect()
}

fn refuse(rel: &str, why: &str) -> Error {
    Error::Usage(format!(
        "refusing to write {}: {why}; the profile must not put line breaks or control \
         characters into names or values. Nothing was changed",
        Root::display(rel)
    ))
}

/// What a sysctl.d drop-in must mean: `(key, value)` in the order written, from the same
/// figures the drop-in is rendered from (`plan::persisted`; exact values only, a `min` or
/// `max` is held by netprofile.service). systemd-sysctl strips the `-` of an optional key (it
/// only means "ignore a failure").
#[must_use]
pub fn sysctl_expected(profile: &Profile) -> Vec<(String, String)> {
    profile
        .sysctl
        .iter()
        .filter(|(_, setting)| !crate::plan::is_bound(setting))
        .map(|(key, setting)| {
            let (name, value) = crate::plan::persisted(key, setting);
            (
                name.trim_start_matches('-').to_string(),
                value::normalise(&value),
            )
        })
        .collect()
}

/// Checks that `text`, written at `rel`, means exactly `expected` to the reader `diff` uses.
pub fn check_sysctl(rel: &str, text: &str, expected: &[(String, String)]) -> Result<()> {
    check_chars(rel, text)?;
    let read: Vec<(String, String)> = sysctld::parse(text, rel)
        .into_iter()
        .map(|a| (a.key, a.value))
        .collect();
    if read != expected || meaningful(text).len() != expected.len() {
        return Err(refuse(
            rel,
            "read back with systemd-sysctl's rules it would set other keys or values than the plan",
        ));
    }
    Ok(())
}

/// What a limits.d drop-in must mean: `(domain, kind, item, value)` lines.
#[must_use]
pub fn limits_expected(profile: &Profile) -> Vec<(String, Kind, String, String)> {
    let mut out = Vec::new();
    for limit in &profile.limits {
        let domain = limit.domain.to_string();
        let item = limit.item.as_str().to_string();
        match (limit.soft, limit.hard) {
            (Some(s), Some(h)) if s == h => {
                out.push((domain, Kind::Both, item, s.to_string()));
            }
            (soft, hard) => {
                if let Some(s) = soft {
                    out.push((domain.clone(), Kind::Soft, item.clone(), s.to_string()));
                }
                if let Some(h) = hard {
                    out.push((domain, Kind::Hard, item, h.to_string()));
                }
            }
        }
    }
    out
}

pub fn check_limits(
    rel: &str,
    text: &str,
    expected: &[(String, Kind, String, String)],
) -> Result<()> {
    check_chars(rel, text)?;
    let read: Vec<(String, Kind, String, String)> = limits::parse(text, rel)
        .into_iter()
        .map(|e| {
            (
                e.domain,
                e.kind,
                e.item.as_str().to_string(),
                e.value.to_string(),
            )
        })
        .collect();
    if read != expected || meaningful(text).len() != expected.len() {
        return Err(refuse(
            rel,
            "read back with pam_limits' rules it would set other limits than the plan",
        ));
    }
    Ok(())
}

pub fn check_systemd(rel: &str, text: &str, expected: Option<&str>) -> Result<()> {
    check_chars(rel, text)?;
    let want: Vec<String> = expected
        .map(|v| vec!["[Manager]".to_string(), format!("DefaultLimitNOFILE={v}")])
        .unwrap_or_default();
    if meaningful(text) != want {
        return Err(refuse(
            rel,
            "it would hold other systemd settings than DefaultLimitNOFILE",
        ));
    }
    Ok(())
}

/// No CR, NUL or other control character but newline and tab: readers disagree about them.
fn check_chars(rel: &str, text: &str) -> Result<()> {
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(refuse(rel, "it would contain a control character"));
    }
    Ok(())
}

/// A unit drop-in must hold exactly `[Service]` and one `LimitNOFILE=`.
pub fn check_service(rel: &str, text: &str, expected: &str) -> Result<()> {
    check_chars(rel, text)?;
    if meaningful(text) != ["[Service]".to_string(), format!("LimitNOFILE={expected}")] {
        return Err(refuse(
            rel,
            "it would hold other unit settings than LimitNOFILE",
        ));
    }
    Ok(())
}

/// A modules-load.d drop-in must name exactly the profile's modules, one a line.
pub fn check_modules(rel: &str, text: &str, expected: &[String]) -> Result<()> {
    check_chars(rel, text)?;
    if meaningful(text) != expected {
        return Err(refuse(
            rel,
            "it would load other modules than the profile names",
        ));
    }
    Ok(())
}

/// Checks every drop-in a plan writes. Called before the first change.
pub fn check_plan(profile: &Profile, plan: &Plan) -> Result<()> {
    for file in &plan.files {
        let Some(text) = &file.new else { continue };
        if file.rel == Root::sysctl_dropin() {
            check_sysctl(&file.rel, text, &sysctl_expected(profile))?;
        } else if file.rel == Root::limits_dropin() {
            check_limits(&file.rel, text, &limits_expected(profile))?;
        } else if file.rel == Root::systemd_dropin() {
            let value = profile
                .systemd_nofile
                .as_ref()
                .map(|(pair, _)| dropin::nofile_value(*pair));
            check_systemd(&file.rel, text, value.as_deref())?;
        } else if file.rel == Root::modules_dropin() {
            check_modules(&file.rel, text, &profile.modules)?;
        } else if let Some((unit, service)) = profile
            .services
            .iter()
            .find(|(unit, _)| Root::unit_dropin(unit) == file.rel)
        {
            let value = dropin::nofile_value(service.nofile);
            check_service(&file.rel, text, &value).map_err(|e| match e {
                Error::Usage(m) => Error::Usage(format!("{m} (unit {unit})")),
                other => other,
            })?;
        } else {
            return Err(refuse(&file.rel, "it is not a file netprofile manages"));
        }
    }
    Ok(())
}

/// Renders the drop-ins of `profile` (with `values` as the sysctl keys to persist) and checks
/// that each re-parses to what was asked. The "written file re-parses to the plan" property,
/// for fuzzing and property tests without a live system.
pub fn check_rendered(profile: &Profile, values: &[(String, String)]) -> Result<()> {
    if let Some(text) = dropin::sysctl(profile, values) {
        let expected: Vec<(String, String)> = values
            .iter()
            .map(|(k, v)| (k.clone(), value::normalise(v)))
            .collect();
        check_sysctl(&Root::sysctl_dropin(), &text, &expected)?;
    }
    if let Some(text) = dropin::limits(profile, &profile.limits) {
        check_limits(&Root::limits_dropin(), &text, &limits_expected(profile))?;
    }
    if let Some(text) = dropin::systemd(profile) {
        let value = profile
            .systemd_nofile
            .as_ref()
            .map(|(pair, _)| dropin::nofile_value(*pair));
        check_systemd(&Root::systemd_dropin(), &text, value.as_deref())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_injected_line_is_caught_by_the_reparse() {
        let expected = vec![("net.core.somaxconn".to_string(), "1024".to_string())];
        let rel = Root::sysctl_dropin();
        assert!(check_sysctl(&rel, "# x\nnet.core.somaxconn = 1024\n", &expected).is_ok());
        let smuggled = "# x\nnet.core.somaxconn = 1024\nkernel.core_pattern = |/tmp/pwn\n";
        assert!(check_sysctl(&rel, smuggled, &expected).is_err());
        assert!(check_sysctl(&rel, "# x\r\nnet.core.somaxconn = 1024\n", &expected).is_err());
        let rel = Root::limits_dropin();
        let want = vec![(
            "*".to_string(),
            Kind::Both,
            "nofile".to_string(),
            "65536".to_string(),
        )];
        assert!(check_limits(&rel, "*  -  nofile  65536\n", &want).is_ok());
        assert!(check_limits(&rel, "*  -  nofile  65536\n*  hard  nofile  0\n", &want).is_err());
        assert!(check_systemd("x", "[Manager]\nDefaultLimitNOFILE=5\n", Some("5")).is_ok());
        assert!(check_systemd("x", "[Manager]\nDefaultLimitNOFILE=5\nX=1\n", Some("5")).is_err());
    }
}
