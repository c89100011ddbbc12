//! The command line: what the user typed (`Cli`, parsed by clap) and the resolved settings the
//! commands run with (`Config`). Resolving reads the environment (NO_COLOR, whether stdout is a
//! terminal) but no files. Only this module and main.rs know about flags.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use clap_complete::engine::ArgValueCompleter;

use crate::render::Paint;
use crate::system::root::Root;

#[derive(Debug, Parser)]
#[command(
    name = "netprofile",
    version,
    about = "Declarative kernel tuning for many TCP connections: diff, apply with rollback, prove",
    after_help = "Exit codes: 0 ok or in sync; 1 differences found; 2 bad usage or input, nothing \
                  touched; 3 apply failed and was rolled back; 4 rollback failed too."
)]
pub struct Cli {
    /// Operate on this directory as if it were / (tests, images, chroots).
    #[arg(long, global = true, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Print a documented, stable JSON document on stdout instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Colour: auto (on a terminal, unless NO_COLOR is set), always or never.
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,
    /// Print less: only errors and the summary.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more detail.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

/// How a plan is printed for a person.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Tables and unified diffs for a terminal.
    #[default]
    Text,
    /// A comment to paste into a pull request.
    Markdown,
}

/// How `check` prints its result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    /// One line; exit 0 in sync, 1 drifted, 2 error.
    #[default]
    Text,
    /// The Nagios/Icinga plugin convention: `NETPROFILE OK - ... | perfdata`, exit 0 OK,
    /// 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    Nagios,
}

/// What `__generate` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Generate {
    /// netprofile.8 and one page per subcommand.
    Man,
    /// bash, zsh and fish completions.
    Completions,
    /// The JSON Schema of every `--json` document (docs/schema/).
    Schema,
}

