//! `netprofile doctor`: the findings and the binding limit (doctor/findings.rs), or with
//! `--connections N` the limits N connections would meet (doctor/capacity.rs), as text or JSON.
//! `--verify` runs the connection test in the sandbox as a child process. Findings come from
//! two samples `--interval` apart (doctor/rates.rs) so counters say "now" or "in the past",
//! with the known servers' own caps (doctor/apps.rs). Read-only: never writes a key or a file
//! and never takes the writer lock.

use super::Output;
use crate::cli::Config;
use crate::doctor::apps::{self, App};
use crate::doctor::capacity::{self, Limit, Question};
use crate::doctor::findings::{self, Context, Finding, Severity};
use crate::doctor::proc::{Listener, Process, Snapshot};
use crate::doctor::rates;
use crate::error::{Error, Result};
use crate::render::terminal::{one_line, value};
use crate::system::root::Namespace;
use crate::transaction::state::{Change, Outcome, generations};

/// `doctor --json`: docs/schema/doctor.json.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct Document<'a> {
    #[serde(flatten)]
    envelope: crate::render::json::Envelope,
    namespace: Option<Namespace>,
    findings: &'a [Finding],
    binding: Option<&'static str>,
    summary: &'a str,
    /// Seconds between the two samples; `null` when one was taken (`--interval 0`).
    interval_s: Option<f64>,
    listeners: &'a [Listener],
    processes: &'a [Process],
    /// Processes without a listener near their nofile (clients).
    clients: &'a [Process],
    /// Known servers and the settings that cap their connections.
    apps: &'a [App],
    slab_per_socket: Slab,
    capacity: Option<CapacityDoc<'a>>,
}

#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct Slab {
    bytes: u64,
    source: &'static str,
}

#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct CapacityDoc<'a> {
    connections: u64,
    rate: Option<u64>,
    outgoing: bool,
    limits: &'a [Limit],
    first_binding: Option<String>,
    verify: Option<&'a Verify>,
}

/// (generation, somaxconn before, after) for each applied generation that changed it.
fn somaxconn_changes(config: &Config) -> Vec<(u64, u64, u64)> {
    // Read-only and best effort: state doctor cannot trust or read is left out.
    let Ok(all) = generations(&config.root) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for g in all {
        if !matches!(g.outcome, Outcome::Applied | Outcome::Pending) {
            continue;
        }
        for c in &g.changes {
            if let Change::Sysctl { key, before, after } = c
                && key == "net.core.somaxconn"
                && let (Ok(b), Ok(a)) = (before.trim().parse(), after.trim().parse())
            {
                out.push((g.number, b, a));
            }
        }
    }
    out
}

/// What `--verify` found.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Verify {
    pub command: String,
    pub attempted: Option<u64>,
    pub held: Option<u64>,
    pub verdict: Option<String>,
    pub verdict_text: Option<String>,
    /// The test held all N exactly when no machine-wide limit was predicted to bind (its
    /// workers sidestep the per-process ones).
    pub confirms: bool,
}

/// `netprofile doctor [--connections N [--rate R] [--outgoing] [--verify]]`.
pub fn doctor(
    config: &Config,
    question: Option<Question>,
    verify: bool,
    interval: Option<std::time::Duration>,
) -> Result<Output> {
    let interval = interval.map_or_else(
        || default_interval(config, question.is_some()),
        |d| d.as_secs_f64(),
    );
    let (snap, sampled) = rates::sample(&config.root, interval)?;
    let known = apps::read(&config.root, &snap);
    let changes = somaxconn_changes(config);
    let (lockouts, pam_limits, lockout_note) = login_lockouts(config);
    let ctx = Context {
        rates: sampled.as_ref(),
        apps: &known,
        somaxconn_changes: &changes,
        lockouts: &lockouts,
        pam_limits: &pam_limits,
    };
    let all = findings::findings_in(&snap, &ctx);
    let (top, line) = findings::binding(&all);
    let cap = question.map(|q| (q, capacity::limits(&snap, q)));
    let verified = match (&cap, verify) {
        (Some((q, limits)), true) => Some(run_verify(config, &snap, *q, limits)?),
        _ => None,
    };
    let stdout = if config.json {
        crate::render::json::pretty(&Document {
            envelope: crate::render::json::Envelope::new("doctor", 0),
            namespace: snap.namespace,
            findings: &all,
            binding: top.map(|f| f.limit),
            summary: &line,
            interval_s: sampled.as_ref().map(|r| r.seconds),
            listeners: &snap.listeners,
            processes: &snap.processes,
            clients: &snap.clients,
            apps: &known,
            slab_per_socket: Slab {
                bytes: snap.slab_per_socket,
                source: snap.slab_source,
            },
            capacity: cap.as_ref().map(|(q, limits)| CapacityDoc {
                connections: q.connections,
                rate: q.rate,
                outgoing: q.outgoing,
                limits,
                first_binding: limits.iter().find(|l| l.binds).map(|l| l.limit.clone()),
                verify: verified.as_ref(),
            }),
        })
    } else if let Some((q, limits)) = &cap {
        capacity_text(config, *q, limits, verified.as_ref())
    } else {
        format!(
            "{}{}\n",
            findings_text(config, &all),
            config.paint.bold(&one_line(&line))
        )
    };
    let mut stderr = notes(config, &snap);
    stderr.extend(lockout_note);
    Ok(Output {
        code: 0,
        stdout,
        stderr,
    })
}

