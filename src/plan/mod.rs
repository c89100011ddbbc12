//! Planning: a pure function from (profile, live state) to what would change.
//!
//! `plan` decides, for every key, limit and file, whether it is in sync, would be set, or is
//! skipped and why; it runs every check that needs the live system (unknown keys, nofile against
//! fs.nr_open, soft above hard, listening ports in the new ephemeral range, files that override
//! the drop-in at boot). It never performs I/O: system/ reads, transaction/ writes.

use serde::Serialize;

use crate::error::{Error, Problem, Result};
use crate::profile::dropin;
use crate::profile::keys::{self, KeyName, Scope};
use crate::profile::limit::{Domain, Item, LimitValue};
use crate::profile::value;
use crate::profile::{Origin, Profile, Want};
use crate::system::limits::{self, Resolved};
use crate::system::root::{Namespace, Root};
use crate::system::sysctld::{self, Assignment, BootFile};
use crate::system::{self as live, LiveState};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    pub file: String,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SysctlRow {
    pub key: KeyName,
    pub scope: Scope,
    /// The value now; `None` when the kernel lacks the key.
    pub live: Option<String>,
    /// What the boot files set now, if any does.
    pub boot: Option<BootValue>,
    /// What the profile asks for, as written (`65535`, `>= 8192`, `<= 30`).
    pub wanted: String,
    /// The value after apply (`None` when skipped).
    pub target: Option<String>,
    pub action: Action,
    /// For a pending key: the module that provides it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SystemdRow {
    pub setting: &'static str,
    pub live: String,
    pub source: Option<Source>,
    pub wanted: String,
    pub action: Action,
}

/// One `[systemd.services."NAME.service"]` entry: what the unit gets now and after apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// A file netprofile does not own that sets a managed setting to another value after
/// netprofile's drop-in, so the profile's value would not hold at boot, login or service start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Override {
    /// The key (`net.core.somaxconn`), limit (`* soft nofile`) or `DefaultLimitNOFILE`.
    pub setting: String,
    /// What the profile wants.
    pub wanted: String,
    /// What the other file sets.
    pub value: String,
    pub file: String,
    pub line: usize,
    /// When the other file wins: `boot`, `login` or `service start`.
    pub when: String,
    /// Accepted with `apply --allow-override` (set by the commands from the generations; the
    /// pure plan leaves it false). An unaccepted override is a difference.
    #[serde(default)]
    pub accepted: bool,
}

impl Override {
    /// One line for errors and warnings, with the fix.
    #[must_use]
    pub fn describe(&self) -> String {
        format!(
            "{}:{} sets {} to {} (netprofile wants {}), and it is read after netprofile's \
             drop-in, so at {} the value would be {}. Remove that line or the file, or pass \
             --allow-override to apply anyway and record it as overridden",
            self.file, self.line, self.setting, self.value, self.wanted, self.when, self.value
        )
    }