/// The shells `netprofile completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compare the live system with a profile and show the files apply would write.
    Diff {
        /// A profile file (has a '/' or ends in .toml) or a shipped profile name.
        #[arg(add = ArgValueCompleter::new(crate::complete::ProfileCompleter))]
        profile: String,
        /// text (a table and diffs) or markdown (a comment to paste into a pull request).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Drift check for monitoring: one line, exit 0 in sync, 1 drifted, 2 error.
    Check {
        /// A profile file (has a '/' or ends in .toml) or a shipped profile name.
        #[arg(add = ArgValueCompleter::new(crate::complete::ProfileCompleter))]
        profile: String,
        /// text (exit 0/1/2 as diff), or nagios: the Nagios/Icinga plugin convention (OK,
        /// WARNING, CRITICAL, UNKNOWN with exit 0, 1, 2, 3 and perfdata).
        #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
        format: CheckFormat,
    },
    /// Plan, apply all-or-nothing with rollback, persist, and record a generation.
    Apply {
        /// A profile file (has a '/' or ends in .toml) or a shipped profile name (not with
        /// --pending).
        #[arg(required_unless_present = "pending", conflicts_with = "pending")]
        #[arg(add = ArgValueCompleter::new(crate::complete::ProfileCompleter))]
        profile: Option<String>,
        /// Apply even though another file (a later sysctl.d, limits.d or system.conf.d file)
        /// overrides a managed value at boot, login or service start; record those values as
        /// overridden so that check and status report them as such, not as drift.
        #[arg(long)]
        allow_override: bool,
        /// Print the plan and the file diffs; touch nothing (exit as diff).
        #[arg(long)]
        dry_run: bool,
        /// Revert by itself after this long unless `netprofile confirm` comes in time (plain
        /// seconds or a duration: 90, 90s, 5m; 1 s to 24 h). Files are written only when
        /// confirmed, so a reboot meanwhile also returns to the old values.
        #[arg(long, value_name = "DURATION", value_parser = parse_confirm)]
        confirm: Option<u64>,
        /// Change live values only; write no files.
        #[arg(long)]
        no_persist: bool,
        /// Run the connection test (churn over loopback) before and after; print the gain and
        /// keep both reports with the generation.
        #[arg(long)]
        verify: bool,
        /// Also raise the open-files limits of running processes named PATTERN (their
        /// /proc/PID/comm, or their service, e.g. nginx or nginx.service) to what the profile
        /// gives them, with prlimit(2); recorded and undone by rollback. Repeatable.
        #[arg(long, value_name = "PATTERN")]
        running: Vec<String>,
        /// Set the keys an earlier apply left pending because their module was not loaded,
        /// now that it is (run at boot after modules load).
        #[arg(long, conflicts_with_all = ["running", "dry_run", "confirm", "verify"])]
        pending: bool,
        /// With --dry-run: text, or markdown (a comment to paste into a pull request).
        #[arg(long, value_enum, default_value_t = Format::Text, requires = "dry_run")]
        format: Format,
    },
    /// Keep a pending `apply --confirm`.
    Confirm,
    /// Return to the state before the last (or the given) generation.
    Rollback {
        /// The generation to undo, with every later one (default: the last that changed
        /// something); `netprofile history` lists them.
        #[arg(value_parser = parse_generation)]
        #[arg(add = ArgValueCompleter::new(crate::complete::GenerationCompleter))]
        generation: Option<u64>,
        /// Overwrite managed drop-ins that were edited by hand since netprofile wrote them.
        #[arg(long)]
        force: bool,
    },
    /// Generations: when, profile, hash, what changed, outcome.
    History,
    /// Managed keys now; an open journal or pending confirmation.
    Status,
    /// The connection test: hold or churn connections, name the limit that stops them.
    Test {
        #[command(subcommand)]
        what: TestCommand,
    },
    /// Which limit binds first, from live values and kernel counters (read-only).
    Doctor {
        /// Instead: every limit N held connections would meet, in the order they bind
        /// (1 to 1 000 000 000).
        #[arg(long, value_name = "N", value_parser = bounded_u64("--connections", 1, 1_000_000_000))]
        connections: Option<u64>,
        /// With --connections: also R new connections per second (e.g. 500 or 500/s).
        #[arg(long, value_name = "R/s", requires = "connections", value_parser = parse_rate)]
        rate: Option<u64>,
        /// With --connections: this host opens them (ephemeral ports count).
        #[arg(long, requires = "connections")]
        outgoing: bool,
        /// With --connections: hold N connections with the connection test in the sandbox.
        #[arg(long, requires = "connections")]
        verify: bool,
        /// Seconds between the two samples that tell a problem now from one in the past
        /// (0: one sample, counters since boot only) [default: 2 on the running kernel, 0 on
        /// a --root tree or with --connections].
        #[arg(long, value_name = "SECONDS", value_parser = parse_interval)]
        interval: Option<std::time::Duration>,
    },
    /// Where a key's value (or a limits item, or DefaultLimitNOFILE) comes from now and at boot.
    Explain {
        /// A sysctl key (net.core.somaxconn), a limits item (nofile) or DefaultLimitNOFILE.
        #[arg(add = ArgValueCompleter::new(crate::complete::KeyCompleter))]
        key: String,
    },
    /// List the shipped profiles, or print one.
    Profiles {
        /// Print this shipped profile's TOML, as shipped (to copy and edit).
        #[arg(add = ArgValueCompleter::new(crate::complete::ShippedCompleter))]
        name: Option<String>,
    },
    /// Counters over time: rates, limits approaching, and a reviewable proposal when one binds
    /// (never applied). Ctrl-C ends early with the summary.
    Watch {
        /// Time between two samples (0.2 s to 1 h).
        #[arg(long, default_value = "5s", value_parser = parse_watch_interval)]
        interval: std::time::Duration,
        /// How long to watch (at most 24 h).
        #[arg(long = "for", value_name = "DURATION", default_value = "1m", value_parser = parse_watch_for)]
        for_: std::time::Duration,
    },
    /// Prometheus text format for node_exporter's textfile collector (read-only).
    Metrics {
        /// Write to FILE atomically (a temporary file in its folder, then rename) instead of
        /// stdout, e.g. /var/lib/prometheus/node-exporter/netprofile.prom.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Print the files a profile writes, without reading the live system: one review for a fleet.
    Render {
        /// A profile file (has a '/' or ends in .toml) or a shipped profile name.
        #[arg(add = ArgValueCompleter::new(crate::complete::ProfileCompleter))]
        profile: String,
    },
    /// Print the completion script for a shell; it completes profile names and files, keys
    /// for explain and generations for rollback (bash: `source <(netprofile completions bash)`).
    Completions {
        /// bash, zsh or fish.
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Internal: write the man pages, shell completions (packaging) or JSON Schemas
    /// (`netprofile __generate schema docs/schema`) into DIR.
    #[command(name = "__generate", hide = true)]
    Generate {
        /// What to write: man pages or shell completions.
        #[arg(value_enum)]
        what: Generate,
        /// The folder to write them into (created if missing).
        dir: PathBuf,
    },
    /// Internal: the detached watcher of `apply --confirm`.
    #[command(name = "__confirm-watcher", hide = true)]
    ConfirmWatcher {
        /// The pending generation to revert unless confirmed.
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        generation: u64,
    },
    /// Internal: a connection-test worker.
    #[command(name = "__worker", hide = true)]
    Worker {
        /// The worker's task, as JSON written by the parent.
        task: String,
    },
    /// Internal: keeps a sandbox namespace alive.
    #[command(name = "__holder", hide = true)]
    Holder,
}

#[derive(Debug, Subcommand)]
pub enum TestCommand {
    /// Open N connections and keep them: how many can be held.
    Hold(TestArgs),
    /// Connect, send, close, again: rate and failures.
    Churn(TestArgs),
    /// Serve a remote `netprofile test ... --target HOST:PORT` for --duration seconds.
    /// Takes the server's flags only: the client's (-n, --target, --sandbox, ...) are refused.
    Serve(ServeArgs),
}

/// The flags of `test serve`: what a server does, nothing a client does.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (a port from 1 to 65535: the client must be told it).
    #[arg(long, value_parser = parse_listen)]
    pub listen: std::net::SocketAddrV4,
    /// How long to serve (up to 24 h).
    #[arg(long, default_value = "30s", value_parser = parse_test_duration)]
    pub duration: std::time::Duration,
    /// Which side closes first; give the client's --closer.
    #[arg(long, value_enum, default_value_t = crate::conntest::engine::Closer::Client)]
    pub closer: crate::conntest::engine::Closer,
    /// The listen backlog (an application passing a small one; 1 to 2147483647).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(i32).range(1..))]
    pub backlog: i32,
    /// Time between two accepts: a slow server (e.g. 2ms; up to 10 s).
    #[arg(long, default_value = "0", value_parser = parse_accept_delay)]
    pub accept_delay: std::time::Duration,
    /// Worker processes (each has its own open-files limit; 1 to 1000).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=MAX_WORKERS))]
    pub workers: u32,
    /// Play a lower per-process open-files limit in the workers (16 to 2147483584).
    #[arg(long, value_parser = bounded_u64("--nofile", MIN_TEST_NOFILE, MAX_NR_OPEN))]
    pub nofile: Option<u64>,
}

impl ServeArgs {
    /// The engine options of a server.
    #[must_use]
    pub fn options(&self) -> crate::conntest::Options {
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        crate::conntest::Options {
            mode: crate::conntest::engine::Mode::Churn,
            connections: 0,
            duration_ms: ms(self.duration),
            concurrency: 1,
            payload: 0,
            closer: self.closer,
            backlog: self.backlog,
            accept_delay_us: u64::try_from(self.accept_delay.as_micros()).unwrap_or(u64::MAX),
            workers: self.workers.max(1),
            addresses: 1,
            sources: 0,
            nofile: self.nofile,
            connect_timeout_ms: 10_000,
            sandbox: false,
            profile: None,
            baseline: None,
            target: None,
            progress: false,
        }
    }
}

/// The most worker processes a test starts on each side: what `conntest::resolve` chooses at
/// most for a hold, and far more than any host needs (each holds up to ~18 000 connections).
pub const MAX_WORKERS: i64 = 1000;
/// The most connections one test opens: 1000 workers of the largest per-worker share.
pub const MAX_TEST_CONNECTIONS: u64 = 10_000_000;
/// The kernel's largest fs.nr_open on 64-bit (INT_MAX rounded down to BITS_PER_LONG): no
/// process can have more open files.
pub const MAX_NR_OPEN: u64 = 2_147_483_584;
/// A worker needs a few descriptors of its own (epoll, pipes, stdio) before any connection.
pub const MIN_TEST_NOFILE: u64 = 16;

/// A whole-number flag bounded to `min..=max`; out of range (or too large to parse) is a usage
/// error that states the range, so `-n 18446744073709551615` never reaches fork().
fn bounded_u64(
    flag: &'static str,
    min: u64,
    max: u64,
) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync + 'static {
    move |s: &str| {
        let range = format!("{flag} must be a whole number from {min} to {max}");
        // `1e6` and `50k` get the number written out (parse_count), then the range.
        let n = parse_count(s.trim()).map_err(|e| format!("{e} ({range})"))?;
        if n < min || n > max {
            return Err(format!("{n} is out of range: {range}"));
        }
        Ok(n)
    }
}

