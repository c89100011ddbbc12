//! limits.conf as pam_limits (Linux-PAM 1.5.2, Debian 12's libpam-modules) applies it: the line
//! syntax, which lines apply to a login, and their precedence.
//!
//! pam_limits reads `limits.conf`, then `limits.d/*.conf` in C-locale order (glob(3): dotfiles
//! are not matched; a directory reads as nothing). A line is split like `sscanf("%s%s%s%s")`:
//! extra fields are ignored; type, item and value are lower-cased, the domain is not. A line
//! applies to a login as a user entry (its name, or a uid range `1000:`, `:999`, `1000:2000`),
//! a group entry (`@name`, `@:gid` by membership, `@2000:` by primary gid) or the default
//! (`*`); `%` lines only limit logins. Debian's patch (027_pam_limits_better_init_allow_
//! explicit_root) keeps `*` and `@name` lines off uid 0 (uid and gid ranges still apply) and
//! resets a soft limit no line sets to the kernel's default (nofile 1024). For each item a
//! value from a
//! better-ranked source (user < group < default) is never replaced by a worse one; equal ranks
//! let the later line win; when the soft half of a `-` line is refused the hard half is
//! dropped too (pam's `process_limit` returns early). A two-field `<domain> -` line that names
//! the login stops reading, and pam_limits then sets no limit at all. Soft is clamped to hard,
//! and nofile `unlimited` means fs.nr_open. This module parses text and resolves precedence;
//! it never performs I/O (system/mod.rs reads the files).

use crate::profile::limit::{Item, LimitValue};
pub use crate::system::versions::PamRules;

/// soft, hard or both (`-`); `Stop` is a two-field `<domain> -` line; `Logins` a
/// `maxlogins` (or, with `sys`, `maxsyslogins`) line, whose value is in `Entry::value`;
/// `Unreadable` a file pam_limits cannot open (`missing`: it does not exist, as for a dangling
/// link), placed where pam_limits would read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Soft,
    Hard,
    Both,
    Stop,
    Logins { sys: bool },
    Unreadable { missing: bool },
}

/// One line of a limits file that pam_limits would act on. `item` and `value` are meaningless
/// for `Kind::Stop`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub domain: String,
    pub kind: Kind,
    pub item: Item,
    pub value: LimitValue,
    /// Root-relative display path (`/etc/security/limits.conf`) and line.
    pub file: String,
    pub line: usize,
}

/// C's isspace in the C locale.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// A value as pam's `process_limit` reads it for an rlimit item: `-1`, `-`, `unlimited` and
/// `infinity` are unlimited; otherwise strtoull's leading digits (`4096abc` is 4096); `None`
/// when no digits lead. `nice` and `priority` take a signed number.
fn parse_value(item: Item, raw: &str) -> Option<LimitValue> {
    let signed = matches!(item, Item::Nice | Item::Priority);
    if !signed && matches!(raw, "-1" | "-" | "unlimited" | "infinity") {
        return Some(LimitValue::Unlimited);
    }
    let (negative, digits) = match raw.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, raw.strip_prefix('+').unwrap_or(raw)),
    };
    let len = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    if len == 0 {
        return None;
    }
    let n: i64 = digits[..len].parse().unwrap_or(i64::MAX);
    match (negative, signed) {
        (false, _) => Some(LimitValue::Num(n)),
        (true, true) => Some(LimitValue::Num(-n)),
        // strtoull negates: a huge number, which no setrlimit takes; treat as unlimited.
        (true, false) => Some(LimitValue::Unlimited),
    }
}

/// Parses limits.conf text into the lines pam_limits acts on, with the newest rules (see
/// `parse_with`).
#[must_use]
pub fn parse(text: &str, file: &str) -> Vec<Entry> {
    parse_with(text, file, PamRules::default())
        .into_iter()
        .filter(|e| matches!(e.kind, Kind::Soft | Kind::Hard | Kind::Both | Kind::Stop))
        .collect()
}

