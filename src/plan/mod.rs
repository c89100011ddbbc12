//! Planning: a pure function from (profile, live state) to what would change.
//!
//! `plan` decides, for every key, limit and file, whether it is in sync, would be set, or is
//! skipped and why; it runs every check that needs the live system (unknown keys, nofile against
//! fs.nr_open, soft above hard, listening ports in the new ephemeral range, files that override
//! the drop-in at boot). It never performs I/O: system/ reads, transaction/ writes.
//!
//! `plan` composes one planner per section of the profile, each in its own file: sysctl.rs
//! (keys now and at boot), limits.rs (what a login gets), systemd.rs (the manager and each
//! named service), modules.rs (pending keys), ports.rs (the ephemeral range), files.rs (the
//! drop-ins) and overrides.rs (files that would beat netprofile's).

use serde::Serialize;

use crate::error::{Error, Problem, Result};
use crate::profile::keys::{KeyName, Scope};
use crate::profile::{Origin, Profile};
use crate::system::LiveState;
use crate::system::root::Namespace;
use crate::system::sysctld::{Assignment, PORT_FLOOR, PORT_RANGE};
use crate::system::versions::SysctlRules;

// The section planners: each a pure function from its part of the profile and the live
// state to rows, overrides, problems and warnings; `plan` composes them.
mod files;
mod limits;
mod modules;
pub mod overrides;
mod ports;
mod sysctl;
mod systemd;

use files::planned_files;
use limits::{limit_warnings, lockout_warnings};
pub use modules::module_of;
use modules::pending_warnings;
pub use overrides::Override;
use ports::port_warnings;
use sysctl::{boot_cancels, boot_overrides, boot_unit_warning, effective_nr_open};
pub use sysctl::{is_bound, persisted};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Already as wanted.
    Keep,
    /// Would be written.
    Set,
    /// `optional = true` and this kernel lacks the key.
    SkipAbsent,
    /// A global key in a private network namespace.
    SkipGlobal,
    /// The kernel lacks the key because its module is not loaded: persisted for boot, applied
    /// by `apply --pending` once the module appears.
    Pending,
    /// Another file that netprofile does not own sets it to something else after netprofile's
    /// drop-in (see `Plan::overrides`); apply refuses unless `--allow-override`.
    Overridden,
}

