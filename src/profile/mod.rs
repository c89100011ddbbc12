//! Profiles: the TOML format, `extends`, and every check that needs only the profile itself.
//!
//! `load` turns a path or a shipped name into one merged, validated `Profile`, or a list of
//! problems that each name the file, line and key. Checks that need the live system (unknown
//! keys, `fs.nr_open`) belong to `plan`. This module reads profile files and nothing else.
//! The format is documented in docs/profiles.md.

pub mod dropin;
pub mod keys;
pub mod limit;
pub mod value;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use self::keys::{KeyName, Shape};
use crate::error::{Error, Problem, Result};
use crate::profile::limit::{Domain, Item, LimitValue};

/// Profiles shipped inside the binary, so `netprofile diff high-conn` works anywhere.
pub const SHIPPED: &[(&str, &str)] = &[
    ("base", include_str!("../../profiles/base.toml")),
    ("high-conn", include_str!("../../profiles/high-conn.toml")),
    (
        "load-generator",
        include_str!("../../profiles/load-generator.toml"),
    ),
    (
        "legacy-defaults",
        include_str!("../../profiles/legacy-defaults.toml"),
    ),
];

/// Where a setting was written, for messages at plan time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// Exactly this value (in normal form).
    Exact(String),
    /// Raise to at least this; never lower.
    Min(i64),
    /// Lower to at most this; never raise.
    Max(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub want: Want,
    /// Skip the key when this kernel does not have it (a module not loaded).
    pub optional: bool,
    pub origin: Origin,
}

/// One `[[limits]]` entry after `-` is split: the soft and hard halves for a domain and item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub domain: Domain,
    pub item: Item,
    pub soft: Option<LimitValue>,
    pub hard: Option<LimitValue>,
    pub origin: Origin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofilePair {
    pub soft: u64,
    pub hard: u64,
}

/// `[systemd.services."NAME.service"] limit_nofile = …`: what one service gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLimit {
    pub nofile: NofilePair,
    pub origin: Origin,
}

/// A profile as every `--json` document names it: its name, the file or `shipped:NAME` it was
/// loaded from, and the SHA-256 of its top-level text (what history records).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema, Deserialize)]
pub struct ProfileRef {
    pub name: String,
    pub source: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub description: String,
    /// The file or `shipped:NAME` the profile was loaded from.
    pub source: String,
    /// The text of the top-level file, for hashing into history.
    pub text: String,
    pub sysctl: BTreeMap<KeyName, Setting>,
    pub limits: Vec<Limit>,
    pub systemd_nofile: Option<(NofilePair, Origin)>,
    /// Per-service limits by unit name (`nginx.service`), written as unit drop-ins.
    pub services: BTreeMap<String, ServiceLimit>,
    /// Kernel modules to load at boot (`[modules] load`), written to modules-load.d.
    pub modules: Vec<String>,
}