/// The lines of a file as pam_limits reads them: 1.5.x `fgets` into a 1024-byte buffer, so a
/// longer line goes on as the next line (its rest is read as a line of its own); 1.7 reads
/// whole lines. The line number is the number of the line in the file.
fn raw_lines(text: &str, rules: PamRules) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    for (index, line) in text.split('\n').enumerate() {
        if rules == PamRules::V1_7 {
            out.push((index + 1, line));
            continue;
        }
        let mut rest = line;
        while rest.len() > 1023 {
            let mut cut = 1023;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            out.push((index + 1, &rest[..cut]));
            rest = &rest[cut..];
        }
        out.push((index + 1, rest));
    }
    out
}

/// A line's fields as pam_limits splits them: 1.5 `sscanf("%s%s%s%s")` on C whitespace (extra
/// fields ignored); 1.7 `strtok` on space and tab for the first three, the rest of the line
/// (trimmed) as the value.
fn fields(line: &str, rules: PamRules) -> Vec<&str> {
    let line = line.trim_start_matches(is_space);
    match rules {
        PamRules::V1_5 => line
            .split(is_space)
            .filter(|f| !f.is_empty())
            .take(4)
            .collect(),
        PamRules::V1_7 => {
            let mut out = Vec::new();
            let mut rest = line;
            while out.len() < 3 {
                rest = rest.trim_start_matches([' ', '\t']);
                if rest.is_empty() {
                    break;
                }
                let end = rest.find([' ', '\t']).unwrap_or(rest.len());
                out.push(&rest[..end]);
                rest = &rest[end..];
            }
            let value = rest.trim_matches([' ', '\t']);
            if out.len() == 3 && !value.is_empty() {
                out.push(value);
            }
            out
        }
    }
}

/// Parses limits.conf text into the lines pam_limits `rules` acts on; the others (too few
/// fields, an unknown type, item or value, a malformed uid range) are skipped, as pam_limits
/// skips them. `maxlogins` and `maxsyslogins` lines are kept as `Kind::Logins`.
#[must_use]
pub fn parse_with(text: &str, file: &str, rules: PamRules) -> Vec<Entry> {
    let mut entries = Vec::new();
    for (number, line) in raw_lines(text, rules) {
        let line = line.split('#').next().unwrap_or_default();
        let fields = fields(line, rules);
        let Some(domain) = fields.first() else {
            continue;
        };
        if uid_range(domain) == Some(Range::Invalid) {
            continue;
        }
        let kind = fields.get(1).map(|k| k.to_ascii_lowercase());
        let at = |kind, item, value| Entry {
            domain: (*domain).to_string(),
            kind,
            item,
            value,
            file: file.to_string(),
            line: number,
        };
        if fields.len() == 2 && kind.as_deref().is_some_and(|k| k.starts_with('-')) {
            entries.push(at(Kind::Stop, Item::Nofile, LimitValue::Unlimited));
            continue;
        }
        if fields.len() < 4 {
            continue;
        }
        let kind = match kind.as_deref() {
            Some("soft") => Kind::Soft,
            Some("hard") => Kind::Hard,
            Some("-") => Kind::Both,
            _ => continue,
        };
        let item_name = fields[2].to_ascii_lowercase();
        let value = fields[3].to_ascii_lowercase();
        if let Some(sys) = match item_name.as_str() {
            "maxlogins" => Some(false),
            "maxsyslogins" => Some(true),
            _ => None,
        } {
            if let Some(n) = login_value(&value) {
                entries.push(at(Kind::Logins { sys }, Item::Nofile, n));
            }
            continue;
        }
        let Ok(item) = Item::parse(&item_name) else {
            continue;
        };
        let Some(value) = parse_value(item, &value) else {
            continue;
        };
        entries.push(at(kind, item, value));
    }
    entries
}

