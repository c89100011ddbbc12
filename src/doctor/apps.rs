//! Application caps: the connection limits a server sets itself, which no sysctl lifts. For the
//! common servers (nginx, haproxy, redis, PostgreSQL, MySQL/MariaDB, Apache) `read` finds the
//! configuration file (the command line's `-c`/`-f`/`-D`/config argument, else the packaged
//! default path, read through `proc/PID/root` so a container's or a private mount namespace's
//! file is the one read) and takes the settings that cap connections; when it cannot read one
//! it names the setting to check. `findings` then reports a server at its own cap, and, from
//! two samples (rates.rs), the signatures of a cap whatever the server: a queue at its backlog
//! while the process is idle and its established count flat (it stopped accepting), and a
//! server that closes connections right after accepting them. `read` does the I/O; the rest is
//! pure.

use std::collections::BTreeMap;

use serde::Serialize;

use super::findings::{Context, Evidence, Finding, ProcessRef, Severity, ev, who};
use super::proc::{PortStates, Process, Snapshot};
use super::rates::Rates;
use crate::render::terminal::one_line;
use crate::system::root::Root;

/// One setting of a server's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Setting {
    pub name: String,
    /// `None` when it is not set (the server's default applies) or could not be read.
    pub value: Option<u64>,
    /// The file and line it was read from, or `default`.
    pub source: String,
}

/// A known server and the settings that cap its connections.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct App {
    /// `nginx`, `haproxy`, `redis`, `postgresql`, `mysql`, `apache`.
    pub kind: &'static str,
    /// The first (lowest) pid of the server's listening processes.
    pub pid: u32,
    /// Every listening process of it (an nginx master and its workers).
    pub pids: Vec<u32>,
    /// The configuration file read, if one was; of several (my.cnf and 50-server.cnf,
    /// apache2.conf and the MPM's file), the one that sets its cap.
    pub config: Option<String>,
    /// Why it could not be read.
    pub config_error: Option<String>,
    pub settings: Vec<Setting>,
    /// The setting that caps connections and the connections it allows (all processes).
    pub cap: Option<(String, u64)>,
    /// The listen() backlog it asks for, when known.
    pub backlog: Option<u64>,
}

/// The kind of server a process is, by its name.
#[must_use]
pub fn kind_of(comm: &str) -> Option<&'static str> {
    Some(match comm {
        "nginx" => "nginx",
        "haproxy" => "haproxy",
        "redis-server" => "redis",
        "postgres" | "postmaster" => "postgresql",
        "mysqld" | "mariadbd" => "mysql",
        "apache2" | "httpd" => "apache",
        _ => return None,
    })
}

/// The setting to check, for a kind whose configuration could not be read.
fn setting_names(kind: &str) -> &'static str {
    match kind {
        "nginx" => "worker_connections (events block) and worker_rlimit_nofile",
        "haproxy" => "maxconn (global and per frontend)",
        "redis" => "maxclients",
        "postgresql" => "max_connections (postgresql.conf)",
        "mysql" => "max_connections ([mysqld] in my.cnf)",
        _ => "MaxRequestWorkers (the mpm configuration)",
    }
}

/// Where a server's listen() backlog is set, for an `app-backlog` finding.
#[must_use]
pub fn backlog_setting(p: Option<&Process>) -> Option<String> {
    let kind = kind_of(&p?.comm)?;
    Some(match kind {
        "nginx" => "nginx: listen ... backlog=65535; (default 511)".to_string(),
        "haproxy" => "haproxy: backlog 65535 in the frontend (default: its maxconn)".to_string(),
        "redis" => "redis: tcp-backlog 65535 (default 511)".to_string(),
        "postgresql" => "postgresql: the backlog is fixed (max_connections × 2, at most \
                         10000): raise max_connections or put a pooler in front"
            .to_string(),
        "mysql" => "mysql: back_log (default: max_connections)".to_string(),
        _ => "apache: ListenBacklog 65535 (default 511)".to_string(),
    })
}