/// A duration as seconds (`30`, `0.5`) or with a unit (`30s`, `500ms`, `2m`), from `min` to
/// `max`; checked before it becomes a `Duration`, so `1e300` is a usage error, not a panic.
fn bounded_duration(
    s: &str,
    min: std::time::Duration,
    max: std::time::Duration,
) -> Result<std::time::Duration, String> {
    let range = format!(
        "must be between {} and {}",
        humantime::format_duration(min),
        humantime::format_duration(max)
    );
    let d = if let Ok(secs) = s.trim().parse::<f64>() {
        if !secs.is_finite() || secs < min.as_secs_f64() || secs > max.as_secs_f64() {
            return Err(format!("{s:?} {range}"));
        }
        std::time::Duration::from_secs_f64(secs)
    } else {
        humantime::parse_duration(s)
            .map_err(|e| format!("{e} (write 30, 30s, 500ms or 2m; {range})"))?
    };
    if d < min || d > max {
        return Err(format!("{s:?} {range}"));
    }
    Ok(d)
}

/// A test's `--duration`: up to a day.
fn parse_test_duration(s: &str) -> Result<std::time::Duration, String> {
    bounded_duration(
        s,
        std::time::Duration::ZERO,
        std::time::Duration::from_secs(24 * 60 * 60),
    )
}

