//! The integration-test builder: a temporary root with a stock kernel's `proc/sys`, files the
//! test adds, and the real `netprofile` binary run against it with `--root`.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// `proc/sys` of a stock 6.x kernel in the initial network namespace (tcp_mem present).
pub const STOCK_SYSCTL: &[(&str, &str)] = &[
    ("net.core.somaxconn", "4096"),
    ("net.core.netdev_max_backlog", "1000"),
    ("net.core.rmem_max", "212992"),
    ("net.ipv4.tcp_max_syn_backlog", "2048"),
    ("net.ipv4.tcp_syncookies", "1"),
    ("net.ipv4.tcp_tw_reuse", "2"),
    ("net.ipv4.tcp_timestamps", "1"),
    ("net.ipv4.tcp_max_tw_buckets", "131072"),
    ("net.ipv4.tcp_fin_timeout", "60"),
    ("net.ipv4.ip_local_port_range", "32768\t60999"),
    ("net.ipv4.ip_unprivileged_port_start", "1024"),
    ("net.ipv4.ip_local_reserved_ports", ""),
    ("net.ipv4.tcp_rmem", "4096\t131072\t6291456"),
    ("net.ipv4.tcp_wmem", "4096\t16384\t4194304"),
    ("net.ipv4.tcp_mem", "190863\t254485\t381726"),
    ("fs.file-max", "9223372036854775807"),
    ("fs.nr_open", "1048576"),
];

pub struct Test {
    dir: TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

pub struct Outcome {
    pub code: i32,
    /// The signal that ended the process, if one did (a fault point's SIGKILL).
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub dir: TempDir,
}

impl Test {
    /// A process at proc/PID as doctor, metrics and watch read it: its `comm`, a soft nofile
    /// of 1024 (hard 1048576), `threads`, and its cgroup line where it has one.
    pub fn process(self, pid: u32, comm: &str, threads: u32, cgroup: Option<&str>) -> Self {
        let t = self
            .file(&format!("proc/{pid}/comm"), &format!("{comm}\n"))
            .file(
                &format!("proc/{pid}/limits"),
                "Limit                     Soft Limit           Hard Limit           Units\n\
                 Max open files            1024                 1048576              files\n",
            )
            .file(
                &format!("proc/{pid}/status"),
                &format!("Name:\t{comm}\nThreads:\t{threads}\n"),
            );
        match cgroup {
            Some(line) => t.file(&format!("proc/{pid}/cgroup"), &format!("{line}\n")),
            None => t,
        }
    }

    /// Open fds of process `pid`: proc/PID/fd/N links to `target` for each N of `fds`.
    pub fn fds(self, pid: u32, fds: impl IntoIterator<Item = usize>, target: &str) -> Self {
        let dir = self.root().join(format!("proc/{pid}/fd"));
        std::fs::create_dir_all(&dir).unwrap();
        for n in fds {
            std::os::unix::fs::symlink(target, dir.join(n.to_string())).unwrap();
        }
        self
    }

    /// A client `loadgen` (pid 5151, no listener, in a login's scope) at a soft nofile of 1024
    /// with `fds` open (links to /dev/null): doctor's busy client, for metrics and watch.
    pub fn busy_client(self, fds: std::ops::Range<usize>) -> Self {
        self.process(
            5151,
            "loadgen",
            1,
            Some("0::/user.slice/user-1000.slice/session-3.scope"),
        )
        .fds(5151, fds, "/dev/null")
    }

    /// A root with the stock `proc/sys` above.
    pub fn new() -> Self {
        let t = Test::bare();
        STOCK_SYSCTL
            .iter()
            .fold(t, |t, (key, value)| t.sysctl(key, value))
    }

    /// A root with nothing in it.
    pub fn bare() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("root")).expect("root dir");
        Test {
            dir,
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Writes a file under the root (`etc/sysctl.d/99-x.conf`).
    pub fn file(self, rel: &str, text: &str) -> Self {
        write(&self.root().join(rel), text);
        self
    }

    /// Sets a key's file in the fake `proc/sys`, as the kernel prints it (with a newline).
    pub fn sysctl(self, key: &str, value: &str) -> Self {
        let rel = format!("proc/sys/{}", key.replace('.', "/"));
        self.file(&rel, &format!("{value}\n"))
    }

    pub fn remove(self, rel: &str) -> Self {
        std::fs::remove_file(self.root().join(rel)).expect("remove");
        self
    }

    /// Writes a profile next to the root (the working directory of the run).
    pub fn profile(self, name: &str, text: &str) -> Self {
        write(&self.dir.path().join(name), text);
        self
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| (*a).to_string()));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn run(self) -> Outcome {
        run_in(self.dir, &self.args, &self.env)
    }

