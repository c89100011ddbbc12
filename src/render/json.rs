//! The `--json` documents of the commands that change things (apply, confirm, rollback) and the
//! error document every command prints on stdout when it fails under `--json`. Each document
//! has a published JSON Schema under docs/schema/ (docs/json.md). Pure: commands build a result
//! struct at the end of their work and this module turns it into text; nothing here reads or
//! writes the system.

use serde::Serialize;

use crate::error::Error;
use crate::transaction::state::{Change, Generation};

/// The version of every document; raised only when a field is removed or changes meaning.
/// 2: one envelope and one vocabulary across commands (docs/json.md, CHANGELOG.md).
pub const SCHEMA: u32 = 2;

/// The `schema` field of every document: always `SCHEMA` when printed, and declared as that
/// constant in the generated schemas, so a document of another version fails validation. A
/// report read back from an older record (a generation's `--verify`) is printed in today's
/// shape, so it says today's number too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Version;

impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(SCHEMA)
    }
}

impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Any version a record was written with: it is read into today's types.
        u32::deserialize(deserializer).map(|_| Version)
    }
}

impl schemars::JsonSchema for Version {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Version".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "The version of the document's shape (docs/json.md).",
            "type": "integer",
            "const": SCHEMA
        })
    }
}

// The fields every document opens with: its shape's version, the command that printed it and
// the exit code it ended with, spelled out for automation that reads the document instead of
// the code. (A plain comment: a doc comment would become the description of every document
// that flattens it into its own fields.)
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Envelope {
    pub schema: Version,
    pub command: String,
    pub exit_code: i32,
    pub exit_meaning: &'static str,
}

impl Envelope {
    #[must_use]
    pub fn new(command: &str, exit_code: i32) -> Self {
        Envelope {
            schema: Version,
            command: command.to_string(),
            exit_code,
            exit_meaning: exit_meaning(exit_code),
        }
    }
}

/// What an exit code means (DESIGN.md's contract), for automation that reads the document
/// instead of the code.
#[must_use]
pub fn exit_meaning(code: i32) -> &'static str {
    match code {
        0 => "ok",
        1 => "differences found",
        2 => "bad usage or input; nothing was changed",
        3 => "apply failed and was rolled back",
        4 => "rollback failed too",
        _ => "unknown",
    }
}

/// Pretty JSON and a newline; serialising these plain structs cannot fail.
#[must_use]
pub fn pretty<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
}

/// One key as a transaction set it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct KeyResult {
    pub key: String,
    pub before: String,
    pub after: String,
}

/// One file as a transaction wrote it (or will, for a deferred `--confirm`).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FileResult {
    /// As shown to the user (`/etc/sysctl.d/90-netprofile.conf`).
    pub path: String,
    /// `create`, `modify` or `remove`.
    pub action: &'static str,
    /// Written only at `netprofile confirm` (an `apply --confirm`).
    pub deferred: bool,
}

fn verb(before: Option<&String>, after: Option<&String>) -> &'static str {
    match (before, after) {
        (None, Some(_)) => "create",
        (Some(_), None) => "remove",
        _ => "modify",
    }
}

/// The keys and files of a list of changes, files marked `deferred` as asked.
#[must_use]
pub fn split_changes(changes: &[Change], deferred: bool) -> (Vec<KeyResult>, Vec<FileResult>) {
    let mut keys = Vec::new();
    let mut files = Vec::new();
    for change in changes {
        match change {
            Change::Sysctl { key, before, after } => keys.push(KeyResult {
                key: key.clone(),
                before: before.trim().to_string(),
                after: after.clone(),
            }),
            Change::File {
                path,
                before,
                after,
            } => files.push(FileResult {
                path: crate::system::root::Root::display(path),
                action: verb(before.as_ref(), after.as_ref()),
                deferred,
            }),
            // A running process's open-files limit (`apply --running`), as soft:hard.
            Change::Rlimit { before, after, .. } => keys.push(KeyResult {
                key: change.label(),
                before: before.to_string(),
                after: after.to_string(),
            }),
        }
    }
    (keys, files)
}

/// `apply --json` (not `--dry-run`, which prints the plan document).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ApplyResult {
    pub schema: Version,
    pub command: &'static str,
    pub exit_code: i32,
    pub exit_meaning: &'static str,
    pub dry_run: bool,
    /// True when a live value or file changed (or will at confirm).
    pub changed: bool,
    pub outcome: ApplyOutcome,
    /// `null` for `apply --pending`, which holds what earlier generations recorded.
    pub profile: Option<crate::profile::ProfileRef>,
    /// The generation recorded; `null` when nothing changed.
    pub generation: Option<u64>,
    pub keys: Vec<KeyResult>,
    pub files: Vec<FileResult>,
    /// `--confirm`: the seconds left and the deadline (ms since the epoch).
    pub confirm: Option<ConfirmWindow>,
    pub no_persist: bool,
    pub warnings: Vec<String>,
    /// `--verify`: the connection-test reports before and after.
    pub verify: Option<crate::transaction::state::Verify>,
    /// The one-line summary a person reads.
    pub summary: String,
}

