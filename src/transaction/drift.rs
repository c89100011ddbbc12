//! Drift: whether the machine still holds what the generations in force manage (replay.rs).
//! A key's live value against the value last set (a rise above a recorded min is not drift), a
//! managed drop-in edited or removed by hand, a limit whose value in force for a login is not
//! the one configured (pam_limits' rules), systemd's DefaultLimitNOFILE overridden. status
//! shows these rows, metrics exports them and rollback refuses to overwrite a hand edit.
//! Reads through `Root`; never writes.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::profile::keys::KeyName;
use crate::profile::limit::Domain;
use crate::system::limits::{self as pam, Kind, Subject};
use crate::system::root::Root;
use crate::transaction::replay::{Managed, within};

/// A managed drop-in whose content is no longer what netprofile wrote.
#[derive(Debug, Clone)]
pub struct HandEdit {
    /// Root-relative path.
    pub path: String,
    pub written: String,
    /// `None`: the file was removed.
    pub now: Option<String>,
}

/// The managed drop-ins that differ from what netprofile last wrote.
pub fn hand_edits(root: &Root, managed: &Managed) -> Result<Vec<HandEdit>> {
    let mut out = Vec::new();
    for (path, written) in &managed.files {
        let now = crate::system::read_optional(root, path)?;
        if now.as_deref() != Some(written.as_str()) {
            out.push(HandEdit {
                path: path.clone(),
                written: written.clone(),
                now,
            });
        }
    }
    Ok(out)
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct KeyRow {
    pub key: String,
    pub live: Option<String>,
    /// What the generations in force set.
    pub wanted: String,
    pub in_sync: bool,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct FileRow {
    pub path: String,
    /// `ok`, `edited` (by hand) or `removed`.
    pub state: &'static str,
    pub in_sync: bool,
}

/// A file and line, as plan rows name them.
pub type Where = crate::plan::Source;

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct LimitRow {
    pub domain: String,
    pub item: String,
    #[serde(rename = "type")]
    pub half: &'static str,
    /// What the managed drop-in sets.
    pub wanted: String,
    /// The value pam_limits gives a login of this domain now, and the line it comes from;
    /// `null` when no file sets one (the kernel default stays).
    pub live: Option<String>,
    pub source: Option<Where>,
    pub in_sync: bool,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SystemdRow {
    pub setting: &'static str,
    pub wanted: String,
    pub live: Option<String>,
    pub source: Option<Where>,
    pub in_sync: bool,
}

/// A login of a limits domain, as far as the domain names it (a group's members and a user's
/// groups are not looked up here).
fn subject(domain: &str) -> Subject {
    match Domain::parse(domain) {
        Ok(Domain::User(name)) => Subject {
            user: Some(name),
            ..Subject::default()
        },
        Ok(Domain::Group(g)) => Subject {
            groups: vec![g],
            ..Subject::default()
        },
        Ok(Domain::UidRange(lo, hi)) => Subject {
            uid: lo.or(hi),
            ..Subject::default()
        },
        _ => Subject::default(),
    }
}

/// Each half (soft, hard) of each line of the managed limits drop-in: what a login of its
/// domain gets now by pam_limits' rules, and from which line.
pub fn limit_rows(root: &Root, managed: &Managed) -> Result<Vec<LimitRow>> {
    let rel = Root::limits_dropin();
    let Some(text) = managed.files.get(&rel) else {
        return Ok(Vec::new());
    };
    let configured = pam::parse(text, &Root::display(&rel));
    let live = crate::system::entries(&crate::system::limit_files(root)?);
    let nr_open = crate::system::nr_open(root);
    let mut rows = Vec::new();
    for entry in &configured {
        let (soft, hard) = pam::resolve(&live, &subject(&entry.domain), entry.item, nr_open);
        for (half, wanted, now) in [
            ("soft", matches!(entry.kind, Kind::Soft | Kind::Both), soft),
            ("hard", matches!(entry.kind, Kind::Hard | Kind::Both), hard),
        ] {
            if !wanted {
                continue;
            }
            let in_sync = now.as_ref().is_some_and(|n| n.value == entry.value);
            rows.push(LimitRow {
                domain: entry.domain.clone(),
                item: entry.item.as_str().to_string(),
                half,
                wanted: entry.value.to_string(),
                live: now.as_ref().map(|n| n.value.to_string()),
                source: now.map(|n| Where {
                    file: n.file,
                    line: n.line,
                }),
                in_sync,
            });
        }
    }
    Ok(rows)
}

/// The managed DefaultLimitNOFILE against the one systemd's manager reads now.
pub fn systemd_rows(root: &Root, managed: &Managed) -> Result<Vec<SystemdRow>> {
    let rel = Root::systemd_dropin();
    let Some(text) = managed.files.get(&rel) else {
        return Ok(Vec::new());
    };
    let own = crate::system::sysctld::BootFile {
        path: Root::display(&rel),
        text: text.clone(),
    };
    let Some(configured) = crate::system::systemd::default_limit_nofile(std::slice::from_ref(&own))
    else {
        return Ok(Vec::new());
    };
    let now = crate::system::systemd::default_limit_nofile(&crate::system::systemd_files(root)?);
    Ok(vec![SystemdRow {
        setting: "DefaultLimitNOFILE",
        in_sync: now.as_ref().is_some_and(|n| n.value == configured.value),
        wanted: configured.value,
        live: now.as_ref().map(|n| n.value.clone()),
        source: now.map(|n| Where {
            file: n.file,
            line: n.line,
        }),
    }])
}

/// Each key netprofile last set, its live value, and whether it still holds (a rise above a
/// recorded min is not drift).
pub fn key_rows(root: &Root, managed: &Managed) -> Result<Vec<KeyRow>> {
    let mut keys = Vec::new();
    for (key, want) in &managed.sysctl {
        let name = KeyName::parse(key).map_err(Error::State)?;
        let now = crate::system::read_sysctl(root, &name)?;
        let in_sync = now.as_deref().is_some_and(|now| {
            crate::profile::value::same(key, now, want) || within(managed.bounds.get(key), now)
        });
        keys.push(KeyRow {
            key: key.clone(),
            live: now,
            wanted: want.clone(),
            in_sync,
        });
    }
    Ok(keys)
}

/// Each managed drop-in: as written, edited by hand or removed.
pub fn file_rows(managed: &Managed, edits: &[HandEdit]) -> Vec<FileRow> {
    managed
        .files
        .keys()
        .map(|path| {
            let edit = edits.iter().find(|e| &e.path == path);
            FileRow {
                path: Root::display(path),
                state: match edit {
                    None => "ok",
                    Some(e) if e.now.is_some() => "edited",
                    Some(_) => "removed",
                },
                in_sync: edit.is_none(),
            }
        })
        .collect()
}
