//! Which systemd-sysctl and pam_limits a root runs: the versions of the packages that ship them
//! in the root's package database (dpkg's `var/lib/dpkg/status`: `systemd` and
//! `libpam-modules`; rpm's `usr/lib/sysimage/rpm` or `var/lib/rpm`: `systemd` and `pam`), and
//! the rule set netprofile models for each.
//!
//! What systemd-sysctl and pam_limits do depends on their version (DESIGN.md "Versions are
//! facts"): pam_limits 1.5.x fails the session when limits.conf is missing or a limits.d
//! entry cannot be opened, and reads lines of at most 1023 bytes; 1.7.x skips missing files and
//! reads lines of any length. An unknown version (no package database, an rpm database but no
//! `rpm` program on this host to read it, a package not installed) is said so and modelled with
//! the newest rules. This module parses text given to it; it never performs I/O (system/mod.rs
//! reads dpkg's file and asks `rpm`).

use serde::Serialize;

/// The pam_limits rules netprofile knows, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum PamRules {
    /// Linux-PAM 1.5.x (Debian 12): a missing limits.conf or an unopenable limits.d file fails
    /// the session; `fgets` into 1024 bytes splits longer lines; Debian resets an unset soft
    /// nofile to 1024.
    V1_5,
    /// Linux-PAM 1.6 and later (Debian 13, sid): missing files are skipped, `getline` reads
    /// lines of any length.
    #[default]
    V1_7,
}

impl PamRules {
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            PamRules::V1_5 => "1.5",
            PamRules::V1_7 => "1.7",
        }
    }
}

/// The systemd-sysctl rules netprofile knows. systemd 252, 257 and 262 read sysctl.d the same
/// way for everything netprofile models (the oracle suite runs all three); the type exists so
/// the version is stated and a difference has one place to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum SysctlRules {
    V252,
    #[default]
    V257,
}

impl SysctlRules {
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            SysctlRules::V252 => "252",
            SysctlRules::V257 => "257",
        }
    }
}

/// What one model of a reader was built from, as `diff`, `status` and `explain` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Model {
    /// `systemd-sysctl` or `pam_limits`.
    pub program: &'static str,
    /// The package that ships it (`systemd`; `libpam-modules` under dpkg, `pam` under rpm).
    pub package: &'static str,
    /// The installed version from the root's package database; `None` when unknown.
    pub version: Option<String>,
    /// The rule set applied (`1.5`, `1.7`, `252`, `257`).
    pub rules: &'static str,
    /// One line for people: `pam_limits 1.5.2-6+deb12u1 (rules 1.5)`, or why it is unknown.
    pub note: String,
}

impl Model {
    /// A few words for one-line summaries: `pam_limits 1.5.2-6+deb12u1`, or
    /// `pam_limits unknown (as 1.7)`.
    #[must_use]
    pub fn short(&self) -> String {
        match &self.version {
            Some(v) => format!("{} {v}", self.program),
            None => format!("{} unknown (as {})", self.program, self.rules),
        }
    }
}

/// Which package database the versions come from: it decides the package names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Database {
    /// Debian, Ubuntu: pam_limits is in `libpam-modules`.
    #[default]
    Dpkg,
    /// RHEL, Fedora, SUSE: pam_limits is in `pam`.
    Rpm,
}

impl Database {
    /// The package that ships pam_limits.so (systemd-sysctl is in `systemd` on both).
    #[must_use]
    pub fn pam_package(self) -> &'static str {
        match self {
            Database::Dpkg => "libpam-modules",
            Database::Rpm => "pam",
        }
    }
}

/// The versions found under a root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versions {
    pub systemd: Option<String>,
    pub pam: Option<String>,
    /// Where they were looked for, for the "unknown" note.
    pub database: Option<String>,
    pub kind: Database,
    /// Why the database was found but not read (no `rpm` program on this host); `None` when it
    /// was read or there is none.
    pub unread: Option<String>,
}

/// The `--qf` netprofile asks `rpm -q` for: a tab, so that rpm's own "package pam is not
/// installed" line (also on stdout) never parses as a version.
pub const RPM_QUERY_FORMAT: &str = "%{NAME}\t%|EPOCH?{%{EPOCH}:}|%{VERSION}-%{RELEASE}\n";

/// The rpm packages asked for: the ones that ship systemd-sysctl and pam_limits.
pub const RPM_PACKAGES: [&str; 2] = ["systemd", "pam"];