impl Action {
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Action::Keep => "ok",
            Action::Set => "set",
            Action::SkipAbsent => "skip (absent)",
            Action::SkipGlobal => "skip (global)",
            Action::Pending => "pending",
            Action::Overridden => "overridden",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Source {
    pub file: String,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct BootValue {
    pub value: String,
    pub source: Source,
}

impl From<Assignment> for BootValue {
    fn from(a: Assignment) -> Self {
        BootValue {
            value: a.value,
            source: Source {
                file: a.file,
                line: a.line,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct SysctlRow {
    pub key: KeyName,
    pub scope: Scope,
    /// The value now; `None` when the kernel lacks the key.
    pub live: Option<String>,
    /// What the boot files set now, if any does.
    pub boot: Option<BootValue>,
    // In JSON this field is `rule` and `target` is `wanted`, the name every other row gives
    // the value netprofile sets (docs/json.md, one vocabulary).
    /// What the profile asks for, as written (`65535`, `>= 8192`, `<= 30`).
    #[serde(rename = "rule")]
    pub wanted: String,
    /// The value after apply; `null` when skipped.
    #[serde(rename = "wanted")]
    pub target: Option<String>,
    pub action: Action,
    /// For a pending key: the module that provides it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct LimitRow {
    pub domain: String,
    pub item: String,
    #[serde(rename = "type")]
    pub half: &'static str,
    /// The value in force for this domain now (pam_limits precedence), and where it is set.
    pub live: Option<String>,
    pub source: Option<Source>,
    pub wanted: String,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct SystemdRow {
    pub setting: &'static str,
    pub live: String,
    pub source: Option<Source>,
    pub wanted: String,
    pub action: Action,
}

/// One `[systemd.services."NAME.service"]` entry: what the unit gets now and after apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ServiceRow {
    pub unit: String,
    /// The LimitNOFILE= that wins now (systemd's precedence), `None` when nothing sets it.
    pub live: Option<String>,
    pub source: Option<Source>,
    pub wanted: String,
    /// The LimitNOFILE= that wins after apply, and where: another drop-in may beat ours.
    pub after: Option<String>,
    pub after_source: Option<Source>,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct FileChange {
    /// Root-relative path (`etc/sysctl.d/90-netprofile.conf`).
    #[serde(skip)]
    pub rel: String,
    /// As shown to the user (`/etc/sysctl.d/90-netprofile.conf`).
    pub path: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

impl FileChange {
    #[must_use]
    pub fn changes(&self) -> bool {
        self.old != self.new
    }

    #[must_use]
    pub fn verb(&self) -> &'static str {
        match (&self.old, &self.new) {
            (a, b) if a == b => "unchanged",
            (None, Some(_)) => "create",
            (Some(_), None) => "remove",
            _ => "modify",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Plan {
    pub profile: crate::profile::ProfileRef,
    pub namespace: Namespace,
    pub sysctl: Vec<SysctlRow>,
    pub limits: Vec<LimitRow>,
    pub systemd: Vec<SystemdRow>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceRow>,
    pub files: Vec<FileChange>,
    /// Files netprofile does not own that would override a managed setting.
    pub overrides: Vec<Override>,
    pub warnings: Vec<String>,
    /// The systemd-sysctl and pam_limits versions the boot and login values were modelled on.
    pub models: Vec<crate::system::versions::Model>,
}

impl Plan {
    /// True when apply would change anything (a live value or a file), or another file
    /// overrides a managed value and the operator has not accepted it.
    #[must_use]
    pub fn differs(&self) -> bool {
        self.overrides.iter().any(|o| !o.accepted)
            || self.sysctl.iter().any(|r| r.action == Action::Set)
            || self.limits.iter().any(|r| r.action == Action::Set)
            || self.systemd.iter().any(|r| r.action == Action::Set)
            || self.services.iter().any(|r| r.action == Action::Set)
            || self.files.iter().any(FileChange::changes)
    }

    /// The keys apply would write, in the order it writes them.
    #[must_use]
    pub fn to_set(&self) -> Vec<&SysctlRow> {
        let mut rows: Vec<&SysctlRow> = self
            .sysctl
            .iter()
            .filter(|r| r.action == Action::Set)
            .collect();
        // fs.nr_open bounds what nofile may be; fs.file-max bounds the whole machine. Raise
        // them first so that nothing later is refused for lack of them.
        rows.sort_by_key(|r| match r.key.as_str() {
            "fs.nr_open" => 0,
            "fs.file-max" => 1,
            _ => 2,
        });
        // The port range and ip_unprivileged_port_start bound each other: write them in the
        // order the kernel takes (ports::floor_first).
        let at = |name: &str| rows.iter().position(|r| r.key.as_str() == name);
        if let (Some(range), Some(floor)) = (at(PORT_RANGE), at(PORT_FLOOR)) {
            let target = rows[floor].target.as_deref().unwrap_or_default();
            let want_floor_first = ports::floor_first(target, rows[range].live.as_deref());
            if want_floor_first != (floor < range) {
                rows.swap(range, floor);
            }
        }
        rows
    }
}

fn problem(origin: &Origin, key: String, message: String) -> Problem {
    Problem {
        file: origin.file.clone(),
        line: Some(origin.line),
        key: Some(key),
        message,
    }
}

/// What one section planner decides: its rows, the overrides it finds, the problems that stop
/// the plan and its warnings.
struct Section<R> {
    rows: Vec<R>,
    overrides: Vec<Override>,
    problems: Vec<Problem>,
    warnings: Vec<String>,
}

impl<R> Default for Section<R> {
    fn default() -> Self {
        Section {
            rows: Vec::new(),
            overrides: Vec::new(),
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

/// The plan for `profile` against `live`, or every problem that stops it.
pub fn plan(profile: &Profile, live: &LiveState) -> Result<Plan> {
    let namespace = live.namespace.unwrap_or(Namespace::Initial);
    let sysctl = sysctl::plan(profile, live, namespace);
    let nr_open = effective_nr_open(profile, live, &sysctl.rows);
    // limits.conf and systemd are machine-wide files: a private namespace neither reads nor
    // persists them, so they are shown as skipped and not checked.
    let private = namespace == Namespace::Private;
    let files = if namespace == Namespace::Initial {
        planned_files(profile, live)
    } else {
        Vec::new()
    };
    let limits = limits::plan(profile, live, &files, nr_open, private);
    // Services start before netprofile.service raises a `min` fs.nr_open: from systemd 257 on
    // a LimitNOFILE above it fails the service (a Debian 13 guest lost ssh, dbus and udevd;
    // systemd 252 on Debian 12 started them), so their check takes the lower of the two there.
    let before_the_unit = if live.versions.sysctl_rules() >= SysctlRules::V257 {
        sysctl::nr_open_before_the_unit(profile, &sysctl.rows)
    } else {
        None
    };
    let services_nr_open = nr_open.into_iter().chain(before_the_unit).min();
    let manager = systemd::manager(profile, live, &files, services_nr_open, private);
    let services = systemd::services(profile, live, services_nr_open, private);

    let mut port_problems: Vec<Problem> = ports::port_floor(profile, &sysctl.rows, live)
        .into_iter()
        .collect();
    if !sysctl.problems.is_empty() {
        port_problems.clear();
    }
    let problems = [
        port_problems,
        sysctl.problems,
        limits.problems,
        manager.problems,
        services.problems,
    ]
    .concat();
    if !problems.is_empty() {
        return Err(Error::Invalid(crate::profile::in_line_order(problems)));
    }

    let mut overrides = [limits.overrides, manager.overrides, services.overrides].concat();
    let mut warnings = sysctl.warnings;
    warnings.extend(port_warnings(&sysctl.rows, live));
    if namespace == Namespace::Initial {
        overrides.splice(0..0, boot_overrides(profile, &sysctl.rows, live, &files));
        warnings.extend(overrides.iter().map(Override::describe));
        warnings.extend(past_apply_warnings(
            profile,
            &sysctl.rows,
            live,
            &files,
            nr_open,
        ));
    } else {
        warnings.push(
            "this is a private network namespace: global keys, limits and systemd settings are \
             skipped and nothing is persisted (boot files configure the initial namespace only)"
                .to_string(),
        );
    }

    Ok(Plan {
        profile: profile.reference(),
        namespace,
        sysctl: sysctl.rows,
        limits: limits.rows,
        systemd: manager.rows,
        services: services.rows,
        files,
        overrides,
        warnings,
        models: live.versions.models(),
    })
}

/// What looks past apply, beyond the overrides: the boot unit that holds min/max keys, boot
/// lines that cancel the drop-in, logins pam_limits refuses, limits that do not reach their
/// logins, pending keys whose module does not load at boot.
fn past_apply_warnings(
    profile: &Profile,
    rows: &[SysctlRow],
    live: &LiveState,
    files: &[FileChange],
    nr_open: Option<i64>,
) -> Vec<String> {
    let mut warnings: Vec<String> = boot_unit_warning(profile, rows, live).into_iter().collect();
    warnings.extend(boot_cancels(profile, rows, live, files));
    warnings.extend(lockout_warnings(live));
    warnings.extend(limit_warnings(profile, live, files, nr_open));
    warnings.extend(pending_warnings(profile, rows));
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Setting, Want};

    fn origin() -> Origin {
        Origin {
            file: "p.toml".into(),
            line: 1,
        }
    }

    fn profile(settings: &[(&str, Want, bool)]) -> Profile {
        Profile {
            name: "p".into(),
            description: String::new(),
            source: "p.toml".into(),
            text: String::new(),
            sysctl: settings
                .iter()
                .map(|(k, want, optional)| {
                    (
                        KeyName::parse(k).unwrap(),
                        Setting {
                            want: want.clone(),
                            optional: *optional,
                            origin: origin(),
                        },
                    )
                })
                .collect(),
            limits: Vec::new(),
            systemd_nofile: None,
            ..Profile::default()
        }
    }

    fn live(values: &[(&str, Option<&str>)], namespace: Namespace) -> LiveState {
        LiveState {
            namespace: Some(namespace),
            sysctl: values
                .iter()
                .map(|(k, v)| (KeyName::parse(k).unwrap(), v.map(String::from)))
                .collect(),
            ..LiveState::default()
        }
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn actions_by_table() {
        use Want::{Exact, Max, Min};
        let e = |s: &str| Exact(s.to_string());
        // (key, want, optional, live, namespace, expected action, expected target)
        let cases: Vec<(
            &str,
            Want,
            bool,
            Option<&str>,
            Namespace,
            Action,
            Option<&str>,
        )> = vec![
            (
                "net.core.somaxconn",
                e("4096"),
                false,
                Some("4096"),
                Namespace::Initial,
                Action::Keep,
                Some("4096"),
            ),
            (
                "net.core.somaxconn",
                e("65535"),
                false,
                Some("4096"),
                Namespace::Initial,
                Action::Set,
                Some("65535"),
            ),
            (
                "net.ipv4.tcp_max_syn_backlog",
                Min(8192),
                false,
                Some("2048"),
                Namespace::Initial,
                Action::Set,
                Some("8192"),
            ),
            (
                "net.ipv4.tcp_max_syn_backlog",
                Min(8192),
                false,
                Some("16384"),
                Namespace::Initial,
                Action::Keep,
                Some("16384"),
            ),
            (
                "net.ipv4.tcp_fin_timeout",
                Max(30),
                false,
                Some("60"),
                Namespace::Initial,
                Action::Set,
                Some("30"),
            ),
            (
                "net.ipv4.tcp_fin_timeout",
                Max(30),
                false,
                Some("15"),
                Namespace::Initial,
                Action::Keep,
                Some("15"),
            ),
            (
                "net.ipv4.ip_local_port_range",
                e("1024 65535"),
                false,
                Some("1024 65535"),
                Namespace::Initial,
                Action::Keep,
                Some("1024 65535"),
            ),
            (
                "net.netfilter.nf_conntrack_max",
                e("1048576"),
                true,
                None,
                Namespace::Initial,
                Action::SkipAbsent,
                None,
            ),
            (
                "net.netfilter.nf_conntrack_max",
                Min(262_144),
                false,
                None,
                Namespace::Initial,
                Action::Pending,
                Some("262144"),
            ),
            (
                "fs.file-max",
                e("2097152"),
                false,
                Some("100"),
                Namespace::Private,
                Action::SkipGlobal,
                None,
            ),
            (
                "net.core.somaxconn",
                e("65535"),
                false,
                Some("4096"),
                Namespace::Private,
                Action::Set,
                Some("65535"),
            ),
        ];
        for (key, want, optional, now, ns, action, target) in cases {
            let p = profile(&[(key, want.clone(), optional)]);
            let l = live(&[(key, now)], ns);
            let plan = plan(&p, &l).unwrap_or_else(|e| panic!("{key} {want:?}: {e}"));
            let row = &plan.sysctl[0];
            assert_eq!(
                (row.action, row.target.as_deref()),
                (action, target),
                "{key} {want:?} live {now:?}"
            );
        }
    }

    #[test]
    fn unknown_key_suggests_the_nearest() {
        let p = profile(&[("net.core.somaxcon", Want::Exact("1".into()), false)]);
        let mut l = live(&[("net.core.somaxcon", None)], Namespace::Initial);
        l.siblings.insert(
            KeyName::parse("net.core.somaxcon").unwrap(),
            vec!["somaxconn".into(), "rmem_max".into()],
        );
        let err = plan(&p, &l).unwrap_err().to_string();
        assert!(err.contains("unknown key"), "{err}");
        assert!(
            err.contains("Did you mean \"net.core.somaxconn\"?"),
            "{err}"
        );
    }

    #[test]
    fn absent_keys_in_a_private_namespace() {
        // A key the namespace lacks is global there (skipped), unless it looks like a typo.
        let p = profile(&[(
            "net.core.netdev_tstamp_prequeue",
            Want::Exact("1".into()),
            false,
        )]);
        let l = live(
            &[("net.core.netdev_tstamp_prequeue", None)],
            Namespace::Private,
        );
        let got = plan(&p, &l).unwrap();
        assert_eq!(got.sysctl[0].action, Action::SkipGlobal);
        assert!(
            got.warnings[0].contains("a global key"),
            "{:?}",
            got.warnings
        );

        let p = profile(&[("net.core.somaxcon", Want::Exact("1".into()), false)]);
        let l = live(&[("net.core.somaxcon", None)], Namespace::Private);
        let err = plan(&p, &l).unwrap_err().to_string();
        assert!(
            err.contains("Did you mean \"net.core.somaxconn\"?"),
            "{err}"
        );
    }

    #[test]
    fn persisted_values_are_the_profiles_own_and_exact_only() {
        let p = profile(&[
            ("net.ipv4.tcp_max_syn_backlog", Want::Min(4096), false),
            ("net.ipv4.tcp_fin_timeout", Want::Max(30), false),
            (
                "net.netfilter.nf_conntrack_max",
                Want::Exact("1048576".into()),
                true,
            ),
        ]);
        for (backlog, fin) in [("1024", "60"), ("65536", "10")] {
            let l = live(
                &[
                    ("net.ipv4.tcp_max_syn_backlog", Some(backlog)),
                    ("net.ipv4.tcp_fin_timeout", Some(fin)),
                    ("net.netfilter.nf_conntrack_max", None),
                ],
                Namespace::Initial,
            );
            let got = plan(&p, &l).unwrap();
            let text = got.files[0].new.clone().unwrap();
            // The min and max are held at boot by netprofile.service: a line here would make
            // systemd-sysctl set them, lowering a value boot raised.
            assert!(
                text.ends_with(
                    "# Do not edit: the next `netprofile apply` replaces this file.\n\
                     -net.netfilter.nf_conntrack_max = 1048576\n"
                ),
                "live {backlog} {fin}: {text}"
            );
        }
    }

    #[test]
    fn nofile_is_checked_against_nr_open_at_boot_too() {
        use crate::profile::limit::{Domain, Item, LimitValue};
        // Live nr_open was raised (systemd does at boot); only the min, 1048576, is held after a
        // reboot, so a hard nofile of 2000000 could fail at the next login.
        let mut p = profile(&[("fs.nr_open", Want::Min(1_048_576), false)]);
        p.limits.push(crate::profile::Limit {
            domain: Domain::All,
            item: Item::Nofile,
            soft: Some(LimitValue::Num(2_000_000)),
            hard: Some(LimitValue::Num(2_000_000)),
            origin: origin(),
        });
        let l = live(&[("fs.nr_open", Some("1073741816"))], Namespace::Initial);
        let err = plan(&p, &l).unwrap_err().to_string();
        assert!(
            err.contains("hard nofile 2000000 is above fs.nr_open 1048576"),
            "{err}"
        );
    }

    #[test]
    fn private_namespace_persists_nothing() {
        let p = profile(&[("net.core.somaxconn", Want::Exact("4096".into()), false)]);
        let l = live(&[("net.core.somaxconn", Some("4096"))], Namespace::Private);
        let plan = plan(&p, &l).unwrap();
        assert!(plan.files.is_empty());
        assert!(!plan.differs());
    }

    #[test]
    fn missing_dropin_counts_as_a_difference() {
        let p = profile(&[("net.core.somaxconn", Want::Exact("4096".into()), false)]);
        let l = live(&[("net.core.somaxconn", Some("4096"))], Namespace::Initial);
        let plan = plan(&p, &l).unwrap();
        assert_eq!(plan.sysctl[0].action, Action::Keep);
        assert!(plan.differs());
        assert_eq!(plan.files[0].verb(), "create");
    }

    #[test]
    fn nr_open_is_raised_before_anything_else() {
        let p = profile(&[
            ("fs.file-max", Want::Exact("3000000".into()), false),
            ("fs.nr_open", Want::Exact("2000000".into()), false),
            ("net.core.somaxconn", Want::Exact("65535".into()), false),
        ]);
        let l = live(
            &[
                ("fs.file-max", Some("100")),
                ("fs.nr_open", Some("1048576")),
                ("net.core.somaxconn", Some("4096")),
            ],
            Namespace::Initial,
        );
        let plan = plan(&p, &l).unwrap();
        let order: Vec<&str> = plan.to_set().iter().map(|r| r.key.as_str()).collect();
        assert_eq!(order, ["fs.nr_open", "fs.file-max", "net.core.somaxconn"]);
    }
}
