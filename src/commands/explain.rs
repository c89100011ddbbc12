//! `netprofile explain KEY`: where a sysctl, a limits item or DefaultLimitNOFILE comes from
//! now and at boot (doctor/explain.rs), as text or JSON. Read-only.

use super::Output;
use crate::cli::Config;
use crate::doctor::chain::{Fate, Link};
use crate::doctor::explain::{Explanation, Subject, explain as run};
use crate::error::Result;
use crate::render::json::{Envelope, pretty};
use crate::render::terminal::{one_line, value};

/// `explain KEY --json`: docs/schema/explain.json.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct Document {
    #[serde(flatten)]
    pub envelope: Envelope,
    #[serde(flatten)]
    pub explanation: Explanation,
}

/// `netprofile explain KEY`.
pub fn explain(config: &Config, raw: &str) -> Result<Output> {
    let subject = Subject::parse(raw)?;
    let e = run(&config.root, &subject)?;
    let stdout = if config.json {
        pretty(&Document {
            envelope: Envelope::new("explain", 0),
            explanation: e,
        })
    } else {
        human(config, &e)
    };
    let stderr: Vec<String> = super::open_journal_warning(config, "live values")
        .into_iter()
        .collect();
    Ok(Output {
        code: 0,
        stdout,
        stderr,
    })
}

fn fate(config: &Config, link: &Link) -> String {
    let by = one_line(link.by.as_deref().unwrap_or(""));
    match link.fate {
        Fate::Wins => config.paint.green(&if by.is_empty() {
            "wins".to_string()
        } else {
            format!("wins ({by})")
        }),
        Fate::Overridden => config.paint.yellow(&if by.is_empty() {
            "overridden".to_string()
        } else {
            format!("overridden by {by}")
        }),
        Fate::Masked => config.paint.yellow(&format!("masked by {by}")),
        Fate::Elsewhere => by,
    }
}

fn human(config: &Config, e: &Explanation) -> String {
    let mut out = format!("{} ({})\n", e.subject, e.kind);
    now_and_at_boot(&mut out, e);
    chain(&mut out, config, e);
    generations(&mut out, e);
    catalogue(&mut out, e);
    out
}

/// The live value, what boot (or a login) sets, and the key's scope.
fn now_and_at_boot(out: &mut String, e: &Explanation) {
    out.push_str(&format!(
        "  live:   {}  ({})\n",
        value(e.live.as_deref().unwrap_or("-")),
        one_line(&e.live_source)
    ));
    match &e.boot {
        Some(b) if e.kind == "limit" => out.push_str(&format!(
            "  login:  {}  ({})\n",
            value(&b.value),
            one_line(b.by.as_deref().unwrap_or_default())
        )),
        Some(b) => out.push_str(&format!(
            "  boot:   {}  ({}:{})\n",
            value(&b.value),
            one_line(&b.file),
            b.line
        )),
        None => out.push_str(&format!(
            "  boot:   {}\n",
            match e.kind {
                "sysctl" => "no file sets it: the kernel default stays",
                "limit" => "no entry applies: the limit a login inherits stays",
                _ => "no file sets it",
            }
        )),
    }
    if let Some(scope) = e.scope {
        out.push_str(&format!(
            "  scope:  {}\n",
            match scope {
                crate::profile::keys::Scope::Netns =>
                    "per network namespace (each container has its own; a new one starts from the kernel default)",
                crate::profile::keys::Scope::Global => "global (one value for the whole machine)",
            }
        ));
    }
}

/// Every file that sets it, in the order read, and the other configuration managers.
fn chain(out: &mut String, config: &Config, e: &Explanation) {
    out.push_str("  chain (in the order read):\n");
    if e.chain.is_empty() {
        out.push_str("    (no file sets it)\n");
    }
    for link in &e.chain {
        out.push_str(&format!(
            "    {}:{}  {}  {}\n",
            one_line(&link.file),
            link.line,
            value(&link.value),
            fate(config, link)
        ));
    }
    if !e.managers.is_empty() {
        out.push_str("  other managers:\n");
        for m in &e.managers {
            out.push_str(&format!(
                "    {} {}:{}  {}  ({})\n",
                m.manager,
                one_line(&m.file),
                m.line,
                value(&m.value),
                one_line(&m.note)
            ));
        }
    }
}

/// netprofile's own generations that changed it.
fn generations(out: &mut String, e: &Explanation) {
    out.push_str("  netprofile generations:\n");
    if e.generations.is_empty() {
        out.push_str("    none changed it\n");
    }
    for g in &e.generations {
        out.push_str(&format!(
            "    #{} {} {} ({}{}): {} -> {}\n",
            g.generation.number,
            g.generation.time,
            g.generation.op,
            g.generation.outcome.name(),
            g.generation
                .profile
                .as_ref()
                .map_or_else(String::new, |p| format!(", {}", one_line(&p.name))),
            value(g.before.as_deref().unwrap_or("-")),
            value(g.after.as_deref().unwrap_or("-"))
        ));
    }
}

/// What netprofile's catalogue says of it, the notes, and the rules modelled.
fn catalogue(out: &mut String, e: &Explanation) {
    if let Some(c) = &e.catalogue {
        let text = if let Some(why) = &c.removed {
            format!("removed: {why}")
        } else if c.known {
            format!(
                "known to netprofile ({} value)",
                c.shape.as_deref().unwrap_or("?")
            )
        } else {
            format!(
                "not in netprofile's catalogue{}",
                c.suggestion
                    .as_deref()
                    .map_or_else(String::new, |s| format!(" (did you mean {s}?)"))
            )
        };
        out.push_str(&format!("  catalogue: {text}\n"));
    }
    for note in &e.notes {
        out.push_str(&format!("  note: {}\n", one_line(note)));
    }
    let program = if e.kind == "sysctl" {
        "systemd-sysctl"
    } else {
        "pam_limits"
    };
    if e.kind != "systemd"
        && let Some(m) = e.models.iter().find(|m| m.program == program)
    {
        out.push_str(&format!("  modelled: {}\n", m.short()));
    }
}
