//! `netprofile check PROFILE`: the drift check for monitoring, as one line.

use super::Output;
use super::{plan_for, warnings};
use crate::cli::Config;
use crate::error::Result;
use crate::plan;
use crate::render;

/// `netprofile check PROFILE`: the one-line form of diff.
pub fn check(config: &Config, reference: &str) -> Result<Output> {
    // plan_for marks accepted overrides: "in sync" only when what netprofile set holds, and an
    // override the operator did not accept with `apply --allow-override` is drift.
    let plan = plan_for(config, reference)?;
    let unaccepted = super::overrides::unaccepted(&plan);
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