impl Profile {
    /// How documents and history name this profile.
    #[must_use]
    pub fn reference(&self) -> ProfileRef {
        use sha2::Digest as _;
        ProfileRef {
            name: self.name.clone(),
            source: self.source.clone(),
            sha256: sha2::Sha256::digest(self.text.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    profile: Option<RawMeta>,
    #[serde(default)]
    sysctl: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    ports: Option<RawPorts>,
    #[serde(default)]
    limits: Vec<Spanned<RawLimit>>,
    systemd: Option<RawSystemd>,
    modules: Option<RawModules>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModules {
    #[serde(default)]
    load: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    limit_nofile: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeta {
    name: Option<String>,
    description: Option<String>,
    #[serde(default)]
    extends: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPorts {
    local_range: Option<Spanned<Vec<i64>>>,
    reserved: Option<Spanned<Vec<toml::Value>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimit {
    domain: Spanned<String>,
    #[serde(rename = "type")]
    kind: Spanned<String>,
    item: Spanned<String>,
    value: Spanned<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSystemd {
    default_limit_nofile: Option<Spanned<toml::Value>>,
    #[serde(default)]
    services: BTreeMap<Spanned<String>, Spanned<RawService>>,
}

/// Where a profile comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Shipped(&'static str, &'static str),
    File(PathBuf),
}

impl Source {
    fn display(&self) -> String {
        match self {
            Source::Shipped(name, _) => format!("shipped:{name}"),
            Source::File(path) => path.display().to_string(),
        }
    }
}

/// Whether a profile reference is a path (it has a `/`, ends in `.toml`, or names a file in
/// `dir`) rather than a shipped name.
/// A reference is a file when it has a '/' or a .toml ending, or names a file in `dir` that is
/// not also a shipped name (a shipped name means the shipped profile; `./NAME` the file).
fn looks_like_path(reference: &str, dir: &Path) -> bool {
    reference.contains('/')
        || reference.ends_with(".toml")
        || (shipped(reference).is_none() && dir.join(reference).is_file())
}

fn shipped(name: &str) -> Option<Source> {
    SHIPPED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, text)| Source::Shipped(n, text))
}

fn not_found(reference: &str, from: Option<&str>) -> Error {
    let names: Vec<&str> = SHIPPED.iter().map(|(n, _)| *n).collect();
    let starting: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !reference.is_empty() && n.starts_with(reference))
        .collect();
    let hint = (if let [one] = starting.as_slice() {
        Some(*one)
    } else {
        keys::nearest(reference, names.iter().copied())
    })
    .map_or_else(String::new, |n| format!("; did you mean {n:?}?"));
    let place = from.map_or_else(String::new, |f| format!("{f}: extends: "));
    Error::Usage(format!(
        "{place}no profile file or shipped profile named {reference:?}{hint} \
         (shipped: {}; a file name needs a '/' or a .toml ending)",
        names.join(", ")
    ))
}

/// The largest profile netprofile reads (the cap of every file read: `root::MAX_READ`).
pub const MAX_FILE_BYTES: u64 = crate::system::root::MAX_READ;

/// Reads an opened file whole if it is a regular file of at most `limit` bytes, as UTF-8
/// text, through the one bounded read (`root::read_fd`).
pub fn read_bounded(file: std::fs::File, limit: u64) -> std::io::Result<String> {
    String::from_utf8(read_bounded_bytes(file, limit)?).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "is not valid UTF-8 text")
    })
}

/// Reads at most `limit` bytes of an opened regular file (`root::read_fd`).
pub fn read_bounded_bytes(file: std::fs::File, limit: u64) -> std::io::Result<Vec<u8>> {
    crate::system::root::read_fd(std::os::fd::OwnedFd::from(file), limit)
}

/// Loads a profile by path or shipped name, follows `extends`, and validates everything that
/// does not need the live system.
pub fn load(reference: &str) -> Result<Profile> {
    let source = if let Some(source) = shipped(reference) {
        // A shipped name means the shipped profile, even when the current folder has a file of
        // that name (a stray `./high-conn` must not silently replace it): say so.
        if Path::new(reference).is_file() {
            crate::print_human(
                crate::Stream::Stderr,
                &format!(
                    "warning: using the shipped profile {reference:?}, not the file \
                     ./{reference} in the current folder; write ./{reference} for the file\n"
                ),
            );
        }
        source
    } else if looks_like_path(reference, Path::new(".")) {
        Source::File(PathBuf::from(reference))
    } else {
        return Err(not_found(reference, None));
    };
    let mut stack = Vec::new();
    let mut seen = Vec::new();
    let mut problems = Vec::new();
    let layers = load_layers(&source, &mut stack, &mut seen, &mut problems)?;
    if !problems.is_empty() {
        return Err(Error::Invalid(in_line_order(problems)));
    }
    let profile = merge(layers);
    let problems = in_line_order(cross_checks(&profile));
    if problems.is_empty() {
        Ok(profile)
    } else {
        Err(Error::Invalid(problems))
    }
}

/// Parses and validates one profile text on its own (no `extends` followed: a text that has
/// some is refused). For the fuzz targets and property tests, which must not touch files;
/// `load` is the way in for users.
pub fn from_text(text: &str, display: &str) -> Result<Profile> {
    let raw = parse_toml(text, display)?;
    if let Some(meta) = &raw.profile {
        if let Some(name) = meta.name.as_deref()
            && !valid_name(name)
        {
            return Err(Error::Usage(format!(
                "{display}: [profile] name {name:?} is not allowed"
            )));
        }
        if !meta.extends.is_empty() {
            return Err(Error::Usage(format!(
                "{display}: extends is not followed here"
            )));
        }
    }
    let mut problems = Vec::new();
    let layer = convert(raw, text, display, &mut problems);
    if !problems.is_empty() {
        return Err(Error::Invalid(problems));
    }
    let profile = merge(vec![layer]);
    let problems = cross_checks(&profile);
    if problems.is_empty() {
        Ok(profile)
    } else {
        Err(Error::Invalid(problems))
    }
}

/// Problems grouped by file (in the order files were first named) and by line within a file,
/// so a user fixing them top to bottom never jumps back.
#[must_use]
pub fn in_line_order(mut problems: Vec<Problem>) -> Vec<Problem> {
    let mut files: Vec<String> = Vec::new();
    for p in &problems {
        if !files.contains(&p.file) {
            files.push(p.file.clone());
        }
    }
    problems.sort_by_key(|p| {
        (
            files.iter().position(|f| *f == p.file),
            p.line.unwrap_or(usize::MAX),
        )
    });
    problems
}

/// One parsed file, before merging.
struct Layer {
    name: Option<String>,
    description: Option<String>,
    source: String,
    text: String,
    sysctl: BTreeMap<KeyName, Setting>,
    limits: Vec<Limit>,
    systemd_nofile: Option<(NofilePair, Origin)>,
    services: BTreeMap<String, ServiceLimit>,
    modules: Vec<String>,
}

/// How deep `extends` may nest. Real profiles use two or three levels; the limit turns a chain
/// thousands deep (which overflowed the stack) into a clear error.
pub const MAX_EXTENDS_DEPTH: usize = 32;

/// The longest profile name.
pub const MAX_NAME_LEN: usize = 64;

/// The most `[sysctl]` keys one file may hold. Every key costs a read of the live system, and a
/// profile of 100 000 keys is an attack or a mistake, not a tuning.
pub const MAX_KEYS: usize = 4096;

/// Whether a profile name is safe to write into a drop-in's header comment: 1 to 64 of
/// `A-Z a-z 0-9 . _ -`. A name with a newline would otherwise become a live line of
/// limits.d or sysctl.d.
#[must_use]
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The longest kernel module name: the kernel's MODULE_NAME_LEN (64 - sizeof(long)) less
/// its NUL. modprobe refuses longer names, so systemd-modules-load would fail at every boot.
pub const MAX_MODULE_NAME_LEN: usize = 55;

/// Reads a profile file: regular files only, at most `MAX_FILE_BYTES`. Opened non-blocking so
/// a FIFO named as the profile is refused at once instead of waiting for a writer.
fn read_profile_file(path: &Path) -> Result<String> {
    crate::system::root::Root::read_named(path, MAX_FILE_BYTES)
        .and_then(|bytes| {
            String::from_utf8(bytes).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "is not valid UTF-8 text")
            })
        })
        .map_err(|e| Error::read(path, e))
}