/// `--accept-delay`: a slow server, up to 10 s between two accepts.
fn parse_accept_delay(s: &str) -> Result<std::time::Duration, String> {
    bounded_duration(
        s,
        std::time::Duration::ZERO,
        std::time::Duration::from_secs(10),
    )
}

/// `--connect-timeout`: 1 ms to 10 min.
fn parse_connect_timeout(s: &str) -> Result<std::time::Duration, String> {
    bounded_duration(
        s,
        std::time::Duration::from_millis(1),
        std::time::Duration::from_secs(600),
    )
}

/// `--listen ADDR:PORT` needs a real port: with port 0 the kernel would pick one the remote
/// client cannot know.
fn parse_listen(s: &str) -> Result<std::net::SocketAddrV4, String> {
    let addr: std::net::SocketAddrV4 = s
        .parse()
        .map_err(|_| format!("{s:?} is not IPV4:PORT (e.g. 0.0.0.0:7000)"))?;
    if addr.port() == 0 {
        return Err(format!(
            "{s:?} has port 0; name the port to listen on, from 1 to 65535, and give the same \
             to the client's --target"
        ));
    }
    Ok(addr)
}

/// The longest `watch --for`: a day. watch is bounded; a longer watch is a service's job.
pub const MAX_WATCH: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

fn parse_watch_for(s: &str) -> Result<std::time::Duration, String> {
    bounded_duration(s, std::time::Duration::from_millis(1), MAX_WATCH)
}

/// `watch --interval`: 0.2 s to 1 h.
fn parse_watch_interval(s: &str) -> Result<std::time::Duration, String> {
    bounded_duration(
        s,
        std::time::Duration::from_millis(200),
        std::time::Duration::from_secs(3600),
    )
}

/// `doctor --interval`: a duration from 0 to 60 s.
fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    bounded_duration(
        s,
        std::time::Duration::ZERO,
        std::time::Duration::from_secs(60),
    )
}

/// The longest `--confirm`: a day. Longer is almost surely a typo, and a huge number once
/// overflowed the deadline and reverted at once.
pub const MAX_CONFIRM_SECS: u64 = 24 * 60 * 60;

/// `--confirm`: whole seconds (`90`) or a duration (`90s`, `5m`, `1h30m`), 1 s to 24 h.
pub fn parse_confirm(s: &str) -> Result<u64, String> {
    let secs = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse::<u64>().unwrap_or(u64::MAX)
    } else {
        let d = humantime::parse_duration(s)
            .map_err(|e| format!("{e} (write seconds or a duration: 90, 90s, 5m, 1h)"))?;
        if d.subsec_nanos() != 0 {
            return Err("use whole seconds (90, 90s, 5m)".into());
        }
        d.as_secs()
    };
    if secs == 0 || secs > MAX_CONFIRM_SECS {
        return Err(format!(
            "must be between 1 s and 24 h ({MAX_CONFIRM_SECS} s); it was {s:?}"
        ));
    }
    Ok(secs)
}

/// `--payload`: bytes each client sends, 0 to 1 MiB.
fn parse_payload(s: &str) -> Result<usize, String> {
    bounded_u64("--payload", 0, 1 << 20)(s).map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// `rollback GENERATION`: a number from `netprofile history`.
fn parse_generation(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "{s:?} is not a generation number (1..): give a number that `netprofile history` \
             lists (e.g. 3), or no argument for the last generation that changed something"
        )),
    }
}