    /// Whether two overrides are the same decision (a line that moved is still the same).
    #[must_use]
    pub fn same(&self, other: &Override) -> bool {
        self.setting == other.setting && self.file == other.file && self.value == other.value
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub profile: String,
    pub source: String,
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

/// The plan for `profile` against `live`, or every problem that stops it.
pub fn plan(profile: &Profile, live: &LiveState) -> Result<Plan> {
    let namespace = live.namespace.unwrap_or(Namespace::Initial);
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut rows = Vec::new();

    for (key, setting) in &profile.sysctl {
        let scope = keys::scope(key);
        let current = live
            .sysctl
            .get(key)
            .cloned()
            .flatten()
            .map(|raw| value::of_key(key.as_str(), &raw));
        let raw_now = live.sysctl.get(key).cloned().flatten();
        let ints = sysctld::ints_of(key.as_str(), raw_now.as_deref());
        let boot =
            sysctld::boot_value_with(&live.boot_files, key.as_str(), ints, raw_now.as_deref())
                .map(BootValue::from);
        let wanted = match &setting.want {
            Want::Exact(v) => v.clone(),
            Want::Min(n) => format!(">= {n}"),
            Want::Max(n) => format!("<= {n}"),
        };
        let mut row = SysctlRow {
            key: key.clone(),
            scope,
            live: current.clone(),
            boot,
            wanted,
            target: None,
            action: Action::Keep,
            module: None,
        };
        if namespace == Namespace::Private && scope == Scope::Global {
            row.action = Action::SkipGlobal;
            rows.push(row);
            continue;
        }
        let Some(current) = current else {
            if setting.optional {
                row.action = Action::SkipAbsent;
                rows.push(row);
            } else if let Some(module) = module_of(key.as_str())
                && !likely_typo(key.as_str())
            {
                // Not loaded yet: persisted so that it holds at boot, applied when it appears.
                row.action = Action::Pending;
                row.module = Some(module);
                row.target = Some(match &setting.want {
                    Want::Exact(v) => v.clone(),
                    Want::Min(n) | Want::Max(n) => n.to_string(),
                });
                rows.push(row);
            } else if namespace == Namespace::Private && !is_typo(key, live) {
                // Linux registers its global tables (net.core.busy_poll, default_qdisc, ...)
                // in the initial namespace only: a private one lacks them, and that is not a
                // missing feature of this kernel.
                warnings.push(format!(
                    "{key} is not in this private network namespace: Linux keeps it only in the \
                     initial namespace (a global key), so it was skipped"
                ));
                row.action = Action::SkipGlobal;
                rows.push(row);
            } else {
                problems.push(unknown_key(key, &setting.origin, live));
            }
            continue;
        };
        if let (Some(known), Want::Exact(v)) = (keys::known(key.as_str()), &setting.want)
            && let keys::Kind::Choice { from } | keys::Kind::List { from } = known.kind
        {
            let choices = KeyName::parse(from)
                .ok()
                .and_then(|k| live.sysctl.get(&k).cloned().flatten());
            if let Err(why) = known.kind.check(v, choices.as_deref()) {
                problems.push(problem(
                    &setting.origin,
                    format!("[sysctl] {:?}", key.as_str()),
                    why,
                ));
                continue;
            }
        }
        let target = match &setting.want {
            Want::Exact(v) => v.clone(),
            Want::Min(n) | Want::Max(n) => {
                let Ok(now) = current.parse::<i64>() else {
                    problems.push(problem(
                        &setting.origin,
                        format!("[sysctl] {:?}", key.as_str()),
                        format!(
                            "min and max need a single-integer key, but the kernel reads {current:?}; \
                             give the exact value"
                        ),
                    ));
                    continue;
                };
                let keep = if matches!(setting.want, Want::Min(_)) {
                    now >= *n
                } else {
                    now <= *n
                };
                if keep { current.clone() } else { n.to_string() }
            }
        };
        row.action = if value::same(key.as_str(), &target, &current) {
            Action::Keep
        } else {
            Action::Set
        };
        row.target = Some(target);
        rows.push(row);
    }

    let nr_open = effective_nr_open(profile, live, &rows);
    let mut limit_rows = Vec::new();
    let mut overrides = Vec::new();
    let old_entries = live::entries(&live.limit_files);
    // limits.conf and systemd are machine-wide files: a private namespace neither reads nor
    // persists them, so they are shown as skipped and not checked.
    let private = namespace == Namespace::Private;
    let files = if namespace == Namespace::Initial {
        planned_files(profile, live)
    } else {
        Vec::new()
    };
    // The limits files as pam_limits will read them after apply (netprofile's drop-in in its
    // place): what a login gets.
    let limits_dropin = Root::display(&Root::limits_dropin());
    let after_entries = after_apply(&live.limit_files, &files, &Root::limits_dropin(), |f| {
        f.path.starts_with(&Root::display(Root::LIMITS_D)) && f.path > limits_dropin
    })
    .map(|all| live::entries(&all));
    for limit in &profile.limits {
        let label = format!("[[limits]] {} {}", limit.domain, limit.item);
        if !private
            && limit.item == Item::Nofile
            && let (Some(LimitValue::Num(hard)), Some(nr_open)) = (limit.hard, nr_open)
            && hard > nr_open
        {
            problems.push(problem(
                &limit.origin,
                label.clone(),
                format!(
                    "hard nofile {hard} is above fs.nr_open {nr_open}: pam_limits would fail at \
                     login and lock users out. Lower it, or raise fs.nr_open in [sysctl]"
                ),
            ));
        }
        let subject = live.subject(&limit.domain);
        let live_nr_open = live
            .sysctl
            .get(&KeyName::parse("fs.nr_open").expect("valid key"))
            .cloned()
            .flatten()
            .and_then(|v| v.trim().parse().ok());
        let (soft_now, hard_now) =
            limits::resolve(&old_entries, &subject, limit.item, live_nr_open);
        if !private
            && let (Some(soft), None, Some(hard_now)) = (limit.soft, limit.hard, &hard_now)
            && soft > hard_now.value
        {
            problems.push(problem(
                &limit.origin,
                label.clone(),
                format!(
                    "soft {soft} is above the hard limit {} set at {}:{}; set a hard value too",
                    hard_now.value, hard_now.file, hard_now.line
                ),
            ));
        }
        let (soft_after, hard_after) = after_entries.as_ref().map_or((None, None), |entries| {
            limits::resolve(entries, &subject, limit.item, nr_open)
        });
        for (half, want, now, after) in [
            ("soft", limit.soft, soft_now, soft_after),
            ("hard", limit.hard, hard_now, hard_after),
        ] {
            let Some(want) = want else { continue };
            let overridden = after
                .filter(|a| !private && a.value != want && a.file != limits_dropin)
                .map(|a| Override {
                    setting: format!("{} {half} {}", limit.domain, limit.item),
                    wanted: want.to_string(),
                    value: a.value.to_string(),
                    file: a.file.clone(),
                    line: a.line,
                    when: "login".into(),
                    accepted: false,
                });
            limit_rows.push(LimitRow {
                domain: limit.domain.to_string(),
                item: limit.item.to_string(),
                half,
                live: now.as_ref().map(|r| r.value.to_string()),
                source: now.as_ref().map(|r| Source {
                    file: r.file.clone(),
                    line: r.line,
                }),
                wanted: want.to_string(),
                action: if private {
                    Action::SkipGlobal
                } else if now.as_ref().map(|r| r.value) == Some(want) {
                    Action::Keep
                } else if overridden.is_some() {
                    Action::Overridden
                } else {
                    Action::Set
                },
            });
            overrides.extend(overridden);
        }
    }

    let mut systemd_rows = Vec::new();
    if let Some((pair, origin)) = &profile.systemd_nofile {
        if !private
            && let Some(nr_open) = nr_open
            && pair.hard > u64::try_from(nr_open).unwrap_or(0)
        {
            problems.push(problem(
                origin,
                "[systemd] default_limit_nofile".into(),
                format!(
                    "hard {} is above fs.nr_open {nr_open}; services would fail to start. Lower \
                     it, or raise fs.nr_open in [sysctl]",
                    pair.hard
                ),
            ));
        }
        let wanted = dropin::nofile_value(*pair);
        let (now, source) = match &live.systemd_nofile {
            Some(s) => (
                s.value.clone(),
                Some(Source {
                    file: s.file.clone(),
                    line: s.line,
                }),
            ),
            // systemd's built-in default since v240.
            None => ("1024:524288".to_string(), None),
        };
        fn same(v: &str) -> (&str, &str) {
            v.split_once(':').unwrap_or((v, v))
        }
        // systemd reads system.conf, then system.conf.d/*.conf in name order: a later drop-in
        // that sets DefaultLimitNOFILE wins over netprofile's.
        let overridden = if private {
            None
        } else {
            systemd_override(&wanted, live, &files)
        };
        overrides.extend(overridden.clone());
        systemd_rows.push(SystemdRow {
            setting: "DefaultLimitNOFILE",
            action: if private {
                Action::SkipGlobal
            } else if same(&now) == same(&wanted) {
                Action::Keep
            } else if overridden.is_some() {
                Action::Overridden
            } else {
                Action::Set
            },
            live: now,
            source,
            wanted,
        });
    }

    let service_rows = service_rows(profile, live, nr_open, private, &mut problems);
    // A drop-in that beats netprofile's for a service is an override like any other: refused
    // by apply unless accepted, then recorded, so `check` does not report it as drift for ever.
    overrides.extend(service_overrides(&service_rows));

    if !problems.is_empty() {
        return Err(Error::Invalid(crate::profile::in_line_order(problems)));
    }

    warnings.extend(port_warnings(&rows, live));
    if namespace == Namespace::Initial {
        overrides.splice(0..0, boot_overrides(profile, &rows, live, &files));
        warnings.extend(overrides.iter().map(Override::describe));
        warnings.extend(boot_unit_warning(profile, &rows, live));
        warnings.extend(boot_cancels(profile, &rows, live, &files));
        warnings.extend(limit_warnings(profile, live, &files, nr_open));
        warnings.extend(pending_warnings(profile, &rows));
    } else {
        warnings.push(
            "this is a private network namespace: global keys, limits and systemd settings are \
             skipped and nothing is persisted (boot files configure the initial namespace only)"
                .to_string(),
        );
    }

    Ok(Plan {
        profile: profile.name.clone(),
        source: profile.source.clone(),
        namespace,
        sysctl: rows,
        limits: limit_rows,
        systemd: systemd_rows,
        services: service_rows,
        files,
        overrides,
        warnings,
        models: live.versions.models(),
    })
}

/// A key one or two letters away from a catalogued key is a typo, not a key waiting for its
/// module (`nf_conntrack_maxx` would otherwise stay pending for ever).
fn likely_typo(key: &str) -> bool {
    keys::known(key).is_none()
        && keys::CATALOGUE
            .iter()
            .any(|k| strsim::levenshtein(key, k.name) <= 2)
}

/// The module that provides a key the kernel shows only once it is loaded.
#[must_use]
pub fn module_of(key: &str) -> Option<&'static str> {
    if key.starts_with("net.netfilter.nf_conntrack_") || key == "net.nf_conntrack_max" {
        Some("nf_conntrack")
    } else if key.starts_with("net.bridge.bridge-nf-") {
        Some("br_netfilter")
    } else if key.starts_with("net.ipv4.vs.") {
        Some("ip_vs")
    } else {
        None
    }
}

fn source_of(a: &crate::system::units::Assignment) -> Source {
    Source {
        file: a.file.clone(),
        line: a.line,
    }
}

/// A row per `[systemd.services."NAME.service"]`, with what wins now and after apply.
fn service_rows(
    profile: &Profile,
    live: &LiveState,
    nr_open: Option<i64>,
    private: bool,
    problems: &mut Vec<Problem>,
) -> Vec<ServiceRow> {
    let mut out = Vec::new();
    for (unit, service) in &profile.services {
        let label = format!("[systemd.services.{unit:?}] limit_nofile");
        if !private
            && let Some(nr_open) = nr_open
            && service.nofile.hard > u64::try_from(nr_open).unwrap_or(0)
        {
            problems.push(problem(
                &service.origin,
                label,
                format!(
                    "hard {} is above fs.nr_open {nr_open}; {unit} would fail to start. Lower \
                     it, or raise fs.nr_open in [sysctl]",
                    service.nofile.hard
                ),
            ));
        }
        let wanted = dropin::nofile_value(service.nofile);
        let files = live.units.get(unit).cloned().unwrap_or_default();
        let now = files.limit_nofile();
        let ours = Root::display(&Root::unit_dropin(unit));
        // A private namespace writes no files: nothing changes what wins.
        let after = if private {
            now.clone()
        } else {
            files
                .with_ours(&ours, Some(&dropin::service(profile, service.nofile)))
                .limit_nofile()
        };
        let pair = |v: &str| crate::system::units::parse_nofile(v);
        out.push(ServiceRow {
            unit: unit.clone(),
            action: if private {
                Action::SkipGlobal
            } else if now.as_ref().and_then(|a| pair(&a.value))
                == Some((service.nofile.soft, service.nofile.hard))
            {
                Action::Keep
            } else if after.as_ref().is_some_and(|a| {
                a.file != ours && pair(&a.value) != Some((service.nofile.soft, service.nofile.hard))
            }) {
                Action::Overridden
            } else {
                Action::Set
            },
            live: now.as_ref().map(|a| a.value.clone()),
            source: now.as_ref().map(source_of),
            wanted,
            after: after.as_ref().map(|a| a.value.clone()),
            after_source: after.as_ref().map(source_of),
        });
    }
    out
}

/// Drop-ins that would beat netprofile's for a service, with another value, as overrides.
fn service_overrides(rows: &[ServiceRow]) -> Vec<Override> {
    let pair = |v: &str| crate::system::units::parse_nofile(v);
    rows.iter()
        .filter(|r| r.action != Action::SkipGlobal)
        .filter_map(|r| {
            let src = r.after_source.as_ref()?;
            let after = r.after.as_deref()?;
            let ours = Root::display(&Root::unit_dropin(&r.unit));
            (src.file != ours && pair(after) != pair(&r.wanted)).then(|| Override {
                setting: format!("LimitNOFILE of {}", r.unit),
                wanted: r.wanted.clone(),
                value: after.to_string(),
                file: src.file.clone(),
                line: src.line,
                when: "service start".into(),
                accepted: false,
            })
        })
        .collect()
}

/// Pending keys whose module the profile does not ask to load at boot.
fn pending_warnings(profile: &Profile, rows: &[SysctlRow]) -> Vec<String> {
    rows.iter()
        .filter(|r| r.action == Action::Pending)
        .filter_map(|r| {
            let module = r.module?;
            (!profile.modules.iter().any(|m| m == module)).then(|| {
                format!(
                    "{} is pending: module {module} is not loaded, so the key does not exist yet. \
                     Add [modules] load = [\"{module}\"] so it loads at boot before \
                     systemd-sysctl, or run `netprofile apply --pending` after loading it",
                    r.key
                )
            })
        })
        .collect()
}

fn unknown_key(key: &KeyName, origin: &Origin, live: &LiveState) -> Problem {
    let parent = key.as_str().rsplit_once('.').map_or("", |(p, _)| p);
    let siblings: Vec<String> = live
        .siblings
        .get(key)
        .into_iter()
        .flatten()
        .map(|name| format!("{parent}.{name}"))
        .collect();
    let candidates = keys::CATALOGUE
        .iter()
        .map(|k| k.name)
        .chain(siblings.iter().map(String::as_str));
    let hint = keys::nearest(key.as_str(), candidates).map_or_else(
        || " If it comes from a module that is not loaded, add `optional = true`.".to_string(),
        |n| format!(" Did you mean {n:?}?"),
    );
    problem(
        origin,
        format!("[sysctl] {:?}", key.as_str()),
        format!(
            "unknown key: this kernel has no {}.{hint}",
            Root::display(&Root::sysctl_rel(key))
        ),
    )
}

/// fs.nr_open as it will be after apply: the profile's target, else the live value.
/// When the profile sets fs.nr_open, the lower of that and what holds after a reboot: a `min`
/// is held at boot as its bound (netprofile.service raises it to the bound, no further), so
/// after a reboot nr_open may be lower than now, and a nofile above it would then lock logins
/// out.
fn effective_nr_open(profile: &Profile, live: &LiveState, rows: &[SysctlRow]) -> Option<i64> {
    let key = KeyName::parse("fs.nr_open").ok()?;
    let planned = rows
        .iter()
        .find(|r| r.key == key)
        .and_then(|r| r.target.clone());
    let now: Option<i64> = planned
        .or_else(|| live.sysctl.get(&key).cloned().flatten())
        .and_then(|v| v.trim().parse().ok());
    let at_boot: Option<i64> = profile
        .sysctl
        .get(&key)
        .and_then(|setting| persisted(&key, setting).1.trim().parse().ok());
    match (now, at_boot) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Whether an absent key looks like a typo of a known key rather than a real one.
fn is_typo(key: &KeyName, live: &LiveState) -> bool {
    let siblings: Vec<&str> = live
        .siblings
        .get(key)
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    let leaf = key.as_str().rsplit('.').next().unwrap_or_default();
    keys::known(key.as_str()).is_none()
        && (keys::nearest(key.as_str(), keys::CATALOGUE.iter().map(|k| k.name)).is_some()
            || keys::nearest(leaf, siblings).is_some())
}

/// The value a setting holds at boot: the profile's own figure, never the host's live value.
/// Exact values are persisted in the drop-in (`optional` keys carry systemd-sysctl's `-`,
/// ignore if absent); a `min` or `max` is not (see `is_bound`), its bound is held by
/// netprofile.service.
#[must_use]
pub fn persisted(key: &KeyName, setting: &crate::profile::Setting) -> (String, String) {
    let value = match &setting.want {
        Want::Exact(v) => v.clone(),
        Want::Min(n) | Want::Max(n) => n.to_string(),
    };
    let name = if setting.optional {
        format!("-{key}")
    } else {
        key.to_string()
    };
    (name, value)
}

/// Whether a setting is raise-only or lower-only. Such a key is not written to the sysctl
/// drop-in: systemd-sysctl *sets* what the file says, which would lower a value that boot
/// raised (systemd 240 and later raises fs.file-max to its maximum before systemd-sysctl
/// runs). netprofile.service, ordered after systemd-sysctl, raises (lowers) it to the bound
/// recorded in the generation, only in that direction, so the drop-in holds exact values only
/// and is the same on every host.
#[must_use]
pub fn is_bound(setting: &crate::profile::Setting) -> bool {
    matches!(setting.want, Want::Min(_) | Want::Max(_))
}

/// One line when the profile has `min`/`max` keys and netprofile.service, which holds them at
/// boot, is not enabled on this root.
fn boot_unit_warning(profile: &Profile, rows: &[SysctlRow], live: &LiveState) -> Option<String> {
    if live.boot_unit_enabled {
        return None;
    }
    let keys: Vec<String> = rows
        .iter()
        .filter(|r| r.target.is_some())
        .filter(|r| profile.sysctl.get(&r.key).is_some_and(is_bound))
        .map(|r| r.key.to_string())
        .collect();
    if keys.is_empty() {
        return None;
    }
    Some(format!(
        "netprofile.service holds the min/max keys ({}) at boot, not the sysctl drop-in, and it \
         is not enabled ({} is absent): run `systemctl enable netprofile.service`",
        keys.join(", "),
        Root::display(Root::BOOT_UNIT_WANTS)
    ))
}

fn planned_files(profile: &Profile, live: &LiveState) -> Vec<FileChange> {
    let values: Vec<(String, String)> = profile
        .sysctl
        .iter()
        .filter(|(_, setting)| !is_bound(setting))
        .map(|(key, setting)| persisted(key, setting))
        .collect();
    let wanted = [
        (Root::sysctl_dropin(), dropin::sysctl(profile, &values)),
        (
            Root::limits_dropin(),
            dropin::limits(profile, &profile.limits),
        ),
        (Root::systemd_dropin(), dropin::systemd(profile)),
        (Root::modules_dropin(), dropin::modules(profile)),
    ];
    // Every unit the profile names, and every unit netprofile had a drop-in for (removed when
    // the profile no longer names it).
    let units = live.units.keys().map(|unit| {
        (
            Root::unit_dropin(unit),
            profile
                .services
                .get(unit)
                .map(|s| dropin::service(profile, s.nofile)),
        )
    });
    wanted
        .into_iter()
        .chain(units)
        .map(|(rel, new)| FileChange {
            path: Root::display(&rel),
            old: live.dropins.get(&rel).cloned().flatten(),
            rel,
            new,
        })
        .collect()
}

/// Listening ports that the new ephemeral range would cover without reserving them.
fn port_warnings(rows: &[SysctlRow], live: &LiveState) -> Vec<String> {
    let find = |name: &str| rows.iter().find(|r| r.key.as_str() == name);
    let Some(range) = find("net.ipv4.ip_local_port_range").and_then(|r| r.target.clone()) else {
        return Vec::new();
    };
    let bounds: Vec<u16> = range
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let [lo, hi] = bounds[..] else {
        return Vec::new();
    };
    let reserved_text = find("net.ipv4.ip_local_reserved_ports")
        .and_then(|r| r.target.clone().or_else(|| r.live.clone()))
        .or_else(|| {
            live.sysctl
                .iter()
                .find(|(k, _)| k.as_str() == "net.ipv4.ip_local_reserved_ports")
                .and_then(|(_, v)| v.clone())
        })
        .unwrap_or_default();
    let reserved = value::parse_port_list(&reserved_text).unwrap_or_default();
    let exposed: Vec<String> = live
        .listening
        .iter()
        .filter(|p| (lo..=hi).contains(*p) && !value::port_in(&reserved, **p))
        .map(ToString::to_string)
        .collect();
    if exposed.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "listening port(s) {} lie inside the new ephemeral range {lo}-{hi}: an outgoing \
         connection can take such a port and the service then fails to bind after a restart. \
         Add them to [ports] reserved = [{}]",
        exposed.join(", "),
        exposed
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )]
}

