//! `netprofile profiles [NAME]`: the shipped profiles, or the TOML of one. Reads only what is
//! built into the binary (the packages also install the same files under
//! /usr/share/netprofile/profiles for reading).

use super::Output;
use crate::cli::Config;
use crate::error::{Error, Result};
use crate::profile::{self, SHIPPED, keys};

/// `netprofile profiles NAME`: the shipped file as it is, so it can be copied and edited.
fn show(config: &Config, name: &str) -> Result<Output> {
    let Some((_, text)) = SHIPPED.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = SHIPPED.iter().map(|(n, _)| *n).collect();
        // `hig`: the one shipped name it begins, else the nearest spelling.
        let starting: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !name.is_empty() && n.starts_with(name))
            .collect();
        let guess = match starting.as_slice() {
            [one] => Some(*one),
            _ => keys::nearest(name, names.iter().copied()),
        };
        let hint = guess.map_or_else(String::new, |n| format!("; did you mean {n:?}?"));
        return Err(Error::Usage(format!(
            "no shipped profile named {name:?}{hint} (shipped: {})",
            names.join(", ")
        )));
    };
    let stdout = if config.json {
        serde_json::to_string_pretty(&serde_json::json!({
            "schema": 1, "name": name, "toml": text,
        }))
        .unwrap_or_default()
            + "\n"
    } else {
        (*text).to_string()
    };
    Ok(Output {
        code: 0,
        stdout,
        stderr: Vec::new(),
    })
}

/// `netprofile profiles [NAME]`.
pub fn profiles(config: &Config, name: Option<&str>) -> Result<Output> {
    if let Some(name) = name {
        return show(config, name);
    }
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
