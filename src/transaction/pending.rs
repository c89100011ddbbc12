//! What `apply --pending` changes: the pending keys of the last apply in force whose module
//! has loaded since, and the `min`/`max` keys now on the wrong side of their bound (raised to a
//! `min`, lowered to a `max`, never the other way). Reads generations and live values; never
//! writes (the command runs the changes through the writer).

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::profile::keys::KeyName;
use crate::system as live;
use crate::system::root::Root;
use crate::transaction::replay::{current_pending, held_bounds};
use crate::transaction::state::{self, Change, Generation, PendingKey};

/// What `apply --pending` finds to do.
pub struct Work {
    /// The keys pending after the generations in force.
    pub pending: Vec<PendingKey>,
    /// The raise-only and lower-only keys held now, with their bound.
    pub bounds: BTreeMap<String, String>,
    /// The key changes to make, pending keys first.
    pub changes: Vec<Change>,
    /// The pending keys whose module is still not loaded.
    pub still: Vec<PendingKey>,
}

impl Work {
    /// The bound of each changed key that was brought back to it.
    #[must_use]
    pub fn held(&self) -> BTreeMap<String, String> {
        self.changes
            .iter()
            .filter_map(|c| match c {
                Change::Sysctl { key, .. } => Some((key.clone(), self.bounds.get(key)?.clone())),
                _ => None,
            })
            .collect()
    }
}

/// The pending keys and bounds of the generations `all` (with `pending` the generation a
/// `--confirm` still waits for), against the live values.
pub fn changes(root: &Root, all: &[Generation], pending: Option<u64>) -> Result<Work> {
    let pending_keys = current_pending(all);
    let bounds = held_bounds(all, pending);
    let mut changes = Vec::new();
    let mut still = Vec::new();
    for p in &pending_keys {
        let key = KeyName::parse(&p.key).map_err(Error::State)?;
        match live::read_sysctl_raw(root, &key)? {
            None => still.push(p.clone()),
            // A pending min/max is held as a bound below, never set to its exact figure.
            Some(_) if bounds.contains_key(&p.key) => {}
            Some(now) if crate::profile::value::same(&p.key, &now, &p.value) => {}
            Some(now) => changes.push(Change::Sysctl {
                key: p.key.clone(),
                before: now,
                after: p.value.clone(),
            }),
        }
    }
    for (name, bound) in &bounds {
        let key = KeyName::parse(name).map_err(Error::State)?;
        // Absent (a module key not loaded yet): listed as still pending above, if it is one.
        let Some(now) = live::read_sysctl_raw(root, &key)? else {
            continue;
        };
        if let Some(after) = past_bound(bound, &now) {
            changes.push(Change::Sysctl {
                key: name.clone(),
                before: now,
                after,
            });
        }
    }
    Ok(Work {
        pending: pending_keys,
        bounds,
        changes,
        still,
    })
}

/// `>= N` or `<= N`: the value to move `now` to, when it is on the wrong side of the bound.
fn past_bound(bound: &str, now: &str) -> Option<String> {
    state::against_bound(bound, now)?
        .err()
        .map(|n| n.to_string())
}