/// A count of connections (`-n`, `--connections`): digits only. Shorthands (`1e6`, `50k`) are
/// refused with the number written out, so the user sees what they would get.
fn parse_count(s: &str) -> Result<u64, String> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    let lower = s.trim().to_ascii_lowercase();
    let spelled = [("k", 1e3), ("m", 1e6), ("g", 1e9)]
        .iter()
        .find_map(|(suffix, factor)| {
            lower
                .strip_suffix(suffix)
                .and_then(|n| n.parse::<f64>().ok())
                .map(|n| n * factor)
        })
        .or_else(|| lower.parse::<f64>().ok());
    Err(match spelled {
        Some(n) if n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n < 1.8e19 => {
            format!("{s:?} is not a whole number in digits: write {n:.0}")
        }
        _ => format!("{s:?} is not a whole number: write digits only, e.g. 50000"),
    })
}

/// `--target HOST:PORT`: an IPv4 address (names are not resolved: the test must know which
/// address it measures).
fn parse_target(s: &str) -> Result<std::net::SocketAddrV4, String> {
    if let Ok(addr) = s.parse::<std::net::SocketAddrV4>() {
        if addr.port() == 0 {
            return Err(format!(
                "{s:?} has port 0; give the port the server listens on, from 1 to 65535"
            ));
        }
        return Ok(addr);
    }
    let (host, port) = s.rsplit_once(':').unwrap_or((s, ""));
    let port = if port.parse::<u16>().is_ok() {
        port
    } else {
        "PORT"
    };
    if host == "localhost" {
        return Err(format!(
            "{s:?}: write an IPv4 address, e.g. 127.0.0.1:{port} (host names are not resolved)"
        ));
    }
    Err(format!(
        "{s:?} is not IPV4:PORT: write e.g. 192.0.2.10:{port} (host names and IPv6 are not \
         supported)"
    ))
}

/// `--rate`: new connections per second, 1 to 100 000 000 (500 or 500/s).
fn parse_rate(s: &str) -> Result<u64, String> {
    const MAX: u64 = 100_000_000;
    let n: u64 = s.trim_end_matches("/s").parse().map_err(|_| {
        format!("{s:?} is not a rate from 1 to {MAX} per second: write 500 or 500/s")
    })?;
    if n == 0 || n > MAX {
        return Err(format!(
            "{n} is out of range: --rate must be from 1 to {MAX} per second"
        ));
    }
    Ok(n)
}

