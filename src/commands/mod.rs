//! The commands: each loads, plans and renders through the library modules and returns the
//! exit code and the text for stdout. Warnings go to the `Output`'s stderr side.

pub mod apply;
pub mod check;
pub mod confirm;
pub mod confirm_watcher;
pub mod diff;
pub mod doctor;
pub mod explain;
pub mod generate;
pub mod history;
pub mod metrics;
pub mod profiles;
pub mod recover;
pub mod render;
pub mod rollback;
pub mod running;
pub mod schema;
pub mod status;
pub mod test;
pub mod watch;

use crate::cli::Config;
use crate::error::Result;
use crate::plan;
use crate::profile::{self};
use crate::system::LiveState;

/// What a command produced.
#[derive(Debug, Default)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: Vec<String>,
}

pub(super) fn plan_for(config: &Config, reference: &str) -> Result<plan::Plan> {
    let profile = profile::load(reference)?;
    let live = LiveState::read(&config.root, &profile)?;
    let mut plan = plan::plan(&profile, &live)?;
    plan::overrides::mark(
        &mut plan,
        &crate::transaction::replay::accepted_overrides(&config.root)?,
    );
    Ok(plan)
}

/// A plan as diff prints it; exit 0 in sync, 1 differs.
#[must_use]
pub fn render_plan(config: &Config, plan: &plan::Plan, command: &str) -> Output {
    let stdout = if config.json {
        crate::render::json(plan, command)
    } else if config.format == crate::cli::Format::Markdown {
        crate::render::markdown::plan(plan, command)
    } else if config.quiet {
        crate::render::summary(plan) + "\n"
    } else {
        crate::render::human(plan, config.paint)
    };
    Output {
        code: i32::from(plan.differs()),
        stdout,
        stderr: warnings(plan),
    }
}

/// A command's one typed document: under `--json` the value serialised, otherwise the text
/// `human` renders from the same value.
pub(super) fn render_doc<T: serde::Serialize>(
    config: &Config,
    doc: &T,
    human: impl FnOnce(&T) -> String,
) -> String {
    if config.json {
        crate::render::json::pretty(doc)
    } else {
        human(doc)
    }
}

pub(super) fn warnings(plan: &plan::Plan) -> Vec<String> {
    plan.warnings
        .iter()
        .map(|w| format!("warning: {w}"))
        .collect()
}

pub use crate::transaction::writer::require_privileges;

/// The warning of a read-only command that finds an open journal (it never takes the lock to
/// restore it): `what` may be half applied.
pub(crate) fn open_journal_warning(config: &Config, what: &str) -> Option<String> {
    config
        .root
        .path(crate::transaction::state::JOURNAL)
        .exists()
        .then(|| {
            format!(
                "warning: an interrupted netprofile run left its journal; {what} may be half \
                 applied (`netprofile status` as root restores them)"
            )
        })
}
