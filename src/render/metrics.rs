//! The Prometheus text exposition format (version 0.0.4), as node_exporter's textfile
//! collector reads it: one `# HELP` and one `# TYPE` line per family, then its samples, label
//! values and help text escaped as the format says (backslash, double quote, newline). No
//! timestamps: the textfile collector refuses them. Pure: builds text, never performs I/O.

use std::fmt::Write as _;

/// A family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

/// One metric family and its samples.
#[derive(Debug, Clone)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Family {
    #[must_use]
    pub fn new(name: &'static str, kind: Kind, help: &'static str) -> Self {
        Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    /// Adds a sample with these labels.
    pub fn add(&mut self, labels: &[(&'static str, &str)], value: f64) {
        self.samples.push((
            labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect(),
            value,
        ));
    }
}

/// A label value as the format wants it inside double quotes.
#[must_use]
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Help text: backslash and newline escaped (quotes stay).
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value: integers without a fraction, `NaN`, `+Inf`, `-Inf` as the format spells them.
#[must_use]
pub fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// The families as exposition text; a family without samples is left out.
#[must_use]
pub fn render(families: &[Family]) -> String {
    let mut out = String::new();
    for f in families.iter().filter(|f| !f.samples.is_empty()) {
        let kind = match f.kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(f.help));
        let _ = writeln!(out, "# TYPE {} {kind}", f.name);
        for (labels, v) in &f.samples {
            out.push_str(f.name);
            if !labels.is_empty() {
                let l: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                    .collect();
                let _ = write!(out, "{{{}}}", l.join(","));
            }
            let _ = writeln!(out, " {}", value(*v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_values_are_escaped_as_the_format_says() {
        let cases = [
            ("plain", "plain"),
            ("a\"b", "a\\\"b"),
            ("back\\slash", "back\\\\slash"),
            ("two\nlines", "two\\nlines"),
        ];
        for (raw, want) in cases {
            assert_eq!(escape_label(raw), want, "{raw:?}");
        }
        let values = [
            (0.0, "0"),
            (42.0, "42"),
            (0.25, "0.25"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
        ];
        for (v, want) in values {
            assert_eq!(value(v), want);
        }
    }

    #[test]
    fn an_empty_family_is_left_out() {
        let mut a = Family::new("x_total", Kind::Counter, "An x.\nSecond line");
        a.add(&[("k", "v\"")], 3.0);
        let b = Family::new("y", Kind::Gauge, "Nothing.");
        assert_eq!(
            render(&[a, b]),
            "# HELP x_total An x.\\nSecond line\n# TYPE x_total counter\nx_total{k=\"v\\\"\"} 3\n"
        );
    }
}
