//! limits.conf: the entry model, the file parser, and pam_limits' rules of precedence.
//!
//! pam_limits reads `limits.conf`, then `limits.d/*.conf` in C-locale order. For one login, an
//! entry naming the user beats a group or uid-range entry, which beats `*`; among entries of
//! equal rank the later one wins; `*` and group entries never apply to root. This module
//! parses text and resolves precedence; it never performs I/O (live.rs reads the files).

use std::fmt;

/// Who a limits entry applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Domain {
    All,
    User(String),
    Group(String),
    /// `a:b`, `:b` (exactly b) or `a:` (a and above).
    UidRange(Option<u32>, Option<u32>),
}

impl Domain {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$'))
        };
        if raw == "*" {
            return Ok(Domain::All);
        }
        if raw.starts_with('%') {
            return Err(format!(
                "domain {raw:?}: % domains limit logins only (maxlogins); netprofile manages \
                 user, @group, * and uid ranges"
            ));
        }
        if let Some(group) = raw.strip_prefix('@') {
            if group.contains(':') {
                return Err(format!(
                    "domain {raw:?}: gid ranges are not supported; name the group (@name)"
                ));
            }
            return if name_ok(group) {
                Ok(Domain::Group(group.to_string()))
            } else {
                Err(format!("domain {raw:?} is not a valid group name"))
            };
        }
        if let Some((lo, hi)) = raw.split_once(':') {
            let num = |s: &str| -> Result<Option<u32>, String> {
                if s.is_empty() {
                    Ok(None)
                } else {
                    s.parse()
                        .map(Some)
                        .map_err(|_| format!("domain {raw:?}: {s:?} is not a uid"))
                }
            };
            let (lo, hi) = (num(lo)?, num(hi)?);
            return match (lo, hi) {
                (None, None) => Err(format!("domain {raw:?}: give at least one uid")),
                (Some(a), Some(b)) if a > b => Err(format!(
                    "domain {raw:?}: the range runs backwards; write {b}:{a}"
                )),
                _ => Ok(Domain::UidRange(lo, hi)),
            };
        }
        if name_ok(raw) {
            Ok(Domain::User(raw.to_string()))
        } else {
            Err(format!(
                "domain {raw:?} is not a user name, @group, * or uid range (a:b, :b, a:)"
            ))
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |v: &Option<u32>| v.map_or_else(String::new, |n| n.to_string());
        match self {
            Domain::All => f.write_str("*"),
            Domain::User(u) => f.write_str(u),
            Domain::Group(g) => write!(f, "@{g}"),
            Domain::UidRange(a, b) => write!(f, "{}:{}", opt(a), opt(b)),
        }
    }
}

macro_rules! items {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// A pam_limits item.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Item { $($variant),* }
        impl Item {
            pub const ALL: &'static [Item] = &[$(Item::$variant),*];
            #[must_use]
            pub fn as_str(self) -> &'static str {
                match self { $(Item::$variant => $name),* }
            }
        }
    };
}

items! {
    Core => "core", Data => "data", Fsize => "fsize", Memlock => "memlock",
    Nofile => "nofile", Rss => "rss", Stack => "stack", Cpu => "cpu", Nproc => "nproc",
    As => "as", Maxlogins => "maxlogins", Maxsyslogins => "maxsyslogins",
    Nonewprivs => "nonewprivs", Priority => "priority", Locks => "locks",
    Sigpending => "sigpending", Msgqueue => "msgqueue", Nice => "nice", Rtprio => "rtprio",
}

impl Item {
    pub fn parse(raw: &str) -> Result<Self, String> {
        Item::ALL
            .iter()
            .copied()
            .find(|i| i.as_str() == raw)
            .ok_or_else(|| {
                let hint = crate::keys::nearest(raw, Item::ALL.iter().map(|i| i.as_str()))
                    .map_or_else(String::new, |n| format!("; did you mean {n:?}?"));
                format!("item {raw:?} is not a pam_limits item{hint}")
            })
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A limit value; `unlimited`, `infinity` and `-1` are the same and rank above any number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitValue {
    Num(i64),
    Unlimited,
}

impl PartialOrd for LimitValue {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LimitValue {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        use LimitValue::{Num, Unlimited};
        match (self, other) {
            (Num(a), Num(b)) => a.cmp(b),
            (Num(_), Unlimited) => std::cmp::Ordering::Less,
            (Unlimited, Num(_)) => std::cmp::Ordering::Greater,
            (Unlimited, Unlimited) => std::cmp::Ordering::Equal,
        }
    }
}

impl fmt::Display for LimitValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitValue::Num(n) => write!(f, "{n}"),
            LimitValue::Unlimited => f.write_str("unlimited"),
        }
    }
}

impl LimitValue {
    /// Parses a value as limits.conf writes it.
    pub fn parse(item: Item, raw: &str) -> Result<Self, String> {
        let value = match raw {
            "unlimited" | "infinity" | "-1" => LimitValue::Unlimited,
            _ => LimitValue::Num(raw.parse().map_err(|_| {
                format!("value {raw:?} is not a number, \"unlimited\" or \"infinity\"")
            })?),
        };
        Self::check(item, value)
    }

