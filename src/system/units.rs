//! systemd units: where a service's `LimitNOFILE=` comes from, by systemd's own rules.
//!
//! A unit's file is the first found along the unit path (/etc/systemd/system, /run/systemd/system,
//! /usr/local/lib/systemd/system, /usr/lib/systemd/system, /lib/systemd/system); its drop-ins are
//! the `*.conf` files of every `NAME.service.d/` folder along the same path, where a file masks a
//! same-named one in a later folder, applied in file-name order across folders; within them the
//! last assignment wins (systemd.unit(5)). This module reads those files through `Root` and
//! resolves them; it never writes and never asks a running systemd (PID 1 may not be systemd,
//! and `--root` trees have none). Not handled: template units (`foo@.service`), prefix drop-ins
//! (`foo-.service.d`) and the type-wide `service.d/`.

use crate::error::{Error, Result};
use crate::system::read_optional;
use crate::system::root::{DROPIN_NAME, Root};
use crate::system::sysctld::BootFile;

/// The unit path of the system manager, highest precedence first.
pub const UNIT_DIRS: [&str; 5] = [
    "etc/systemd/system",
    "run/systemd/system",
    "usr/local/lib/systemd/system",
    "usr/lib/systemd/system",
    "lib/systemd/system",
];

impl Root {
    /// The root-relative drop-in netprofile writes for a unit (`nginx.service`).
    #[must_use]
    pub fn unit_dropin(unit: &str) -> String {
        format!("{}/{unit}.d/{DROPIN_NAME}", UNIT_DIRS[0])
    }

    /// The modules-load.d drop-in netprofile writes for `[modules] load`.
    #[must_use]
    pub fn modules_dropin() -> String {
        "etc/modules-load.d/netprofile.conf".to_string()
    }
}

/// One `LimitNOFILE=` assignment and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub value: String,
    pub file: String,
    pub line: usize,
}

/// A unit's file and drop-ins, in the order systemd applies them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitFiles {
    /// The unit file, if one exists anywhere on the unit path.
    pub unit: Option<BootFile>,
    /// Drop-ins in application order (file-name order after masking).
    pub dropins: Vec<BootFile>,
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or_default()
}

impl UnitFiles {
    /// The files as they would be with netprofile's drop-in at `path` holding `text` (or
    /// removed, for `None`): masking and name order as systemd applies them.
    #[must_use]
    pub fn with_ours(&self, path: &str, text: Option<&str>) -> UnitFiles {
        let mut dropins: Vec<BootFile> = self
            .dropins
            .iter()
            .filter(|f| file_name(&f.path) != file_name(path))
            .cloned()
            .collect();
        if let Some(text) = text {
            dropins.push(BootFile {
                path: path.to_string(),
                text: text.to_string(),
            });
            dropins.sort_by(|a, b| file_name(&a.path).cmp(file_name(&b.path)));
        }
        UnitFiles {
            unit: self.unit.clone(),
            dropins,
        }
    }

    /// The `LimitNOFILE=` that wins: the last one in `[Service]` of the unit file, then of each
    /// drop-in in order. `None` when nothing sets it (the manager's DefaultLimitNOFILE applies).
    #[must_use]
    pub fn limit_nofile(&self) -> Option<Assignment> {
        self.unit
            .iter()
            .chain(&self.dropins)
            .rev()
            .find_map(last_limit_nofile)
    }
}

fn last_limit_nofile(file: &BootFile) -> Option<Assignment> {
    let mut found = None;
    let mut in_service = false;
    for (index, line) in file.text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service
            && let Some((name, value)) = line.split_once('=')
            && name.trim() == "LimitNOFILE"
            && !value.trim().is_empty()
        {
            found = Some(Assignment {
                value: value.trim().to_string(),
                file: file.path.clone(),
                line: index + 1,
            });
        }
    }
    found
}