/// The upstream part of a Debian version: `1:1.5.2-6+deb12u1` → `[1, 5, 2]`.
fn upstream(version: &str) -> Vec<u64> {
    let v = version.split_once(':').map_or(version, |(_, v)| v);
    let v = v.rsplit_once('-').map_or(v, |(u, _)| u);
    v.split(|c: char| !c.is_ascii_digit())
        .take_while(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

impl Versions {
    /// Reads dpkg's status file: the `Version:` of each wanted package whose `Status:` ends in
    /// `installed`.
    #[must_use]
    pub fn from_dpkg_status(text: &str) -> Versions {
        let mut found = Versions {
            database: Some(crate::system::root::Root::display(
                crate::system::root::Root::DPKG_STATUS,
            )),
            ..Versions::default()
        };
        // Only the stanzas of the wanted packages are read, each found by a substring search
        // for its `Package:` line over the whole file (800 KB on a plain Debian host) rather
        // than by splitting every stanza into lines; the stanza runs from the blank line
        // before that line (dpkg writes `Package:` first, but nothing here relies on it) to
        // the blank line after it.
        for (package, slot) in [
            ("systemd", &mut found.systemd),
            ("libpam-modules", &mut found.pam),
        ] {
            let needle = format!("Package: {package}\n");
            for at in memchr::memmem::find_iter(text.as_bytes(), needle.as_bytes()) {
                if at > 0 && text.as_bytes()[at - 1] != b'\n' {
                    continue;
                }
                let start = text[..at].rfind("\n\n").map_or(0, |b| b + 2);
                let end = text[at..].find("\n\n").map_or(text.len(), |e| at + e);
                let stanza = &text[start..end];
                let field = |name: &str| {
                    stanza.lines().find_map(|l| {
                        l.strip_prefix(name)
                            .and_then(|r| r.strip_prefix(':'))
                            .map(str::trim)
                    })
                };
                let installed = field("Status").is_some_and(|s| s.ends_with(" installed"));
                if let (Some(version), true) = (field("Version"), installed) {
                    *slot = Some(version.to_string());
                }
            }
        }
        found
    }

    /// Reads what `rpm -q --qf RPM_QUERY_FORMAT systemd pam` printed (`systemd\t252.46-1.el9`
    /// lines) for the database at `database` (as shown, `/var/lib/rpm`).
    #[must_use]
    pub fn from_rpm_query(text: &str, database: &str) -> Versions {
        let mut found = Versions {
            database: Some(database.to_string()),
            kind: Database::Rpm,
            ..Versions::default()
        };
        for line in text.lines() {
            let Some((name, version)) = line.split_once('\t') else {
                continue;
            };
            let version = version.trim();
            if version.is_empty() {
                continue;
            }
            match name {
                "systemd" => found.systemd = Some(version.to_string()),
                "pam" => found.pam = Some(version.to_string()),
                _ => {}
            }
        }
        found
    }

    /// Whether either package was found.
    #[must_use]
    pub fn found_any(&self) -> bool {
        self.systemd.is_some() || self.pam.is_some()
    }

    #[must_use]
    pub fn pam_rules(&self) -> PamRules {
        match self.pam.as_deref().map(upstream).as_deref() {
            Some([1, minor, ..]) if *minor < 6 => PamRules::V1_5,
            Some([0, ..]) => PamRules::V1_5,
            _ => PamRules::V1_7,
        }
    }

    #[must_use]
    pub fn sysctl_rules(&self) -> SysctlRules {
        match self.systemd.as_deref().map(upstream).as_deref() {
            Some([major, ..]) if *major < 257 => SysctlRules::V252,
            _ => SysctlRules::V257,
        }
    }

    fn note(&self, program: &str, version: Option<&String>, rules: &str) -> String {
        match (version, &self.database, &self.unread) {
            (Some(v), _, _) => format!("{program} {v} (rules {rules})"),
            (None, Some(db), Some(why)) => format!(
                "{program}: version unknown (an rpm database is at {db}, but {why}); modelled as \
                 the newest known ({rules})"
            ),
            (None, Some(db), None) => format!(
                "{program}: version unknown (its package is not installed in {db}); modelled as \
                 the newest known ({rules})"
            ),
            (None, None, _) => format!(
                "{program}: version unknown (no dpkg or rpm database under the root); modelled \
                 as the newest known ({rules})"
            ),
        }
    }

    /// The two models, as reports show them.
    #[must_use]
    pub fn models(&self) -> Vec<Model> {
        let sysctl = self.sysctl_rules().label();
        let pam = self.pam_rules().label();
        vec![
            Model {
                program: "systemd-sysctl",
                package: "systemd",
                version: self.systemd.clone(),
                rules: sysctl,
                note: self.note("systemd-sysctl", self.systemd.as_ref(), sysctl),
            },
            Model {
                program: "pam_limits",
                package: self.kind.pam_package(),
                version: self.pam.clone(),
                rules: pam,
                note: self.note("pam_limits", self.pam.as_ref(), pam),
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status() {
        let text = "Package: libpam-modules\nStatus: install ok installed\nArchitecture: amd64\n\
                    Version: 1.5.2-6+deb12u1\n\nPackage: systemd\nStatus: deinstall ok \
                    config-files\nVersion: 252.1-1\n\nPackage: systemd\nStatus: install ok \
                    installed\nVersion: 257.13-1~deb13u1\n";
        let v = Versions::from_dpkg_status(text);
        assert_eq!(v.pam.as_deref(), Some("1.5.2-6+deb12u1"));
        assert_eq!(v.systemd.as_deref(), Some("257.13-1~deb13u1"));
        assert_eq!(v.pam_rules(), PamRules::V1_5);
        assert_eq!(v.sysctl_rules(), SysctlRules::V257);
        let newer = Versions {
            pam: Some("1.7.0-8".into()),
            systemd: Some("252.39-1~deb12u2".into()),
            ..Versions::default()
        };
        assert_eq!(newer.pam_rules(), PamRules::V1_7);
        assert_eq!(newer.sysctl_rules(), SysctlRules::V252);
        let unknown = Versions::default();
        assert_eq!(unknown.pam_rules(), PamRules::V1_7);
        assert!(unknown.models()[1].note.contains("unknown"));
    }

    #[test]
    fn dpkg_status_reads_only_the_wanted_stanzas() {
        // A package whose name starts with a wanted one, a description that names one, the
        // file's first stanza, and a last stanza with no blank line after it.
        let text = "Package: systemd\nStatus: install ok installed\nVersion: 252.39-1~deb12u1\n\n\
                    Package: systemd-sysv\nStatus: install ok installed\nVersion: 999-1\n\n\
                    Package: libpam-doc\nStatus: install ok installed\nVersion: 9.9.9-1\n\
                    Description: docs\n Package: libpam-modules\n Version: 0.1-1\n\n\
                    Package: libpam-modules\nStatus: install ok installed\nVersion: 1.7.0-8";
        let v = Versions::from_dpkg_status(text);
        assert_eq!(v.systemd.as_deref(), Some("252.39-1~deb12u1"));
        assert_eq!(v.pam.as_deref(), Some("1.7.0-8"));
        let none = Versions::from_dpkg_status(
            "Package: systemd-sysv\nStatus: install ok installed\n\
                                               Version: 1\n",
        );
        assert!(!none.found_any());
        // Fields before the Package: line are the stanza's too (a hand-written root).
        let late = Versions::from_dpkg_status(
            "Package: libc6\nVersion: 2.36\n\nStatus: install ok installed\n\
             Package: systemd\nVersion: 257.9-1\n",
        );
        assert_eq!(late.systemd.as_deref(), Some("257.9-1"));
    }

    #[test]
    fn rpm_query() {
        // What rpm 4.18 prints for an installed systemd and a pam it does not have, and for an
        // epoch.
        let v = Versions::from_rpm_query(
            "systemd\t252.46-1.el9\npackage pam is not installed\n",
            "/var/lib/rpm",
        );
        assert_eq!(v.systemd.as_deref(), Some("252.46-1.el9"));
        assert_eq!(v.pam, None);
        assert_eq!(v.sysctl_rules(), SysctlRules::V252);
        let models = v.models();
        assert_eq!(models[1].package, "pam");
        assert!(
            models[1].note.contains("not installed in /var/lib/rpm"),
            "{}",
            models[1].note
        );
        let v = Versions::from_rpm_query("pam\t1:1.5.1-22.el9\n", "/usr/lib/sysimage/rpm");
        assert_eq!(v.pam_rules(), PamRules::V1_5);
    }
}
