//! `explain`: for one sysctl key, pam_limits item or `DefaultLimitNOFILE`, where its value comes
//! from now and at boot. The live value, the whole precedence chain (chain.rs), per-namespace or
//! global, other managers that set it (tuned profiles), what netprofile's generations did to it,
//! and its catalogue entry. Reads through `Root`; never writes, never takes the lock.

use serde::Serialize;

use super::chain::{self, Fate, Link};
use crate::error::{Error, Result};
use crate::profile::keys::{self, KeyName, Scope};
use crate::profile::limit::Item;
use crate::system::read_optional;
use crate::system::root::{Namespace, Root};
use crate::transaction::state::{self, Change, Generation};

/// What was asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Sysctl(KeyName),
    Limit(Item),
    DefaultLimitNofile,
}

impl Subject {
    /// `net.core.somaxconn`, `nofile`, `DefaultLimitNOFILE` (also `LimitNOFILE`).
    pub fn parse(raw: &str) -> Result<Subject> {
        if raw.eq_ignore_ascii_case("DefaultLimitNOFILE") || raw.eq_ignore_ascii_case("LimitNOFILE")
        {
            return Ok(Subject::DefaultLimitNofile);
        }
        if let Ok(item) = Item::parse(raw) {
            return Ok(Subject::Limit(item));
        }
        KeyName::parse(raw)
            .map(Subject::Sysctl)
            .map_err(|e| Error::Usage(format!("explain {raw:?}: {e}")))
    }
}

/// A line of another configuration manager that sets the same thing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Manager {
    pub manager: String,
    pub file: String,
    pub line: usize,
    pub value: String,
    pub note: String,
}

/// One generation's change to the subject: the generation as history shows it (the same type,
/// its fields at the top level), with the subject's value (or drop-in line) before and after.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct GenerationChange {
    #[serde(flatten)]
    pub generation: Generation,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// The catalogue's entry for a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Catalogue {
    pub known: bool,
    pub shape: Option<String>,
    pub removed: Option<String>,
    pub suggestion: Option<String>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Explanation {
    pub subject: String,
    /// sysctl, limit or systemd.
    pub kind: &'static str,
    pub live: Option<String>,
    /// Where the live value was read.
    pub live_source: String,
    /// The assignment in force at boot (or login), if any.
    pub boot: Option<Link>,
    pub chain: Vec<Link>,
    /// netns or global (sysctls only).
    pub scope: Option<Scope>,
    pub namespace: Namespace,
    pub managers: Vec<Manager>,
    pub generations: Vec<GenerationChange>,
    pub catalogue: Option<Catalogue>,
    pub notes: Vec<String>,
    /// The systemd-sysctl and pam_limits versions modelled (system/versions.rs).
    pub models: Vec<crate::system::versions::Model>,
    /// For a limits item: what each passwd login gets at its next session.
    pub logins: Vec<crate::system::limits::LoginReport>,
}

/// The catalogue entry of a key. The one place explain uses the catalogue's API.
fn catalogue(name: &str) -> Catalogue {
    let known = keys::known(name);
    Catalogue {
        known: known.is_some(),
        shape: known.map(|k| format!("{:?}", k.shape).to_lowercase()),
        removed: keys::removed(name),
        suggestion: if known.is_none() {
            // `somaxconn`: the catalogue key it is the last part of, else the nearest spelling.
            keys::CATALOGUE
                .iter()
                .map(|k| k.name)
                .find(|k| !name.contains('.') && k.rsplit('.').next() == Some(name))
                .or_else(|| keys::nearest(name, keys::CATALOGUE.iter().map(|k| k.name)))
                .map(String::from)
        } else {
            None
        },
    }
}

