//! `--json` on every command: each document validates against its published schema under
//! docs/schema/ (tests/common validates every `--json` run of the tests; this file runs each
//! command through its outcomes: changed, unchanged, dry run, pending, failed, refused), and
//! the schemas themselves are valid JSON Schema.

mod common;

use std::process::Command;

use common::{JSON_COMMANDS, Test, text, validate_json};
use serde_json::Value;

const PROFILE: &str = r#"
[profile]
name = "t"

[sysctl]
"net.core.somaxconn" = 65535

[[limits]]
domain = "*"
type = "-"
item = "nofile"
value = 65536

[systemd]
default_limit_nofile = 65536
"#;

fn setup() -> Test {
    Test::new().profile("t.toml", PROFILE)
}

fn doc(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn every_schema_is_valid_json_schema_and_every_command_has_one() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema");
    let mut names: Vec<String> = JSON_COMMANDS.iter().map(ToString::to_string).collect();
    names.push("error".into());
    for name in &names {
        let path = dir.join(format!("{name}.json"));
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(e) = jsonschema::meta::validate(&schema) {
            panic!("{}: {e}", path.display());
        }
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/json.md"),
        )
        .unwrap();
        assert!(
            doc.contains(&format!("docs/schema/{name}.json")),
            "docs/json.md does not name docs/schema/{name}.json"
        );
    }
    // No schema without a command.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let stem = name.trim_end_matches(".json");
        assert!(names.iter().any(|n| n == stem), "{name} has no command");
    }
}

