//! The text of the drop-in files netprofile owns: sysctl.d, limits.d and systemd's
//! system.conf.d. Pure rendering; writing them atomically is transaction/atomic.rs's job.

use crate::profile::limit::LimitValue;
use crate::profile::{Limit, NofilePair, Profile};

/// Text from a profile (its name, its path) made safe for a one-line comment: control
/// characters (newline, CR, NUL) become `?`, so nothing can start a live line.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn header(profile: &Profile, comment: &str) -> String {
    format!(
        "{comment} Written by netprofile from profile \"{}\" ({}).\n\
         {comment} Do not edit: the next `netprofile apply` replaces this file.\n",
        one_line(&profile.name),
        one_line(&profile.source)
    )
}

/// sysctl.d drop-in holding `key = value` for each key, in key order.
#[must_use]
pub fn sysctl(profile: &Profile, values: &[(String, String)]) -> Option<String> {
    if values.is_empty() {
        return None;
    }
    let mut text = header(profile, "#");
    for (key, value) in values {
        text.push_str(&format!("{key} = {value}\n"));
    }
    Some(text)
}

/// limits.d drop-in; a limit with equal soft and hard is one `-` line.
#[must_use]
pub fn limits(profile: &Profile, limits: &[Limit]) -> Option<String> {
    if limits.is_empty() {
        return None;
    }
    let mut text = header(profile, "#");
    let line = |domain: &str, kind: &str, item: &str, value: &LimitValue| {
        format!("{domain:<12} {kind:<5} {item:<10} {value}\n")
    };
    for limit in limits {
        let domain = limit.domain.to_string();
        let item = limit.item.as_str();
        match (limit.soft, limit.hard) {
            (Some(s), Some(h)) if s == h => text.push_str(&line(&domain, "-", item, &s)),
            (soft, hard) => {
                if let Some(s) = soft {
                    text.push_str(&line(&domain, "soft", item, &s));
                }
                if let Some(h) = hard {
                    text.push_str(&line(&domain, "hard", item, &h));
                }
            }
        }
    }
    Some(text)
}

/// How DefaultLimitNOFILE is written for a pair.
#[must_use]
pub fn nofile_value(pair: NofilePair) -> String {
    if pair.soft == pair.hard {
        pair.soft.to_string()
    } else {
        format!("{}:{}", pair.soft, pair.hard)
    }
}

/// systemd system.conf.d drop-in for DefaultLimitNOFILE.
#[must_use]
pub fn systemd(profile: &Profile) -> Option<String> {
    let (pair, _) = profile.systemd_nofile.as_ref()?;
    let pair = *pair;
    Some(format!(
        "{}[Manager]\nDefaultLimitNOFILE={}\n",
        header(profile, "#"),
        nofile_value(pair)
    ))
}

/// A unit drop-in (`NAME.service.d/90-netprofile.conf`) setting LimitNOFILE.
#[must_use]
pub fn service(profile: &Profile, pair: NofilePair) -> String {
    format!(
        "{}[Service]\nLimitNOFILE={}\n",
        header(profile, "#"),
        nofile_value(pair)
    )
}

/// modules-load.d drop-in: one module per line, loaded at boot before systemd-sysctl runs.
#[must_use]
pub fn modules(profile: &Profile) -> Option<String> {
    if profile.modules.is_empty() {
        return None;
    }
    let mut text = header(profile, "#");
    for module in &profile.modules {
        text.push_str(module);
        text.push('\n');
    }
    Some(text)
}
