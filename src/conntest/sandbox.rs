//! The sandbox: two private network namespaces, a server host and a client host, joined by a
//! veth pair with addresses from 198.18.0.0/15 (the benchmarking range), so that per-namespace
//! settings and non-loopback TCP apply. Each host is a holder process started in a new network
//! namespace; configuration (`ip`) and workers enter it with setns before exec. Profiles are
//! applied inside with netprofile's own `apply --no-persist` on a private state root, which
//! skips global keys there. Dropping a host kills its holder and so removes the namespace.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use super::{Options, counters, report::Report};
use crate::error::{Error, Result};
use crate::system::root::Root;

const PORT: u16 = 5001;

pub struct Host {
    name: &'static str,
    child: Child,
    ns: OwnedFd,
    /// A private root for netprofile's state when applying profiles inside the host.
    state: tempfile::TempDir,
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn exe() -> Result<std::path::PathBuf> {
    std::env::current_exe().map_err(|e| Error::State(format!("current_exe: {e}")))
}

impl Host {
    fn start(root: &Root, name: &'static str) -> Result<Host> {
        let mut command = Command::new(exe()?);
        command
            .arg("__holder")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // SAFETY: unshare is a plain system call, safe between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::unshare(libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let mut child = command.spawn().map_err(|e| {
            Error::State(format!(
                "cannot create the {name} namespace: {e}. The sandbox needs root or a user \
                 namespace (unshare -rn)"
            ))
        })?;
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| Error::State(format!("{name} host: {e}")))?;
        if line.trim() != "ok" {
            let _ = child.kill();
            return Err(Error::State(format!("the {name} host did not start")));
        }
        let ns_path = root.path(&format!("proc/{}/ns/net", child.id()));
        // A namespace handle for setns(2), never read: not a file read (see Root::read).
        let ns = rustix::fs::open(
            &ns_path,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| Error::State(format!("{}: {e}", ns_path.display())))?;
        let state = tempfile::tempdir().map_err(|e| Error::State(format!("tempdir: {e}")))?;
        std::os::unix::fs::symlink(Root::KERNEL_PROC, state.path().join("proc"))
            .map_err(|e| Error::State(format!("sandbox state root: {e}")))?;
        Ok(Host {
            name,
            child,
            ns,
            state,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Makes `command` run inside this host's network namespace.
    pub fn enter_on_spawn(&self, command: &mut Command) {
        let fd = self.ns.as_raw_fd();
        // SAFETY: setns is a plain system call on an fd that outlives the spawn.
        unsafe {
            command.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }

    fn run(&self, program: &std::path::Path, args: &[&str]) -> Result<()> {
        let mut command = Command::new(program);
        command.args(args).stdin(Stdio::null());
        self.enter_on_spawn(&mut command);
        let out = command.output().map_err(|e| {
            Error::State(format!(
                "{} host: cannot run {}: {e} (the sandbox needs iproute2's `ip`)",
                self.name,
                program.display()
            ))
        })?;
        if !out.status.success() {
            return Err(Error::State(format!(
                "{} host: {} {} failed: {}",
                self.name,
                program.display(),
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    fn ip(&self, args: &[&str]) -> Result<()> {
        self.run(std::path::Path::new("ip"), args)
    }

    /// Applies a profile's per-namespace keys inside this host.
    fn apply(&self, profile: &str) -> Result<()> {
        let state = self.state.path().to_string_lossy().into_owned();
        let mut command = Command::new(exe()?);
        command
            .args(["--root", &state, "apply", "--no-persist", "-q", profile])
            .stdin(Stdio::null());
        self.enter_on_spawn(&mut command);
        let out = command
            .output()
            .map_err(|e| Error::State(format!("{} host: apply {profile}: {e}", self.name)))?;
        match out.status.code() {
            Some(0) => Ok(()),
            _ => Err(Error::State(format!(
                "{} host: apply {profile} failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            ))),
        }
    }

    fn counters(&self, root: &Root) -> BTreeMap<String, i64> {
        counters::read(root, &format!("proc/{}/net", self.pid()))
    }
}

/// `netprofile __holder`: keeps a namespace alive until its stdin closes.
pub fn holder() {
    println!("ok");
    let mut sink = String::new();
    let _ = std::io::stdin().read_line(&mut sink);
}

/// Builds the two hosts, applies `profiles` in order inside both, runs the test.
pub fn run_with(
    root: &Root,
    opts: &Options,
    profiles: &[&str],
    label: Option<String>,
) -> Result<Report> {
    let opts = &super::resolve(root, opts);
    // Workers play a login under the profiles' limits: the soft nofile their `*` entry gives,
    // unless --nofile says otherwise (engine::set_nofile caps it at the real hard limit).
    let mut opts = opts.clone();
    if opts.nofile.is_none() {
        for reference in profiles {
            if let Some(n) = login_nofile(&crate::profile::load(reference)?) {
                opts.nofile = Some(n);
            }
        }
    }
    let opts = &opts;
    let client = Host::start(root, "client")?;
    let server = Host::start(root, "server")?;
    for host in [&server, &client] {
        host.ip(&["link", "set", "lo", "up"])?;
    }
    let peer = client.pid().to_string();
    server.ip(&[
        "link", "add", "np0", "type", "veth", "peer", "name", "np1", "netns", &peer,
    ])?;
    let servers: Vec<Ipv4Addr> = (1..=opts.addresses.max(1))
        .map(|i| Ipv4Addr::new(198, 18, 0, i))
        .collect();
    for addr in &servers {
        server.ip(&["addr", "add", &format!("{addr}/15"), "dev", "np0"])?;
    }
    server.ip(&["link", "set", "np0", "up"])?;
    let sources: Vec<Ipv4Addr> = (1..=opts.sources.max(1))
        .map(|i| Ipv4Addr::new(198, 19, 0, i))
        .collect();
    for addr in &sources {
        client.ip(&["addr", "add", &format!("{addr}/15"), "dev", "np1"])?;
    }
    // Bind only when asked to spread; otherwise the kernel picks 198.19.0.1.
    let sources = if opts.sources > 1 {
        sources
    } else {
        Vec::new()
    };
    client.ip(&["link", "set", "np1", "up"])?;
    for profile in profiles {
        server.apply(profile)?;
        client.apply(profile)?;
    }
    let listen: Vec<SocketAddrV4> = servers
        .iter()
        .map(|a| SocketAddrV4::new(*a, PORT))
        .collect();
    let workers = opts.workers.max(1);
    let mut server_workers = super::start_servers(root, opts, &listen, workers, Some(&server))?;
    let before = [server.counters(root), client.counters(root)];
    let clients = super::run_clients(root, opts, &listen, &sources, workers, Some(&client))?;
    let server_reports = super::stop_servers(&mut server_workers)?;
    let mut counters_by_host = BTreeMap::new();
    counters_by_host.insert(
        "server".to_string(),
        counters::delta(&before[0], &server.counters(root)),
    );
    counters_by_host.insert(
        "client".to_string(),
        counters::delta(&before[1], &client.counters(root)),
    );
    Ok(super::assemble(
        super::settings(opts, "sandbox", label, &listen),
        clients,
        server_reports,
        counters_by_host,
    ))
}

/// The soft nofile a profile's limits give an ordinary login (`*`), if it sets one.
fn login_nofile(profile: &crate::profile::Profile) -> Option<u64> {
    profile
        .limits
        .iter()
        .filter(|l| {
            l.domain == crate::profile::limit::Domain::All
                && l.item == crate::profile::limit::Item::Nofile
        })
        .find_map(|l| match l.soft {
            Some(crate::profile::limit::LimitValue::Num(n)) => u64::try_from(n).ok(),
            _ => None,
        })
}

/// One sandbox run with `--baseline` (if any) applied.
pub fn run(root: &Root, opts: &Options) -> Result<Report> {
    let opts = &super::resolve(root, opts);
    let profiles: Vec<&str> = opts.baseline.iter().map(String::as_str).collect();
    run_with(root, opts, &profiles, opts.baseline.clone())
}