/// Why pam_limits refuses logins on the root, whatever profile is in force: the causes
/// `system::login_lockouts` models (the model diff, check and explain use), the pam_limits
/// version they were modelled on, and a note when the limits files could not be read. Nothing
/// when pam_limits is not installed under the root.
fn login_lockouts(
    config: &Config,
) -> (Vec<crate::system::limits::Failure>, String, Option<String>) {
    let root = &config.root;
    if !crate::system::pam_limits_installed(root) {
        return (Vec::new(), String::new(), None);
    }
    let versions = crate::system::versions(root);
    let model = versions
        .models()
        .into_iter()
        .find(|m| m.program == "pam_limits")
        .map(|m| m.short())
        .unwrap_or_default();
    match crate::system::login_lockouts_under(root, versions.pam_rules()) {
        Ok(found) => (found, model, None),
        Err(e) => (
            Vec::new(),
            model,
            Some(format!("note: login lockouts not checked: {e}")),
        ),
    }
}

/// Two samples on the running kernel; a tree's files do not move, and the capacity question
/// needs no rates.
fn default_interval(config: &Config, capacity: bool) -> f64 {
    if !capacity && crate::doctor::proc::shows_this_kernel(&config.root) {
        rates::DEFAULT_INTERVAL_S
    } else {
        0.0
    }
}

/// What stderr says beside the findings: an open journal, processes it could not read.
fn notes(config: &Config, snap: &Snapshot) -> Vec<String> {
    let mut stderr: Vec<String> = super::open_journal_warning(config, "values")
        .into_iter()
        .collect();
    if snap.unreadable > 0 && snap.processes.is_empty() && !snap.listeners.is_empty() {
        stderr.push(format!(
            "note: {} processes could not be read; run as root to see which process holds each \
             listener and its limits",
            snap.unreadable
        ));
    }
    stderr
}

fn findings_text(config: &Config, all: &[Finding]) -> String {
    let mut out = String::new();
    for f in all {
        let sev = match f.severity {
            Severity::Critical => config.paint.red("critical"),
            Severity::Warning => config.paint.yellow("warning "),
            Severity::Info => "info    ".to_string(),
            Severity::Ok => config.paint.green("ok      "),
        };
        if config.quiet && f.severity < Severity::Warning {
            continue;
        }
        out.push_str(&format!("{sev}  {}: {}\n", f.limit, one_line(&f.title)));
        if f.severity == Severity::Ok && config.verbose == 0 {
            continue;
        }
        let evidence: Vec<String> = f
            .evidence
            .iter()
            .map(|e| format!("{} = {}", one_line(&e.name), value(&e.value)))
            .collect();
        out.push_str(&format!("          read: {}\n", evidence.join("; ")));
        if let Some(c) = &f.capacity {
            out.push_str(&format!("          capacity: {}\n", one_line(c)));
        }
        if let Some(file) = &f.file {
            out.push_str(&format!("          file: {}\n", one_line(file)));
        }
        for fix in &f.fix {
            out.push_str(&format!("          fix: {}\n", one_line(fix)));
        }
    }
    out
}