/// A `maxlogins` value as pam reads it: `-1`, `-`, `unlimited`, `infinity` are no limit;
/// otherwise strtol's leading number (`0` refuses every login but root's).
fn login_value(raw: &str) -> Option<LimitValue> {
    if matches!(raw, "-1" | "-" | "unlimited" | "infinity") {
        return Some(LimitValue::Unlimited);
    }
    let t = raw.trim_start_matches(is_space);
    let (sign, digits) = match t.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, t.strip_prefix('+').unwrap_or(t)),
    };
    let len = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    if len == 0 {
        return None;
    }
    let n: i64 = digits[..len].parse().unwrap_or(i64::from(i32::MAX));
    Some(LimitValue::Num(sign * n.min(i64::from(i32::MAX))))
}

/// pam's `parse_uid_range` on a domain (after an `@` or `%`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Range {
    /// `:N`: exactly N.
    One(u32),
    /// `N:`
    Min(u32),
    /// `N:M`
    MinMax(u32, u32),
    Invalid,
}

/// `None` when the domain has no `:`.
fn uid_range(domain: &str) -> Option<Range> {
    let colon = domain.find(':')?;
    let body = domain
        .strip_prefix(['@', '%'])
        .unwrap_or(domain)
        .to_string();
    let max = &domain[colon + 1..];
    let number = |s: &str| {
        s.parse::<u32>()
            .ok()
            .filter(|_| s.bytes().all(|b| b.is_ascii_digit()))
    };
    if body.starts_with(':') {
        return Some(number(max).map_or(Range::Invalid, Range::One));
    }
    let Some((min, _)) = body.split_once(':') else {
        return Some(Range::Invalid);
    };
    let Some(min) = number(min) else {
        return Some(Range::Invalid);
    };
    if max.is_empty() {
        return Some(Range::Min(min));
    }
    Some(number(max).map_or(Range::Invalid, |max| Range::MinMax(min, max)))
}

/// The login a limit is resolved for. A field left empty matches nothing (the subject for the
/// `*` domain has no name, uid or groups, so only `*` lines apply to it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub user: Option<String>,
    pub uid: Option<u32>,
    /// Primary gid (what `@2000:` ranges compare).
    pub gid: Option<u32>,
    /// Groups the user belongs to, by name and by gid (primary included).
    pub groups: Vec<String>,
    pub group_ids: Vec<u32>,
}

/// The value in force for one half (soft or hard), with the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub value: LimitValue,
    pub file: String,
    pub line: usize,
}

/// The soft nofile a Debian session gets when no line sets one (the kernel's INR_OPEN_CUR,
/// which Debian's pam_limits restores), clamped to the hard limit.
pub const DEBIAN_UNSET_SOFT_NOFILE: i64 = 1024;

/// pam's sources: 0 a user entry, 1 a group entry, 4 the default (`*`).
const USER: u8 = 0;
const GROUP: u8 = 1;
const DEFAULT: u8 = 4;

/// The source rank of a four-field entry for `who`, or `None` when it does not apply.
fn source(domain: &str, who: &Subject) -> Option<u8> {
    if who.user.as_deref() == Some(domain) {
        return Some(USER);
    }
    let range = uid_range(domain);
    let root = who.uid == Some(0);
    if let Some(group) = domain.strip_prefix('@') {
        let member = match range {
            None => !root && who.groups.iter().any(|g| g == group),
            Some(Range::One(gid)) => who.group_ids.contains(&gid),
            Some(Range::MinMax(lo, hi)) => who.gid.is_some_and(|g| (lo..=hi).contains(&g)),
            Some(Range::Min(lo)) => who.gid.is_some_and(|g| g >= lo),
            Some(Range::Invalid) => false,
        };
        // For root a gid line that matches ranks with root's own lines (the later wins), as
        // the real pam_limits 1.5.2 and 1.7.0 do: `root hard nofile 9500` then `@:0 - nofile
        // 2744` gives root 2744:2744, where alice's own line beats her `@:1000` line
        // (tests/oracle_limits.rs, "a user's hard lowering, then a gid's dash").
        let rank = if root && range.is_some() { USER } else { GROUP };
        return member.then_some(rank);
    }
    if domain.starts_with('%') {
        // Login-count domains: process_limit ignores them for every rlimit.
        return None;
    }
    let inside = |uid: u32| match range {
        None => false,
        Some(Range::One(n)) => uid == n,
        Some(Range::MinMax(lo, hi)) => (lo..=hi).contains(&uid),
        Some(Range::Min(lo)) => uid >= lo,
        Some(Range::Invalid) => false,
    };
    if range.is_none() {
        return (domain == "*" && !root).then_some(DEFAULT);
    }
    who.uid.is_some_and(inside).then_some(USER)
}