/// `proc/self/limits` row names of each item.
fn limits_row(item: Item) -> Option<&'static str> {
    Some(match item {
        Item::Nofile => "Max open files",
        Item::Nproc => "Max processes",
        Item::Core => "Max core file size",
        Item::Data => "Max data size",
        Item::Fsize => "Max file size",
        Item::Memlock => "Max locked memory",
        Item::Rss => "Max resident set",
        Item::Stack => "Max stack size",
        Item::Cpu => "Max cpu time",
        Item::As => "Max address space",
        Item::Locks => "Max file locks",
        Item::Sigpending => "Max pending signals",
        Item::Msgqueue => "Max msgqueue size",
        Item::Nice => "Max nice priority",
        Item::Rtprio => "Max realtime priority",
        _ => return None,
    })
}

/// `soft hard` of one row of a limits file.
fn live_limit(text: &str, row: &str) -> Option<String> {
    let rest = text.lines().find_map(|l| l.strip_prefix(row))?;
    let v: Vec<&str> = rest.split_whitespace().collect();
    Some(format!("soft {} hard {}", v.first()?, v.get(1)?))
}

/// `[sysctl]` lines of tuned profiles (etc/tuned/*/tuned.conf, usr/lib/tuned/*/tuned.conf)
/// that set `key`, and which profile is active.
fn tuned(root: &Root, key: &str) -> Vec<Manager> {
    let active = read_optional(root, "etc/tuned/active_profile")
        .ok()
        .flatten()
        .map(|t| t.trim().to_string());
    let mut out = Vec::new();
    for base in ["etc/tuned", "usr/lib/tuned", "usr/lib/tuned/profiles"] {
        let Ok(list) = std::fs::read_dir(root.path(base)) else {
            continue;
        };
        let mut names: Vec<String> = list
            .filter_map(|e| Some(e.ok()?.file_name().to_str()?.to_string()))
            .collect();
        names.sort();
        for name in names {
            let rel = format!("{base}/{name}/tuned.conf");
            let Ok(Some(text)) = read_optional(root, &rel) else {
                continue;
            };
            let mut section = String::new();
            for (index, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.starts_with('[') {
                    section = line.to_string();
                } else if section == "[sysctl]"
                    && let Some((k, v)) = line.split_once('=')
                    && crate::system::sysctld::matches(k.trim(), key)
                {
                    let is_active = active
                        .as_deref()
                        .is_some_and(|a| a.split_whitespace().any(|p| p == name));
                    out.push(Manager {
                        manager: "tuned".into(),
                        file: Root::display(&rel),
                        line: index + 1,
                        value: v.trim().to_string(),
                        note: if is_active {
                            format!(
                                "profile {name} is active: tuned sets this when it starts, after \
                                 systemd-sysctl, and wins over sysctl.d"
                            )
                        } else {
                            format!("profile {name} (not the active one)")
                        },
                    });
                }
            }
        }
    }
    out
}

fn generation_changes(root: &Root, subject: &Subject) -> Result<Vec<GenerationChange>> {
    let dropin = match subject {
        Subject::Sysctl(_) => Root::sysctl_dropin(),
        Subject::Limit(_) => Root::limits_dropin(),
        Subject::DefaultLimitNofile => Root::systemd_dropin(),
    };
    let mentions = |text: &Option<String>| {
        text.as_deref().and_then(|t| {
            t.lines()
                .map(str::trim)
                .filter(|l| !l.starts_with('#'))
                .find(|l| match subject {
                    Subject::Sysctl(k) => l
                        .split_once('=')
                        .is_some_and(|(lk, _)| lk.trim() == k.as_str()),
                    Subject::Limit(item) => l.split_whitespace().nth(2) == Some(item.as_str()),
                    Subject::DefaultLimitNofile => l.starts_with("DefaultLimitNOFILE="),
                })
                .map(String::from)
        })
    };
    // As history shows them: a `--confirm` a reboot dropped says `dropped`.
    let pending = state::read_pending(root)?.map(|p| p.generation);
    let mut out = Vec::new();
    for g in state::as_shown(&state::generations(root)?, pending) {
        for change in &g.changes {
            let (before, after) = match (change, subject) {
                (Change::Sysctl { key, before, after }, Subject::Sysctl(k))
                    if key == k.as_str() =>
                {
                    (Some(before.clone()), Some(after.clone()))
                }
                (
                    Change::File {
                        path,
                        before,
                        after,
                    },
                    _,
                ) if *path == dropin => {
                    let (b, a) = (mentions(before), mentions(after));
                    if b.is_none() && a.is_none() {
                        continue;
                    }
                    (
                        b.map(|l| format!("{l} ({})", Root::display(path))),
                        a.map(|l| format!("{l} ({})", Root::display(path))),
                    )
                }
                _ => continue,
            };
            out.push(GenerationChange {
                generation: g.clone(),
                before,
                after,
            });
        }
    }
    Ok(out)
}