/// What an apply that ran did (a failed one prints the error document instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ApplyOutcome {
    /// Live values and files changed.
    Applied,
    /// Live values changed; waits for `netprofile confirm`, files not yet written.
    Pending,
    /// Nothing to do: the machine already holds the profile.
    Unchanged,
}

#[derive(Debug, Clone, Copy, Serialize, schemars::JsonSchema)]
pub struct ConfirmWindow {
    pub seconds: u64,
    pub deadline_ms: u64,
}

/// `confirm --json`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ConfirmResult {
    pub schema: Version,
    pub command: &'static str,
    pub exit_code: i32,
    pub exit_meaning: &'static str,
    /// The generation that is now kept.
    pub confirmed: u64,
    /// The generation that wrote the deferred files; `null` when there were none.
    pub files_generation: Option<u64>,
    pub files: Vec<FileResult>,
    pub summary: String,
}

/// `rollback --json`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RollbackResult {
    pub schema: Version,
    pub command: &'static str,
    pub exit_code: i32,
    pub exit_meaning: &'static str,
    /// The generation whose state before it was restored; `null` when nothing was in effect.
    pub rolled_back: Option<u64>,
    /// The generation this rollback was recorded as; `null` when nothing was in effect.
    pub generation: Option<u64>,
    pub changed: bool,
    pub keys: Vec<KeyResult>,
    pub files: Vec<FileResult>,
    /// Hand-edited drop-ins that `--force` overwrote.
    pub overwrote_hand_edits: Vec<String>,
    /// A pending `--confirm` this rollback ended, if any.
    pub ended_pending: Option<u64>,
    pub summary: String,
}

/// `history --json`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct HistoryDoc<'a> {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub generations: &'a [Generation],
}

/// What a failed command prints on stdout under `--json`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ErrorDoc {
    pub schema: Version,
    pub command: String,
    pub exit_code: i32,
    pub exit_meaning: &'static str,
    pub error: ErrorBody,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ErrorBody {
    /// `usage`, `read`, `write`, `toml`, `invalid`, `state`, `apply-failed`, `rollback-failed`,
    /// `privilege` or `locked`.
    pub kind: &'static str,
    pub message: String,
    /// Each problem of an invalid profile, located.
    pub problems: Vec<ProblemDoc>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ProblemDoc {
    pub file: String,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

fn kind(e: &Error) -> &'static str {
    match e {
        Error::Usage(_) => "usage",
        Error::Read { .. } => "read",
        Error::Write { .. } => "write",
        Error::Toml { .. } => "toml",
        Error::Invalid(_) => "invalid",
        Error::State(_) => "state",
        Error::ApplyFailed { .. } => "apply-failed",
        Error::RollbackFailed { .. } => "rollback-failed",
        Error::Privilege { .. } => "privilege",
        Error::Locked { .. } => "locked",
    }
}

/// The error document of a failed command.
#[must_use]
pub fn error(command: &str, e: &Error) -> String {
    let code = e.exit_code();
    let problems = match e {
        Error::Invalid(problems) => problems
            .iter()
            .map(|p| ProblemDoc {
                file: p.file.clone(),
                line: p.line,
                key: p.key.clone(),
                message: p.message.clone(),
            })
            .collect(),
        _ => Vec::new(),
    };
    pretty(&ErrorDoc {
        schema: Version,
        command: command.to_string(),
        exit_code: code,
        exit_meaning: exit_meaning(code),
        error: ErrorBody {
            kind: kind(e),
            message: e.to_string(),
            problems,
        },
    })
}

/// The error document of a command line clap refused (exit 2).
#[must_use]
pub fn usage_error(message: &str) -> String {
    pretty(&ErrorDoc {
        schema: Version,
        command: "netprofile".into(),
        exit_code: 2,
        exit_meaning: exit_meaning(2),
        error: ErrorBody {
            kind: "usage",
            message: message.trim().to_string(),
            problems: Vec::new(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_documents_carry_code_kind_and_problems() {
        let e = Error::Invalid(vec![crate::error::Problem {
            file: "p.toml".into(),
            line: Some(3),
            key: Some("[sysctl] \"net.core.somaxconn\"".into()),
            message: "bad".into(),
        }]);
        let doc: serde_json::Value = serde_json::from_str(&error("apply", &e)).unwrap();
        assert_eq!(doc["exit_code"], 2);
        assert_eq!(doc["error"]["kind"], "invalid");
        assert_eq!(doc["error"]["problems"][0]["line"], 3);
        let e = Error::ApplyFailed {
            message: "x".into(),
        };
        let doc: serde_json::Value = serde_json::from_str(&error("apply", &e)).unwrap();
        assert_eq!(doc["exit_code"], 3);
        assert_eq!(doc["exit_meaning"], "apply failed and was rolled back");
    }
}