/// Whether a two-field `<domain> -` line names `who` (pam then sets no limit at all).
fn stops(domain: &str, who: &Subject) -> bool {
    if who.user.as_deref() == Some(domain) {
        return true;
    }
    // Unlike four-field lines, a two-field `@name -` line applies to root too.
    match (domain.strip_prefix('@'), uid_range(domain)) {
        (Some(group), None) => who.groups.iter().any(|g| g == group),
        (Some(_), Some(_)) => source(domain, who) == Some(GROUP),
        // pam checks any other ranged domain (`%:5` too) against the uid here.
        (None, Some(range)) => who.uid.is_some_and(|uid| match range {
            Range::One(n) => uid == n,
            Range::MinMax(lo, hi) => (lo..=hi).contains(&uid),
            Range::Min(lo) => uid >= lo,
            Range::Invalid => false,
        }),
        (None, None) => false,
    }
}

/// What pam_limits does for one login and one item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub soft: Option<Resolved>,
    pub hard: Option<Resolved>,
    /// The `<domain> -` line that made pam_limits stop and set nothing, if one did.
    pub stopped_at: Option<(String, usize)>,
}

/// pam_limits for `who` and `item` over entries in file order. `nr_open` (fs.nr_open) is what
/// nofile `unlimited` means. The soft value is clamped to the hard one.
#[must_use]
pub fn outcome(entries: &[Entry], who: &Subject, item: Item, nr_open: Option<i64>) -> Outcome {
    let mut soft: Option<(u8, Resolved)> = None;
    let mut hard: Option<(u8, Resolved)> = None;
    for entry in entries {
        if entry.kind == Kind::Stop {
            if stops(&entry.domain, who) {
                return Outcome {
                    stopped_at: Some((entry.file.clone(), entry.line)),
                    ..Outcome::default()
                };
            }
            continue;
        }
        if entry.item != item || !matches!(entry.kind, Kind::Soft | Kind::Hard | Kind::Both) {
            continue;
        }
        let Some(rank) = source(&entry.domain, who) else {
            continue;
        };
        let value = match (item, entry.value, nr_open) {
            (Item::Nofile, LimitValue::Unlimited, Some(n)) => LimitValue::Num(n),
            (_, v, _) => v,
        };
        let here = Resolved {
            value,
            file: entry.file.clone(),
            line: entry.line,
        };
        if matches!(entry.kind, Kind::Soft | Kind::Both) {
            if soft.as_ref().is_some_and(|(best, _)| *best < rank) {
                continue;
            }
            soft = Some((rank, here.clone()));
        }
        if matches!(entry.kind, Kind::Hard | Kind::Both) {
            if hard.as_ref().is_some_and(|(best, _)| *best < rank) {
                continue;
            }
            hard = Some((rank, here));
        }
    }
    let hard = hard.map(|(_, r)| r);
    let mut soft = soft.map(|(_, r)| r);
    if let (Some(s), Some(h)) = (&mut soft, &hard)
        && s.value > h.value
    {
        s.value = h.value;
    }
    Outcome {
        soft,
        hard,
        stopped_at: None,
    }
}