/// Configuration text with `#` comments removed.
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// nginx: `worker_processes`, `worker_connections`, `worker_rlimit_nofile` and the largest
/// `backlog=` of a `listen`, as (name, value) in file order.
#[must_use]
pub fn parse_nginx(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for stmt in strip_comments(text).split([';', '{', '}']) {
        let words: Vec<&str> = stmt.split_whitespace().collect();
        match words.first() {
            Some(&name @ ("worker_processes" | "worker_connections" | "worker_rlimit_nofile")) => {
                if let Some(v) = words.get(1) {
                    out.push((name.to_string(), (*v).to_string()));
                }
            }
            Some(&"listen") => {
                for w in &words[1..] {
                    if let Some(b) = w.strip_prefix("backlog=") {
                        out.push(("backlog".to_string(), b.to_string()));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// `name value` lines (redis, haproxy, Apache): every line whose first word is one of `names`
/// (case-insensitive), with the section it is in for haproxy (`global`, `frontend x`, ...).
#[must_use]
pub fn parse_words(text: &str, names: &[&str]) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in strip_comments(text).lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(first) = words.first() else { continue };
        let lower = first.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "global" | "defaults" | "frontend" | "listen" | "backend"
        ) && !line.starts_with([' ', '\t'])
        {
            section = words.join(" ");
            continue;
        }
        if names.iter().any(|n| n.eq_ignore_ascii_case(first))
            && let Some(v) = words.get(1)
        {
            out.push((lower, v.trim_matches('"').to_string(), section.clone()));
        }
    }
    out
}

/// `key = value` lines (postgresql.conf, my.cnf): the last value of `key`.
#[must_use]
pub fn parse_assign(text: &str, key: &str) -> Option<String> {
    strip_comments(text)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim().replace('-', "_") == key).then(|| v.trim().trim_matches('\'').to_string())
        })
        .next_back()
}

/// The value of `-c PATH` / `-f PATH` / `--flag=PATH` in a command line.
fn arg_after(cmdline: &[String], flag: &str) -> Option<String> {
    cmdline.iter().enumerate().find_map(|(i, a)| {
        if a == flag {
            cmdline.get(i + 1).cloned()
        } else {
            a.strip_prefix(flag)
                .and_then(|r| r.strip_prefix('='))
                .map(String::from)
        }
    })
}

