//! `--plot FILE.svg`: connections established over time and the connect-latency distribution,
//! one series per report (before and after side by side in a comparison). Hand-written SVG:
//! two panels of lines and steps need no plotting crate. Pure string building.

use std::fmt::Write as _;

use super::report::Report;

const W: f64 = 460.0;
const H: f64 = 300.0;
const PAD: f64 = 50.0;
const COLOURS: [&str; 2] = ["#c0392b", "#27ae60"];

fn label(r: &Report) -> String {
    r.settings
        .profile
        .clone()
        .unwrap_or_else(|| "kernel defaults".into())
}

#[allow(clippy::cast_precision_loss)]
fn panel(out: &mut String, x0: f64, title: &str, x_label: &str, y_label: &str) {
    let _ = write!(
        out,
        r#"<g transform="translate({x0},0)"><text x="{}" y="20" text-anchor="middle" font-size="14">{title}</text>
<line x1="{PAD}" y1="{}" x2="{}" y2="{}" stroke="black"/><line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{}" stroke="black"/>
<text x="{}" y="{}" text-anchor="middle" font-size="11">{x_label}</text>
<text x="12" y="{}" font-size="11" transform="rotate(-90 12 {})" text-anchor="middle">{y_label}</text></g>
"#,
        W / 2.0,
        H - PAD,
        W - 10.0,
        H - PAD,
        H - PAD,
        W / 2.0,
        H - 12.0,
        H / 2.0,
        H / 2.0
    );
}

/// The largest time, count, latency and bucket count across the reports: the panels' scales.
struct Scales {
    t_max: f64,
    n_max: f64,
    lat_max: f64,
    count_max: f64,
}

#[allow(clippy::cast_precision_loss)]
fn scales(reports: &[&Report]) -> Scales {
    // The largest value of a field across the reports' series (at least `floor`), for scales.
    let largest = |series: &dyn Fn(&Report) -> Vec<u64>, floor: u64| {
        reports
            .iter()
            .flat_map(|r| series(r))
            .max()
            .unwrap_or(floor)
            .max(floor) as f64
    };
    Scales {
        t_max: largest(&|r| r.timeline.iter().map(|(t, _)| *t).collect(), 1),
        n_max: largest(&|r| r.timeline.iter().map(|(_, n)| *n).collect(), 1),
        lat_max: largest(
            &|r| r.latency_buckets.iter().map(|(us, _)| *us).collect(),
            10,
        ),
        count_max: largest(&|r| r.latency_buckets.iter().map(|(_, c)| *c).collect(), 1),
    }
}

/// The ends of both panels' axes: 0 and the largest time or latency, and the largest count.
fn axis_ends(out: &mut String, s: &Scales) {
    let (t_max, n_max, lat_max, count_max) = (s.t_max, s.n_max, s.lat_max, s.count_max);
    let _ = writeln!(
        out,
        r#"<text x="{PAD}" y="{}" font-size="10">0</text><text x="{}" y="{}" font-size="10" text-anchor="end">{:.1}</text><text x="{}" y="{}" font-size="10" text-anchor="end">{n_max}</text>"#,
        H - PAD + 12.0,
        W - 10.0,
        H - PAD + 12.0,
        t_max / 1000.0,
        PAD - 2.0,
        PAD + 4.0
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" font-size="10">0.001</text><text x="{}" y="{}" font-size="10" text-anchor="end">{:.1}</text><text x="{}" y="{}" font-size="10" text-anchor="end">{count_max}</text>"#,
        W + PAD,
        H - PAD + 12.0,
        2.0 * W - 10.0,
        H - PAD + 12.0,
        lat_max / 1000.0,
        W + PAD - 2.0,
        PAD + 4.0
    );
}

/// Report number `i`: its timeline, its latency steps and its legend line, in its colour.
#[allow(clippy::cast_precision_loss)]
fn series(out: &mut String, i: usize, r: &Report, s: &Scales) {
    let (pw, ph) = (W - PAD - 10.0, H - 2.0 * PAD);
    let log_max = (s.lat_max).log10().max(1.0);
    let colour = COLOURS[i % COLOURS.len()];
    let points: Vec<String> = r
        .timeline
        .iter()
        .map(|(t, n)| {
            format!(
                "{:.1},{:.1}",
                PAD + *t as f64 / s.t_max * pw,
                H - PAD - *n as f64 / s.n_max * ph
            )
        })
        .collect();
    let _ = writeln!(
        out,
        r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
        points.join(" ")
    );
    let steps: Vec<String> = r
        .latency_buckets
        .iter()
        .map(|(us, c)| {
            let x = W + PAD + ((*us).max(1) as f64).log10() / log_max * pw;
            format!("{x:.1},{:.1}", H - PAD - *c as f64 / s.count_max * ph)
        })
        .collect();
    let _ = writeln!(
        out,
        r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
        steps.join(" ")
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" font-size="12" fill="{colour}">{} ({}: {})</text>"#,
        PAD + 10.0,
        H + 10.0 + 14.0 * i as f64,
        label(r),
        r.verdict.limit,
        r.established
    );
}

/// An SVG of the reports' timelines and latency distributions.
#[must_use]
pub fn svg(reports: &[&Report]) -> String {
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
"#,
        W * 2.0,
        H + 30.0
    );
    panel(
        &mut out,
        0.0,
        "connections established",
        "seconds",
        "connections",
    );
    panel(
        &mut out,
        W,
        "connect latency",
        "milliseconds (log)",
        "connects",
    );
    let scales = scales(reports);
    axis_ends(&mut out, &scales);
    for (i, r) in reports.iter().enumerate() {
        series(&mut out, i, r, &scales);
    }
    out.push_str("</svg>\n");
    out
}