#[derive(Debug, Clone, clap::Args)]
pub struct TestArgs {
    /// Connections to open (split over the workers; 1 to 10 000 000).
    #[arg(long, short = 'n', default_value_t = 10_000,
          value_parser = bounded_u64("--connections", 1, MAX_TEST_CONNECTIONS))]
    pub connections: u64,
    /// churn: the longest the run may take; hold: how long to hold once all are attempted
    /// (up to 24 h) [default: churn 30s, hold 2s].
    #[arg(long, value_parser = parse_test_duration)]
    pub duration: Option<std::time::Duration>,
    /// Connects in flight at once (split over the workers; 1 to 1 000 000).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub concurrency: u32,
    /// Bytes each client sends after connecting (0 to 1048576).
    #[arg(long, default_value_t = 12, value_parser = parse_payload)]
    pub payload: usize,
    /// Which side closes first (and so keeps the TIME_WAIT socket).
    #[arg(long, value_enum, default_value_t = crate::conntest::engine::Closer::Client)]
    pub closer: crate::conntest::engine::Closer,
    /// The built-in server's listen backlog (an application passing a small one; 1 to
    /// 2147483647).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(i32).range(1..))]
    pub backlog: i32,
    /// Time between two accepts: a slow server (e.g. 2ms; up to 10 s).
    #[arg(long, default_value = "0", value_parser = parse_accept_delay)]
    pub accept_delay: std::time::Duration,
    /// Worker processes on each side (each has its own open-files limit; 1 to 1000)
    /// [default: hold: enough for the hard limit, churn: 1].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_WORKERS))]
    pub workers: Option<u32>,
    /// Destination addresses to spread over (127.0.0.1.. or 198.18.0.1..), each with its own
    /// ephemeral ports (1 to 250) [default: hold: enough for the port range, churn: 1].
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=250))]
    pub addresses: Option<u8>,
    /// Source addresses to spread over (127.0.1.1.. or 198.19.0.1..), bound with
    /// IP_BIND_ADDRESS_NO_PORT so each keeps its own ephemeral ports per destination (0 to
    /// 250).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=250))]
    pub sources: u8,
    /// Play a lower per-process open-files limit in the workers (16 to 2147483584).
    #[arg(long, value_parser = bounded_u64("--nofile", MIN_TEST_NOFILE, MAX_NR_OPEN))]
    pub nofile: Option<u64>,
    /// Give up on a connect after this long (counted as ETIMEDOUT; 1 ms to 10 min).
    #[arg(long, default_value = "10s", value_parser = parse_connect_timeout)]
    pub connect_timeout: std::time::Duration,
    /// Run between two private network namespaces joined by veth (198.18.0.0/15).
    #[arg(long)]
    pub sandbox: bool,
    /// In the sandbox: apply this profile and compare with the baseline.
    #[arg(long, value_name = "PROFILE")]
    #[arg(add = ArgValueCompleter::new(crate::complete::ProfileCompleter))]
    pub profile: Option<String>,
    /// In the sandbox: the "before" side (default: kernel defaults), e.g. legacy-defaults.
    #[arg(long, value_name = "PROFILE")]
    #[arg(add = ArgValueCompleter::new(crate::complete::ProfileCompleter))]
    pub baseline: Option<String>,
    /// In the sandbox: run with P1, then with P2, and show the gain.
    #[arg(long, num_args = 2, value_names = ["P1", "P2"])]
    #[arg(add = ArgValueCompleter::new(crate::complete::ProfileCompleter))]
    pub compare: Option<Vec<String>>,
    /// With --compare (or --profile): runs of each side, alternated; the median and spread
    /// are reported and a gain is claimed only beyond the spread.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub repeat: u32,
    /// A remote `netprofile test serve` to connect to instead of a local server.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_target)]
    pub target: Option<std::net::SocketAddrV4>,
    /// Draw connections over time and the latency distribution to an SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
}

impl TestArgs {
    /// The engine options for a mode.
    #[must_use]
    pub fn options(
        &self,
        mode: crate::conntest::engine::Mode,
        progress: bool,
    ) -> crate::conntest::Options {
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        crate::conntest::Options {
            mode,
            connections: self.connections,
            duration_ms: self.duration.map_or(
                match mode {
                    crate::conntest::engine::Mode::Churn => 30_000,
                    crate::conntest::engine::Mode::Hold => 2_000,
                },
                ms,
            ),
            concurrency: self.concurrency.max(1),
            payload: self.payload,
            closer: self.closer,
            backlog: self.backlog,
            accept_delay_us: u64::try_from(self.accept_delay.as_micros()).unwrap_or(u64::MAX),
            // 0: chosen by conntest::resolve.
            workers: self.workers.map_or(0, |w| w.max(1)),
            addresses: self.addresses.map_or(0, |a| a.max(1)),
            sources: self.sources,
            nofile: self.nofile,
            connect_timeout_ms: ms(self.connect_timeout),
            sandbox: self.sandbox || self.compare.is_some(),
            profile: self.profile.clone(),
            baseline: self.baseline.clone(),
            target: self.target,
            progress,
        }
    }
}

/// Settings every command runs with, resolved from `Cli` and the environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub root: Root,
    pub json: bool,
    pub paint: Paint,
    pub quiet: bool,
    pub verbose: u8,
    /// Text or markdown for diff and apply --dry-run (set by those commands' --format).
    pub format: Format,
}

impl Config {
    #[must_use]
    pub fn resolve(cli: &Cli) -> Self {
        let colour = match cli.color {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stdout().is_terminal()
            }
        };
        Config {
            root: Root::new(&cli.root),
            json: cli.json,
            paint: Paint(colour && !cli.json),
            quiet: cli.quiet,
            verbose: cli.verbose,
            format: match &cli.command {
                Command::Diff { format, .. } | Command::Apply { format, .. } => *format,
                _ => Format::Text,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// `netprofile help CMD` shows every positional argument with a sentence, hidden commands
    /// included (their help is what a reader of `ps` output finds).
    #[test]
    fn every_positional_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_positionals() {
                if arg.get_help().is_none() {
                    missing.push(format!("{path} <{}>", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "netprofile", &mut missing);
        assert!(
            missing.is_empty(),
            "positional arguments without help: {missing:?}"
        );
    }
}
