//! `netprofile watch [--interval D] [--for D]`: reads doctor's snapshot every interval and
//! prints, as it goes, the counters' rates, the limits approaching and the limits binding;
//! at the end (or on Ctrl-C) the findings, present or past, and the proposal: profile TOML to
//! review. `--json` prints one document at the end instead (the progress then goes to stderr). Read-only: never writes a key or
//! a file, never takes the writer lock, never applies its proposal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Output;
use crate::cli::Config;
use crate::doctor::proc::Snapshot;
use crate::doctor::watch::{SampleRow, WatchFinding, Watcher, printable};
use crate::error::Result;

/// Set by SIGINT or SIGTERM: end the watch and print the summary.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // An atomic store is async-signal-safe.
    STOP.store(true, Ordering::SeqCst);
}

fn catch_signals() {
    let handler = on_signal as extern "C" fn(libc::c_int);
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(sig, handler as libc::sighandler_t);
        }
    }
}

/// The `--json` document.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct WatchDoc {
    #[serde(flatten)]
    pub envelope: crate::render::json::Envelope,
    pub interval_s: f64,
    /// How long it watched, in seconds.
    pub watched_s: f64,
    /// Ended early by Ctrl-C (SIGINT) or SIGTERM.
    pub interrupted: bool,
    pub samples: Vec<SampleRow>,
    pub findings: Vec<WatchFinding>,
    /// Profile TOML lifting what bound, to review; `null` when nothing bound.
    pub proposal: Option<String>,
    pub summary: String,
}