/// Loads `source` and, depth first, what it extends; returns the layers base-first. A file
/// reached twice (a diamond: A extends B and C, both extend D) is read and merged once, at its
/// first place, so loading stays linear in the number of files.
fn load_layers(
    source: &Source,
    stack: &mut Vec<(Source, String)>,
    seen: &mut Vec<Source>,
    problems: &mut Vec<Problem>,
) -> Result<Vec<Layer>> {
    let key = match source {
        Source::File(path) => Source::File(path.canonicalize().unwrap_or_else(|_| path.clone())),
        shipped => shipped.clone(),
    };
    if !first_visit(source, &key, stack, seen)? {
        return Ok(Vec::new());
    }
    let (text, display) = match source {
        Source::Shipped(_, text) => ((*text).to_string(), source.display()),
        Source::File(path) => (read_profile_file(path)?, path.display().to_string()),
    };
    let raw: RawFile = parse_toml(&text, &display)?;
    check_file_bounds(&raw, &display)?;
    seen.push(key.clone());
    stack.push((key, display.clone()));
    let mut layers = Vec::new();
    if let Some(meta) = &raw.profile {
        for parent in &meta.extends {
            let parent_source = extended_source(source, parent, &text, &display)?;
            layers.extend(load_layers(&parent_source, stack, seen, problems)?);
        }
    }
    stack.pop();
    layers.push(convert(raw, &text, &display, problems));
    Ok(layers)
}

/// Whether `source` (canonical form `key`) is to be read now: an error for a cycle or a chain
/// nested too deep, `false` when a diamond already read it.
fn first_visit(
    source: &Source,
    key: &Source,
    stack: &[(Source, String)],
    seen: &[Source],
) -> Result<bool> {
    if stack.iter().any(|(seen, _)| seen == key) {
        let mut chain: Vec<String> = stack.iter().map(|(_, shown)| shown.clone()).collect();
        chain.push(source.display());
        return Err(Error::Usage(format!(
            "profiles extend each other in a cycle: {}; remove one of the extends",
            chain.join(" -> ")
        )));
    }
    if seen.contains(key) {
        return Ok(false);
    }
    if stack.len() >= MAX_EXTENDS_DEPTH {
        return Err(Error::Usage(format!(
            "{}: extends is nested more than {MAX_EXTENDS_DEPTH} levels deep (from {}); \
             flatten the chain of profiles",
            source.display(),
            stack
                .first()
                .map_or_else(String::new, |(_, shown)| shown.clone())
        )));
    }
    Ok(true)
}

/// The checks that refuse a whole file before its sections are read: a name that is not safe
/// in a drop-in's header, more `[sysctl]` keys than `MAX_KEYS`.
fn check_file_bounds(raw: &RawFile, display: &str) -> Result<()> {
    if let Some(name) = raw.profile.as_ref().and_then(|m| m.name.as_deref())
        && !valid_name(name)
    {
        return Err(Error::Usage(format!(
            "{display}: [profile] name {name:?} is not allowed; use 1 to {MAX_NAME_LEN} of \
             letters, digits, '.', '_' and '-'"
        )));
    }
    if raw.sysctl.len() > MAX_KEYS {
        return Err(Error::Usage(format!(
            "{display}: [sysctl] has {} keys; netprofile accepts at most {MAX_KEYS} in one file \
             (real profiles use tens). Split it, or remove keys it does not need",
            raw.sysctl.len()
        )));
    }
    Ok(())
}

/// What one `extends` entry of `source` names: a `.toml` file next to a profile file, or a
/// shipped profile.
fn extended_source(
    source: &Source,
    parent: &Spanned<String>,
    text: &str,
    display: &str,
) -> Result<Source> {
    let reference = parent.get_ref();
    Ok(match source {
        Source::File(path)
            if looks_like_path(reference, path.parent().unwrap_or(Path::new("."))) =>
        {
            let dir = path.parent().unwrap_or_else(|| Path::new("."));
            let candidate = dir.join(reference);
            // Without this, `extends = ["../../etc/passwd"]` read that file as TOML and
            // reported its first line as a syntax error.
            if !reference.ends_with(".toml") {
                return Err(Error::Usage(format!(
                    "{display}:{}: extends: {reference:?} is not a profile: a profile \
                     file's name ends in .toml, and a shipped profile is named without \
                     a '/' (shipped: {})",
                    line_of(text, parent.span().start),
                    SHIPPED
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            if !candidate.is_file() {
                return Err(Error::Usage(format!(
                    "{display}:{}: extends: no file {} (paths are relative to the \
                     profile's folder)",
                    line_of(text, parent.span().start),
                    candidate.display()
                )));
            }
            Source::File(candidate)
        }
        _ => shipped(reference).ok_or_else(|| {
            not_found(
                reference,
                Some(&format!("{display}:{}", line_of(text, parent.span().start))),
            )
        })?,
    })
}

fn parse_toml(text: &str, display: &str) -> Result<RawFile> {
    toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        let line = line_of(text, offset);
        let line_start = text[..offset.min(text.len())]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let column = text[line_start..offset.min(text.len())].chars().count() + 1;
        let line_text = text[line_start..]
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        if let Some(problem) = too_large(e.message(), &line_text, display, line) {
            return Error::Invalid(vec![problem]);
        }
        let mut message = e.message().trim().to_string();
        // `[limits]` where `[[limits]]` was meant: each entry is one item of an array of tables.
        let header = line_text.trim();
        if message.starts_with("invalid type: map, expected a sequence")
            && let Some(table) = header.strip_prefix('[').and_then(|h| h.strip_suffix(']'))
            && !table.starts_with('[')
        {
            message =
                format!("{message}: write [[{table}]] (double brackets), once before each entry");
        }
        Error::Toml {
            file: display.to_string(),
            line,
            column,
            message,
            caret: format!("{}^", " ".repeat(column - 1)),
            line_text,
        }
    })
}

/// TOML integers are 64-bit; the toml crate words a larger one as "integer `N` as i128". Say
/// instead what the key takes.
fn too_large(message: &str, line_text: &str, file: &str, line: usize) -> Option<Problem> {
    let number = message
        .strip_prefix("invalid type: integer `")?
        .split_once('`')?
        .0;
    let raw_key = line_text.split_once('=')?.0.trim().trim_matches('"');
    let key = KeyName::parse(raw_key).ok();
    let range = key
        .as_ref()
        .and_then(|k| keys::known(k.as_str()))
        .map_or_else(
            || "the largest integer a profile can hold is 9223372036854775807".to_string(),
            |k| {
                let unit = if k.unit.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", k.unit)
                };
                format!("{} takes {}{unit}", k.name, k.kind.range())
            },
        );
    Some(Problem {
        file: file.to_string(),
        line: Some(line),
        key: Some(format!("{raw_key:?}")),
        message: format!("{number} is too large: {range}"),
    })
}

/// 1-based line number of a byte offset.
#[must_use]
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Byte offsets where each line starts, so that a line number is a binary search instead of
/// a count from the top of the file (which made 100 000 keys quadratic: minutes).
struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Lines(starts)
    }

    /// 1-based line number of a byte offset (same as `line_of`).
    fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|&start| start <= offset)
    }
}