#[test]
fn apply_reports_each_key_file_and_generation_then_nothing_to_do() {
    let out = setup().args(&["--json", "apply", "t.toml"]).run().code(0);
    let d = doc(&out.stdout);
    assert_eq!(d["changed"], true);
    assert_eq!(d["outcome"], "applied");
    assert_eq!(d["generation"], 1);
    assert_eq!(d["exit_code"], 0);
    assert_eq!(
        d["keys"][0],
        serde_json::json!({"key": "net.core.somaxconn", "before": "4096", "after": "65535"})
    );
    let files: Vec<&str> = d["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            "/etc/sysctl.d/90-netprofile.conf",
            "/etc/security/limits.d/90-netprofile.conf",
            "/etc/systemd/system.conf.d/90-netprofile.conf"
        ]
    );
    let out = out.then(&["--json", "apply", "t.toml"]).code(0);
    let d = doc(&out.stdout);
    assert_eq!(d["changed"], false);
    assert_eq!(d["outcome"], "unchanged");
    assert_eq!(d["generation"], Value::Null);
    assert!(
        d["summary"]
            .as_str()
            .unwrap()
            .starts_with("nothing to do: in sync")
    );
    let out = out.then(&["--json", "history"]).code(0);
    assert_eq!(doc(&out.stdout)["generations"].as_array().unwrap().len(), 1);
    let out = out.then(&["--json", "status"]).code(0);
    assert_eq!(doc(&out.stdout)["in_sync"], true);
    let out = out.then(&["--json", "rollback"]).code(0);
    let d = doc(&out.stdout);
    assert_eq!(
        (d["rolled_back"].as_u64(), d["generation"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(d["keys"][0]["after"], "4096");
    assert_eq!(d["files"].as_array().unwrap().len(), 3);
}

#[test]
fn dry_run_is_the_plan_with_exit_1() {
    let out = setup()
        .args(&["--json", "apply", "--dry-run", "t.toml"])
        .run()
        .code(1);
    let d = doc(&out.stdout);
    assert_eq!(d["command"], "apply");
    assert_eq!(d["dry_run"], true);
    assert_eq!(d["in_sync"], false);
    assert_eq!(d["exit_code"], 1);
    assert_eq!(d["exit_meaning"], "differences found");
    assert!(
        out.system_files()
            .iter()
            .all(|(p, _)| !p.ends_with("90-netprofile.conf"))
    );
    let out = out.then(&["--json", "diff", "t.toml"]).code(1);
    assert_eq!(doc(&out.stdout)["command"], "diff");
    let out = out.then(&["--json", "check", "t.toml"]).code(1);
    assert_eq!(doc(&out.stdout)["command"], "check");
}

#[test]
fn a_failed_apply_prints_an_error_document_with_its_code() {
    let out = setup()
        .env("NETPROFILE_FAULT", "fail:change:2")
        .args(&["--json", "apply", "t.toml"])
        .run()
        .code(3);
    let d = doc(&out.stdout);
    assert_eq!(d["command"], "apply");
    assert_eq!(d["exit_code"], 3);
    assert_eq!(d["error"]["kind"], "apply-failed");
    assert_eq!(d["exit_meaning"], "apply failed and was rolled back");
    assert!(out.stderr.contains("error: "), "{}", out.stderr);
}

#[test]
fn a_refused_profile_prints_each_problem_with_exit_2() {
    let out = Test::new()
        .profile(
            "bad.toml",
            "[sysctl]\n\"net.core.somaxconn\" = 1\n\"net.core.nosuchkey\" = 1\n",
        )
        .args(&["--json", "apply", "bad.toml"])
        .run()
        .code(2);
    let d = doc(&out.stdout);
    assert_eq!(d["exit_code"], 2);
    assert_eq!(d["error"]["kind"], "invalid");
    let problem = &d["error"]["problems"][0];
    assert_eq!(problem["file"], "bad.toml");
    assert_eq!(problem["line"], 3);
}

#[test]
fn a_refused_command_line_is_a_document_too() {
    let out = Test::new().args(&["--json", "rollback", "x"]).run().code(2);
    let d = doc(&out.stdout);
    assert_eq!(d["error"]["kind"], "usage");
    assert!(
        d["error"]["message"].as_str().unwrap().contains("'x'"),
        "{d:#}"
    );
}

#[test]
fn confirm_pending_then_confirmed() {
    let out = setup()
        .args(&["--json", "apply", "--confirm", "60", "t.toml"])
        .run()
        .code(0);
    let d = doc(&out.stdout);
    assert_eq!(d["outcome"], "pending");
    assert_eq!(d["confirm"]["seconds"], 60);
    assert!(
        d["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["deferred"] == true)
    );
    let out = out.then(&["--json", "status"]).code(0);
    assert_eq!(doc(&out.stdout)["pending"]["generation"], 1);
    let out = out.then(&["--json", "confirm"]).code(0);
    let d = doc(&out.stdout);
    assert_eq!(d["confirmed"], 1);
    assert_eq!(d["files_generation"], 2);
    assert_eq!(d["files"].as_array().unwrap().len(), 3);
    let out = out.then(&["--json", "confirm"]).code(2);
    assert_eq!(doc(&out.stdout)["error"]["kind"], "state");
    out.then(&["--json", "profiles"]).code(0);
}

/// The schemas are generated from the report types (`netprofile __generate schema DIR`): the
/// committed ones must be exactly what the binary generates, and every object in them closed.
#[test]
fn the_committed_schemas_are_the_generated_ones_and_closed() {
    let fresh = tempfile::tempdir().unwrap();
    let out = netprofile(&["__generate", "schema", &fresh.path().display().to_string()]);
    assert!(out.status.success(), "{}", text(&out));
    let committed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema");
    let names = |dir: &std::path::Path| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(&committed),
        names(fresh.path()),
        "docs/schema/ is not what `netprofile __generate schema docs/schema` writes"
    );
    for name in names(fresh.path()) {
        let new = std::fs::read_to_string(fresh.path().join(&name)).unwrap();
        let old = std::fs::read_to_string(committed.join(&name)).unwrap();
        assert!(
            new == old,
            "docs/schema/{name} differs from the generated one: run \
             `cargo run -- __generate schema docs/schema` and commit the result"
        );
        let schema: Value = serde_json::from_str(&new).unwrap();
        assert_closed(&schema, &name);
    }
}

/// Every object schema that lists properties says `additionalProperties: false`.
fn assert_closed(schema: &Value, at: &str) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") {
                assert_eq!(
                    map.get("additionalProperties"),
                    Some(&Value::Bool(false)),
                    "{at}: an open object"
                );
            }
            for (key, value) in map {
                assert_closed(value, &format!("{at}/{key}"));
            }
        }
        Value::Array(items) => {
            for (i, value) in items.iter().enumerate() {
                assert_closed(value, &format!("{at}/{i}"));
            }
        }
        _ => {}
    }
}

