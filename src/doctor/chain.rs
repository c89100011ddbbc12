//! The precedence chains `explain` shows: every assignment of a sysctl key in every sysctl.d
//! folder (masked files and overridden lines included), every limits.conf entry of an item,
//! and every `DefaultLimitNOFILE=` of the systemd manager files, each with its fate. Built on
//! the public readers of system/ (`boot_files`, `limit_files`, `entries`, `limits::resolve`,
//! `systemd_files`) so their rules stay in one place; it only lists folders itself to find the
//! files those readers drop as masked. Never writes.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::profile::limit::Item;
use crate::system::limits::{Kind, Subject};
use crate::system::root::{Root, SYSCTL_DIRS};
use crate::system::sysctld::{self, BootFile};
use crate::system::{boot_files, entries, limit_files, read_optional, systemd_files};

/// What became of one assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Fate {
    /// The value in force (at boot, or at login).
    Wins,
    /// A later line or file sets it again.
    Overridden,
    /// The file is never read: a same-named file in a folder of higher precedence masks it.
    Masked,
    /// Applies to other logins only (a named user, a group, a uid range).
    Elsewhere,
}

/// One assignment in a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Link {
    pub file: String,
    pub line: usize,
    pub value: String,
    pub fate: Fate,
    /// The file:line (or file) that overrides or masks it; for limits, whom it applies to.
    pub by: Option<String>,
}

/// Every sysctl.d file in every folder, in folder precedence then name order, with the
/// display path of the file that masks it (`None` when it is read at boot).
pub fn sysctl_files(root: &Root) -> Result<Vec<(BootFile, Option<String>)>> {
    let applied = boot_files(root)?;
    let by_name: BTreeMap<String, String> = applied
        .iter()
        .filter_map(|f| Some((f.path.rsplit('/').next()?.to_string(), f.path.clone())))
        .collect();
    let mut out = Vec::new();
    for dir in SYSCTL_DIRS {
        // A folder that is a symlink is followed inside the root, as boot_files follows it.
        let Some(path) = root.resolve(dir) else {
            continue;
        };
        let list = match std::fs::read_dir(&path) {
            Ok(list) => list,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::read(path, e)),
        };
        let mut names: Vec<String> = list
            .filter_map(|e| Some(e.ok()?.file_name().to_str()?.to_string()))
            .filter(|n| n.ext_is_conf())
            .collect();
        names.sort();
        for name in names {
            let rel = format!("{dir}/{name}");
            let shown = Root::display(&rel);
            let text = read_optional(root, &rel)
                .unwrap_or(None)
                .unwrap_or_default();
            let masked_by = match by_name.get(&name) {
                Some(winner) if *winner != shown => Some(winner.clone()),
                _ => None,
            };
            out.push((BootFile { path: shown, text }, masked_by));
        }
    }
    // The text systemd reads is the one boot_files read (symlinks resolved inside the root);
    // a file whose name is not UTF-8 is listed from there too.
    for (file, masked_by) in &mut out {
        if masked_by.is_none()
            && let Some(read) = applied.iter().find(|f| f.path == file.path)
        {
            file.text.clone_from(&read.text);
        }
    }
    for read in &applied {
        if !out.iter().any(|(f, _)| f.path == read.path)
            && read.path != Root::display(Root::SYSCTL_CONF)
        {
            out.push((read.clone(), None));
        }
    }
    // /etc/sysctl.conf, read last when present (boot_files decides).
    if let Some(conf) = applied
        .iter()
        .find(|f| f.path == Root::display(Root::SYSCTL_CONF))
    {
        out.push((conf.clone(), None));
    }
    Ok(out)
}

trait ConfName {
    fn ext_is_conf(&self) -> bool;
}

impl ConfName for String {
    fn ext_is_conf(&self) -> bool {
        std::path::Path::new(self)
            .extension()
            .is_some_and(|e| e == "conf")
    }
}

/// Every assignment of `key` (globs included), each with its fate; the winner is the last
/// assignment in a file that is not masked (systemd-sysctl's rule).
pub fn sysctl_chain(root: &Root, key: &str) -> Result<Vec<Link>> {
    let applied = boot_files(root)?;
    // The value the kernel holds now stands for what it holds before boot writes: the fields
    // a partial write keeps, and what a key outside the catalogue holds.
    let live = crate::profile::keys::KeyName::parse(key)
        .ok()
        .and_then(|k| crate::system::read_sysctl_raw(root, &k).ok().flatten());
    let peer_live = sysctld::port_peer(key)
        .and_then(|p| crate::profile::keys::KeyName::parse(p).ok())
        .and_then(|p| crate::system::read_sysctl_raw(root, &p).ok().flatten());
    let winner = sysctld::boot_value_with(
        &applied,
        key,
        sysctld::ints_of(key, live.as_deref()),
        live.as_deref(),
        peer_live.as_deref(),
    );
    let order: Vec<&str> = applied.iter().map(|f| f.path.as_str()).collect();
    let mut links = Vec::new();
    for (file, masked_by) in sysctl_files(root)? {
        for a in sysctld::parse(&file.text, &file.path) {
            if !sysctld::matches(&a.key, key) {
                continue;
            }
            let (fate, by) = if let Some(m) = &masked_by {
                (Fate::Masked, Some(m.clone()))
            } else if winner
                .as_ref()
                .is_some_and(|w| w.file == a.file && w.line == a.line)
            {
                (Fate::Wins, None)
            } else {
                (
                    Fate::Overridden,
                    winner.as_ref().map(|w| format!("{}:{}", w.file, w.line)),
                )
            };
            links.push((order.iter().position(|p| *p == a.file), a, fate, by));
        }
    }
    // Applied files in boot order, then masked ones.
    links.sort_by_key(|(pos, a, _, _)| (pos.is_none(), pos.unwrap_or(0), a.line));
    // The winning line shows what the kernel keeps of it (`0x10` is 16), as diff shows it.
    let kept = winner.map(|w| w.value);
    Ok(links
        .into_iter()
        .map(|(_, a, fate, by)| Link {
            file: a.file,
            line: a.line,
            value: match (&kept, fate) {
                (Some(v), Fate::Wins) => v.clone(),
                _ => a.value,
            },
            fate,
            by,
        })
        .collect())
}