/// Where an offset of one file is: the origin of a setting, or a problem naming file, line and
/// key. Collects the problems of the file being converted.
struct Locator<'a> {
    file: &'a str,
    text: &'a str,
    lines: Lines,
    problems: &'a mut Vec<Problem>,
}

impl Locator<'_> {
    fn origin(&self, offset: usize) -> Origin {
        Origin {
            file: self.file.to_string(),
            line: self.lines.line(offset.min(self.text.len())),
        }
    }

    fn problem(&mut self, offset: usize, key: String, message: String) {
        self.problems.push(Problem {
            file: self.file.to_string(),
            line: Some(self.lines.line(offset.min(self.text.len()))),
            key: Some(key),
            message,
        });
    }
}

fn convert(raw: RawFile, text: &str, file: &str, problems: &mut Vec<Problem>) -> Layer {
    let mut at = Locator {
        file,
        text,
        lines: Lines::new(text),
        problems,
    };
    let mut sysctl = sysctl_settings(&raw.sysctl, &mut at);
    if let Some(ports) = &raw.ports {
        add_port_settings(ports, &mut sysctl, &mut at);
    }
    let limits = limit_pairs(&raw.limits, &mut at);
    let systemd_nofile = raw
        .systemd
        .as_ref()
        .and_then(|s| default_nofile(s, &mut at));
    let services = service_limits(raw.systemd.as_ref(), &mut at);
    let modules = module_names(raw.modules.as_ref(), &mut at);

    let (name, description) = raw
        .profile
        .map(|m| (m.name, m.description))
        .unwrap_or_default();
    Layer {
        name,
        description,
        source: file.to_string(),
        text: text.to_string(),
        sysctl,
        limits,
        systemd_nofile,
        services,
        modules,
    }
}

/// `[sysctl]`: each key checked (a name below proc/sys, not removed, not a second spelling of
/// a key already given) and its value converted.
fn sysctl_settings(
    raw: &BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    at: &mut Locator,
) -> BTreeMap<KeyName, Setting> {
    let mut sysctl = BTreeMap::new();
    // The same kernel setting under two spellings (`net/core/somaxconn` and
    // `net.core.somaxconn`, or two aliases) would leave which one wins to key order.
    let mut spellings: BTreeMap<String, (usize, String)> = BTreeMap::new();
    // In file order, so that the later of two spellings is the one reported.
    let mut entries: Vec<_> = raw.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    for (raw_key, raw_value) in entries {
        let label = format!("[sysctl] {:?}", raw_key.get_ref());
        let offset = raw_key.span().start;
        let key = match KeyName::parse(raw_key.get_ref()) {
            Ok(key) => key,
            Err(why) => {
                at.problem(offset, label, why);
                continue;
            }
        };
        if let Some(why) = keys::removed(key.as_str()) {
            at.problem(offset, label, why);
            continue;
        }
        let line = line_of(at.text, offset);
        match spellings.entry(keys::canonical(key.as_str()).to_string()) {
            std::collections::btree_map::Entry::Occupied(first) => {
                let (first_line, first_raw) = first.get();
                at.problem(
                    offset,
                    label,
                    format!(
                        "the same setting as {first_raw:?} on line {first_line}; keep one of \
                         the two spellings"
                    ),
                );
                continue;
            }
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert((line, raw_key.get_ref().clone()));
            }
        }
        match setting(&key, raw_value.get_ref()) {
            Ok((want, optional)) => {
                sysctl.insert(
                    key,
                    Setting {
                        want,
                        optional,
                        origin: at.origin(offset),
                    },
                );
            }
            Err(why) => at.problem(raw_value.span().start, label, why),
        }
    }
    sysctl
}

/// `[ports]` is two sysctl keys written another way; each is refused when `[sysctl]` sets the
/// same key.
fn add_port_settings(ports: &RawPorts, sysctl: &mut BTreeMap<KeyName, Setting>, at: &mut Locator) {
    let fields = [
        (
            "local_range",
            "net.ipv4.ip_local_port_range",
            ports
                .local_range
                .as_ref()
                .map(|r| (r.span().start, local_range(r.get_ref()))),
        ),
        (
            "reserved",
            "net.ipv4.ip_local_reserved_ports",
            ports
                .reserved
                .as_ref()
                .map(|r| (r.span().start, reserved_ports(r.get_ref()))),
        ),
    ];
    for (field, key, parsed) in fields {
        let Some((offset, parsed)) = parsed else {
            continue;
        };
        let label = format!("[ports] {field}");
        let value = match parsed {
            Ok(value) => value,
            Err(why) => {
                at.problem(offset, label, why);
                continue;
            }
        };
        match sysctl.entry(KeyName::parse(key).expect("valid key")) {
            std::collections::btree_map::Entry::Occupied(_) => at.problem(
                offset,
                label,
                format!("{key} is also set in [sysctl]; keep one"),
            ),
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(Setting {
                    want: Want::Exact(value),
                    optional: false,
                    origin: at.origin(offset),
                });
            }
        }
    }
}