/// `current` as it will be after apply: netprofile's drop-in `rel` (its old copy dropped)
/// placed before the first file that `comes_after` it. `None` when the plan has no such file.
fn after_apply(
    current: &[BootFile],
    files: &[FileChange],
    rel: &str,
    comes_after: impl Fn(&BootFile) -> bool,
) -> Option<Vec<BootFile>> {
    let change = files.iter().find(|f| f.rel == rel)?;
    let mut out: Vec<BootFile> = current
        .iter()
        .filter(|f| f.path != change.path)
        .cloned()
        .collect();
    if let Some(text) = &change.new {
        let at = out.iter().position(comes_after).unwrap_or(out.len());
        out.insert(
            at,
            BootFile {
                path: change.path.clone(),
                text: text.clone(),
            },
        );
    }
    Some(out)
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or_default()
}

/// Boot files that would set a managed key to something else after netprofile's drop-in.
fn boot_overrides(
    profile: &Profile,
    rows: &[SysctlRow],
    live: &LiveState,
    files: &[FileChange],
) -> Vec<Override> {
    let dropin = Root::display(&Root::sysctl_dropin());
    let Some(boot) = boot_after_apply(live, files) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for row in rows {
        let Some(setting) = profile.sysctl.get(&row.key) else {
            continue;
        };
        // A min or max is held by netprofile.service, which runs after systemd-sysctl: what a
        // boot file sets first is raised (lowered) again, so no file overrides it.
        let Want::Exact(v) = &setting.want else {
            continue;
        };
        if row.target.is_none() {
            continue;
        }
        let ints = sysctld::ints_of(row.key.as_str(), row.live.as_deref());
        let Some(at_boot) =
            sysctld::boot_value_with(&boot, row.key.as_str(), ints, row.live.as_deref())
        else {
            continue;
        };
        let holds = value::same(row.key.as_str(), &at_boot.value, v);
        if at_boot.file != dropin && !holds {
            out.push(Override {
                setting: row.key.to_string(),
                wanted: persisted(&row.key, setting).1,
                value: at_boot.value,
                file: at_boot.file,
                line: at_boot.line,
                when: "boot".into(),
                accepted: false,
            });
        }
    }
    out
}