    /// Runs like `run`, but kills the run if it has not finished within `limit` (a hang is then
    /// a failed assertion, not a stuck test): `code` -1 and stderr "did not finish".
    pub fn run_within(self, limit: std::time::Duration) -> Outcome {
        use std::io::Read;
        let mut child = Command::new(env!("CARGO_BIN_EXE_netprofile"))
            .current_dir(self.dir.path())
            .arg("--root")
            .arg(self.dir.path().join("root"))
            .args(&self.args)
            .env_remove("NO_COLOR")
            .env_remove("NETPROFILE_FAULT")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run netprofile");
        // Drain both pipes meanwhile, so a large output cannot block the child.
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut bytes);
                }
                String::from_utf8_lossy(&bytes).into_owned()
            })
        };
        let out = drain(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let err = drain(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let end = std::time::Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break Some(status);
            }
            if std::time::Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        match status {
            Some(status) => Outcome {
                code: status.code().unwrap_or(-1),
                signal: std::os::unix::process::ExitStatusExt::signal(&status),
                stdout,
                stderr,
                dir: self.dir,
            },
            None => Outcome {
                code: -1,
                signal: None,
                stdout,
                stderr: format!("did not finish within {limit:?}\n{stderr}"),
                dir: self.dir,
            },
        }
    }
}

fn run_in(dir: TempDir, args: &[String], env: &[(String, String)]) -> Outcome {
    let output = Command::new(env!("CARGO_BIN_EXE_netprofile"))
        .current_dir(dir.path())
        .arg("--root")
        .arg(dir.path().join("root"))
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("NETPROFILE_FAULT")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run netprofile");
    let outcome = Outcome {
        code: output.status.code().unwrap_or(-1),
        signal: std::os::unix::process::ExitStatusExt::signal(&output.status),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        dir,
    };
    // Every `--json` run of the tests checks its document against the published schema
    // (a run killed by an injected fault prints nothing).
    if outcome.signal.is_none() && args.iter().any(|a| a == "--json") {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        validate_json(&args, &outcome.stdout);
    }
    outcome
}

/// The subcommands that print a `--json` document, each with docs/schema/NAME.json.
pub const JSON_COMMANDS: &[&str] = &[
    "diff", "check", "apply", "confirm", "rollback", "history", "status", "test", "profiles",
    "doctor", "explain", "watch", "render",
];

/// Checks the stdout of `netprofile ARGS` (with --json) against docs/schema/: the command's
/// schema, or error.json when the command failed. Panics with every violation.
pub fn validate_json(args: &[&str], stdout: &str) -> serde_json::Value {
    // The subcommand: the first word that is neither a flag nor a global flag's value.
    let mut words = args.iter().copied();
    let mut command = "";
    while let Some(word) = words.next() {
        if matches!(word, "--root" | "--color") {
            words.next();
        } else if !word.starts_with('-') {
            command = word;
            break;
        }
    }
    let doc: serde_json::Value = serde_json::from_str(stdout).unwrap_or_else(|e| {
        panic!("netprofile {args:?} --json printed no single JSON document ({e}):\n{stdout}")
    });
    let name = if doc.get("error").is_some() {
        "error"
    } else {
        command
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("docs/schema/{name}.json"));
    assert!(
        path.exists(),
        "`netprofile {command} --json` has no published schema: add docs/schema/{name}.json \
         and name it in docs/json.md"
    );
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let validator = jsonschema::validator_for(&schema)
        .unwrap_or_else(|e| panic!("{} is not a valid schema: {e}", path.display()));
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "netprofile {args:?}: the JSON does not match docs/schema/{name}.json:\n{}\n{doc:#}",
        errors.join("\n")
    );
    doc
}

impl Outcome {
    /// Runs netprofile again on the same root and working directory.
    pub fn then(self, args: &[&str]) -> Outcome {
        self.then_env(args, &[])
    }

