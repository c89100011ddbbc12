//! Overrides: a file netprofile does not own that sets a managed setting to another value
//! after netprofile's drop-in, and the operator's answer to it. `apply --allow-override`
//! records, in the generation, the overrides it accepted; `apply`, `check` and `status` mark a
//! plan's overrides against that record (read by `transaction::replay::accepted_overrides`),
//! so an accepted override is reported as such and not as drift, and a new one is refused or
//! reported. Pure.

use serde::Serialize;

use super::Plan;
use crate::error::Error;

/// A file netprofile does not own that sets a managed setting to another value after
/// netprofile's drop-in, so the profile's value would not hold at boot, login or service start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, serde::Deserialize)]
pub struct Override {
    /// The key (`net.core.somaxconn`), limit (`* soft nofile`) or `DefaultLimitNOFILE`.
    pub setting: String,
    /// What the profile wants.
    pub wanted: String,
    /// What the other file sets.
    pub value: String,
    pub file: String,
    pub line: usize,
    /// When the other file wins: `boot`, `login` or `service start`.
    pub when: String,
    /// Accepted with `apply --allow-override` (set by the commands from the generations; the
    /// pure plan leaves it false). An unaccepted override is a difference.
    #[serde(default)]
    pub accepted: bool,
}

impl Override {
    /// One line for errors and warnings, with the fix.
    #[must_use]
    pub fn describe(&self) -> String {
        format!(
            "{}:{} sets {} to {} (netprofile wants {}), and it is read after netprofile's \
             drop-in, so at {} the value would be {}. Remove that line or the file, or pass \
             --allow-override to apply anyway and record it as overridden",
            self.file, self.line, self.setting, self.value, self.wanted, self.when, self.value
        )
    }

    /// Whether two overrides are the same decision (a line that moved is still the same).
    #[must_use]
    pub fn same(&self, other: &Override) -> bool {
        self.setting == other.setting && self.file == other.file && self.value == other.value
    }
}

/// Marks the plan's overrides that the last apply accepted.
pub fn mark(plan: &mut Plan, accepted: &[Override]) {
    for o in &mut plan.overrides {
        o.accepted = accepted.iter().any(|a| a.same(o));
    }
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
pub fn record(overrides: &[Override]) -> Vec<Override> {
    overrides
        .iter()
        .map(|o| Override {
            accepted: true,
            ..o.clone()
        })
        .collect()
}