/// The boot files as they will be after apply: netprofile's drop-in in place (it masks a
/// same-named file in a later folder), in systemd-sysctl's order.
fn boot_after_apply(live: &LiveState, files: &[FileChange]) -> Option<Vec<BootFile>> {
    let dropin = Root::display(&Root::sysctl_dropin());
    let mut boot = after_apply(&live.boot_files, files, &Root::sysctl_dropin(), |f| {
        file_name(&f.path) > file_name(&dropin)
    })?;
    boot.retain(|f| f.path == dropin || file_name(&f.path) != file_name(&dropin));
    Some(boot)
}

/// Lines after netprofile's drop-in that leave the kernel's default at boot: a `-key` line that
/// cancels the assignment, or a value the kernel refuses.
fn boot_cancels(
    profile: &Profile,
    rows: &[SysctlRow],
    live: &LiveState,
    files: &[FileChange],
) -> Vec<String> {
    let dropin = Root::display(&Root::sysctl_dropin());
    let Some(boot) = boot_after_apply(live, files) else {
        return Vec::new();
    };
    let mut warnings = Vec::new();
    for row in rows {
        let Some(target) = &row.target else { continue };
        // netprofile.service holds a min or max whatever the boot files leave.
        if profile.sysctl.get(&row.key).is_some_and(is_bound) {
            continue;
        }
        let ints = sysctld::ints_of(row.key.as_str(), row.live.as_deref());
        if sysctld::boot_value_with(&boot, row.key.as_str(), ints, row.live.as_deref()).is_none()
            && let Some((raw, file, line)) = sysctld::explicit_line(&boot, row.key.as_str())
            && file != dropin
        {
            let what = match raw {
                None => format!("cancels {} with `-{}`", row.key, row.key),
                Some(raw) => format!("sets {} = {raw:?}, which the kernel refuses,", row.key),
            };
            warnings.push(format!(
                "{file}:{line} {what} after netprofile's drop-in: at boot the kernel's default \
                 stays, not {target}. Remove that line or the file"
            ));
        }
    }
    warnings
}