/// Explains one subject.
pub fn explain(root: &Root, subject: &Subject) -> Result<Explanation> {
    let namespace = root.namespace();
    let Reading {
        name,
        kind,
        live,
        live_source,
        chain,
        scope,
        cat,
        login,
        logins,
        managers,
        mut notes,
    } = match subject {
        Subject::Sysctl(key) => sysctl_reading(root, key, namespace)?,
        Subject::Limit(item) => limit_reading(root, *item)?,
        Subject::DefaultLimitNofile => systemd_reading(root)?,
    };
    let boot = if kind == "limit" {
        login
    } else {
        chain.iter().find(|l| l.fate == Fate::Wins).cloned()
    };
    notes.extend(shared_notes(
        &name,
        kind,
        live.as_ref(),
        boot.as_ref(),
        &chain,
        namespace,
    ));
    Ok(Explanation {
        subject: name,
        kind,
        live,
        live_source,
        boot,
        chain,
        scope,
        namespace,
        managers,
        generations: generation_changes(root, subject)?,
        catalogue: cat,
        notes,
        models: crate::system::versions(root).models(),
        logins,
    })
}

/// What one subject's own readers say, before the notes every subject shares.
struct Reading {
    name: String,
    kind: &'static str,
    live: Option<String>,
    live_source: String,
    chain: Vec<Link>,
    scope: Option<Scope>,
    cat: Option<Catalogue>,
    /// The assignment a login gets (limits only: their boot value).
    login: Option<Link>,
    logins: Vec<crate::system::limits::LoginReport>,
    managers: Vec<Manager>,
    notes: Vec<String>,
}

/// A sysctl key: its live value, the sysctl.d chain, tuned's lines, scope and catalogue entry;
/// a key nobody knows (not live, not set, not catalogued) is a usage error.
fn sysctl_reading(root: &Root, key: &KeyName, namespace: Namespace) -> Result<Reading> {
    let mut notes = Vec::new();
    let live = crate::system::read_sysctl(root, key)?;
    let chain = chain::sysctl_chain(root, key.as_str())?;
    let cat = catalogue(key.as_str());
    if live.is_none() && chain.is_empty() && !cat.known && cat.removed.is_none() {
        let hint = cat
            .suggestion
            .as_ref()
            .map_or_else(String::new, |s| format!("; did you mean {s}?"));
        return Err(Error::Usage(format!(
            "explain: no key {key} in {} and no file sets it{hint}",
            root.sysctl_path(key).display()
        )));
    }
    if live.is_none() {
        notes.push(format!(
            "the running kernel has no {key}{}",
            if namespace == Namespace::Private && keys::scope(key) == Scope::Global {
                " in this network namespace: global keys exist only in the initial one"
            } else {
                " (module not loaded, or not this kernel)"
            }
        ));
    }
    Ok(Reading {
        name: key.to_string(),
        kind: "sysctl",
        live,
        live_source: Root::display(&Root::sysctl_rel(key)),
        chain,
        scope: Some(keys::scope(key)),
        cat: Some(cat),
        login: None,
        logins: Vec::new(),
        managers: tuned(root, key.as_str()),
        notes,
    })
}