fn short(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

/// One interval as text lines: rates, approaching limits, what binds.
fn interval_text(config: &Config, row: &SampleRow, found: &[WatchFinding]) -> String {
    let mut out = String::new();
    let rates: Vec<String> = row
        .rates
        .iter()
        .filter(|(_, r)| **r > 0.0)
        .map(|(n, r)| format!("{} {r}/s", short(n)))
        .collect();
    out.push_str(&format!(
        "{:>7.1}s  {}\n",
        row.t_s,
        if rates.is_empty() {
            "no counter moved".to_string()
        } else {
            rates.join(", ")
        }
    ));
    for a in &row.approaching {
        out.push_str(&format!(
            "          approaching: {}{}{}: {} of {} ({:+}/s), binds in ~{:.0} s\n",
            a.limit,
            if a.subject.is_empty() {
                String::new()
            } else {
                format!(" at {}", printable(&a.subject))
            },
            a.process
                .as_deref()
                .map(|p| format!(" ({})", printable(p)))
                .unwrap_or_default(),
            a.used,
            a.ceiling,
            a.trend_per_s,
            a.binds_in_s
        ));
    }
    for f in found.iter().filter(|f| f.last_s >= row.t_s) {
        let evidence: Vec<String> = f
            .evidence
            .iter()
            .map(|e| format!("{} {}", e.name, e.value))
            .collect();
        out.push_str(&format!(
            "          {} {}: {}\n",
            config.paint.red("binds:"),
            f.id,
            printable(&evidence.join("; "))
        ));
    }
    out
}

fn summary_line(found: &[WatchFinding], watched: f64) -> String {
    if found.is_empty() {
        return format!("no limit bound in {watched:.0} s of watching");
    }
    let list: Vec<String> = found
        .iter()
        .map(|f| format!("{} ({})", f.id, f.state))
        .collect();
    format!(
        "{} bound in {watched:.0} s of watching: {}; the proposal lifts {}",
        if found.len() == 1 {
            "1 limit"
        } else {
            "limits"
        },
        list.join(", "),
        if found.len() == 1 { "it" } else { "them" }
    )
}

fn findings_text(found: &[WatchFinding]) -> String {
    let mut out = String::new();
    for f in found {
        out.push_str(&format!(
            "{} {}{}{}: {}/s {} at peak, from {} s to {} s\n",
            f.state,
            f.id,
            if f.subject.is_empty() {
                String::new()
            } else {
                format!(" at {}", printable(&f.subject))
            },
            match (&f.process, f.pid) {
                (Some(p), Some(pid)) => format!(" ({}, pid {pid})", printable(p)),
                (Some(p), None) => format!(" ({})", printable(p)),
                _ => String::new(),
            },
            f.rate_per_s,
            f.rate_of,
            f.first_s,
            f.last_s
        ));
    }
    out
}

/// `netprofile watch`.
pub fn watch(config: &Config, interval: Duration, length: Duration) -> Result<Output> {
    catch_signals();
    let start = Instant::now();
    let mut watcher = Watcher::new();
    sample(config, &mut watcher, start, interval, length)?;
    let interrupted = STOP.load(Ordering::SeqCst);
    let watched = start.elapsed().as_secs_f64();
    Ok(Output {
        code: 0,
        stdout: report(config, watcher, interval, watched, interrupted),
        stderr: Vec::new(),
    })
}

/// One snapshot per tick until `length` is over or a signal came; each interval's rates and
/// findings as they come (to stderr under --json, whose document is stdout's).
fn sample(
    config: &Config,
    watcher: &mut Watcher,
    start: Instant,
    interval: Duration,
    length: Duration,
) -> Result<()> {
    let header = format!(
        "watching every {} for {} (Ctrl-C ends early with the summary)\n",
        humantime::format_duration(interval),
        humantime::format_duration(length)
    );
    // Live lines pass the same terminal escaping and colour as the final output (lib.rs).
    let say = |text: &str| {
        if config.quiet {
            return;
        }
        let stream = if config.json {
            crate::Stream::Stderr
        } else {
            crate::Stream::Stdout
        };
        crate::print_human(stream, text);
    };
    let mut tick: u32 = 0;
    loop {
        let t = start.elapsed().as_secs_f64();
        let snap = Snapshot::read(&config.root)?;
        // Ctrl-C during a (slow) read: end with the intervals already complete.
        if STOP.load(Ordering::SeqCst) {
            return Ok(());
        }
        if tick == 0 {
            // After the first snapshot: from here on a change is measured (a script starting
            // load may wait for this line).
            say(&header);
        }
        if let Some(row) = watcher.push(t, &snap) {
            let row = row.clone();
            say(&interval_text(config, &row, &watcher.findings));
        }
        // The next tick still ahead: a snapshot slower than the interval (a loaded machine,
        // thousands of processes) skips ticks rather than stretching the watch past --for.
        tick += 1;
        while interval * tick <= start.elapsed() {
            tick += 1;
        }
        let next = interval * tick;
        if next > length || STOP.load(Ordering::SeqCst) {
            return Ok(());
        }
        // Sleep in short steps so Ctrl-C ends the watch at once.
        while start.elapsed() < next && !STOP.load(Ordering::SeqCst) {
            std::thread::sleep(
                next.saturating_sub(start.elapsed())
                    .min(Duration::from_millis(100)),
            );
        }
        if STOP.load(Ordering::SeqCst) {
            return Ok(());
        }
    }
}

/// The summary at the end: the document under --json, else findings and the proposal.
fn report(
    config: &Config,
    watcher: Watcher,
    interval: Duration,
    watched: f64,
    interrupted: bool,
) -> String {
    let proposal = watcher.proposal();
    let summary = summary_line(&watcher.findings, watched);
    if config.json {
        return crate::render::json::pretty(&WatchDoc {
            envelope: crate::render::json::Envelope::new("watch", 0),
            interval_s: interval.as_secs_f64(),
            watched_s: (watched * 1000.0).round() / 1000.0,
            interrupted,
            samples: watcher.samples,
            findings: watcher.findings,
            proposal,
            summary,
        });
    }
    let mut out = String::new();
    if interrupted {
        out.push_str("interrupted\n");
    }
    out.push_str(&findings_text(&watcher.findings));
    if let Some(p) = &proposal {
        out.push_str("proposal (review it; watch applied nothing):\n");
        out.push_str(p);
    }
    out.push_str(&config.paint.bold(&summary));
    out.push('\n');
    out
}