fn netprofile(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_netprofile"))
        .args(args)
        .output()
        .expect("run netprofile")
}

#[test]
fn the_connection_test_documents_validate() {
    for args in [
        &["--json", "test", "churn", "-n", "300"][..],
        &["--json", "test", "hold", "-n", "300", "--duration", "0.1"][..],
    ] {
        let out = netprofile(args);
        assert!(out.status.success(), "{}", text(&out));
        validate_json(args, &String::from_utf8_lossy(&out.stdout));
    }
    // A free loopback port: port 0 is refused (a remote client could not know the port).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let args = [
        "--json",
        "test",
        "serve",
        "--listen",
        &listen,
        "--duration",
        "0.2",
    ];
    let out = netprofile(&args);
    assert!(out.status.success(), "{}", text(&out));
    let d = validate_json(&args, &String::from_utf8_lossy(&out.stdout));
    assert_eq!(d["place"], "serve");
}

#[test]
fn a_refused_rollback_and_a_live_only_apply_are_documents_too() {
    let out = setup()
        .args(&["--json", "apply", "--no-persist", "t.toml"])
        .run()
        .code(0);
    let d = doc(&out.stdout);
    assert_eq!(d["no_persist"], true);
    assert_eq!(d["files"], serde_json::json!([]));
    assert_eq!(
        d["warnings"][0],
        "limits and systemd settings live only in files; with --no-persist they were not applied"
    );
    let out = out.then(&["apply", "-q", "t.toml"]).code(0);
    let path = out.root().join("etc/sysctl.d/90-netprofile.conf");
    std::fs::write(&path, "net.core.somaxconn = 1\n").unwrap();
    let out = out.then(&["--json", "rollback"]).code(2);
    let d = doc(&out.stdout);
    assert_eq!(d["command"], "rollback");
    assert_eq!(d["error"]["kind"], "usage");
    assert!(
        d["error"]["message"]
            .as_str()
            .unwrap()
            .contains("-net.core.somaxconn = 65535\n+net.core.somaxconn = 1"),
        "{d:#}"
    );
    let out = out.then(&["--json", "rollback", "--force"]).code(0);
    assert_eq!(
        doc(&out.stdout)["overwrote_hand_edits"],
        serde_json::json!(["/etc/sysctl.d/90-netprofile.conf"])
    );
}

#[test]
fn profiles_name_and_render_are_documents_with_the_envelope() {
    let out = Test::new()
        .args(&["--json", "profiles", "base"])
        .run()
        .code(0);
    let d = doc(&out.stdout);
    assert_eq!(
        (&d["command"], &d["exit_code"], &d["name"]),
        (
            &Value::from("profiles"),
            &Value::from(0),
            &Value::from("base")
        )
    );
    assert!(d["toml"].as_str().unwrap().contains("[profile]"), "{d:#}");
    let out = setup().args(&["--json", "render", "t.toml"]).run().code(0);
    let d = doc(&out.stdout);
    assert_eq!(d["command"], "render");
    assert_eq!(d["exit_meaning"], "ok");
    assert_eq!(d["files"][0]["path"], "/etc/sysctl.d/90-netprofile.conf");
    assert!(
        d["files"][0]["content"]
            .as_str()
            .unwrap()
            .contains("net.core.somaxconn = 65535"),
        "{d:#}"
    );
}

