//! The vocabulary of a limits.conf entry: who it applies to (`Domain`), what it limits (`Item`)
//! and its value (`LimitValue`), with the checks a profile's `[[limits]]` entry must pass.
//! Profiles speak it; system/limits.rs reads the real files with pam_limits' rules. Pure data
//! and string work; never performs I/O.

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

/// The longest domain: a user or group name is at most LOGIN_NAME_MAX - 1 (255) bytes, and
/// the limits.d line that carries it must fit pam_limits' 1024-byte line buffer (a longer
/// line is read in pieces, and the pieces are not what the profile meant).
pub const MAX_DOMAIN_LEN: usize = 255;

/// The fewest open files a nofile limit may give. A login needs stdin, stdout and stderr, the
/// files PAM and NSS open (passwd, group, the modules' own), its shell's and a few for the
/// first commands: with 0 or 1 no login can even open a file, and below 64 sshd and login
/// fail intermittently. A lower value locks users out instead of limiting them.
pub const MIN_NOFILE: i64 = 64;

impl Domain {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.len() > MAX_DOMAIN_LEN {
            return Err(format!(
                "domain {} is {} characters long; a user or group name has at most \
                 {MAX_DOMAIN_LEN} (LOGIN_NAME_MAX), and pam_limits reads a limits.d line into a \
                 1024-byte buffer",
                clip_quoted(raw),
                raw.chars().count()
            ));
        }
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

/// A string from a profile quoted for an error message, cut to its first 40 characters with
/// an ellipsis and its length when longer: an error never echoes a huge value whole.
#[must_use]
pub fn clip_quoted(raw: &str) -> String {
    let n = raw.chars().count();
    if n <= 64 {
        format!("{raw:?}")
    } else {
        let head: String = raw.chars().take(40).collect();
        format!("{head:?}… ({n} characters)")
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
                let hint = crate::profile::keys::nearest(raw, Item::ALL.iter().map(|i| i.as_str()))
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
            (Item::Nofile, LimitValue::Num(n)) if n < MIN_NOFILE => Err(format!(
                "nofile {n} would lock logins out: a login needs stdin, stdout, stderr and the \
                 files PAM, NSS and its shell open; give at least {MIN_NOFILE}"
            )),
            (Item::Maxlogins | Item::Maxsyslogins, LimitValue::Num(0)) => Err(format!(
                "{item} 0 would lock logins out: pam_limits refuses every session it matches \
                 (all but root's); give the number of sessions to allow, or leave {item} out"
            )),
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