fn dir_names(root: &Root, rel: &str) -> Result<Vec<String>> {
    let dir = root.path(rel);
    match std::fs::read_dir(&dir) {
        Ok(entries) => Ok(entries
            .filter_map(std::result::Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(Vec::new())
        }
        Err(e) => Err(Error::read(dir, e)),
    }
}

/// Reads a unit's file and drop-ins along the unit path.
pub fn unit_files(root: &Root, unit: &str) -> Result<UnitFiles> {
    let mut files = UnitFiles::default();
    for dir in UNIT_DIRS {
        if files.unit.is_none() {
            let rel = format!("{dir}/{unit}");
            if let Some(text) = read_optional(root, &rel)? {
                files.unit = Some(BootFile {
                    path: Root::display(&rel),
                    text,
                });
            }
        }
        let dropin_dir = format!("{dir}/{unit}.d");
        let mut names = dir_names(root, &dropin_dir)?;
        names.retain(|n| n.ends_with(".conf"));
        names.sort();
        for name in names {
            // A same-named drop-in in an earlier folder masks this one.
            if files.dropins.iter().any(|f| file_name(&f.path) == name) {
                continue;
            }
            let rel = format!("{dropin_dir}/{name}");
            if let Some(text) = read_optional(root, &rel)? {
                files.dropins.push(BootFile {
                    path: Root::display(&rel),
                    text,
                });
            }
        }
    }
    files
        .dropins
        .sort_by(|a, b| file_name(&a.path).cmp(file_name(&b.path)));
    Ok(files)
}

/// The units netprofile has a drop-in for now (`etc/systemd/system/*.service.d/90-netprofile.conf`).
pub fn units_with_our_dropin(root: &Root) -> Result<Vec<String>> {
    let mut units: Vec<String> = dir_names(root, UNIT_DIRS[0])?
        .into_iter()
        .filter_map(|n| n.strip_suffix(".d").map(String::from))
        .filter(|unit| unit.ends_with(".service"))
        .filter(|unit| root.path(&Root::unit_dropin(unit)).is_file())
        .collect();
    units.sort();
    Ok(units)
}

/// A `LimitNOFILE=` value as (soft, hard); `infinity` is `u64::MAX`. `None` when unreadable.
#[must_use]
pub fn parse_nofile(value: &str) -> Option<(u64, u64)> {
    let one = |s: &str| match s.trim() {
        "infinity" => Some(u64::MAX),
        n => n.parse().ok(),
    };
    match value.split_once(':') {
        Some((soft, hard)) => Some((one(soft)?, one(hard)?)),
        None => one(value).map(|n| (n, n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn precedence_of_unit_file_and_dropins() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let d = dir.path();
        write(
            d,
            "usr/lib/systemd/system/web.service",
            "[Unit]\nLimitNOFILE=1\n[Service]\nExecStart=/bin/web\nLimitNOFILE=4096\n",
        );
        // Masked by /etc's file of the same name, so never applied.
        write(
            d,
            "usr/lib/systemd/system/web.service.d/50-x.conf",
            "[Service]\nLimitNOFILE=7\n",
        );
        write(
            d,
            "etc/systemd/system/web.service.d/50-x.conf",
            "[Service]\nLimitNOFILE=8192\n",
        );
        write(
            d,
            "run/systemd/system/web.service.d/10-a.conf",
            "[Service]\nLimitNOFILE=100\n",
        );
        let files = unit_files(&root, "web.service").unwrap();
        let got = files.limit_nofile().unwrap();
        assert_eq!(
            (got.value.clone(), got.file.clone(), got.line),
            (
                "8192".to_string(),
                Root::display("etc/systemd/system/web.service.d/50-x.conf"),
                2
            )
        );
        // Ours (90-) comes after 50-x.conf and wins; a 99- drop-in would beat it.
        let ours = Root::display(&Root::unit_dropin("web.service"));
        let after = files.with_ours(&ours, Some("[Service]\nLimitNOFILE=65536\n"));
        assert_eq!(after.limit_nofile().unwrap().value, "65536");
        write(
            d,
            "usr/lib/systemd/system/web.service.d/99-late.conf",
            "[Service]\nLimitNOFILE=2048:4096\n",
        );
        let files = unit_files(&root, "web.service").unwrap();
        let after = files.with_ours(&ours, Some("[Service]\nLimitNOFILE=65536\n"));
        let got = after.limit_nofile().unwrap();
        assert_eq!(got.value, "2048:4096");
        assert_eq!(parse_nofile(&got.value), Some((2048, 4096)));
        // Unit file only: its own [Service] line wins, not the [Unit] one.
        let only = UnitFiles {
            unit: files.unit.clone(),
            dropins: Vec::new(),
        };
        assert_eq!(only.limit_nofile().unwrap().value, "4096");
    }

    #[test]
    fn our_dropins_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        write(dir.path(), &Root::unit_dropin("a.service"), "x");
        write(
            dir.path(),
            "etc/systemd/system/b.service.d/10-other.conf",
            "x",
        );
        assert_eq!(units_with_our_dropin(&root).unwrap(), ["a.service"]);
    }
}