fn kind_text(kind: Kind) -> &'static str {
    match kind {
        Kind::Soft => "soft",
        Kind::Hard => "hard",
        Kind::Both => "-",
        Kind::Stop => "- (stops pam_limits for these logins)",
        Kind::Logins { .. } | Kind::Unreadable { .. } => "",
    }
}

/// Every limits.conf / limits.d entry of `item` in pam_limits' order; `Wins` for the entries
/// a non-root login (`*`) or root ends up with.
pub fn limit_chain(root: &Root, item: Item) -> Result<Vec<Link>> {
    let all = entries(&limit_files(root)?);
    // A login named by no entry: what `*` gives.
    let anyone = Subject::default();
    let root_login = Subject {
        user: Some("root".into()),
        uid: Some(0),
        groups: Vec::new(),
        ..Subject::default()
    };
    let mut winners: Vec<(String, usize, &'static str)> = Vec::new();
    for (who, name) in [(&anyone, "other logins"), (&root_login, "root")] {
        let (soft, hard) =
            crate::system::limits::resolve(&all, who, item, crate::system::nr_open(root));
        for (half, label) in [(soft, "soft"), (hard, "hard")] {
            if let Some(r) = half {
                winners.push((
                    r.file,
                    r.line,
                    if name == "root" {
                        if label == "soft" {
                            "root soft"
                        } else {
                            "root hard"
                        }
                    } else if label == "soft" {
                        "soft"
                    } else {
                        "hard"
                    },
                ));
            }
        }
    }
    let mut links = Vec::new();
    for e in all.iter().filter(|e| e.item == item) {
        let won: Vec<&str> = winners
            .iter()
            .filter(|(f, l, _)| *f == e.file && *l == e.line)
            .map(|(_, _, w)| *w)
            .collect();
        let value = format!("{} {} {} {}", e.domain, kind_text(e.kind), item, e.value);
        let (fate, by) = if !won.is_empty() {
            (Fate::Wins, Some(format!("in force: {}", won.join(", "))))
        } else if e.domain == "*" || e.domain == "root" {
            (
                Fate::Overridden,
                Some("a later or more specific entry".into()),
            )
        } else {
            (
                Fate::Elsewhere,
                Some(format!("applies to {} only", e.domain)),
            )
        };
        links.push(Link {
            file: e.file.clone(),
            line: e.line,
            value,
            fate,
            by,
        });
    }
    Ok(links)
}

/// Every `DefaultLimitNOFILE=` in the `[Manager]` section of system.conf and its drop-ins;
/// the last one wins.
pub fn systemd_chain(root: &Root) -> Result<Vec<Link>> {
    let mut links = Vec::new();
    for file in systemd_files(root)? {
        let mut in_manager = false;
        for (index, line) in file.text.lines().enumerate() {
            let line = line.trim();
            if line.starts_with('[') {
                in_manager = line == "[Manager]";
            } else if in_manager && let Some(value) = line.strip_prefix("DefaultLimitNOFILE=") {
                links.push(Link {
                    file: file.path.clone(),
                    line: index + 1,
                    value: value.trim().to_string(),
                    fate: Fate::Overridden,
                    by: None,
                });
            }
        }
    }
    let last = links.last().map(|l| format!("{}:{}", l.file, l.line));
    let n = links.len();
    for (i, link) in links.iter_mut().enumerate() {
        if i + 1 == n {
            link.fate = Fate::Wins;
        } else {
            link.by.clone_from(&last);
        }
    }
    Ok(links)
}

/// What a login other than root gets for `item` at login, as one link: `soft S hard H`, placed
/// at the soft value's line, `by` naming both lines; `None` when no entry applies.
pub fn limit_at_login(root: &Root, item: Item) -> Result<Option<Link>> {
    let all = entries(&limit_files(root)?);
    let (soft, hard) = crate::system::limits::resolve(
        &all,
        &Subject::default(),
        item,
        crate::system::nr_open(root),
    );
    let place = |r: &Option<crate::system::limits::Resolved>| {
        r.as_ref().map_or_else(
            || "not set".to_string(),
            |r| format!("{}:{}", r.file, r.line),
        )
    };
    let value = |r: &Option<crate::system::limits::Resolved>| {
        r.as_ref()
            .map_or_else(|| "inherited".to_string(), |r| r.value.to_string())
    };
    let Some(first) = soft.as_ref().or(hard.as_ref()) else {
        return Ok(None);
    };
    Ok(Some(Link {
        file: first.file.clone(),
        line: first.line,
        value: format!("soft {} hard {}", value(&soft), value(&hard)),
        fate: Fate::Wins,
        by: Some(format!(
            "logins other than root; soft from {}, hard from {}",
            place(&soft),
            place(&hard)
        )),
    }))
}
