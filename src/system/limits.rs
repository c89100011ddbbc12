//! limits.conf: the entry model, the file parser, and pam_limits' rules of precedence.
//!
//! pam_limits reads `limits.conf`, then `limits.d/*.conf` in C-locale order. For one login, an
//! entry naming the user beats a group or uid-range entry, which beats `*`; among entries of
//! equal rank the later one wins; `*` and group entries never apply to root. This module
//! parses text and resolves precedence; it never performs I/O (system/mod.rs reads the files).

use crate::profile::limit::{Domain, Item, LimitValue};

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