fn capacity_text(config: &Config, q: Question, limits: &[Limit], v: Option<&Verify>) -> String {
    let mut out = format!(
        "{} {} connections held{}, in the order their limits bind:\n",
        q.connections,
        if q.outgoing { "outgoing" } else { "incoming" },
        q.rate
            .map_or_else(String::new, |r| format!(" and {r} new per second"))
    );
    let width = limits.iter().map(|l| l.limit.len()).max().unwrap_or(0);
    for l in limits {
        let state = if l.binds {
            config.paint.red("BINDS")
        } else {
            config.paint.green("ok   ")
        };
        out.push_str(&format!(
            "  {state} {:<width$}  need {} of {} {} (headroom {})\n",
            l.limit, l.need, l.have, l.unit, l.headroom
        ));
        if config.verbose > 0 || l.binds {
            out.push_str(&format!("        {}\n", one_line(&l.note)));
            if l.binds
                && let Some(fix) = &l.fix
            {
                out.push_str(&format!("        fix: {}\n", one_line(fix)));
            }
        }
    }
    match limits.iter().find(|l| l.binds) {
        Some(l) => out.push_str(&config.paint.bold(&format!(
            "first to bind: {} ({} needed, {} allowed)\n",
            l.limit, l.need, l.have
        ))),
        None => out.push_str(&config.paint.bold(&format!(
            "no limit binds at {} connections\n",
            q.connections
        ))),
    }
    match v {
        Some(v) => out.push_str(&format!(
            "connection test ({}): held {} of {}; verdict {}: {} ({})\n",
            v.command,
            v.held.map_or_else(|| "?".into(), |n| n.to_string()),
            v.attempted.map_or_else(|| "?".into(), |n| n.to_string()),
            v.verdict.as_deref().unwrap_or("?"),
            v.verdict_text.as_deref().unwrap_or(""),
            if v.confirms {
                "confirms the machine-wide prediction; per-process limits were sidestepped by \
                 the test's workers"
            } else {
                "does not confirm the machine-wide prediction (the sandbox's namespaces start \
                 from kernel defaults)"
            }
        )),
        None => out.push_str(
            "not verified: add --verify to hold them in the sandbox with the connection test\n",
        ),
    }
    out
}

/// Runs `netprofile test hold --sandbox -n N` as a child and reads its JSON verdict.
fn run_verify(config: &Config, snap: &Snapshot, q: Question, limits: &[Limit]) -> Result<Verify> {
    let args = verify_args(snap, q);
    let command = format!("netprofile {}", args[1..].join(" "));
    // Bounded: 30 s plus 2 s per thousand connections, then it is stopped.
    let limit = std::time::Duration::from_secs(30 + q.connections / 500);
    let Some((stdout, stderr)) = run_bounded(config, &args, limit)? else {
        return Err(Error::State(format!(
            "the connection test ({command}) did not finish in {} s and was stopped",
            limit.as_secs()
        )));
    };
    let report: crate::conntest::report::Report =
        serde_json::from_slice(&stdout).map_err(|_| {
            Error::State(format!(
                "the connection test failed: {}",
                String::from_utf8_lossy(&stderr).trim()
            ))
        })?;
    // The test shards over workers, so it sidesteps the per-process limits by design: it
    // checks the machine-wide ones (file-max, memory, conntrack, ports, namespace keys).
    let predicted_ok = !limits
        .iter()
        .any(|l| l.binds && !l.limit.ends_with("(one process)"));
    Ok(Verify {
        command,
        attempted: Some(report.attempted),
        held: Some(report.held),
        verdict: Some(report.verdict.limit.to_string()),
        verdict_text: Some(report.verdict.text),
        confirms: (report.held == q.connections) == predicted_ok,
    })
}

/// The test's arguments: sharded over workers so that no worker passes this session's hard
/// nofile, and over destination addresses so that no one runs short of ephemeral ports.
fn verify_args(snap: &Snapshot, q: Question) -> Vec<String> {
    let hard = snap
        .own_nofile
        .and_then(|(_, h)| h)
        .unwrap_or(1024)
        .saturating_sub(64)
        .max(256);
    let workers = q.connections.div_ceil(hard).clamp(1, 64);
    // A fresh namespace has the kernel's 28 232 ephemeral ports per destination, and
    // connect() slows once more than half are in use (it scans for a free one): spread over
    // destination addresses, 12 000 connections each.
    let addresses = q.connections.div_ceil(12_000).clamp(1, 200);
    let mut args: Vec<String> = ["--json", "test", "hold", "--sandbox", "-n"]
        .map(String::from)
        .to_vec();
    args.push(q.connections.to_string());
    args.extend(["--workers".into(), workers.to_string()]);
    args.extend(["--addresses".into(), addresses.to_string()]);
    args.extend(["--duration", "1", "--connect-timeout", "5s"].map(String::from));
    args
}

/// Runs this binary with `args` in its own process group and returns its stdout and stderr;
/// past `limit` the whole group (workers, sandbox holders) is killed: `None`.
fn run_bounded(
    config: &Config,
    args: &[String],
    limit: std::time::Duration,
) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()
        .map_err(|e| Error::State(format!("cannot find the netprofile binary: {e}")))?;
    let mut child = std::process::Command::new(exe)
        .process_group(0)
        .arg("--root")
        .arg(config.root.base())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::State(format!("cannot run the connection test: {e}")))?;
    // Drain both pipes meanwhile, so a long report cannot block the child.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let out_reader = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err_reader = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let started = std::time::Instant::now();
    while child.try_wait().ok().flatten().is_none() {
        if started.elapsed() > limit {
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: kill has no memory-safety preconditions; the group is the child's own.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Ok(Some((
        out_reader.join().unwrap_or_default(),
        err_reader.join().unwrap_or_default(),
    )))
}
