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

/// A plan as diff prints it; exit 0 in sync, 1 differs.
#[must_use]
pub fn render_plan(config: &Config, plan: &plan::Plan, command: &str) -> Output {
    let stdout = if config.json {
        render::json(plan, command)
    } else if config.quiet {
        render::summary(plan) + "\n"
    } else {
        render::human(plan, config.paint)
    };
    Output {
        code: i32::from(plan.differs()),
        stdout,
        stderr: warnings(plan),
    }
}

/// `netprofile diff PROFILE`: exit 0 in sync, 1 differs.
pub fn diff(config: &Config, reference: &str) -> Result<Output> {
    let plan = plan_for(config, reference)?;
    Ok(render_plan(config, &plan, "diff"))
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

/// `netprofile history`: one line per generation, oldest first.
pub fn history(config: &Config) -> Result<Output> {
    let all = crate::state::generations(&config.root)?;
    if config.json {
        let doc = serde_json::json!({ "schema": 1, "generations": all });
        return Ok(Output {
            code: 0,
            stdout: serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n",
            stderr: Vec::new(),
        });
    }
    if all.is_empty() {
        return Ok(Output {
            code: 0,
            stdout: "no generations yet\n".into(),
            stderr: Vec::new(),
        });
    }
    let mut out = String::new();
    for g in &all {
        let profile = g.profile.as_ref().map_or_else(
            || "-".to_string(),
            |p| {
                format!(
                    "{} {} sha256:{}",
                    p.name,
                    p.source,
                    &p.sha256[..12.min(p.sha256.len())]
                )
            },
        );
        let what: Vec<String> = g.changes.iter().map(crate::state::Change::label).collect();
        let op = match g.rollback_of {
            Some(n) => format!("{} of {n}", g.op),
            None => g.op.clone(),
        };
        out.push_str(&format!(
            "{:>4}  {}  {:<14}  {:<10}  {}\n      {}\n",
            g.number,
            g.time,
            op,
            serde_json::to_value(g.outcome)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            profile,
            if what.is_empty() {
                "(no changes)".to_string()
            } else {
                what.join(", ")
            }
        ));
        if config.verbose > 0 {
            for change in &g.changes {
                out.push_str(&format!("        {}\n", describe(change)));
            }
        }
    }
    Ok(Output {
        code: 0,
        stdout: out,
        stderr: Vec::new(),
    })
}

fn describe(change: &crate::state::Change) -> String {
    match change {
        crate::state::Change::Sysctl { key, before, after } => {
            format!("{key}: {before} -> {after}")
        }
        crate::state::Change::File {
            path,
            before,
            after,
        } => format!(
            "{}: {}",
            crate::root::Root::display(path),
            match (before, after) {
                (None, Some(_)) => "created",
                (Some(_), None) => "removed",
                _ => "rewritten",
            }
        ),
    }
}

/// `netprofile status`: managed keys now, and any pending confirmation.
pub fn status(config: &Config) -> Result<Output> {
    use crate::state::{Change, Outcome};
    let root = &config.root;
    let all = crate::state::generations(root)?;
    // The value netprofile last set for each key, in generation order.
    let mut managed: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for g in all
        .iter()
        .filter(|g| matches!(g.outcome, Outcome::Applied | Outcome::Pending))
    {
        for change in &g.changes {
            if let Change::Sysctl { key, after, .. } = change {
                managed.insert(key.clone(), after.clone());
            }
        }
    }
    let mut rows = Vec::new();
    let mut drifted = 0;
    for (key, want) in &managed {
        let name = crate::keys::KeyName::parse(key).map_err(crate::error::Error::State)?;
        let now = crate::live::read_sysctl(root, &name)?;
        let ok = now
            .as_deref()
            .is_some_and(|now| crate::value::same(key, now, want));
        if !ok {
            drifted += 1;
        }
        rows.push((key.clone(), now, want.clone(), ok));
    }
    let pending = crate::state::read_pending(root)?;
    if config.json {
        let doc = serde_json::json!({
            "schema": 1,
            "managed": rows.iter().map(|(k, now, want, ok)| serde_json::json!({
                "key": k, "live": now, "last_set": want, "in_sync": ok,
            })).collect::<Vec<_>>(),
            "pending": pending.as_ref().map(|p| serde_json::json!({
                "generation": p.generation,
                "seconds_left": p.deadline_ms.saturating_sub(crate::state::epoch_millis()) / 1000,
            })),
            "open_journal": root.path(crate::state::JOURNAL).exists(),
            "generations": all.len(),
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
    if let Some(p) = &pending {
        out.push_str(&format!(
            "pending: generation {} reverts in {} s unless `netprofile confirm`\n",
            p.generation,
            p.deadline_ms
                .saturating_sub(crate::state::epoch_millis())
                .div_ceil(1000)
        ));
    }
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

/// `netprofile test hold|churn|serve`.
pub fn test(config: &Config, what: &crate::cli::TestCommand) -> Result<Output> {
    use crate::cli::TestCommand;
    use crate::conntest::{self, engine::Mode, report};
    use std::io::IsTerminal;
    let progress = !config.quiet && !config.json && std::io::stderr().is_terminal();
    let (mode, args) = match what {
        TestCommand::Hold(a) => (Mode::Hold, a),
        TestCommand::Churn(a) => (Mode::Churn, a),
        TestCommand::Serve { listen, args } => {
            let r = conntest::serve(&config.root, &args.options(Mode::Churn, false), *listen)?;
            return test_output(config, &r, args.plot.as_deref());
        }
    };
    let opts = args.options(mode, progress);
    if !opts.sandbox && (opts.profile.is_some() || opts.baseline.is_some()) {
        return Err(crate::error::Error::Usage(
            "--profile and --baseline apply inside the sandbox; add --sandbox (on this machine \
             itself, `netprofile apply --verify PROFILE` tests before and after)"
                .into(),
        ));
    }
    let pair = match (&args.compare, &opts.profile) {
        (Some(p), _) => Some((Some(p[0].clone()), p[1].clone())),
        (None, Some(p)) => Some((opts.baseline.clone(), p.clone())),
        (None, None) => None,
    };
    let Some((before_profile, after_profile)) = pair else {
        let r = conntest::run(&config.root, &opts)?;
        return test_output(config, &r, args.plot.as_deref());
    };
    let before_list: Vec<&str> = before_profile.iter().map(String::as_str).collect();
    let before =
        conntest::sandbox::run_with(&config.root, &opts, &before_list, before_profile.clone())?;
    let after = conntest::sandbox::run_with(
        &config.root,
        &opts,
        &[after_profile.as_str()],
        Some(after_profile.clone()),
    )?;
    if let Some(path) = &args.plot {
        write_plot(path, &conntest::plot::svg(&[&before, &after]))?;
    }
    let stdout = if config.json {
        serde_json::to_string_pretty(&serde_json::json!({
            "schema": 1, "before": before, "after": after,
        }))
        .unwrap_or_default()
            + "\n"
    } else {
        report::compare(&before, &after)
    };
    Ok(Output {
        code: 0,
        stdout,
        stderr: Vec::new(),
    })
}

fn write_plot(path: &std::path::Path, svg: &str) -> Result<()> {
    std::fs::write(path, svg).map_err(|e| crate::error::Error::Write {
        path: path.to_path_buf(),
        source: e,
    })
}

fn test_output(
    config: &Config,
    r: &crate::conntest::report::Report,
    plot: Option<&std::path::Path>,
) -> Result<Output> {
    if let Some(path) = plot {
        write_plot(path, &crate::conntest::plot::svg(&[r]))?;
    }
    let stdout = if config.json {
        serde_json::to_string_pretty(r).unwrap_or_default() + "\n"
    } else {
        crate::conntest::report::human(r)
    };
    Ok(Output {
        code: 0,
        stdout,
        stderr: Vec::new(),
    })
}
