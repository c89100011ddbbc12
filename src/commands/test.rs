//! `netprofile test`: runs the connection test and reports it.

use super::Output;
use crate::cli::Config;
use crate::error::Result;

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
