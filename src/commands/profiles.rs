//! `netprofile profiles [NAME]`: the shipped profiles, or the TOML of one. Reads only what is
//! built into the binary (the packages also install the same files under
//! /usr/share/netprofile/profiles for reading).

use super::Output;
use crate::cli::Config;
use crate::error::{Error, Result};
use crate::profile::{self, SHIPPED, keys};
use crate::render::json::{Envelope, pretty};

/// `profiles --json` (the list) or `profiles NAME --json` (one profile's TOML):
/// docs/schema/profiles.json.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Document {
    List {
        #[serde(flatten)]
        envelope: Envelope,
        profiles: Vec<Summary>,
    },
    Show {
        #[serde(flatten)]
        envelope: Envelope,
        name: String,
        /// The shipped file as it is.
        toml: String,
    },
}

/// One shipped profile in the list.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct Summary {
    pub name: String,
    pub description: String,
    pub sysctl_keys: usize,
    pub limits: usize,
}

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
        pretty(&Document::Show {
            envelope: Envelope::new("profiles", 0),
            name: name.to_string(),
            toml: (*text).to_string(),
        })
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
        pretty(&Document::List {
            envelope: Envelope::new("profiles", 0),
            profiles: list
                .iter()
                .map(|(name, description, keys, limits)| Summary {
                    name: name.clone(),
                    description: description.clone(),
                    sysctl_keys: *keys,
                    limits: *limits,
                })
                .collect(),
        })
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