#[test]
fn history_shows_a_rolled_back_generation_and_explain_the_same_generation() {
    let out = setup()
        .args(&["apply", "-q", "t.toml"])
        .run()
        .code(0)
        .then(&["rollback", "-q"])
        .code(0)
        .then(&["--json", "history"])
        .code(0);
    let d = doc(&out.stdout);
    let first = &d["generations"][0];
    assert_eq!(
        (&first["generation"], &first["outcome"]),
        (&Value::from(1), &Value::from("rolled-back"))
    );
    assert_eq!(d["generations"][1]["rollback_of"], 1);
    let out = out
        .then(&["--json", "explain", "net.core.somaxconn"])
        .code(0);
    let e = doc(&out.stdout);
    assert_eq!(e["command"], "explain");
    // The same generation as history shows it, every field, plus the key before and after.
    let mut g = e["generations"][0].clone();
    let change = g.as_object_mut().unwrap();
    assert_eq!(
        (change.remove("before"), change.remove("after")),
        (Some(Value::from("4096")), Some(Value::from("65535"))),
        "{e:#}"
    );
    assert_eq!(&g, first, "{e:#}");
}

/// The violations docs/schema/NAME.json finds in a real document with one field replaced.
fn violations_with(name: &str, real: &Value, field: &str, wrong: Value) -> Vec<String> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("docs/schema/{name}.json"));
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut doc = real.clone();
    doc[field] = wrong;
    validator.iter_errors(&doc).map(|e| e.to_string()).collect()
}

#[test]
fn a_document_of_another_version_or_an_unknown_apply_outcome_fails_its_schema() {
    let out = setup().args(&["--json", "apply", "t.toml"]).run().code(0);
    let apply = doc(&out.stdout);
    let out = out.then(&["--json", "history"]).code(0);
    let history = doc(&out.stdout);
    let out = out.then(&["--json", "status"]).code(0);
    let status = doc(&out.stdout);
    let out = out.then(&["--json", "rollback"]).code(0);
    let rollback = doc(&out.stdout);
    for (name, real) in [
        ("apply", &apply),
        ("history", &history),
        ("status", &status),
        ("rollback", &rollback),
    ] {
        // The real document passes (tests/common validated it); the same with schema 2 too.
        assert_eq!(
            violations_with(name, real, "schema", Value::from(2)),
            Vec::<String>::new()
        );
        for version in [1, 3] {
            assert!(
                !violations_with(name, real, "schema", Value::from(version)).is_empty(),
                "{name}.json accepts schema {version}"
            );
        }
    }
    for outcome in ["applied", "pending", "unchanged"] {
        assert_eq!(
            violations_with("apply", &apply, "outcome", Value::from(outcome)),
            Vec::<String>::new()
        );
    }
    for outcome in ["failed", "done", "rolled-back"] {
        assert!(
            !violations_with("apply", &apply, "outcome", Value::from(outcome)).is_empty(),
            "apply.json accepts outcome {outcome}"
        );
    }
}

#[test]
fn apply_pending_is_the_apply_document_unchanged_then_applied() {
    let out = Test::new()
        .profile(
            "b.toml",
            "[profile]\nname = \"b\"\n[sysctl]\n\"net.core.somaxconn\" = { min = 8192 }\n",
        )
        .args(&["apply", "-q", "b.toml"])
        .run()
        .code(0)
        .then(&["--json", "apply", "--pending"])
        .code(0);
    let d = doc(&out.stdout);
    assert_eq!(
        (
            &d["command"],
            &d["outcome"],
            &d["generation"],
            &d["profile"]
        ),
        (
            &Value::from("apply"),
            &Value::from("unchanged"),
            &Value::Null,
            &Value::Null
        )
    );
    assert!(
        d["summary"].as_str().unwrap().starts_with("nothing to do"),
        "{d:#}"
    );
    // Something lowered the key below its bound: apply --pending raises it back.
    std::fs::write(out.root().join("proc/sys/net/core/somaxconn"), "1024\n").unwrap();
    let out = out.then(&["--json", "apply", "--pending"]).code(0);
    let d = doc(&out.stdout);
    assert_eq!(
        (&d["outcome"], &d["generation"]),
        (&Value::from("applied"), &Value::from(2))
    );
    assert_eq!(
        d["keys"][0],
        serde_json::json!({"key": "net.core.somaxconn", "before": "1024", "after": "8192"})
    );
}