/// A systemd manager drop-in that sets DefaultLimitNOFILE after netprofile's, read with
/// systemd's precedence (system.conf, then system.conf.d in /etc, /run, /usr/local/lib and
/// /usr/lib by name, a same name in an earlier folder masking a later one).
fn systemd_override(wanted: &str, live: &LiveState, files: &[FileChange]) -> Option<Override> {
    let dropin = Root::display(&Root::systemd_dropin());
    let main = Root::display(Root::SYSTEMD_CONF);
    let mut after = after_apply(&live.systemd_files, files, &Root::systemd_dropin(), |f| {
        f.path != main && file_name(&f.path) > file_name(&dropin)
    })?;
    after.retain(|f| f.path == dropin || file_name(&f.path) != file_name(&dropin));
    let pair = |v: &str| -> (String, String) {
        let (a, b) = v.split_once(':').unwrap_or((v, v));
        (a.trim().to_string(), b.trim().to_string())
    };
    match crate::system::systemd::default_limit_nofile(&after) {
        Some(s) if s.file == dropin || pair(&s.value) == pair(wanted) => None,
        Some(s) => Some(Override {
            setting: "DefaultLimitNOFILE".into(),
            wanted: wanted.to_string(),
            value: s.value.clone(),
            file: s.file.clone(),
            line: s.line,
            when: "service start".into(),
            accepted: false,
        }),
        None => None,
    }
}

