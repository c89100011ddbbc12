//! `netprofile check PROFILE`: the drift check for monitoring, as one line.

use super::Output;
use super::{plan_for, warnings};
use crate::cli::Config;
use crate::error::Result;
use crate::plan;
use crate::render;

/// `netprofile check PROFILE`: the one-line form of diff.
pub fn check(config: &Config, reference: &str) -> Result<Output> {
    let plan = plan_for(config, reference)?;
    let code = i32::from(plan.differs());
    let stdout = if config.json {
        render::json(&plan, "check")
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
