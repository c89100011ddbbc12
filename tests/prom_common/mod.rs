//! A real Prometheus text-format parser for the tests: the Prometheus project's Python client
//! (`prometheus_client.parser`, Debian's python3-prometheus-client, installed by .ci/run). The
//! text goes in on stdin; the families come back as JSON. Every family must carry HELP and a
//! TYPE; the parser itself refuses a malformed line, escape or value.

#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    out.append({"name": f.name, "type": f.type, "help": f.documentation,
                "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]})
json.dump(out, sys.stdout)
"#;

/// The families of `text`, or `None` when the parser is not installed outside CI.
pub fn parse(text: &str) -> Option<Vec<Value>> {
    let probe = Command::new("/usr/bin/python3")
        .args(["-c", "import prometheus_client.parser"])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        let why = format!("python3-prometheus-client is not installed: {probe:?}");
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("skipped: {why}");
        return None;
    }
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "prometheus_client refused the metrics:\n{}\n--- text\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let families: Vec<Value> = serde_json::from_slice(&out.stdout).expect("parser JSON");
    for f in &families {
        assert!(
            f["help"].as_str().is_some_and(|h| !h.is_empty()),
            "family without HELP: {f}\n{text}"
        );
        assert!(
            matches!(f["type"].as_str(), Some("gauge" | "counter")),
            "family without a TYPE: {f}\n{text}"
        );
    }
    Some(families)
}

/// The family named `name` (a counter's name without `_total`).
pub fn family<'a>(families: &'a [Value], name: &str) -> &'a Value {
    families
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no family {name} in {families:#?}"))
}

/// The value of the sample of `family` whose labels include `labels`.
pub fn value(families: &[Value], name: &str, labels: &[(&str, &str)]) -> f64 {
    let f = family(families, name);
    f["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .find(|s| labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .and_then(|s| s["value"].as_f64())
        .unwrap_or_else(|| panic!("no sample {labels:?} in {f:#}"))
}
