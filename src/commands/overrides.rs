//! Overrides the operator accepted: `apply --allow-override` records, in the generation, the
//! settings that another file overrides (plan::Override); `apply`, `check` and `status` compare
//! a plan's overrides with that record, so an accepted override is reported as such and not as
//! drift, and a new one is refused or reported. Reads generations; writes nothing.

use crate::error::{Error, Result};
use crate::plan::{Override, Plan};
use crate::system::root::Root;
use crate::transaction::state::{self, Outcome};

/// The overrides accepted by the last apply still in force (applied or pending).
pub fn accepted(root: &Root) -> Result<Vec<Override>> {
    let generations = state::generations(root)?;
    let last = generations
        .iter()
        .rev()
        .find(|g| g.op == "apply" && matches!(g.outcome, Outcome::Applied | Outcome::Pending));
    Ok(last
        .map(|g| {
            g.overridden
                .iter()
                .filter_map(|v| serde_json::from_value(v.clone()).ok())
                .collect()
        })
        .unwrap_or_default())
}

/// Marks the plan's overrides that the last apply accepted.
pub fn mark(root: &Root, plan: &mut Plan) -> Result<()> {
    let accepted = accepted(root)?;
    for o in &mut plan.overrides {
        o.accepted = accepted.iter().any(|a| a.same(o));
    }
    Ok(())
}

/// The plan's overrides that were not accepted (call `mark` first).
#[must_use]
pub fn unaccepted(plan: &Plan) -> Vec<&Override> {
    plan.overrides.iter().filter(|o| !o.accepted).collect()
}

/// The error `apply` stops with when other files would override what it sets.
#[must_use]
pub fn refusal(overrides: &[&Override]) -> Error {
    let lines: Vec<String> = overrides.iter().map(|o| o.describe()).collect();
    Error::Usage(format!(
        "apply refused: {} file line{} that netprofile does not own would override what it \
         sets, so apply would report a success that `check` contradicts. Nothing was \
         changed.\n  {}",
        overrides.len(),
        if overrides.len() == 1 { "" } else { "s" },
        lines.join("\n  ")
    ))
}

/// Overrides as recorded in a generation.
#[must_use]
pub fn record(overrides: &[Override]) -> Vec<serde_json::Value> {
    overrides
        .iter()
        .map(|o| Override {
            accepted: true,
            ..o.clone()
        })
        .filter_map(|o| serde_json::to_value(o).ok())
        .collect()
}
