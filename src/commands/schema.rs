//! The JSON Schemas of every `--json` document (docs/schema/*.json), generated from the report
//! types themselves so that the published contract cannot drift from what the commands print.
//! `netprofile __generate schema DIR` writes them; tests/json_schema.rs fails when the committed
//! files differ from a fresh run. Every object is closed (`additionalProperties: false`): a
//! field printed but not declared is a failure, not a silent extension. Pure: no I/O here.

use schemars::generate::SchemaSettings;
use schemars::transform::RecursiveTransform;
use schemars::{JsonSchema, Schema};

/// Closes every object that lists its properties (maps, which declare only their values'
/// schema, stay open to any key).
fn close(schema: &mut Schema) {
    if let Some(object) = schema.as_object_mut()
        && object.contains_key("properties")
        && !object.contains_key("additionalProperties")
    {
        object.insert("additionalProperties".into(), false.into());
    }
}

fn schema_for<T: JsonSchema>(title: &str) -> Schema {
    let mut schema = SchemaSettings::draft2020_12()
        .for_serialize()
        .with_transform(RecursiveTransform(close))
        .into_generator()
        .into_root_schema_for::<T>();
    schema.insert("title".into(), title.into());
    schema
}

/// `apply --json`: what it did (`apply`, `apply --confirm`, `apply --pending`), or the plan
/// (`apply --dry-run`). Only a schema: each path prints its own type.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum Apply {
    Result(Box<crate::render::json::ApplyResult>),
    Plan(crate::render::JsonPlan<'static>),
}

/// `(file stem, schema)` for every document, in the order docs/json.md lists them.
#[must_use]
pub fn documents() -> Vec<(&'static str, Schema)> {
    use crate::render::json;
    vec![
        (
            "diff",
            schema_for::<crate::render::JsonPlan<'static>>("netprofile diff PROFILE --json"),
        ),
        (
            "check",
            schema_for::<crate::render::JsonPlan<'static>>("netprofile check PROFILE --json"),
        ),
        (
            "apply",
            schema_for::<Apply>("netprofile apply PROFILE --json"),
        ),
        (
            "confirm",
            schema_for::<json::ConfirmResult>("netprofile confirm --json"),
        ),
        (
            "rollback",
            schema_for::<json::RollbackResult>("netprofile rollback --json"),
        ),
        (
            "history",
            schema_for::<json::HistoryDoc<'static>>("netprofile history --json"),
        ),
        (
            "status",
            schema_for::<super::status::StatusDoc>("netprofile status --json"),
        ),
        (
            "doctor",
            schema_for::<super::doctor::Document<'static>>("netprofile doctor --json"),
        ),
        (
            "explain",
            schema_for::<super::explain::Document>("netprofile explain KEY --json"),
        ),
        (
            "watch",
            schema_for::<super::watch::WatchDoc>("netprofile watch --json"),
        ),
        (
            "test",
            schema_for::<super::test::Document>("netprofile test --json"),
        ),
        (
            "profiles",
            schema_for::<super::profiles::Document>("netprofile profiles [NAME] --json"),
        ),
        (
            "render",
            schema_for::<super::render::Document>("netprofile render PROFILE --json"),
        ),
        (
            "error",
            schema_for::<json::ErrorDoc>("netprofile: any command that fails, under --json"),
        ),
    ]
}

/// Each schema as the file docs/schema/NAME.json holds it: pretty JSON and a newline.
#[must_use]
pub fn files() -> Vec<(String, String)> {
    documents()
        .into_iter()
        .map(|(name, schema)| (format!("{name}.json"), json_text(&schema)))
        .collect()
}

fn json_text(schema: &Schema) -> String {
    serde_json::to_string_pretty(schema).unwrap_or_default() + "\n"
}