/// `[[limits]]`: each entry checked, and the soft and hard halves of a domain and item joined
/// into one pair; a half given twice is refused.
fn limit_pairs(raw: &[Spanned<RawLimit>], at: &mut Locator) -> Vec<Limit> {
    let mut limits: Vec<Limit> = Vec::new();
    for entry in raw {
        let offset = entry.span().start;
        let e = entry.get_ref();
        let label = format!(
            "[[limits]] {} {} {}",
            e.domain.get_ref(),
            e.kind.get_ref(),
            e.item.get_ref()
        );
        let Some(half) = limit_entry(e, offset, &label, at) else {
            continue;
        };
        if let Some(existing) = limits
            .iter_mut()
            .find(|l| l.domain == half.domain && l.item == half.item)
        {
            if (half.soft.is_some() && existing.soft.is_some())
                || (half.hard.is_some() && existing.hard.is_some())
            {
                at.problem(
                    offset,
                    label,
                    format!(
                        "set twice in this file (first at line {}); keep one",
                        existing.origin.line
                    ),
                );
                continue;
            }
            if half.soft.is_some() {
                existing.soft = half.soft;
            }
            if half.hard.is_some() {
                existing.hard = half.hard;
            }
            // Point later messages at the entry that completed the pair.
            existing.origin = half.origin;
        } else {
            limits.push(half);
        }
    }
    limits
}

/// One `[[limits]]` entry as a `Limit` with the halves its type sets (`-` sets both), or
/// `None` after reporting the field that is wrong.
fn limit_entry(e: &RawLimit, offset: usize, label: &str, at: &mut Locator) -> Option<Limit> {
    let domain = match Domain::parse(e.domain.get_ref()) {
        Ok(d) => d,
        Err(why) => {
            at.problem(e.domain.span().start, label.to_string(), why);
            return None;
        }
    };
    let item = match Item::parse(e.item.get_ref()) {
        Ok(i) => i,
        Err(why) => {
            at.problem(e.item.span().start, label.to_string(), why);
            return None;
        }
    };
    let (soft, hard) = match e.kind.get_ref().as_str() {
        "soft" => (true, false),
        "hard" => (false, true),
        "-" => (true, true),
        other => {
            at.problem(
                e.kind.span().start,
                label.to_string(),
                format!("type {other:?} is not one of \"soft\", \"hard\" or \"-\" (both)"),
            );
            return None;
        }
    };
    let value = match LimitValue::from_toml(item, e.value.get_ref()) {
        Ok(v) => v,
        Err(why) => {
            at.problem(e.value.span().start, label.to_string(), why);
            return None;
        }
    };
    Some(Limit {
        domain,
        item,
        soft: soft.then_some(value),
        hard: hard.then_some(value),
        origin: at.origin(offset),
    })
}

/// `[systemd] default_limit_nofile`, converted to a pair.
fn default_nofile(systemd: &RawSystemd, at: &mut Locator) -> Option<(NofilePair, Origin)> {
    let v = systemd.default_limit_nofile.as_ref()?;
    match nofile_pair(v.get_ref()) {
        Ok(pair) => Some((pair, at.origin(v.span().start))),
        Err(why) => {
            at.problem(v.span().start, "[systemd] default_limit_nofile".into(), why);
            None
        }
    }
}

/// `[systemd.services."NAME.service"]`: a unit name netprofile may write a drop-in for, and
/// its `limit_nofile`.
fn service_limits(
    systemd: Option<&RawSystemd>,
    at: &mut Locator,
) -> BTreeMap<String, ServiceLimit> {
    let mut services = BTreeMap::new();
    for (unit, service) in systemd.iter().flat_map(|s| &s.services) {
        let label = format!("[systemd.services.{:?}]", unit.get_ref());
        if let Err(why) = unit_name(unit.get_ref()) {
            at.problem(unit.span().start, label, why);
            continue;
        }
        let Some(v) = &service.get_ref().limit_nofile else {
            at.problem(
                service.span().start,
                label,
                "give limit_nofile = N or \"SOFT:HARD\"".into(),
            );
            continue;
        };
        match nofile_pair(v.get_ref()) {
            Ok(nofile) => {
                services.insert(
                    unit.get_ref().clone(),
                    ServiceLimit {
                        nofile,
                        origin: at.origin(v.span().start),
                    },
                );
            }
            Err(why) => at.problem(v.span().start, format!("{label} limit_nofile"), why),
        }
    }
    services
}

