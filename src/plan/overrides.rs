//! Overrides: a file netprofile does not own that sets a managed setting to another value
//! after netprofile's drop-in. Pure.

use serde::Serialize;

/// A file netprofile does not own that sets a managed setting to another value after
/// netprofile's drop-in, so the profile's value would not hold at boot, login or service start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
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
