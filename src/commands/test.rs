//! `netprofile test`: runs the connection test and reports it.

use super::Output;
use crate::cli::Config;
use crate::conntest::report::{Change, Report};
use crate::error::Result;
use crate::render::json::{Envelope, pretty};

/// `test --json`: one run's report, or a `--compare` of two sides: docs/schema/test.json.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Document<'a> {
    Run(&'a Report),
    Compare(Compare<'a>),
}

/// Two sides run alternately `repeat` times; `before` and `after` are each side's median run.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct Compare<'a> {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub before: &'a Report,
    pub after: &'a Report,
    pub repeat: u32,
    pub runs: Runs,
    pub change: Change,
}

/// Every run of each side, in the order they ran.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct Runs {
    pub before: Vec<RunSummary>,
    pub after: Vec<RunSummary>,
}

/// The measures of one run.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct RunSummary {
    pub established: u64,
    pub held: u64,
    pub failed: u64,
    pub stalls: u64,
    pub connects_per_s: f64,
    /// The limit the run's verdict names (`none` when none bound).
    pub verdict: String,
}

impl RunSummary {
    fn of(r: &Report) -> Self {
        RunSummary {
            established: r.established,
            held: r.held,
            failed: r.failed,
            stalls: r.stalls,
            connects_per_s: r.connects_per_s,
            verdict: r.verdict.limit.to_string(),
        }
    }
}

/// `netprofile test hold|churn|serve`.
pub fn test(config: &Config, what: &crate::cli::TestCommand) -> Result<Output> {
    use crate::cli::TestCommand;
    use crate::conntest::{self, engine::Mode};
    use std::io::IsTerminal;
    let progress = !config.quiet && !config.json && std::io::stderr().is_terminal();
    let (mode, args) = match what {
        TestCommand::Hold(a) => (Mode::Hold, a),
        TestCommand::Churn(a) => (Mode::Churn, a),
        TestCommand::Serve(args) => {
            let r = conntest::serve(&config.root, &args.options(), args.listen)?;
            return test_output(config, &r, None);
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
    compare(config, args, &opts, before_profile, &after_profile)
}

/// `--compare A B` (or `--baseline A --profile B`): both sides in the sandbox, alternately,
/// `--repeat` times; the median run of each side and whether the change beats the spread.
fn compare(
    config: &Config,
    args: &crate::cli::TestArgs,
    opts: &crate::conntest::Options,
    before_profile: Option<String>,
    after_profile: &str,
) -> Result<Output> {
    use crate::conntest::{self, report};
    // Alternate the sides, so that a slow minute of a shared machine hits both.
    let before_list: Vec<&str> = before_profile.iter().map(String::as_str).collect();
    let (mut before_runs, mut after_runs) = (Vec::new(), Vec::new());
    for _ in 0..args.repeat.max(1) {
        before_runs.push(conntest::sandbox::run_with(
            &config.root,
            opts,
            &before_list,
            before_profile.clone(),
        )?);
        after_runs.push(conntest::sandbox::run_with(
            &config.root,
            opts,
            &[after_profile],
            Some(after_profile.to_string()),
        )?);
    }
    let (Some(before), Some(after)) = (
        report::median_run(&before_runs),
        report::median_run(&after_runs),
    ) else {
        return Err(crate::error::Error::State(
            "the comparison made no run".into(),
        ));
    };
    if let Some(path) = &args.plot {
        write_plot(path, &conntest::plot::svg(&[before, after]))?;
    }
    let stdout = if config.json {
        let summary = |runs: &[Report]| runs.iter().map(RunSummary::of).collect();
        pretty(&Document::Compare(Compare {
            envelope: Envelope::new("test", 0),
            before,
            after,
            repeat: args.repeat.max(1),
            runs: Runs {
                before: summary(&before_runs),
                after: summary(&after_runs),
            },
            change: report::change(&before_runs, &after_runs),
        }))
    } else {
        report::compare(&before_runs, &after_runs)
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
        pretty(&Document::Run(r))
    } else {
        crate::conntest::report::human(r)
    };
    Ok(Output {
        code: 0,
        stdout,
        stderr: Vec::new(),
    })
}