/// A limits item: this session's value, the limits.conf chain, what a login gets and each
/// passwd login's session (lockouts as notes); for nofile, systemd's DefaultLimitNOFILE lines
/// (what services get instead).
fn limit_reading(root: &Root, item: Item) -> Result<Reading> {
    let live = read_optional(root, crate::doctor::proc::SELF_LIMITS)
        .ok()
        .flatten()
        .and_then(|t| live_limit(&t, limits_row(item)?));
    let chain = chain::limit_chain(root, item)?;
    let login = chain::limit_at_login(root, item)?;
    let logins = crate::system::login_sessions(root, item)?;
    let mut notes: Vec<String> = Vec::new();
    for f in logins.iter().filter_map(|l| l.failure.as_ref()) {
        let note = format!("login lockout: {}. Fix: {}", f.why, f.fix);
        if !notes.contains(&note) {
            notes.push(note);
        }
    }
    let mut managers = Vec::new();
    if item == Item::Nofile {
        for link in chain::systemd_chain(root)? {
            managers.push(Manager {
                manager: "systemd".into(),
                file: link.file,
                line: link.line,
                value: format!("DefaultLimitNOFILE={}", link.value),
                note: if link.fate == Fate::Wins {
                    "what services get instead: limits.conf is read by pam_limits at \
                     login and never reaches a systemd service"
                        .into()
                } else {
                    "overridden by a later DefaultLimitNOFILE=".into()
                },
            });
        }
    }
    notes.push(
        "limits.conf takes effect at the next login (pam_limits); running processes keep \
         their limits (see /proc/PID/limits)"
            .into(),
    );
    Ok(Reading {
        name: item.to_string(),
        kind: "limit",
        live,
        live_source: format!(
            "{} (this session)",
            Root::display(crate::doctor::proc::SELF_LIMITS)
        ),
        chain,
        scope: None,
        cat: None,
        login,
        logins,
        managers,
        notes,
    })
}

/// systemd's DefaultLimitNOFILE: the system.conf chain, and whether systemd runs here at all.
fn systemd_reading(root: &Root) -> Result<Reading> {
    let mut notes = Vec::new();
    let chain = chain::systemd_chain(root)?;
    let pid1 = read_optional(root, "proc/1/comm")
        .ok()
        .flatten()
        .map(|c| c.trim().to_string());
    if pid1.as_deref() != Some("systemd") {
        notes.push(format!(
            "PID 1 is {} here, not systemd: these files take effect only where systemd \
             runs",
            pid1.as_deref().unwrap_or("unknown")
        ));
    }
    notes.push(
        "systemd reads it when it starts (or on daemon-reexec); a unit's LimitNOFILE= \
         wins over it; limits.conf does not apply to services"
            .into(),
    );
    if chain.is_empty() {
        notes
            .push("no file sets it: systemd's built-in default is 1024:524288 (since v240)".into());
    }
    Ok(Reading {
        name: "DefaultLimitNOFILE".to_string(),
        kind: "systemd",
        live: None,
        live_source: "not readable: each service shows its own in /proc/PID/limits".to_string(),
        chain,
        scope: None,
        cat: None,
        login: None,
        logins: Vec::new(),
        managers: Vec::new(),
        notes,
    })
}

/// The notes any subject may need: a sysctl changed since boot, a private network namespace,
/// a masked file in the chain.
fn shared_notes(
    name: &str,
    kind: &str,
    live: Option<&String>,
    boot: Option<&Link>,
    chain: &[Link],
    namespace: Namespace,
) -> Vec<String> {
    let mut notes = Vec::new();
    if let (Some(live), Some(boot), "sysctl") = (live, boot, kind)
        && !crate::profile::value::same(name, live, &boot.value)
    {
        notes.push(format!(
            "live value {live} differs from the boot value {} ({}:{}): changed since boot",
            boot.value, boot.file, boot.line
        ));
    }
    if kind == "sysctl" && namespace == Namespace::Private {
        notes.push(
            "this is a private network namespace: the live value is this namespace's own, and \
             sysctl.d files configure the initial namespace at boot"
                .into(),
        );
    }
    if chain.iter().any(|l| l.fate == Fate::Masked) {
        notes.push(
            "a masked file is never read: a file of the same name in a folder of higher \
             precedence (/etc before /run before /usr/local/lib before /usr/lib) replaces it"
                .into(),
        );
    }
    notes
}