    /// Runs again with extra environment (`NETPROFILE_FAULT`).
    pub fn then_env(self, args: &[&str], env: &[(&str, &str)]) -> Outcome {
        let args: Vec<String> = args.iter().map(|a| (*a).to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        run_in(self.dir, &args, &env)
    }

    /// Files under the root except netprofile's own state (var/lib/netprofile, run).
    pub fn system_files(&self) -> Vec<(PathBuf, String)> {
        system_files(&self.root())
    }

    pub fn code(self, want: i32) -> Self {
        assert_eq!(
            self.code, want,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn stdout(self, want: &str) -> Self {
        assert_eq!(
            self.stdout,
            unindent(want),
            "stdout\n--- stderr\n{}",
            self.stderr
        );
        self
    }

    pub fn stdout_has(self, want: &str) -> Self {
        assert!(
            self.stdout.contains(want),
            "stdout lacks {want:?}\n--- stdout\n{}",
            self.stdout
        );
        self
    }

    pub fn stderr(self, want: &str) -> Self {
        assert_eq!(
            self.stderr,
            unindent(want),
            "stderr\n--- stdout\n{}",
            self.stdout
        );
        self
    }

    pub fn stderr_has(self, want: &str) -> Self {
        assert!(
            self.stderr.contains(want),
            "stderr lacks {want:?}\n--- stderr\n{}",
            self.stderr
        );
        self
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
}

pub fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// Removes the common indentation of an inline expectation and its first newline.
pub fn unindent(text: &str) -> String {
    let mut text = text.strip_prefix('\n').unwrap_or(text);
    if let Some(cut) = text.rfind('\n')
        && text[cut + 1..].trim().is_empty()
    {
        text = &text[..=cut];
    }
    let indent = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out: String = text
        .lines()
        .map(|l| {
            if l.len() >= indent {
                &l[indent..]
            } else {
                l.trim_start()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Every file under a directory with its content, for "nothing was changed" checks.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap_or_default();
                out.push((path, bytes));
            }
        }
    }
    out.sort();
    out
}

/// Files under a root except netprofile's own state (var/lib/netprofile, run).
pub fn system_files(root: &Path) -> Vec<(PathBuf, String)> {
    snapshot(root)
        .into_iter()
        .map(|(p, bytes)| (p, String::from_utf8_lossy(&bytes).into_owned()))
        .filter(|(p, _)| {
            let rel = p.strip_prefix(root).unwrap_or(p);
            !(rel.starts_with("var/lib/netprofile") || rel.starts_with("run"))
        })
        .collect()
}

/// Runs `script` with bash in a fresh private user + network namespace as uid 65534.
/// `$NP` is the netprofile binary and `$ROOT` (also `$D`) a temporary root, owned by that uid,
/// whose `proc` is the real one.
pub fn in_netns(script: &str, files: &[(&str, &str)]) -> Option<(Output, tempfile::TempDir)> {
    in_private_ns(script, files, false)
}

/// `in_netns`, with `own_pids` also in a mount and pid namespace of its own (`unshare -rnm
/// --pid --fork --mount-proc`): when the script ends, the kernel ends every server and load
/// generator it started, and their output pipes close; a tmpfs may hide a system folder.
pub fn in_private_ns(
    script: &str,
    files: &[(&str, &str)],
    own_pids: bool,
) -> Option<(Output, tempfile::TempDir)> {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).expect("write file");
    }
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // The namespace's root is uid 65534 outside: give it the temporary root (state, lock).
    if let Err(e) = std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)) {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "chown: {e}");
    }
    std::os::unix::fs::symlink("/proc", dir.path().join("proc")).expect("symlink");
    // A copy of the binary, so uid 65534 can run it wherever the checkout lives.
    let np = dir.path().join("netprofile");
    std::fs::copy(env!("CARGO_BIN_EXE_netprofile"), &np).expect("copy binary");
    std::fs::set_permissions(&np, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let unshare: &[&str] = if own_pids {
        &["unshare", "-rnm", "--pid", "--fork", "--mount-proc"]
    } else {
        &["unshare", "-rn"]
    };
    let run = |script: &str| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .args(unshare)
            .args(["bash", "-c", script])
            .env("NP", &np)
            .env("ROOT", dir.path())
            .env("D", dir.path())
            .env(
                "PATH",
                format!(
                    "{}:/usr/sbin:/sbin",
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .current_dir(dir.path())
            .output()
    };
    match run("test -w /proc/sys/net/core/somaxconn") {
        Ok(probe) if probe.status.success() => {}
        other => {
            let why = format!("cannot enter a private user + network namespace: {other:?}");
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
            eprintln!("skipped: {why}");
            return None;
        }
    }
    let output = run(script).expect("run sandbox");
    Some((output, dir))
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A python3 listener on 127.0.0.1 named `comm` (a python bytes literal, as written to
/// /proc/self/comm: 15 bytes at most) that lowers its soft nofile to 64 and holds every fd but
/// `spare` of them; it writes `ready` (a file) when it is so and exits by itself after 180 s.
/// Tests of what a hostile process name does to human output (terminal.rs, watch.rs).
pub fn named_listener(comm: &str, spare: usize) -> String {
    let after = if spare == 0 {
        "held.append(open(\"/dev/null\"))\n"
    } else {
        ""
    };
    format!(
        r#"
import os, resource, socket, time
with open("/proc/self/comm", "wb") as f:
    f.write({comm})
resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
held = []
try:
    while True:
        held.append(open("/dev/null"))
except OSError:
    pass
for _ in range(max({spare}, 1)):
    held.pop().close()
open("ready.tmp", "w").close()
os.rename("ready.tmp", "ready")
{after}time.sleep(180)
"#
    )
}