/// Reads an absolute path as the process sees it (proc/PID/root), relative to its cwd when
/// relative.
fn read_as(root: &Root, pid: u32, path: &str) -> Result<Option<String>, String> {
    let rel = if let Some(abs) = path.strip_prefix('/') {
        format!("proc/{pid}/root/{abs}")
    } else {
        format!("proc/{pid}/cwd/{path}")
    };
    // `proc/PID/root` and `cwd` are the kernel's links into the process's own view: they are
    // followed on purpose (Root::read refuses links under proc/), with the same guarantees
    // otherwise: non-blocking, a regular file only, bounded. A config is read, never trusted.
    let path = root.path(&rel);
    match Root::read_named(&path, crate::system::MAX_READ) {
        Ok(bytes) => Ok(Some(crate::system::text(bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(crate::error::Error::read(path, e).to_string()),
    }
}

fn num(v: &str) -> Option<u64> {
    v.trim().parse().ok()
}

/// Finds each known server among the listening processes and reads its settings.
#[must_use]
pub fn read(root: &Root, snap: &Snapshot) -> Vec<App> {
    let mut apps = servers(snap);
    for app in &mut apps {
        let Some(p) = snap.processes.iter().find(|q| q.pid == app.pid) else {
            continue;
        };
        let workers = u64::try_from(app.pids.len().saturating_sub(1).max(1)).unwrap_or(1);
        let files = read_config(root, p.pid, &config_candidates(app.kind, p), app);
        // Of several files (my.cnf and the folders it includes, apache2.conf and the MPM's
        // file), the one that sets the cap is the one to name and to edit: the last to set
        // it wins, as the servers read them.
        if let Some(path) = files
            .iter()
            .rev()
            .find(|(_, t)| sets_cap(app.kind, t))
            .map(|(path, _)| path)
        {
            app.config = Some(path.clone());
        }
        let text: String = files.iter().map(|(_, t)| format!("{t}\n")).collect();
        match app.kind {
            "nginx" => nginx_settings(app, &text, workers),
            "haproxy" => haproxy_settings(app, &text),
            "redis" => redis_settings(app, &text, p),
            "postgresql" => postgresql_settings(app, &text),
            "mysql" => mysql_settings(app, &text),
            _ => apache_settings(app, &text),
        }
    }
    apps
}

/// The known servers among the listening processes: one server, several processes, when
/// processes of the same kind share a listening port (an nginx master and its workers).
fn servers(snap: &Snapshot) -> Vec<App> {
    let mut apps: Vec<App> = Vec::new();
    for p in &snap.processes {
        let Some(kind) = kind_of(&p.comm) else {
            continue;
        };
        if let Some(app) = apps.iter_mut().find(|a| {
            a.kind == kind
                && snap
                    .processes
                    .iter()
                    .find(|q| q.pid == a.pid)
                    .is_some_and(|q| q.ports.iter().any(|port| p.ports.contains(port)))
        }) {
            app.pids.push(p.pid);
            continue;
        }
        apps.push(App {
            kind,
            pid: p.pid,
            pids: vec![p.pid],
            ..App::default()
        });
    }
    apps
}

/// The configuration files a server of `kind` reads, in the order they are tried: the one its
/// command line names, else the packaged default path(s).
fn config_candidates(kind: &str, p: &Process) -> Vec<String> {
    match kind {
        "nginx" => vec![arg_after(&p.cmdline, "-c").unwrap_or(Root::NGINX_CONF.into())],
        "haproxy" => {
            vec![arg_after(&p.cmdline, "-f").unwrap_or(Root::HAPROXY_CONF.into())]
        }
        "redis" => {
            // redis rewrites its command line to its title; a config path may remain.
            let given = p
                .cmdline
                .iter()
                .skip(1)
                .find(|a| a.ends_with(".conf"))
                .cloned();
            vec![given.unwrap_or(Root::REDIS_CONF.into())]
        }
        "postgresql" => {
            // config_file when given (Debian's clusters keep it in /etc/postgresql), else
            // postgresql.conf in the data folder (-D; RHEL, initdb's default).
            let data = arg_after(&p.cmdline, "-D");
            match pg_option(&p.cmdline, "config_file") {
                Some(file) => vec![file],
                None => data
                    .map(|d| format!("{}/postgresql.conf", d.trim_end_matches('/')))
                    .into_iter()
                    .collect(),
            }
        }
        "mysql" => vec![
            arg_after(&p.cmdline, "--defaults-file").unwrap_or(Root::MYSQL_CONFS[0].into()),
            Root::MYSQL_CONFS[1].into(),
            Root::MYSQL_CONFS[2].into(),
        ],
        _ => vec![
            arg_after(&p.cmdline, "-f").unwrap_or(Root::APACHE_CONFS[0].into()),
            Root::APACHE_CONFS[1].into(),
            Root::APACHE_CONFS[2].into(),
            Root::APACHE_CONFS[3].into(),
            Root::APACHE_CONFS[4].into(),
        ],
    }
}

/// Every candidate that exists, as (path, text) in the order read; the first one read becomes
/// `app.config`, the first error `app.config_error`.
fn read_config(
    root: &Root,
    pid: u32,
    candidates: &[String],
    app: &mut App,
) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for path in candidates {
        match read_as(root, pid, path) {
            Ok(Some(t)) => {
                if app.config.is_none() {
                    app.config = Some(path.clone());
                }
                files.push((path.clone(), t));
            }
            Ok(None) => {}
            Err(e) => {
                app.config_error.get_or_insert(e);
            }
        }
    }
    files
}

/// Whether a configuration file's text sets the setting that caps a server of `kind`.
fn sets_cap(kind: &str, text: &str) -> bool {
    match kind {
        "postgresql" | "mysql" => parse_assign(text, "max_connections").is_some(),
        "apache" => !parse_words(text, &["MaxRequestWorkers", "MaxClients"]).is_empty(),
        // One file each: the one read is the one that sets it.
        _ => false,
    }
}

/// The value of a PostgreSQL setting given on its command line: `-c name=value`,
/// `-cname=value` or `--name=value` (`-` and `_` alike in the name). Debian's pg_ctlcluster
/// starts every cluster with `-c config_file=/etc/postgresql/V/C/postgresql.conf`.
fn pg_option(cmdline: &[String], name: &str) -> Option<String> {
    let mut args = cmdline.iter().skip(1);
    let mut found = None;
    while let Some(a) = args.next() {
        let assignment = if a == "-c" {
            args.next().map(String::as_str)
        } else {
            a.strip_prefix("--").or_else(|| a.strip_prefix("-c"))
        };
        if let Some((k, v)) = assignment.and_then(|x| x.split_once('='))
            && k.replace('-', "_") == name
        {
            found = Some(v.to_string());
        }
    }
    found
}

impl App {
    /// A setting as read from its configuration when `found`, else as the server's default.
    fn setting(&self, name: &str, value: Option<u64>, found: bool) -> Setting {
        Setting {
            name: name.to_string(),
            value,
            source: if found {
                self.config.clone().unwrap_or_default()
            } else {
                "default".to_string()
            },
        }
    }

    /// Whether its configuration was read (a cap stated from defaults alone would be a guess).
    fn readable(&self) -> bool {
        self.config.is_some()
    }
}

/// nginx: worker_connections × worker_processes (the workers when it is not set), and the
/// largest listen backlog (default 511).
fn nginx_settings(app: &mut App, text: &str, workers: u64) {
    let s = parse_nginx(text);
    let get = |n: &str| s.iter().rev().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let wc = get("worker_connections").and_then(|v| num(&v));
    let wp = get("worker_processes")
        .and_then(|v| num(&v))
        .unwrap_or(workers);
    let per = wc.unwrap_or(512);
    app.settings
        .push(app.setting("worker_connections", Some(per), wc.is_some()));
    app.settings
        .push(app.setting("worker_processes", Some(wp), true));
    let rl = get("worker_rlimit_nofile").and_then(|v| num(&v));
    app.settings
        .push(app.setting("worker_rlimit_nofile", rl, rl.is_some()));
    if app.readable() {
        app.cap = Some((
            format!("worker_connections {per} × {wp} worker(s)"),
            per * wp,
        ));
    }
    let b = s
        .iter()
        .filter(|(k, _)| k == "backlog")
        .filter_map(|(_, v)| num(v))
        .max();
    app.backlog = Some(b.unwrap_or(511));
}

/// haproxy: the lower of the global maxconn and the frontends' lowest; the backlog set, else
/// the frontend's maxconn, else the global one.
fn haproxy_settings(app: &mut App, text: &str) {
    let s = parse_words(text, &["maxconn", "backlog"]);
    let global = s
        .iter()
        .find(|(k, _, sec)| k == "maxconn" && sec == "global")
        .and_then(|(_, v, _)| num(v));
    let front = s
        .iter()
        .filter(|(k, _, sec)| k == "maxconn" && sec != "global")
        .filter(|(_, _, sec)| !sec.starts_with("backend"))
        .filter_map(|(_, v, _)| num(v))
        .min();
    app.settings
        .push(app.setting("maxconn (global)", global, global.is_some()));
    app.settings
        .push(app.setting("maxconn (frontend)", front, front.is_some()));
    let cap = [global, front].into_iter().flatten().min();
    if let Some(c) = cap {
        app.cap = Some((format!("maxconn {c}"), c));
    }
    let b = s
        .iter()
        .filter(|(k, _, _)| k == "backlog")
        .find_map(|(_, v, _)| num(v));
    app.backlog = b.or(front).or(global);
}

/// redis: maxclients (default 10000), lowered to its open-files limit less 32; tcp-backlog
/// (default 511).
fn redis_settings(app: &mut App, text: &str, p: &Process) {
    let s = parse_words(text, &["maxclients", "tcp-backlog"]);
    let mc = s
        .iter()
        .rev()
        .find(|(k, _, _)| k == "maxclients")
        .and_then(|(_, v, _)| num(v));
    app.settings
        .push(app.setting("maxclients", Some(mc.unwrap_or(10_000)), mc.is_some()));
    // redis lowers maxclients to its open-files limit less 32 when it cannot
    // raise that limit (adjustOpenFilesLimit).
    let by_fds = p.nofile_soft.map(|s| s.saturating_sub(32));
    let configured = mc.unwrap_or(10_000);
    app.cap = match by_fds {
        Some(f) if f < configured => Some((
            format!("maxclients (at most its nofile {} - 32 = {f})", f + 32),
            f,
        )),
        _ if app.readable() => Some((format!("maxclients {configured}"), configured)),
        _ => None,
    };
    let b = s
        .iter()
        .rev()
        .find(|(k, _, _)| k == "tcp-backlog")
        .and_then(|(_, v, _)| num(v));
    app.backlog = Some(b.unwrap_or(511));
}

/// PostgreSQL: max_connections (default 100); its backlog is not configurable.
fn postgresql_settings(app: &mut App, text: &str) {
    let mc = parse_assign(text, "max_connections").and_then(|v| num(&v));
    app.settings
        .push(app.setting("max_connections", Some(mc.unwrap_or(100)), mc.is_some()));
    if app.readable() {
        let c = mc.unwrap_or(100);
        app.cap = Some((format!("max_connections {c}"), c));
    }
}

/// MySQL / MariaDB: max_connections (default 151), plus one for an administrator.
fn mysql_settings(app: &mut App, text: &str) {
    let mc = parse_assign(text, "max_connections").and_then(|v| num(&v));
    app.settings
        .push(app.setting("max_connections", Some(mc.unwrap_or(151)), mc.is_some()));
    if app.readable() {
        // One more for an administrator (SUPER / CONNECTION_ADMIN).
        let c = mc.unwrap_or(151);
        app.cap = Some((format!("max_connections {c}"), c + 1));
    }
}

/// Apache: MaxRequestWorkers (or its old name MaxClients) when set; ListenBacklog (default
/// 511).
fn apache_settings(app: &mut App, text: &str) {
    let s = parse_words(text, &["MaxRequestWorkers", "MaxClients", "ListenBacklog"]);
    let mrw = s
        .iter()
        .rev()
        .find(|(k, _, _)| k == "maxrequestworkers" || k == "maxclients")
        .and_then(|(_, v, _)| num(v));
    app.settings
        .push(app.setting("MaxRequestWorkers", mrw, mrw.is_some()));
    if let Some(c) = mrw {
        app.cap = Some((format!("MaxRequestWorkers {c}"), c));
    }
    let b = s
        .iter()
        .rev()
        .find(|(k, _, _)| k == "listenbacklog")
        .and_then(|(_, v, _)| num(v));
    app.backlog = Some(b.unwrap_or(511));
}

fn app_of(apps: &[App], pid: u32) -> Option<&App> {
    apps.iter().find(|a| a.pids.contains(&pid))
}

/// Established connections on the listening ports of `app`.
fn established(snap: &Snapshot, ports: &[u16]) -> u64 {
    ports
        .iter()
        .filter_map(|p| snap.states.by_port.get(p))
        .map(|s| s.established)
        .sum()
}

fn ports_of(snap: &Snapshot, app: &App) -> Vec<u16> {
    let mut ports: Vec<u16> = snap
        .processes
        .iter()
        .filter(|p| app.pids.contains(&p.pid))
        .flat_map(|p| p.ports.iter().copied())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// The backlog the server on `port` asks for, when its configuration says (or its default).
#[must_use]
pub fn asked_backlog(apps: &[App], snap: &Snapshot, port: u16) -> Option<u64> {
    let p = snap.processes.iter().find(|p| p.ports.contains(&port))?;
    app_of(apps, p.pid)?.backlog
}

/// The connections process `pid` may still accept under its own cap: (setting, how many).
#[must_use]
pub fn remaining(apps: &[App], snap: &Snapshot, pid: u32) -> Option<(String, u64)> {
    let app = app_of(apps, pid)?;
    let (setting, cap) = app.cap.clone()?;
    let used = established(snap, &ports_of(snap, app));
    Some((setting, cap.saturating_sub(used)))
}

/// The line that names a server's own setting in its nofile fix (nginx and haproxy set their
/// workers' limit themselves).
#[must_use]
pub fn nofile_setting(apps: &[App], pid: u32) -> Option<String> {
    let app = app_of(apps, pid)?;
    match app.kind {
        "nginx" => Some(format!(
            "nginx sets its workers' limit itself: worker_rlimit_nofile 65535; in {} (main \
             context), then reload",
            one_line(app.config.as_deref().unwrap_or("nginx.conf"))
        )),
        "haproxy" => Some(
            "haproxy raises its own limit from global maxconn (about 2 × maxconn): check it \
             is not capped by an explicit ulimit-n"
                .to_string(),
        ),
        "redis" => Some(
            "redis raises its soft limit to maxclients + 32 when the hard limit allows: raise \
             the hard limit (LimitNOFILE=) and restart it"
                .to_string(),
        ),
        _ => None,
    }
}

fn setting_text(app: &App) -> String {
    match (&app.config, &app.cap) {
        (Some(path), Some((setting, _))) => format!("{setting} (from {})", one_line(path)),
        (Some(path), None) => format!("{} (read {})", setting_names(app.kind), one_line(path)),
        (None, _) => format!(
            "{} (its configuration could not be read{}: check it there)",
            setting_names(app.kind),
            app.config_error
                .as_deref()
                .map_or_else(String::new, |e| format!(": {}", one_line(e)))
        ),
    }
}

fn raise_line(app: &App) -> String {
    let file = app
        .config
        .as_deref()
        .map_or_else(|| "its configuration".into(), one_line);
    match app.kind {
        "nginx" => format!(
            "raise worker_connections (events block) in {file}, and worker_rlimit_nofile to at \
             least twice it; then nginx -s reload"
        ),
        "haproxy" => format!("raise maxconn (global and the frontend's) in {file}; then reload"),
        "redis" => format!(
            "raise maxclients in {file} (CONFIG SET maxclients N works live) and its nofile to \
             maxclients + 32"
        ),
        "postgresql" => format!(
            "raise max_connections in {file} (restart needed), or put a pooler (pgbouncer) in \
             front"
        ),
        "mysql" => {
            format!("raise max_connections in {file} (SET GLOBAL max_connections works live)")
        }
        _ => {
            format!("raise MaxRequestWorkers (and ServerLimit) in {file}; then apachectl graceful")
        }
    }
}

/// Application-cap findings: a known server at its own cap, and the signatures of a cap.
pub fn findings(snap: &Snapshot, ctx: &Context, out: &mut Vec<Finding>) {
    let named = at_own_cap(snap, ctx.apps, out);
    let Some(rates) = ctx.rates else {
        return;
    };
    // Signatures, from the two samples, for every listening process.
    for p in &snap.processes {
        if named.contains(&p.pid) {
            continue;
        }
        out.extend(cap_signature(snap, ctx.apps, rates, p));
    }
}

/// A known server that holds 70% or more of its own cap: one finding each; returns their pids.
fn at_own_cap(snap: &Snapshot, apps: &[App], out: &mut Vec<Finding>) -> Vec<u32> {
    let mut named: Vec<u32> = Vec::new();
    for app in apps {
        let Some(p) = snap.processes.iter().find(|q| q.pid == app.pid) else {
            continue;
        };
        let ports = ports_of(snap, app);
        let used = established(snap, &ports);
        let Some((setting, cap)) = &app.cap else {
            continue;
        };
        #[allow(clippy::cast_precision_loss)]
        let usage = used as f64 / (*cap).max(1) as f64;
        if usage < 0.7 {
            continue;
        }
        named.push(app.pid);
        let severity = if usage >= 0.95 {
            Severity::Critical
        } else {
            Severity::Warning
        };
        out.push(Finding {
            limit: "app-cap",
            severity,
            title: format!(
                "{} holds {used} connections against its own cap {}: new clients are refused or \
                 wait, whatever the kernel allows",
                who(p),
                setting_text(app)
            ),
            evidence: vec![
                ev("established on its ports", used),
                ev("cap", format!("{setting} = {cap}")),
                ev(
                    "configuration",
                    app.config.clone().unwrap_or_else(|| "not readable".into()),
                ),
            ],
            capacity: Some(format!("{} more connections", cap.saturating_sub(used))),
            fix: vec![raise_line(app)],
            process_side: true,
            usage: Some(usage),
            process: Some(ProcessRef::of(p)),
            file: app.config.clone(),
            ..Finding::default()
        });
    }
    named
}

/// One listening process's figures in the two samples, summed over its ports.
struct TwoSamples {
    /// Established connections, then and now.
    before: u64,
    now: u64,
    /// Connections it closed (FIN_WAIT, TIME_WAIT), then and now.
    closed_before: u64,
    closed_now: u64,
    /// Its share of one core over the interval.
    cpu: Option<f64>,
    /// A listener of it had its accept queue at its backlog in both samples.
    full_both: bool,
}

impl TwoSamples {
    fn of(snap: &Snapshot, rates: &Rates, p: &Process) -> TwoSamples {
        // Sums one per-port count over the process's ports, in a sample's table.
        let sum = |table: &BTreeMap<u16, PortStates>, pick: fn(&PortStates) -> u64| -> u64 {
            p.ports
                .iter()
                .filter_map(|port| table.get(port))
                .map(pick)
                .sum()
        };
        TwoSamples {
            before: sum(&rates.ports_before, |s| s.established),
            now: sum(&snap.states.by_port, |s| s.established),
            closed_before: sum(&rates.ports_before, |s| s.closed_here),
            closed_now: sum(&snap.states.by_port, |s| s.closed_here),
            cpu: rates.cpu.get(&p.pid).copied(),
            full_both: snap.listeners.iter().any(|l| {
                p.ports.contains(&l.port)
                    && l.backlog.is_some_and(|b| {
                        l.queue >= b && rates.queue_before.get(&l.inode).is_some_and(|q| *q >= b)
                    })
            }),
        }
    }

    fn evidence(&self, p: &Process, rates: &Rates) -> Vec<Evidence> {
        vec![
            ev(
                "established on its ports",
                format!("{} then {} over {} s", self.before, self.now, rates.seconds),
            ),
            ev(
                format!("pid {} CPU over the interval", p.pid),
                self.cpu
                    .map_or("?".into(), |c| format!("{:.1}% of one core", c * 100.0)),
            ),
            ev(
                "closed by it on its ports (FIN_WAIT, TIME_WAIT)",
                format!("{} then {}", self.closed_before, self.closed_now),
            ),
        ]
    }
}

/// The signature of an application cap on a listening process, whatever the server: it stopped
/// accepting (queue at its backlog in both samples, idle, its connections flat), or it accepts
/// and closes at once while the ones it keeps stay as many.
fn cap_signature(snap: &Snapshot, apps: &[App], rates: &Rates, p: &Process) -> Option<Finding> {
    let app = app_of(apps, p.pid);
    let s = TwoSamples::of(snap, rates, p);
    let now = s.now;
    let idle = s.cpu.is_some_and(|c| c < 0.05);
    // Flat, but for the few connections in flight at either sample (accepted and about to be
    // closed by it, or a client's next connect): 2, or 2% of what it keeps.
    let flat = s.now.abs_diff(s.before) <= 2.max(s.before / 50);
    // At its open-files limit it cannot accept: the nofile finding names that, and the
    // signatures are its symptom, not an application cap.
    if p.nofile_soft.is_some_and(|soft| p.open_fds >= soft) {
        return None;
    }
    let setting = app.map_or_else(
        || {
            "a connection limit in its own configuration (or a loop that stopped \
             accepting)"
                .to_string()
        },
        |a| match &a.cap {
            // The file's cap is not what it keeps: the running value differs.
            Some((_, cap)) if now < cap * 7 / 10 => format!(
                "{}, yet it keeps only {now}: the running value differs from the file \
                 (changed live, or not reloaded)",
                setting_text(a)
            ),
            _ => setting_text(a),
        },
    );
    let fix = app.map_or_else(
        || "raise the connection limit in the application's configuration".to_string(),
        raise_line,
    );
    let signature = |limit: &'static str, title: String| Finding {
        limit,
        severity: Severity::Critical,
        title,
        evidence: s.evidence(p, rates),
        capacity: Some(format!("{now} connections")),
        fix: vec![fix.clone()],
        process_side: true,
        usage: Some(1.0),
        process: Some(ProcessRef::of(p)),
        ..Finding::default()
    };
    if s.full_both && idle && flat {
        return Some(signature(
            "app-cap",
            format!(
                "{} stopped accepting: its accept queue stays at its backlog while it is idle \
                 and its {now} connections stay {now}: an application cap, not the kernel: \
                 {setting}",
                who(p)
            ),
        ));
    }
    // Connections come in (handshakes completed) and are closed by the server at once,
    // while the ones it keeps stay as many: it accepts and closes (or resets).
    let opens = rates.change("Tcp.PassiveOpens");
    let resets = rates.change("TcpExt.TCPAbortOnClose") + rates.change("TcpExt.TCPAbortOnData");
    let closed = s.closed_now.saturating_sub(s.closed_before);
    let newly = i64::try_from(closed).unwrap_or(i64::MAX).max(resets);
    (flat && now > 0 && opens >= 20 && newly >= 20 && newly * 2 >= opens).then(|| {
        signature(
            "app-closes",
            format!(
                "{} closes or resets new connections right after accepting them ({} \
                 handshakes, {newly} closed or reset by it in {} s) while it keeps {now}: \
                 an application cap ({setting}) or its own fd limit",
                who(p),
                opens,
                rates.seconds
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers_find_the_caps() {
        let nginx = "worker_processes 2;\nevents { worker_connections 64; }\n# worker_connections 9;\n\
                     http { server { listen 127.0.0.1:8080 backlog=100; } }\n";
        assert_eq!(
            parse_nginx(nginx),
            vec![
                ("worker_processes".into(), "2".into()),
                ("worker_connections".into(), "64".into()),
                ("backlog".into(), "100".into())
            ]
        );
        let haproxy = "global\n    maxconn 4000\nfrontend web\n    bind :80\n    maxconn 100\n";
        let w = parse_words(haproxy, &["maxconn"]);
        assert_eq!(w[0], ("maxconn".into(), "4000".into(), "global".into()));
        assert_eq!(
            w[1],
            ("maxconn".into(), "100".into(), "frontend web".into())
        );
        assert_eq!(
            parse_assign(
                "max_connections = 300 # more\nmax-connections=500\n",
                "max_connections"
            ),
            Some("500".into())
        );
        let pg = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(ToString::to_string).collect();
            pg_option(&args, "config_file")
        };
        for (args, want) in [
            (
                &["postgres", "-D", "/d", "-c", "config_file=/etc/p.conf"][..],
                Some("/etc/p.conf"),
            ),
            (&["postgres", "-cconfig_file=/a.conf"][..], Some("/a.conf")),
            (&["postgres", "--config-file=/b.conf"][..], Some("/b.conf")),
            (
                &["postgres", "-c", "max_connections=9", "-D", "/d"][..],
                None,
            ),
            (&["postgres", "-D", "/d"][..], None),
        ] {
            assert_eq!(pg(args).as_deref(), want, "{args:?}");
        }
        assert_eq!(kind_of("redis-server"), Some("redis"));
        assert_eq!(kind_of("bash"), None);
    }
}
