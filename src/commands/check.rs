//! `netprofile check PROFILE`: the drift check for monitoring, as one line; with `--format
//! nagios`, as a Nagios/Icinga plugin (status line with perfdata, exit 0/1/2/3).

use super::Output;
use super::{plan_for, warnings};
use crate::cli::{CheckFormat, Config};
use crate::error::Result;
use crate::plan;
use crate::render;

/// `netprofile check PROFILE [--format nagios]`: the one-line form of diff.
pub fn check(config: &Config, reference: &str, format: CheckFormat) -> Result<Output> {
    if format == CheckFormat::Nagios && !config.json {
        return Ok(nagios(config, reference));
    }
    // plan_for marks accepted overrides: "in sync" only when what netprofile set holds, and an
    // override the operator did not accept with `apply --allow-override` is drift.
    let plan = plan_for(config, reference)?;
    let unaccepted = crate::plan::overrides::unaccepted(&plan);
    let code = i32::from(plan.differs());
    let only_overrides = !unaccepted.is_empty()
        && !plan.sysctl.iter().any(|r| r.action == plan::Action::Set)
        && !plan.limits.iter().any(|r| r.action == plan::Action::Set)
        && !plan.systemd.iter().any(|r| r.action == plan::Action::Set)
        && !plan.files.iter().any(plan::FileChange::changes);
    let stdout = if config.json {
        render::json(&plan, "check")
    } else if only_overrides {
        let mut line = format!(
            "overridden: {} setting{} overridden by files netprofile does not own",
            unaccepted.len(),
            if unaccepted.len() == 1 { "" } else { "s" }
        );
        if !config.quiet {
            let what: Vec<String> = unaccepted
                .iter()
                .map(|o| format!("{} by {}:{}", o.setting, o.file, o.line))
                .collect();
            line.push_str(&format!(" ({})", what.join(", ")));
        }
        line + "\n"
    } else {
        let mut line = render::summary(&plan);
        let keys: Vec<&str> = plan
            .sysctl
            .iter()
            .filter(|r| r.action == plan::Action::Set)
            .map(|r| r.key.as_str())
            .collect();
        if !keys.is_empty() && !config.quiet {
            line.push_str(&format!(" ({})", keys.join(", ")));
        }
        line + "\n"
    };
    Ok(Output {
        code,
        stdout,
        stderr: warnings(&plan),
    })
}

/// Nagios/Icinga plugin exit codes.
const NAGIOS_OK: i32 = 0;
const NAGIOS_WARNING: i32 = 1;
const NAGIOS_CRITICAL: i32 = 2;
const NAGIOS_UNKNOWN: i32 = 3;

/// The plugin convention (Nagios Plugin Development Guidelines): one line
/// `NETPROFILE STATE - text | perfdata` and exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
/// CRITICAL: a value in force now (a key, a limit, a systemd setting) is not the profile's.
/// WARNING: what is in force is right but would not hold at boot or login (a drop-in missing or
/// edited, another file overriding). UNKNOWN: the check itself failed (bad profile, unreadable
/// file); the error is on the status line.
fn nagios(config: &Config, reference: &str) -> Output {
    let plan = match plan_for(config, reference) {
        Ok(plan) => plan,
        Err(e) => return nagios_unknown(&e.to_string()),
    };
    let set = |action: &plan::Action| *action == plan::Action::Set;
    let keys: Vec<&str> = plan
        .sysctl
        .iter()
        .filter(|r| set(&r.action))
        .map(|r| r.key.as_str())
        .collect();
    let limits = plan.limits.iter().filter(|r| set(&r.action)).count();
    let systemd = plan.systemd.iter().filter(|r| set(&r.action)).count()
        + plan.services.iter().filter(|r| set(&r.action)).count();
    let files = plan.files.iter().filter(|f| f.changes()).count();
    let overrides = crate::plan::overrides::unaccepted(&plan).len();
    let (code, state) = if !keys.is_empty() || limits > 0 || systemd > 0 {
        (NAGIOS_CRITICAL, "CRITICAL")
    } else if files > 0 || overrides > 0 {
        (NAGIOS_WARNING, "WARNING")
    } else {
        (NAGIOS_OK, "OK")
    };
    let mut text = render::summary(&plan);
    if !keys.is_empty() && !config.quiet {
        text.push_str(&format!(" ({})", keys.join(", ")));
    }
    if overrides > 0 {
        text.push_str(&format!(
            "; {overrides} overridden by files netprofile does not own"
        ));
    }
    // 'label'=value;warn;crit;min;max: a drifted live value is critical from 1, a file or an
    // override a warning from 1.
    let perf = format!(
        "sysctl_drifted={};;1;0;{} limits_drifted={limits};;1;0;{} systemd_drifted={systemd};;1;0;{} \
         files_drifted={files};1;;0;{} overrides={overrides};1;;0;",
        keys.len(),
        plan.sysctl.len(),
        plan.limits.len(),
        plan.systemd.len() + plan.services.len(),
        plan.files.len(),
    );
    Output {
        code,
        stdout: format!("NETPROFILE {state} - {} | {perf}\n", status_text(&text)),
        stderr: warnings(&plan),
    }
}

/// The status line is one line: nothing from a file or an error may break it or forge
/// perfdata.
fn status_text(text: &str) -> String {
    crate::doctor::watch::printable(text).replace('|', "/")
}

/// `NETPROFILE UNKNOWN - reason` and exit 3: the plugin convention for a check that could not
/// run, whatever stopped it (a bad profile, a bad command line, a missing `--root`). Nagios
/// shows a plugin's exit 2 as CRITICAL, so a failure must never leave with the usual 2.
#[must_use]
pub fn nagios_unknown(reason: &str) -> Output {
    Output {
        code: NAGIOS_UNKNOWN,
        stdout: format!("NETPROFILE UNKNOWN - {}\n", status_text(reason)),
        stderr: Vec::new(),
    }
}