    pub fn from_toml(item: Item, raw: &toml::Value) -> Result<Self, String> {
        match raw {
            toml::Value::Integer(i) => Self::parse(item, &i.to_string()),
            toml::Value::String(s) => Self::parse(item, s),
            _ => Err("value must be a number, \"unlimited\" or \"infinity\"".into()),
        }
    }

    fn check(item: Item, value: Self) -> Result<Self, String> {
        match (item, value) {
            (Item::Nice | Item::Priority, LimitValue::Num(n)) if !(-20..=19).contains(&n) => {
                Err(format!("{item} takes -20 to 19, got {n}"))
            }
            (Item::Nice | Item::Priority, _) => Ok(value),
            (Item::Nonewprivs, LimitValue::Num(0 | 1)) => Ok(value),
            (Item::Nonewprivs, _) => Err("nonewprivs takes 0 or 1".into()),
            (Item::Nofile, LimitValue::Unlimited) => Err(
                "nofile cannot be unlimited: the kernel caps open files at fs.nr_open; give a \
                 number no larger than fs.nr_open"
                    .into(),
            ),
            (_, LimitValue::Num(n)) if n < 0 => Err(format!("{item} cannot be negative ({n})")),
            _ => Ok(value),
        }
    }
}

/// soft, hard or both (`-`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Soft,
    Hard,
    Both,
}

/// One line of a limits file as written. Lines pam_limits would reject are kept out.
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

/// Parses limits.conf text; malformed lines are skipped, as pam_limits skips them.
#[must_use]
pub fn parse(text: &str, file: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default();
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [domain, kind, item, value] = fields[..] else {
            continue;
        };
        let kind = match kind {
            "soft" => Kind::Soft,
            "hard" => Kind::Hard,
            "-" => Kind::Both,
            _ => continue,
        };
        let Ok(item) = Item::parse(item) else {
            continue;
        };
        let value = match value {
            "unlimited" | "infinity" | "-1" => LimitValue::Unlimited,
            v => match v.parse() {
                Ok(n) => LimitValue::Num(n),
                Err(_) => continue,
            },
        };
        entries.push(Entry {
            domain: domain.to_string(),
            kind,
            item,
            value,
            file: file.to_string(),
            line: index + 1,
        });
    }
    entries
}

/// The login a limit is resolved for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub user: Option<String>,
    pub uid: Option<u32>,
    pub groups: Vec<String>,
}

impl Subject {
    fn is_root(&self) -> bool {
        self.uid == Some(0) || self.user.as_deref() == Some("root")
    }
}

/// The value in force for one half (soft or hard), with the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub value: LimitValue,
    pub file: String,
    pub line: usize,
}

/// Rank of an entry for a subject: 0 names the user, 1 a group or uid range, 2 is `*`;
/// `None` when it does not apply.
fn rank(domain: &str, who: &Subject) -> Option<u8> {
    if domain == "*" {
        return (!who.is_root()).then_some(2);
    }
    if let Some(group) = domain.strip_prefix('@') {
        return (!who.is_root() && who.groups.iter().any(|g| g == group)).then_some(1);
    }
    if domain.starts_with('%') {
        return None;
    }
    if let Ok(Domain::UidRange(lo, hi)) = Domain::parse(domain) {
        let uid = who.uid?;
        let inside = match (lo, hi) {
            (None, Some(b)) => uid == b,
            (Some(a), None) => uid >= a,
            (Some(a), Some(b)) => (a..=b).contains(&uid),
            (None, None) => false,
        };
        return (inside && !(who.is_root() && lo != Some(0) && hi != Some(0))).then_some(1);
    }
    (who.user.as_deref() == Some(domain)).then_some(0)
}

/// The soft and hard values of `item` for `who`, from entries in file order.
#[must_use]
pub fn resolve(
    entries: &[Entry],
    who: &Subject,
    item: Item,
) -> (Option<Resolved>, Option<Resolved>) {
    let mut soft: Option<(u8, Resolved)> = None;
    let mut hard: Option<(u8, Resolved)> = None;
    for entry in entries.iter().filter(|e| e.item == item) {
        let Some(r) = rank(&entry.domain, who) else {
            continue;
        };
        let here = Resolved {
            value: entry.value,
            file: entry.file.clone(),
            line: entry.line,
        };
        for (half, applies) in [
            (&mut soft, matches!(entry.kind, Kind::Soft | Kind::Both)),
            (&mut hard, matches!(entry.kind, Kind::Hard | Kind::Both)),
        ] {
            if applies && half.as_ref().is_none_or(|(best, _)| r <= *best) {
                *half = Some((r, here.clone()));
            }
        }
    }
    (soft.map(|(_, r)| r), hard.map(|(_, r)| r))
}

#[cfg(test)]
mod tests {
    use super::*;

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
            groups: groups.iter().map(|g| (*g).to_string()).collect(),
        }
    }

    #[test]
    fn parser_keeps_good_lines_with_their_place() {
        let entries = parse(
            FILES,
            &crate::root::Root::display(crate::root::Root::LIMITS_CONF),
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
            (who(Some("root"), Some(0), &["web"]), None, num(100000)),
        ];
        for (subject, soft, hard) in cases {
            let (s, h) = resolve(&entries, &subject, Item::Nofile);
            assert_eq!((n(s), n(h)), (soft, hard), "{subject:?}");
        }
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