/// The soft and hard values of `item` for `who` (see `outcome`); both `None` when a
/// `<domain> -` line stops pam_limits for this login.
#[must_use]
pub fn resolve(
    entries: &[Entry],
    who: &Subject,
    item: Item,
    nr_open: Option<i64>,
) -> (Option<Resolved>, Option<Resolved>) {
    let o = outcome(entries, who, item, nr_open);
    (o.soft, o.hard)
}

/// The source rank of a `maxlogins` line for `who`: as for rlimits, plus `%` (all logins,
/// rank 3) and `%group` / `%:gid` (rank 2); `%` gid ranges are ignored.
fn login_source(domain: &str, who: &Subject) -> Option<u8> {
    let Some(group) = domain.strip_prefix('%') else {
        return source(domain, who);
    };
    if who.user.as_deref() == Some(domain) {
        return Some(USER);
    }
    match uid_range(domain) {
        None if group.is_empty() => Some(3),
        None => who.groups.iter().any(|g| g == group).then_some(2),
        Some(Range::One(gid)) => who.group_ids.contains(&gid).then_some(2),
        Some(_) => None,
    }
}

/// One half of what a session leaves for an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Half {
    /// A line sets it.
    Set(Resolved),
    /// No line sets it: the session keeps what the login process had.
    Inherited,
    /// No line sets it and pam_limits resets it (Debian's soft nofile 1024).
    Reset(i64),
}

/// Why pam_limits fails a session, where, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Failure {
    pub file: String,
    pub line: usize,
    pub why: String,
    pub fix: String,
    /// Whether the limits were set before the session failed (maxlogins) or not at all.
    pub limits_set: bool,
}

/// What pam_limits does for one login and one item, failures included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub soft: Half,
    pub hard: Half,
    pub stopped_at: Option<(String, usize)>,
    pub fails: Option<Failure>,
}

impl Session {
    fn untouched(stopped_at: Option<(String, usize)>, fails: Option<Failure>) -> Session {
        Session {
            soft: Half::Inherited,
            hard: Half::Inherited,
            stopped_at,
            fails,
        }
    }
}

/// A session of `who` under pam_limits `rules`, for `item`: the `<domain> -` line that stops
/// it, the file it cannot open (1.5 fails on any; 1.7 skips a missing one), a `maxlogins 0`
/// that refuses it (not for root), a nofile above fs.nr_open that setrlimit refuses, and
/// otherwise the values it sets. `entries` come from `parse_with` in file order, with
/// `Kind::Unreadable` entries where files cannot be opened.
#[must_use]
pub fn session(
    entries: &[Entry],
    who: &Subject,
    item: Item,
    nr_open: Option<i64>,
    rules: PamRules,
) -> Session {
    let mut logins: Option<(u8, &Entry)> = None;
    for entry in entries {
        match entry.kind {
            Kind::Unreadable { missing } if rules == PamRules::V1_5 || !missing => {
                return Session::untouched(None, Some(unreadable(entry, missing, rules)));
            }
            Kind::Stop if stops(&entry.domain, who) => {
                return Session::untouched(Some((entry.file.clone(), entry.line)), None);
            }
            Kind::Logins { .. } => {
                if let Some(rank) = login_source(&entry.domain, who)
                    && logins.is_none_or(|(best, _)| best >= rank)
                {
                    logins = Some((rank, entry));
                }
            }
            _ => {}
        }
    }
    let o = outcome(entries, who, item, nr_open);
    let fails = logins.and_then(|(_, e)| refused_login(e, who));
    // setrlimit refuses a hard nofile above fs.nr_open (EPERM), root's too: the item keeps the
    // login's old values. Debian's pam_limits (1.5 and 1.7 alike, as the oracle shows) ignores
    // the error, so the session goes on.
    if item == Item::Nofile
        && let Some(nr) = nr_open
        && o.hard
            .as_ref()
            .is_some_and(|r| matches!(r.value, LimitValue::Num(v) if v > nr))
    {
        return Session::untouched(None, fails);
    }
    let hard = o.hard.map_or(Half::Inherited, Half::Set);
    let soft = soft_half(o.soft, &hard, item, rules);
    Session {
        soft,
        hard,
        stopped_at: None,
        fails,
    }
}

