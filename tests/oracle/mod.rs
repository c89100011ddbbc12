//! The real programs the oracle tests compare netprofile's CLI with: systemd-sysctl and
//! pam_limits of Debian 12, 13 and sid, fetched by tests/oracle/fetch.sh into a cache outside
//! the repository and run each through its own ld.so, so nothing is installed. Under CI=true a
//! release that cannot be fetched or run fails the test; elsewhere the test says so and skips.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// One Debian release's programs, copied to a folder that uid 65534 can read (the cache may sit
/// in root's 0700 home).
pub struct Release {
    pub suite: String,
    pub systemd: String,
    pub pam: String,
    pub dir: PathBuf,
    _copy: TempDir,
}

pub const TRIPLET: &str = "usr/lib/x86_64-linux-gnu";

impl Release {
    /// The release's dynamic loader (bookworm's libc6 ships it in /lib, later ones in /usr/lib).
    pub fn ld_so(&self) -> PathBuf {
        [TRIPLET, "lib/x86_64-linux-gnu"]
            .iter()
            .map(|d| self.dir.join(d).join("ld-linux-x86-64.so.2"))
            .find(|p| p.exists())
            .unwrap_or_else(|| self.dir.join(TRIPLET).join("ld-linux-x86-64.so.2"))
    }

    /// The release's own libraries first, then the host's for what it does not ship
    /// (libaudit, libcap-ng: stable sonames, present on every Debian).
    pub fn library_path(&self) -> String {
        format!(
            "{}:{}:{}:/usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu",
            self.dir.join(TRIPLET).display(),
            self.dir.join(TRIPLET).join("systemd").display(),
            self.dir.join("lib/x86_64-linux-gnu").display(),
        )
    }

    /// A shell command prefix that runs a program with this release's ld.so and libraries.
    pub fn run_prefix(&self) -> String {
        format!(
            "'{}' --library-path '{}'",
            self.ld_so().display(),
            self.library_path()
        )
    }

    pub fn systemd_sysctl(&self) -> PathBuf {
        [
            "usr/lib/systemd/systemd-sysctl",
            "lib/systemd/systemd-sysctl",
        ]
        .iter()
        .map(|p| self.dir.join(p))
        .find(|p| p.exists())
        .unwrap_or_else(|| self.dir.join("usr/lib/systemd/systemd-sysctl"))
    }

    pub fn pam_limits(&self) -> PathBuf {
        [
            "usr/lib/x86_64-linux-gnu/security/pam_limits.so",
            "lib/x86_64-linux-gnu/security/pam_limits.so",
        ]
        .iter()
        .map(|p| self.dir.join(p))
        .find(|p| p.exists())
        .unwrap_or_else(|| self.dir.join(TRIPLET).join("security/pam_limits.so"))
    }

    /// The dpkg status file of a root that has this release's packages installed: what
    /// netprofile reads to choose its model.
    pub fn dpkg_status(&self) -> String {
        format!(
            "Package: systemd\nStatus: install ok installed\nVersion: {}\n\nPackage: \
             libpam-modules\nStatus: install ok installed\nVersion: {}\n",
            self.systemd, self.pam
        )
    }
}

fn fail_or_skip(why: &str) -> Vec<Release> {
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
    eprintln!("skipped: {why}");
    Vec::new()
}

/// Fetches (or finds in the cache) the three releases. Empty when they cannot be had outside CI.
pub fn releases() -> Vec<Release> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/fetch.sh");
    let out = match Command::new("bash").arg(&script).output() {
        Ok(out) => out,
        Err(e) => return fail_or_skip(&format!("cannot run {}: {e}", script.display())),
    };
    if !out.status.success() {
        return fail_or_skip(&format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut releases = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let [suite, systemd, pam, dir] = f[..] else {
            return fail_or_skip(&format!("fetch.sh printed {line:?}"));
        };
        let copy = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(copy.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let status = Command::new("cp")
            .args(["-a", dir])
            .arg(copy.path().join("r"))
            .status()
            .expect("cp");
        assert!(status.success(), "cannot copy {dir}");
        releases.push(Release {
            suite: suite.into(),
            systemd: systemd.into(),
            pam: pam.into(),
            dir: copy.path().join("r"),
            _copy: copy,
        });
    }
    if releases.len() != 3 {
        return fail_or_skip("fetch.sh did not list bookworm, trixie and sid");
    }
    releases
}

/// Runs the real `netprofile` with `--root ROOT` and the given arguments; its JSON stdout.
pub fn cli_json(root: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_netprofile"))
        .arg("--root")
        .arg(root)
        .args(args)
        .arg("--json")
        .output()
        .expect("run netprofile");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "netprofile {args:?} printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A small deterministic generator (xorshift) for the generated cases.
pub struct Rng(pub u64);
impl Rng {
    /// The suite's own seed, or `NETPROFILE_ORACLE_SEED` (decimal or 0x-hex) for trees nobody
    /// has seen: a reviewer's independent run. The seed in use is printed, so a failing run can
    /// be repeated.
    pub fn seeded(default: u64) -> Rng {
        let seed = std::env::var("NETPROFILE_ORACLE_SEED")
            .ok()
            .and_then(|s| match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => s.parse().ok(),
            })
            .filter(|s| *s != 0)
            .unwrap_or(default);
        eprintln!("oracle: generated cases from seed {seed:#x}");
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[usize::try_from(self.next() % items.len() as u64).unwrap_or(0)]
    }
}
