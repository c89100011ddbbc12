//! Shared by tests/doctor.rs, tests/doctor_servers.rs and tests/explain.rs: a checker for the
//! subset of JSON Schema that docs/schema/doctor.json and explain.json use (type, required,
//! properties, additionalProperties, items, enum), so a test fails when --json and its
//! documented schema part ways; and the reader of the JSON documents a namespace script
//! printed one after another.

#![allow(dead_code)]

use serde_json::Value;

/// The schema document shipped in docs/schema/NAME.
pub fn schema(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/schema")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    }
}

/// Every place `value` breaks `schema`, as `path: problem` lines.
pub fn validate(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    if let Some(t) = schema.get("type") {
        let ok = match t {
            Value::String(t) => type_ok(t, value),
            Value::Array(ts) => ts
                .iter()
                .filter_map(Value::as_str)
                .any(|t| type_ok(t, value)),
            _ => true,
        };
        if !ok {
            errors.push(format!("{path}: {value} is not {t}"));
            return;
        }
    }
    if let Some(Value::Array(options)) = schema.get("enum")
        && !options.contains(value)
    {
        errors.push(format!("{path}: {value} not in {options:?}"));
    }
    if let Value::Object(map) = value {
        if let Some(Value::Array(required)) = schema.get("required") {
            for r in required.iter().filter_map(Value::as_str) {
                if !map.contains_key(r) {
                    errors.push(format!("{path}: missing {r}"));
                }
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, v) in map {
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate(s, v, &format!("{path}.{k}"), errors),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    errors.push(format!("{path}: unexpected property {k}"));
                }
                None => {}
            }
        }
    }
    if let (Value::Array(items), Some(s)) = (value, schema.get("items")) {
        for (i, v) in items.iter().enumerate() {
            validate(s, v, &format!("{path}[{i}]"), errors);
        }
    }
}

/// Panics with every violation when `value` does not follow docs/schema/NAME.
pub fn assert_schema(name: &str, value: &Value) {
    let mut errors = Vec::new();
    validate(&schema(name), value, "$", &mut errors);
    assert!(
        errors.is_empty(),
        "{name}:\n{}\n{value:#}",
        errors.join("\n")
    );
}

/// Every JSON document a script printed, in order (each starts with a line `{`), doctor's
/// checked against docs/schema/doctor.json. Panics with the whole output when one does not
/// parse.
pub fn json_docs(out: &std::process::Output) -> Vec<Value> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let whole = || format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let mut docs = Vec::new();
    let mut current = String::new();
    for line in stdout.lines() {
        if line == "{" && !current.is_empty() {
            docs.push(std::mem::take(&mut current));
        }
        if line == "{" || !current.is_empty() {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs.push(current);
    let docs: Vec<Value> = docs
        .iter()
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}\n{}", whole())))
        .collect();
    for doc in &docs {
        if doc.get("findings").is_some() {
            assert_schema("doctor.json", doc);
        }
    }
    docs
}