/// `[modules] load`: names modprobe accepts, each once, in file order.
fn module_names(modules: Option<&RawModules>, at: &mut Locator) -> Vec<String> {
    let mut names = Vec::new();
    for module in modules.iter().flat_map(|m| &m.load) {
        let name = module.get_ref();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            at.problem(
                module.span().start,
                "[modules] load".into(),
                format!(
                    "{} is not a module name (letters, digits, '_' and '-')",
                    limit::clip_quoted(name)
                ),
            );
        } else if name.len() > MAX_MODULE_NAME_LEN {
            at.problem(
                module.span().start,
                "[modules] load".into(),
                format!(
                    "{} is {} characters long; a kernel module name has at most \
                     {MAX_MODULE_NAME_LEN} (MODULE_NAME_LEN, 56 with its NUL)",
                    limit::clip_quoted(name),
                    name.len()
                ),
            );
        } else if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// A unit name netprofile may write a drop-in for: `NAME.service`, with the characters systemd
/// allows in unit names (and so no `/` or `..` that could leave etc/systemd/system).
pub fn unit_name(name: &str) -> Result<(), String> {
    let Some(stem) = name.strip_suffix(".service") else {
        return Err(format!(
            "{name:?} is not a service unit; write the full name, such as \"nginx.service\""
        ));
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c);
    if stem.is_empty() || stem.starts_with('.') || !stem.chars().all(allowed) || name.len() > 255 {
        return Err(format!(
            "{name:?} is not a valid unit name (letters, digits and \":-_.\\@\" only)"
        ));
    }
    Ok(())
}

/// Converts one `[sysctl]` value into what is wanted and whether the key is optional.
fn setting(key: &KeyName, raw: &toml::Value) -> Result<(Want, bool), String> {
    let shape = keys::known(key.as_str()).map(|k| k.shape);
    let (want, optional) = match raw {
        toml::Value::Table(table) => {
            for field in table.keys() {
                if !["value", "min", "max", "optional"].contains(&field.as_str()) {
                    return Err(format!(
                        "unknown field {field:?}; a table takes value, min, max and optional"
                    ));
                }
            }
            let optional = match table.get("optional") {
                None => false,
                Some(toml::Value::Boolean(b)) => *b,
                Some(_) => return Err("optional must be true or false".into()),
            };
            let given: Vec<&str> = ["value", "min", "max"]
                .into_iter()
                .filter(|f| table.contains_key(*f))
                .collect();
            if given.len() != 1 {
                return Err("give exactly one of value, min or max".into());
            }
            let bound = |field: &str| match table.get(field) {
                Some(toml::Value::Integer(i)) => Ok(*i),
                _ => Err(format!("{field} must be an integer")),
            };
            let want = match given[0] {
                "min" => Want::Min(bound("min")?),
                "max" => Want::Max(bound("max")?),
                _ => Want::Exact(scalar(&table["value"])?),
            };
            (want, optional)
        }
        other => (Want::Exact(scalar(other)?), false),
    };
    match (&want, shape) {
        (Want::Exact(v), Some(shape)) => value::check_shape(shape, v)?,
        (Want::Min(_) | Want::Max(_), Some(shape)) if shape != Shape::Int => {
            return Err(
                "min and max work on single-integer keys only; give the exact value".into(),
            );
        }
        _ => {}
    }
    let want = match want {
        Want::Exact(v) => Want::Exact(value::normal_form(shape, &v)),
        other => other,
    };
    // The catalogue's type and range: what the kernel would refuse, and what it accepts but
    // makes no sense. Choices listed by the running kernel are checked at plan time.
    if let Some(known) = keys::known(key.as_str()) {
        let (text, bound) = match &want {
            Want::Exact(v) => (v.clone(), ""),
            Want::Min(n) => (n.to_string(), "min "),
            Want::Max(n) => (n.to_string(), "max "),
        };
        known.kind.check(&text, None).map_err(|why| {
            let unit = if known.unit.is_empty() {
                String::new()
            } else {
                format!(" ({})", known.unit)
            };
            format!("{bound}{why}{unit}")
        })?;
        if let Some(why) = keys::kernel_refuses(key.as_str(), &text) {
            return Err(format!("{bound}{why}"));
        }
    }
    Ok((want, optional))
}

/// A plain value: integer, string, or an array of them (fields joined by spaces).
fn scalar(raw: &toml::Value) -> Result<String, String> {
    match raw {
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::String(s) => {
            if s.contains('\n') {
                Err("a value cannot span lines".into())
            } else {
                Ok(s.clone())
            }
        }
        toml::Value::Array(items) => items
            .iter()
            .map(|item| match item {
                toml::Value::Integer(i) => Ok(i.to_string()),
                toml::Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                _ => Err("array fields must be integers or non-empty strings".to_string()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|fields| fields.join(" ")),
        toml::Value::Boolean(_) => {
            Err("sysctl values are numbers: write 1 or 0 instead of true or false".into())
        }
        toml::Value::Float(_) => Err("sysctl values are integers or text, not decimals".into()),
        _ => Err("expected an integer, a string or an array".into()),
    }
}

fn local_range(raw: &[i64]) -> Result<String, String> {
    let [lo, hi] = raw else {
        return Err("local_range takes two ports: [first, last]".into());
    };
    if !(1..=65535).contains(lo) || !(1..=65535).contains(hi) {
        return Err(format!("ports must lie in 1-65535, got [{lo}, {hi}]"));
    }
    if lo >= hi {
        return Err(format!(
            "the first port must be below the last, got [{lo}, {hi}]"
        ));
    }
    Ok(format!("{lo} {hi}"))
}

fn reserved_ports(raw: &[toml::Value]) -> Result<String, String> {
    let mut items = Vec::new();
    for item in raw {
        match item {
            toml::Value::Integer(i) => items.push(i.to_string()),
            toml::Value::String(s) => items.push(s.clone()),
            _ => {
                return Err(
                    "reserved takes ports and ranges such as \"8080\" or \"9000-9010\"".into(),
                );
            }
        }
    }
    let ranges = value::parse_port_list(&items.join(","))?;
    Ok(value::format_port_list(&ranges))
}

fn nofile_pair(raw: &toml::Value) -> Result<NofilePair, String> {
    let number = |s: &str| -> Result<u64, String> {
        s.trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{s:?} is not a positive number of files"))
    };
    let pair = match raw {
        toml::Value::Integer(i) if *i > 0 => NofilePair {
            soft: i.unsigned_abs(),
            hard: i.unsigned_abs(),
        },
        toml::Value::String(s) => match s.split_once(':') {
            Some((soft, hard)) => NofilePair {
                soft: number(soft)?,
                hard: number(hard)?,
            },
            None => {
                let n = number(s)?;
                NofilePair { soft: n, hard: n }
            }
        },
        _ => {
            return Err(
                "give a positive number or \"SOFT:HARD\"; infinity is refused because the \
                 kernel caps open files at fs.nr_open"
                    .into(),
            );
        }
    };
    if pair.soft > pair.hard {
        return Err(format!(
            "soft {} is above hard {}; setrlimit would refuse it",
            pair.soft, pair.hard
        ));
    }
    Ok(pair)
}

/// Later layers win per key, per limit half and per field.
fn merge(layers: Vec<Layer>) -> Profile {
    let mut profile = Profile {
        name: String::new(),
        description: String::new(),
        source: String::new(),
        text: String::new(),
        sysctl: BTreeMap::new(),
        limits: Vec::new(),
        systemd_nofile: None,
        services: BTreeMap::new(),
        modules: Vec::new(),
    };
    for layer in layers {
        profile.name = layer.name.unwrap_or_else(|| stem(&layer.source));
        profile.description = layer.description.unwrap_or_default();
        profile.source = layer.source;
        profile.text = layer.text;
        for (key, setting) in layer.sysctl {
            // A later layer that spells a setting differently (an alias) still replaces it.
            let same = keys::canonical(key.as_str()).to_string();
            profile
                .sysctl
                .retain(|k, _| *k == key || keys::canonical(k.as_str()) != same);
            profile.sysctl.insert(key, setting);
        }
        for limit in layer.limits {
            match profile
                .limits
                .iter_mut()
                .find(|l| l.domain == limit.domain && l.item == limit.item)
            {
                Some(existing) => {
                    existing.soft = limit.soft.or(existing.soft);
                    existing.hard = limit.hard.or(existing.hard);
                    existing.origin = limit.origin;
                }
                None => profile.limits.push(limit),
            }
        }
        if layer.systemd_nofile.is_some() {
            profile.systemd_nofile = layer.systemd_nofile;
        }
        profile.services.extend(layer.services);
        for module in layer.modules {
            if !profile.modules.contains(&module) {
                profile.modules.push(module);
            }
        }
    }
    profile
}

/// The name of a profile without `[profile] name`: its file's stem, with every character
/// `valid_name` does not allow replaced by `_` and cut to `MAX_NAME_LEN`.
fn stem(source: &str) -> String {
    let name = source.strip_prefix("shipped:").unwrap_or(source);
    let stem = Path::new(name)
        .file_stem()
        .map_or_else(|| name.to_string(), |s| s.to_string_lossy().into_owned());
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_NAME_LEN)
        .collect();
    if clean.is_empty() {
        "profile".to_string()
    } else {
        clean
    }
}

/// Checks across keys that need only the merged profile.
fn cross_checks(profile: &Profile) -> Vec<Problem> {
    let mut problems = Vec::new();
    for limit in &profile.limits {
        if let (Some(soft), Some(hard)) = (limit.soft, limit.hard)
            && soft > hard
        {
            problems.push(Problem {
                file: limit.origin.file.clone(),
                line: Some(limit.origin.line),
                key: Some(format!("[[limits]] {} {}", limit.domain, limit.item)),
                message: format!(
                    "soft {soft} is above hard {hard}; pam_limits would fail to set it and \
                     logins could fail. Raise hard or lower soft"
                ),
            });
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Profile> {
        let mut problems = Vec::new();
        let raw = parse_toml(text, "t.toml")?;
        let layer = convert(raw, text, "t.toml", &mut problems);
        if !problems.is_empty() {
            return Err(Error::Invalid(problems));
        }
        let profile = merge(vec![layer]);
        let problems = cross_checks(&profile);
        if problems.is_empty() {
            Ok(profile)
        } else {
            Err(Error::Invalid(problems))
        }
    }

    fn want(text: &str, key: &str) -> Want {
        let p = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        p.sysctl[&KeyName::parse(key).unwrap()].want.clone()
    }

    #[test]
    fn sysctl_values() {
        let cases: &[(&str, &str, Want)] = &[
            (
                "[sysctl]\n\"net.core.somaxconn\" = 65535",
                "net.core.somaxconn",
                Want::Exact("65535".into()),
            ),
            (
                "[sysctl]\n\"net.ipv4.tcp_rmem\" = \"4096  87380\t16777216\"",
                "net.ipv4.tcp_rmem",
                Want::Exact("4096 87380 16777216".into()),
            ),
            (
                "[sysctl]\n\"net.ipv4.tcp_wmem\" = [4096, 16384, 16777216]",
                "net.ipv4.tcp_wmem",
                Want::Exact("4096 16384 16777216".into()),
            ),
            (
                "[sysctl]\n\"net.ipv4.tcp_max_syn_backlog\" = { min = 8192 }",
                "net.ipv4.tcp_max_syn_backlog",
                Want::Min(8192),
            ),
            (
                "[sysctl]\n\"net.ipv4.tcp_fin_timeout\" = { max = 30 }",
                "net.ipv4.tcp_fin_timeout",
                Want::Max(30),
            ),
            (
                "[sysctl]\n\"net.ipv4.ip_local_reserved_ports\" = \"9000-9010,8080\"",
                "net.ipv4.ip_local_reserved_ports",
                Want::Exact("8080,9000-9010".into()),
            ),
            (
                "[ports]\nlocal_range = [1024, 65535]",
                "net.ipv4.ip_local_port_range",
                Want::Exact("1024 65535".into()),
            ),
            (
                "[ports]\nreserved = [\"9000-9010\", 8080]",
                "net.ipv4.ip_local_reserved_ports",
                Want::Exact("8080,9000-9010".into()),
            ),
            (
                "[sysctl]\n\"net.ipv4.tcp_congestion_control\" = \"bbr\"",
                "net.ipv4.tcp_congestion_control",
                Want::Exact("bbr".into()),
            ),
        ];
        for (text, key, expected) in cases {
            assert_eq!(&want(text, key), expected, "{text}");
        }
    }

    #[test]
    fn optional_and_origin() {
        let p = parse("[sysctl]\n\n\"net.netfilter.nf_conntrack_max\" = { value = 1048576, optional = true }\n")
            .unwrap();
        let s = &p.sysctl[&KeyName::parse("net.netfilter.nf_conntrack_max").unwrap()];
        assert!(s.optional);
        assert_eq!(s.origin.line, 3);
    }

    #[test]
    fn bad_values_name_the_line_and_key() {
        let cases: &[(&str, &str)] = &[
            (
                "[sysctl]\n\"net.core.somaxconn\" = true",
                "t.toml:2: [sysctl] \"net.core.somaxconn\": sysctl values are numbers",
            ),
            (
                "[sysctl]\n\"net.core.somaxconn\" = \"lots\"",
                "t.toml:2: [sysctl] \"net.core.somaxconn\": expects one integer",
            ),
            (
                "[sysctl]\n\"net.ipv4.tcp_rmem\" = \"1 2\"",
                "expects 3 integers",
            ),
            (
                "[sysctl]\n\"net.ipv4.tcp_tw_recycle\" = 1",
                "removed in Linux 4.12",
            ),
            ("[sysctl]\n\"net..x\" = 1", "empty segment"),
            (
                "[sysctl]\n\"net.core.somaxconn\" = { min = 1, max = 2 }",
                "exactly one of",
            ),
            (
                "[sysctl]\n\"net.ipv4.tcp_rmem\" = { min = 1 }",
                "single-integer keys",
            ),
            ("[ports]\nlocal_range = [60000, 1024]", "below the last"),
            ("[ports]\nlocal_range = [1024]", "two ports"),
            ("[ports]\nreserved = [\"70000\"]", "not a port"),
            (
                "[[limits]]\ndomain = \"*\"\ntype = \"both\"\nitem = \"nofile\"\nvalue = 1",
                "type \"both\"",
            ),
            (
                "[[limits]]\ndomain = \"*\"\ntype = \"-\"\nitem = \"nofiles\"\nvalue = 1",
                "did you mean \"nofile\"",
            ),
            (
                "[[limits]]\ndomain = \"*\"\ntype = \"soft\"\nitem = \"nofile\"\nvalue = 1000\n[[limits]]\ndomain = \"*\"\ntype = \"hard\"\nitem = \"nofile\"\nvalue = 500",
                "soft 1000 is above hard 500",
            ),
            (
                "[systemd]\ndefault_limit_nofile = \"9:3\"",
                "soft 9 is above hard 3",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(text).expect_err(text).to_string();
            assert!(
                err.contains(expected),
                "{text}\n  got: {err}\n  want: {expected}"
            );
        }
    }

    #[test]
    fn toml_errors_point_at_line_and_column() {
        let err = parse("[sysctl]\n\"net.core.somaxconn\" = = 5\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("t.toml:2:"), "{text}");
        assert!(text.contains("\"net.core.somaxconn\" = = 5"), "{text}");
    }

    #[test]
    fn line_index_matches_line_of() {
        let text = "a\n\nbc\nd";
        let lines = Lines::new(text);
        for offset in 0..=text.len() {
            assert_eq!(lines.line(offset), line_of(text, offset), "offset {offset}");
        }
    }

    #[test]
    fn services_and_modules() {
        let p = parse(
            "[systemd.services.\"nginx.service\"]\nlimit_nofile = \"1024:65536\"\n\
             [systemd.services.\"web@1.service\"]\nlimit_nofile = 4096\n\
             [modules]\nload = [\"nf_conntrack\", \"nf_conntrack\"]\n",
        )
        .unwrap();
        let nginx = &p.services["nginx.service"];
        assert_eq!(
            (nginx.nofile.soft, nginx.nofile.hard, nginx.origin.line),
            (1024, 65536, 2)
        );
        assert_eq!(p.services["web@1.service"].nofile.hard, 4096);
        assert_eq!(p.modules, ["nf_conntrack"]);
        for (text, want) in [
            ("[systemd.services.\"a.service\"]\n", "give limit_nofile"),
            (
                "[systemd.services.\"a.service\"]\nlimit = 1\n",
                "unknown field",
            ),
            (
                "[systemd.services.\"a/b.service\"]\nlimit_nofile = 1\n",
                "valid unit name",
            ),
            (
                "[systemd.services.\"a.socket\"]\nlimit_nofile = 1\n",
                "not a service unit",
            ),
            ("[modules]\nload = [\"\"]\n", "not a module name"),
        ] {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.contains(want), "{text}\n  got: {err}");
        }
    }

    #[test]
    fn limits_merge_halves() {
        let p = parse(
            "[[limits]]\ndomain = \"*\"\ntype = \"soft\"\nitem = \"nofile\"\nvalue = 1024\n\
             [[limits]]\ndomain = \"*\"\ntype = \"hard\"\nitem = \"nofile\"\nvalue = 4096\n",
        )
        .unwrap();
        assert_eq!(p.limits.len(), 1);
        assert_eq!(p.limits[0].soft, Some(LimitValue::Num(1024)));
        assert_eq!(p.limits[0].hard, Some(LimitValue::Num(4096)));
    }
}