/// Limits files that would override the profile's limits for their own domain, and the logins
/// in passwd that the drop-in's lines claim but do not reach (a uid range, a group line, a
/// user's own soft-only line or a `<domain> -` line elsewhere).
fn limit_warnings(
    profile: &Profile,
    live: &LiveState,
    files: &[FileChange],
    nr_open: Option<i64>,
) -> Vec<String> {
    let dropin = Root::display(&Root::limits_dropin());
    // limits.conf first, then limits.d in name order.
    let Some(all) = after_apply(&live.limit_files, files, &Root::limits_dropin(), |f| {
        f.path.starts_with(&Root::display(Root::LIMITS_D)) && f.path > dropin
    }) else {
        return Vec::new();
    };
    let entries = live::entries(&all);
    let mut warnings = Vec::new();
    // pam_limits 1.6 and later skip a missing limits.conf; 1.5 fails every session.
    if live.pam_limits_installed
        && live.versions.pam_rules() == crate::system::versions::PamRules::V1_5
        && live::pam_limits_fails(&all)
    {
        warnings.push(format!(
            "{} is missing: wherever PAM runs pam_limits, it fails every session without it, so \
             no login gets these limits and logins through `session required pam_limits.so` are \
             refused. Create it (it may be empty)",
            Root::display(Root::LIMITS_CONF)
        ));
    }
    let mut seen = BTreeMap::new();
    for limit in &profile.limits {
        let (soft, hard) =
            limits::resolve(&entries, &live.subject(&limit.domain), limit.item, nr_open);
        for (want, got) in [(limit.soft, soft), (limit.hard, hard)] {
            let (Some(want), Some(Resolved { value, file, line })) = (want, got) else {
                continue;
            };
            // Reported as an override (plan::Override) with the limit rows; remembered here so
            // the unreached-logins warning does not name the same line again.
            if value != want && file != dropin {
                seen.insert((file.clone(), line), ());
            }
        }
        warnings.extend(unreached_logins(limit, live, &entries, nr_open, &seen));
    }
    warnings
}

