//! The commands: each loads, plans and renders through the library modules and returns the
//! exit code and the text for stdout. Warnings go to the `Output`'s stderr side.

use crate::cli::Config;
use crate::error::Result;
use crate::live::LiveState;
use crate::plan;
use crate::profile::{self, SHIPPED};
use crate::render;

/// What a command produced.
#[derive(Debug, Default)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: Vec<String>,
}

fn plan_for(config: &Config, reference: &str) -> Result<plan::Plan> {
    let profile = profile::load(reference)?;
    let live = LiveState::read(&config.root, &profile)?;
    plan::plan(&profile, &live)
}

/// `netprofile diff PROFILE`: exit 0 in sync, 1 differs.
pub fn diff(config: &Config, reference: &str) -> Result<Output> {
    let plan = plan_for(config, reference)?;
    let code = i32::from(plan.differs());
    let stdout = if config.json {
        render::json(&plan, "diff")
    } else if config.quiet {
        render::summary(&plan) + "\n"
    } else {
        render::human(&plan, config.paint)
    };
    Ok(Output {
        code,
        stdout,
        stderr: warnings(&plan),
    })
}

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

fn warnings(plan: &plan::Plan) -> Vec<String> {
    plan.warnings
        .iter()
        .map(|w| format!("warning: {w}"))
        .collect()
}

/// `netprofile profiles`.
pub fn profiles(config: &Config) -> Result<Output> {
    let mut list = Vec::new();
    for (name, _) in SHIPPED {
        let p = profile::load(name)?;
        list.push((p.name, p.description, p.sysctl.len(), p.limits.len()));
    }
    let stdout = if config.json {
        let items: Vec<serde_json::Value> = list
            .iter()
            .map(|(name, description, keys, limits)| {
                serde_json::json!({
                    "name": name, "description": description,
                    "sysctl_keys": keys, "limits": limits,
                })
            })
            .collect();
        serde_json::to_string_pretty(&serde_json::json!({ "schema": 1, "profiles": items }))
            .unwrap_or_default()
            + "\n"
    } else {
        let width = list.iter().map(|(n, ..)| n.len()).max().unwrap_or(0);
        list.iter()
            .map(|(name, description, ..)| format!("{name:<width$}  {description}\n"))
            .collect()
    };
    Ok(Output {
        code: 0,
        stdout,
        stderr: Vec::new(),
    })
}
