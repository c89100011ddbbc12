//! `netprofile profiles`: the shipped profiles.

use super::Output;
use crate::cli::Config;
use crate::error::Result;
use crate::profile::{self, SHIPPED};

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
        serde_json::to_string_pretty(
            &serde_json::json!({ "schema": 1, "command": "profiles", "profiles": items }),
        )
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