/// Whether a profile's limits domain names this login. As Debian's pam_limits reads them, `*`
/// and `@group` never name root.
fn claims(domain: &Domain, who: &limits::Subject) -> bool {
    let root = who.uid == Some(0);
    match domain {
        Domain::All => !root,
        Domain::User(name) => who.user.as_deref() == Some(name.as_str()),
        Domain::Group(group) => !root && who.groups.iter().any(|g| g == group),
        Domain::UidRange(lo, hi) => who.uid.is_some_and(|uid| match (lo, hi) {
            (None, Some(b)) => uid == *b,
            (Some(a), None) => uid >= *a,
            (Some(a), Some(b)) => (*a..=*b).contains(&uid),
            (None, None) => false,
        }),
    }
}

/// One warning per cause: the passwd logins that `limit` claims but that end up with another
/// value (or none) at login, after apply.
fn unreached_logins(
    limit: &crate::profile::Limit,
    live: &LiveState,
    entries: &[limits::Entry],
    nr_open: Option<i64>,
    reported: &BTreeMap<(String, usize), ()>,
) -> Vec<String> {
    let mut missed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in live.users.keys() {
        let who = live.login(name);
        if !claims(&limit.domain, &who) {
            continue;
        }
        let o = limits::outcome(entries, &who, limit.item, nr_open);
        if let Some((file, line)) = &o.stopped_at {
            missed
                .entry(format!(
                    "{file}:{line} is a `-` line for them, so pam_limits sets no limit at all"
                ))
                .or_default()
                .push(name.clone());
            continue;
        }
        for (half, want, got) in [("soft", limit.soft, o.soft), ("hard", limit.hard, o.hard)] {
            let Some(want) = want else { continue };
            let cause = match got {
                Some(r) if r.value == want => continue,
                Some(r) if reported.contains_key(&(r.file.clone(), r.line)) => continue,
                Some(r) => format!("{}:{} gives them {half} {}", r.file, r.line, r.value),
                None => format!("no line gives them a {half} value"),
            };
            missed.entry(cause).or_default().push(name.clone());
        }
    }
    missed
        .into_iter()
        .map(|(cause, mut users)| {
            users.dedup();
            let shown = users.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
            let more = users.len().saturating_sub(5);
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            format!(
                "{} {} {} does not reach {}{more} at login: {cause}; change that line or name \
                 these logins in the profile",
                limit.domain,
                limit.item,
                [
                    limit.soft.map(|v| format!("soft {v}")),
                    limit.hard.map(|v| format!("hard {v}"))
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" "),
                shown
            )
        })
        .collect()
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