/// The failure of every session when pam_limits cannot open a limits file (`missing`: it
/// does not exist).
fn unreadable(entry: &Entry, missing: bool, rules: PamRules) -> Failure {
    let why = if missing {
        format!(
            "{} does not exist (or is a dangling link): pam_limits {} cannot open it \
             and fails every session, root's too",
            entry.file,
            rules.label()
        )
    } else {
        format!(
            "{} cannot be opened: pam_limits fails every session, root's too",
            entry.file
        )
    };
    let fix = if entry.file
        == crate::system::root::Root::display(crate::system::root::Root::LIMITS_CONF)
    {
        format!("create {} (an empty file will do)", entry.file)
    } else {
        format!("remove {} or point it at a file that exists", entry.file)
    };
    Failure {
        file: entry.file.clone(),
        line: 0,
        why,
        fix,
        limits_set: false,
    }
}

/// The failure of a session when the `maxlogins`/`maxsyslogins` line that applies to `who`
/// (`e`) allows 0 sessions; root is never refused.
fn refused_login(e: &Entry, who: &Subject) -> Option<Failure> {
    if e.value != LimitValue::Num(0) || who.uid == Some(0) {
        return None;
    }
    let what = if e.kind == (Kind::Logins { sys: true }) {
        "maxsyslogins"
    } else {
        "maxlogins"
    };
    Some(Failure {
        file: e.file.clone(),
        line: e.line,
        why: format!(
            "{}:{} sets {what} 0 for {}: pam_limits refuses the session",
            e.file, e.line, e.domain
        ),
        fix: format!("remove that line, or set {what} to the number of sessions to allow"),
        limits_set: true,
    })
}

/// The soft half a session gets when `soft` is what the lines set and `hard` the hard half.
/// Debian's 1.5 gives an unset soft nofile the kernel's default (1024, clamped to the hard
/// value), whether or not a line sets the hard half; 1.7 keeps the soft value the login
/// had, clamped to the hard one.
fn soft_half(soft: Option<Resolved>, hard: &Half, item: Item, rules: PamRules) -> Half {
    match (soft, hard, item, rules) {
        (Some(r), _, _, _) => Half::Set(r),
        (
            None,
            Half::Set(Resolved {
                value: LimitValue::Num(h),
                ..
            }),
            Item::Nofile,
            PamRules::V1_5,
        ) => Half::Reset(DEBIAN_UNSET_SOFT_NOFILE.min(*h)),
        (None, _, Item::Nofile, PamRules::V1_5) => Half::Reset(DEBIAN_UNSET_SOFT_NOFILE),
        (None, _, _, _) => Half::Inherited,
    }
}

/// One half of a login's limit as reports show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct HalfReport {
    /// `set` (a line sets it), `reset` (pam_limits resets it) or `inherited` (the login keeps
    /// what its parent process had).
    pub how: &'static str,
    /// The value the session gets; `None` when inherited.
    pub value: Option<String>,
    /// The soft half is clamped to this: the hard value a line sets (for an inherited soft
    /// half), or `inherited hard` (for a soft half set with no hard line).
    pub at_most: Option<String>,
    /// `file:line` of the line that sets it.
    pub source: Option<String>,
}

/// What one login gets for one item at its next session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct LoginReport {
    pub user: String,
    pub uid: Option<u32>,
    pub soft: HalfReport,
    pub hard: HalfReport,
    /// `ok` or `fails` (pam_limits refuses the session: the login is locked out wherever
    /// `session required pam_limits.so` runs).
    pub session: &'static str,
    /// The `<domain> -` line that made pam_limits set nothing, as `file:line`.
    pub stopped_at: Option<String>,
    pub failure: Option<Failure>,
}

