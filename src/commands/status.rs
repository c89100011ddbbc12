//! `netprofile status`: the managed keys now, drift, and an open journal or pending confirmation.

use super::Output;
use crate::cli::Config;
use crate::error::Result;

/// `netprofile status`: managed keys now, and any pending confirmation.
pub fn status(config: &Config) -> Result<Output> {
    use crate::transaction::state::{Change, Outcome};
    let root = &config.root;
    let all = crate::transaction::state::generations(root)?;
    // The value netprofile last set for each key, in generation order.
    let mut managed: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    // For a raise-only (or lower-only) key, the bound it was applied with.
    let mut bounds: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for g in all
        .iter()
        .filter(|g| matches!(g.outcome, Outcome::Applied | Outcome::Pending))
    {
        for change in &g.changes {
            if let Change::Sysctl { key, after, .. } = change {
                managed.insert(key.clone(), after.clone());
                match g.bounds.get(key) {
                    Some(bound) => bounds.insert(key.clone(), bound.clone()),
                    None => bounds.remove(key),
                };
            }
        }
    }
    let mut rows = Vec::new();
    let mut drifted = 0;
    for (key, want) in &managed {
        let name = crate::profile::keys::KeyName::parse(key).map_err(crate::error::Error::State)?;
        let now = crate::system::read_sysctl(root, &name)?;
        let ok = now.as_deref().is_some_and(|now| {
            crate::profile::value::same(key, now, want) || within(bounds.get(key), now)
        });
        if !ok {
            drifted += 1;
        }
        rows.push((key.clone(), now, want.clone(), ok));
    }
    // Values another file overrides, accepted with `apply --allow-override`: reported as
    // overridden, not as drift.
    let overridden = super::overrides::accepted(root)?;
    let pending = crate::transaction::state::read_pending(root)?;
    if config.json {
        let doc = serde_json::json!({
            "schema": 1,
            "managed": rows.iter().map(|(k, now, want, ok)| serde_json::json!({
                "key": k, "live": now, "last_set": want, "in_sync": ok,
            })).collect::<Vec<_>>(),
            "pending": pending.as_ref().map(|p| serde_json::json!({
                "generation": p.generation,
                "seconds_left": p.deadline_ms.saturating_sub(crate::transaction::state::epoch_millis()) / 1000,
            })),
            "overridden": overridden,
            "open_journal": root.path(crate::transaction::state::JOURNAL).exists(),
            "generations": all.len(),
            "processes": super::running::status_json(root)?,
        });
        return Ok(Output {
            code: 0,
            stdout: serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n",
            stderr: Vec::new(),
        });
    }
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str("no keys managed yet (no applied generation)\n");
    } else {
        let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        for (key, now, want, ok) in &rows {
            let state = if *ok {
                config.paint.green("ok")
            } else {
                config
                    .paint
                    .yellow(&format!("drifted (netprofile set {want})"))
            };
            out.push_str(&format!(
                "{key:<width$}  {:<20}  {state}\n",
                now.clone().unwrap_or_else(|| "-".into())
            ));
        }
    }
    for o in &overridden {
        out.push_str(&format!(
            "{}  overridden at {} by {}:{} ({}, netprofile wants {}; accepted with \
             --allow-override)\n",
            o.setting, o.when, o.file, o.line, o.value, o.wanted
        ));
    }
    if let Some(p) = &pending {
        out.push_str(&format!(
            "pending: generation {} reverts in {} s unless `netprofile confirm`\n",
            p.generation,
            p.deadline_ms
                .saturating_sub(crate::transaction::state::epoch_millis())
                .div_ceil(1000)
        ));
    }
    let in_effect =
        crate::transaction::state::in_effect_with(&all, pending.as_ref().map(|p| p.generation));
    out.push_str(&if in_effect.is_empty() {
        "in effect: no generation\n".to_string()
    } else {
        let list: Vec<String> = in_effect.iter().map(u64::to_string).collect();
        format!(
            "in effect: generation{} {}\n",
            if list.len() == 1 { "" } else { "s" },
            list.join(", ")
        )
    });
    out.push_str(&super::running::pending_section(root)?);
    out.push_str(&super::running::old_limits_section(root)?);
    out.push_str(&format!(
        "{} managed key{}, {drifted} drifted, {} generation{}\n",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        all.len(),
        if all.len() == 1 { "" } else { "s" }
    ));
    Ok(Output {
        code: 0,
        stdout: out,
        stderr: Vec::new(),
    })
}

/// Whether `now` meets a recorded bound (`>= 4096`, `<= 30`): a later rise above a min is not
/// drift.
fn within(bound: Option<&String>, now: &str) -> bool {
    let Some(bound) = bound else { return false };
    let Ok(now) = now.trim().parse::<i64>() else {
        return false;
    };
    if let Some(n) = bound
        .strip_prefix(">= ")
        .and_then(|n| n.parse::<i64>().ok())
    {
        return now >= n;
    }
    if let Some(n) = bound
        .strip_prefix("<= ")
        .and_then(|n| n.parse::<i64>().ok())
    {
        return now <= n;
    }
    false
}
