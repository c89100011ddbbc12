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

/// soft, hard or both (`-`); `Stop` is a two-field `<domain> -` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Soft,
    Hard,
    Both,
    Stop,
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

/// Parses limits.conf text into the lines pam_limits acts on; the others (too few fields, an
/// unknown type, item or value, a malformed uid range) are skipped, as pam_limits skips them.
#[must_use]
pub fn parse(text: &str, file: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    for (index, line) in text.split('\n').enumerate() {
        let line = line.split('#').next().unwrap_or_default();
        let fields: Vec<&str> = line.split(is_space).filter(|f| !f.is_empty()).collect();
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
            line: index + 1,
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
        let Ok(item) = Item::parse(&fields[2].to_ascii_lowercase()) else {
            continue;
        };
        let Some(value) = parse_value(item, &fields[3].to_ascii_lowercase()) else {
            continue;
        };
        entries.push(at(kind, item, value));
    }
    entries
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
        return member.then_some(GROUP);
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
        if entry.item != item {
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