impl Session {
    /// The report of this session for `user`.
    #[must_use]
    pub fn report(&self, user: &str, uid: Option<u32>) -> LoginReport {
        let half = |h: &Half, cap: Option<String>| match h {
            Half::Set(r) => HalfReport {
                how: "set",
                value: Some(r.value.to_string()),
                at_most: cap,
                source: Some(format!("{}:{}", r.file, r.line)),
            },
            Half::Reset(v) => HalfReport {
                how: "reset",
                value: Some(v.to_string()),
                at_most: None,
                source: None,
            },
            Half::Inherited => HalfReport {
                how: "inherited",
                value: None,
                at_most: cap,
                source: None,
            },
        };
        // pam_limits clamps the soft half to the hard one; with no hard line that is the hard
        // limit the login inherits.
        let hard_cap = match (&self.hard, &self.soft) {
            (Half::Set(r), Half::Inherited) => Some(r.value.to_string()),
            (Half::Inherited, Half::Set(_) | Half::Reset(_)) => Some("inherited hard".to_string()),
            _ => None,
        };
        let limits_set = self.fails.as_ref().is_none_or(|f| f.limits_set);
        let (soft, hard) = if limits_set {
            (half(&self.soft, hard_cap), half(&self.hard, None))
        } else {
            (half(&Half::Inherited, None), half(&Half::Inherited, None))
        };
        LoginReport {
            user: user.to_string(),
            uid,
            soft,
            hard,
            session: if self.fails.is_some() { "fails" } else { "ok" },
            stopped_at: self.stopped_at.as_ref().map(|(f, l)| format!("{f}:{l}")),
            failure: self.fails.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::limit::Domain;

    const FILES: &str = "\
# comment
*        soft  nofile  1024
*        hard  nofile  4096
@web     -     nofile  65536
alice    soft  nofile  2048   # trailing comment
bad line here
*        soft  nofile  lots
1000:    hard  nofile  8192
:0       hard  nofile  100000
*        soft  nofile  1500
";

    fn who(user: Option<&str>, uid: Option<u32>, groups: &[&str]) -> Subject {
        Subject {
            user: user.map(String::from),
            uid,
            gid: uid,
            groups: groups.iter().map(|g| (*g).to_string()).collect(),
            group_ids: uid.into_iter().collect(),
        }
    }

    #[test]
    fn parser_keeps_good_lines_with_their_place() {
        let entries = parse(
            FILES,
            &crate::system::root::Root::display(crate::system::root::Root::LIMITS_CONF),
        );
        assert_eq!(entries.len(), 7);
        assert_eq!(entries[3].domain, "alice");
        assert_eq!(entries[3].line, 5);
        assert_eq!(entries[3].value, LimitValue::Num(2048));
    }

    #[test]
    fn precedence() {
        let entries = parse(FILES, "f");
        let n = |r: Option<Resolved>| r.map(|r| r.value);
        let num = |v| Some(LimitValue::Num(v));
        // (subject, soft, hard)
        let cases = [
            (who(None, None, &[]), num(1500), num(4096)),
            (who(Some("bob"), Some(1001), &[]), num(1500), num(8192)),
            (
                who(Some("carol"), Some(50), &["web"]),
                num(65536),
                num(65536),
            ),
            (
                who(Some("alice"), Some(1000), &["web"]),
                num(2048),
                num(8192),
            ),
            // Debian: `*` and `@name` lines do not apply to root; uid ranges do.
            (who(Some("root"), Some(0), &["web"]), None, num(100000)),
        ];
        for (subject, soft, hard) in cases {
            let (s, h) = resolve(&entries, &subject, Item::Nofile, None);
            assert_eq!((n(s), n(h)), (soft, hard), "{subject:?}");
        }
    }

    #[test]
    fn pam_quirks() {
        let text = "\
alice soft nofile 3000
@ops  -    nofile 5000 extra fields
*     SOFT NOFILE 6000
*     Hard NoFile UNLIMITED
2000: - nofile 7000abc
@:50  - nproc 11
@100: - nproc 12
@ops -
bob - nofile 1
";
        let entries = parse(text, "f");
        let ops = |name: &str, uid: u32| Subject {
            user: Some(name.into()),
            uid: Some(uid),
            gid: Some(uid),
            groups: vec!["ops".into()],
            group_ids: vec![uid, 50],
        };
        let got = |who: &Subject, item| {
            let o = outcome(&entries, who, item, Some(1_048_576));
            (
                o.soft.map(|r| r.value),
                o.hard.map(|r| r.value),
                o.stopped_at.map(|(_, l)| l),
            )
        };
        let n = |v| Some(LimitValue::Num(v));
        // alice is not in ops: her soft-only user entry refuses the default `*` soft line;
        // the hard half comes from `*` (unlimited = fs.nr_open).
        let alice = Subject {
            groups: vec![],
            ..ops("alice", 10)
        };
        assert_eq!(got(&alice, Item::Nofile), (n(3000), n(1_048_576), None));
        // carol (uid 2000) gets the uid range, a user entry; its trailing letters are ignored.
        let carol = Subject {
            groups: vec![],
            group_ids: vec![],
            ..ops("carol", 2000)
        };
        assert_eq!(got(&carol, Item::Nofile), (n(7000), n(7000), None));
        // dave is in ops: pam stops at `@ops -` and sets nothing at all.
        assert_eq!(got(&ops("dave", 20), Item::Nofile), (None, None, Some(8)));
        // A `-` line whose soft half is refused drops its hard half too.
        let early = parse("eve soft nofile 10\n@g - nofile 20\n", "f");
        let eve = Subject {
            user: Some("eve".into()),
            groups: vec!["g".into()],
            ..Subject::default()
        };
        let o = outcome(&early, &eve, Item::Nofile, None);
        assert_eq!((o.soft.map(|r| r.value), o.hard), (n(10), None));
        // Soft above hard is clamped.
        let clamp = parse("* soft nofile 9000\n* hard nofile 4000\n", "f");
        let o = outcome(&clamp, &Subject::default(), Item::Nofile, None);
        assert_eq!(o.soft.map(|r| r.value), n(4000));
    }

    #[test]
    fn domains() {
        let ok = [
            ("*", Domain::All),
            ("alice", Domain::User("alice".into())),
            ("@web", Domain::Group("web".into())),
            ("1000:2000", Domain::UidRange(Some(1000), Some(2000))),
            (":0", Domain::UidRange(None, Some(0))),
            ("1000:", Domain::UidRange(Some(1000), None)),
        ];
        for (raw, want) in ok {
            assert_eq!(Domain::parse(raw).unwrap(), want, "{raw}");
            assert_eq!(Domain::parse(raw).unwrap().to_string(), raw);
        }
        for bad in ["%admins", "@", "2000:1000", ":", "a b", "@1:2"] {
            assert!(Domain::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values() {
        assert_eq!(
            LimitValue::parse(Item::Nproc, "unlimited"),
            Ok(LimitValue::Unlimited)
        );
        assert_eq!(
            LimitValue::parse(Item::Nproc, "-1"),
            Ok(LimitValue::Unlimited)
        );
        assert_eq!(LimitValue::parse(Item::Nice, "-5"), Ok(LimitValue::Num(-5)));
        assert!(LimitValue::parse(Item::Nice, "-30").is_err());
        assert!(LimitValue::parse(Item::Nofile, "infinity").is_err());
        assert!(LimitValue::parse(Item::Nofile, "-2").is_err());
        assert!(LimitValue::Unlimited > LimitValue::Num(i64::MAX));
    }
}
