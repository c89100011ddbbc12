//! sysctl.d as systemd-sysctl (systemd 252) reads it: the line syntax, the order of files, and
//! which line sets a key at boot.
//!
//! systemd-sysctl lists `*.conf` (dotfiles skipped) in /etc, /run, /usr/local/lib and /usr/lib
//! `sysctl.d`; a name seen in an earlier folder masks the same name in later ones, whatever it
//! is (a file, an empty file, a /dev/null link, a directory that reads as nothing). The
//! survivors are parsed in name order into one ordered table: a later assignment of a key
//! replaces an earlier one (a repeat of the same value keeps the earlier line), `-key` without
//! `=` cancels it and keeps globs off it. Explicit keys are then written, and each glob is
//! written to the keys it matches that have no explicit entry, in table order; the kernel
//! decides what it accepts. /etc/sysctl.conf is read only through the
//! `/etc/sysctl.d/99-sysctl.conf` link that Debian ships. This module parses text and orders
//! files given to it; it never performs I/O (system/mod.rs does the reading).

/// One line of a sysctl.d file that systemd keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The key in sysctl(8)'s dotted form (`net.ipv4.conf.eth0/100.rp_filter`); may hold globs.
    pub key: String,
    /// The value as written (whitespace runs folded); in `boot_value`'s answer, what the kernel
    /// keeps of it.
    pub value: String,
    pub file: String,
    pub line: usize,
}

/// A parsed line: `value` is `None` for a `-key` line without `=`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    /// The key as systemd stores it: `/` separates levels (`net/ipv4/conf/eth0.100/rp_filter`).
    path: String,
    value: Option<String>,
    line: usize,
}

/// systemd's `read_line`: a line ends at `\n`, `\r`, `\r\n` or NUL.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let s = rest?;
        match s.find(['\n', '\r', '\0']) {
            Some(i) => {
                let skip = if s[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&s[i + skip..]);
                Some(&s[..i])
            }
            None => {
                rest = None;
                (!s.is_empty()).then_some(s)
            }
        }
    })
}

/// systemd's `strstrip`: only space, tab, CR and LF count as whitespace.
fn strip(s: &str) -> &str {
    s.trim_matches([' ', '\t', '\n', '\r'])
}

/// systemd's `sysctl_normalize`: when the first separator is `.`, dots become slashes and
/// slashes dots; repeated and trailing slashes and `.` levels go; one leading slash goes.
fn to_path(key: &str) -> String {
    let swapped: String = if key.find(['.', '/']).map(|i| key.as_bytes()[i]) == Some(b'.') {
        key.chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect()
    } else {
        key.to_string()
    };
    let absolute = swapped.starts_with('/');
    let parts: Vec<&str> = swapped
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let joined = parts.join("/");
    if joined.is_empty() && absolute {
        "/".to_string()
    } else {
        joined
    }
}

/// The dotted form of a path-form key (`net/ipv4/conf/eth0.100/x` → `net.ipv4.conf.eth0/100.x`).
fn to_dotted(path: &str) -> String {
    path.chars()
        .map(|c| match c {
            '/' => '.',
            '.' => '/',
            c => c,
        })
        .collect()
}

/// systemd's LONG_LINE_MAX: `read_line` fails on a longer line, and systemd-sysctl stops
/// reading that file there (the lines before it stay; 252, 257 and 262 alike).
const LONG_LINE_MAX: usize = 1 << 20;

fn parse_lines(text: &str) -> Vec<Line> {
    let mut out = Vec::new();
    for (index, raw) in lines(text).enumerate() {
        if raw.len() >= LONG_LINE_MAX {
            break;
        }
        let p = strip(raw);
        if p.is_empty() || p.starts_with(['#', ';']) {
            continue;
        }
        let (key, value) = match p.split_once('=') {
            Some((key, value)) => (
                key.strip_prefix('-').unwrap_or(key),
                Some(strip(value).to_string()),
            ),
            // `-key` without `=`: a negative entry; any other line without `=` is ignored.
            None => match p.strip_prefix('-') {
                Some(key) => (key, None),
                None => continue,
            },
        };
        let path = to_path(strip(key));
        if path.is_empty() {
            continue;
        }
        out.push(Line {
            path,
            value,
            line: index + 1,
        });
    }
    out
}

/// Parses sysctl.d text into the lines systemd keeps, keys in dotted form. `-key` lines without
/// `=` are left out (see `boot_value` for their effect).
#[must_use]
pub fn parse(text: &str, file: &str) -> Vec<Assignment> {
    parse_lines(text)
        .into_iter()
        .filter_map(|l| {
            Some(Assignment {
                key: to_dotted(&l.path),
                value: crate::profile::value::normalise(&l.value?),
                file: file.to_string(),
                line: l.line,
            })
        })
        .collect()
}

/// Whether a key holds glob characters (systemd's `string_is_glob`).
fn is_glob(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

/// Whether a sysctl.d key (dotted, possibly a glob) names `key` (dotted), as glob(3) would
/// find it under /proc/sys: `*` and `?` stay within one level, `[...]` sets work.
#[must_use]
pub fn matches(pattern: &str, key: &str) -> bool {
    let pattern = to_path(pattern);
    let key = to_path(key);
    if !is_glob(&pattern) {
        return pattern == key;
    }
    path_matches(&pattern, &key)
}

fn path_matches(pattern: &str, path: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let s: Vec<&str> = path.split('/').collect();
    p.len() == s.len()
        && p.iter()
            .zip(&s)
            .all(|(p, s)| segment_matches(&tokens(p), s.as_bytes()))
}

/// One element of a glob segment.
#[derive(Debug, Clone)]
enum Token {
    Byte(u8),
    Any,
    Star,
    /// `[...]`: the set, and whether it is negated.
    Set(Vec<SetItem>, bool),
}

#[derive(Debug, Clone)]
enum SetItem {
    Range(u8, u8),
    Class(fn(&u8) -> bool),
}

fn class(name: &[u8]) -> Option<fn(&u8) -> bool> {
    Some(match name {
        b"alpha" => u8::is_ascii_alphabetic,
        b"digit" => u8::is_ascii_digit,
        b"alnum" => u8::is_ascii_alphanumeric,
        b"upper" => u8::is_ascii_uppercase,
        b"lower" => u8::is_ascii_lowercase,
        b"space" => u8::is_ascii_whitespace,
        b"punct" => u8::is_ascii_punctuation,
        b"xdigit" => u8::is_ascii_hexdigit,
        _ => return None,
    })
}

/// Splits a segment into tokens; an unclosed `[` is a literal, `\x` is a literal `x`.
fn tokens(segment: &str) -> Vec<Token> {
    let b = segment.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'*' => {
                if !matches!(out.last(), Some(Token::Star)) {
                    out.push(Token::Star);
                }
                i += 1;
            }
            b'?' => {
                out.push(Token::Any);
                i += 1;
            }
            b'\\' if i + 1 < b.len() => {
                out.push(Token::Byte(b[i + 1]));
                i += 2;
            }
            b'[' => match set(b, i + 1) {
                Some((token, next)) => {
                    out.push(token);
                    i = next;
                }
                None => {
                    out.push(Token::Byte(b'['));
                    i += 1;
                }
            },
            c => {
                out.push(Token::Byte(c));
                i += 1;
            }
        }
    }
    out
}

/// A `[...]` set starting after the `[` at `start`: the token and the index after `]`.
fn set(b: &[u8], start: usize) -> Option<(Token, usize)> {
    let mut i = start;
    let negated = matches!(b.get(i), Some(b'!' | b'^'));
    if negated {
        i += 1;
    }
    let mut items = Vec::new();
    let mut first = true;
    loop {
        let c = *b.get(i)?;
        if c == b']' && !first {
            return Some((Token::Set(items, negated), i + 1));
        }
        first = false;
        if c == b'['
            && b.get(i + 1) == Some(&b':')
            && let Some(end) = b[i + 2..].windows(2).position(|w| w == b":]")
            && let Some(f) = class(&b[i + 2..i + 2 + end])
        {
            items.push(SetItem::Class(f));
            i += end + 4;
            continue;
        }
        if b.get(i + 1) == Some(&b'-') && b.get(i + 2).is_some_and(|&e| e != b']') {
            items.push(SetItem::Range(c, b[i + 2]));
            i += 3;
        } else {
            items.push(SetItem::Range(c, c));
            i += 1;
        }
    }
}

fn token_matches(t: &Token, c: u8) -> bool {
    match t {
        Token::Byte(b) => *b == c,
        Token::Any => true,
        Token::Star => false,
        Token::Set(items, negated) => {
            let inside = items.iter().any(|item| match item {
                SetItem::Range(lo, hi) => (*lo..=*hi).contains(&c),
                SetItem::Class(f) => f(&c),
            });
            inside != *negated
        }
    }
}

/// Matches one level. Greedy with a single back-track point (the last `*`), so the time is
/// at most pattern length × name length whatever the number of stars. As glob(3) does, a
/// wildcard never matches a leading `.`.
fn segment_matches(p: &[Token], s: &[u8]) -> bool {
    if s.first() == Some(&b'.') && !matches!(p.first(), Some(Token::Byte(b'.'))) {
        return false;
    }
    let (mut pi, mut si) = (0, 0);
    let mut back: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(Token::Star) => {
                back = Some((pi + 1, si));
                pi += 1;
            }
            Some(t) if token_matches(t, s[si]) => {
                pi += 1;
                si += 1;
            }
            _ => match back {
                Some((bp, bs)) => {
                    pi = bp;
                    si = bs + 1;
                    back = Some((bp, bs + 1));
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..]
        .iter()
        .all(|t| matches!(t, Token::Star))
}

/// A file that takes part in boot: its root-relative display path and text. A directory or
/// a /dev/null link in a sysctl.d folder is a file with no text: it masks and sets nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFile {
    pub path: String,
    pub text: String,
}

/// The files in the order systemd parses them, from `(folder rank, file name, file)` triples.
/// A name seen in a folder of lower rank masks the same name in the others; the survivors go
/// in byte order of their names.
#[must_use]
pub fn order(found: Vec<(usize, Vec<u8>, BootFile)>) -> Vec<BootFile> {
    let mut chosen: std::collections::BTreeMap<Vec<u8>, (usize, BootFile)> =
        std::collections::BTreeMap::new();
    for (dir_rank, name, file) in found {
        match chosen.get(&name) {
            Some((rank, _)) if *rank <= dir_rank => {}
            _ => {
                chosen.insert(name, (dir_rank, file));
            }
        }
    }
    chosen.into_values().map(|(_, f)| f).collect()
}

/// One entry of systemd's ordered option table.
struct Option_ {
    path: String,
    value: Option<String>,
    file: String,
    line: usize,
}

/// systemd's option table after parsing `files` in order: a new value for a key removes the
/// old entry and appends the new one; the same value again keeps the old entry in place.
fn table(files: &[BootFile]) -> Vec<Option_> {
    let mut table: Vec<Option_> = Vec::new();
    for file in files {
        for l in parse_lines(&file.text) {
            if let Some(i) = table.iter().position(|o| o.path == l.path) {
                if table[i].value == l.value {
                    continue;
                }
                table.remove(i);
            }
            table.push(Option_ {
                path: l.path,
                value: l.value,
                file: file.path.clone(),
                line: l.line,
            });
        }
    }
    table
}

/// What the kernel keeps of `text` written to a key whose value is `ints` integers (`None`
/// when the key is not numeric), with no key-specific rule; see `kernel_takes`.
#[must_use]
pub fn kernel_keeps(text: &str, ints: Option<usize>) -> Option<String> {
    kernel_takes(None, text, ints, None, None)
}

/// The kernel's `proc_get_long`: leading whitespace skipped, an optional `-`, then a number
/// in C's base 0 (`0x10` is 16, `010` is 8); the number must end at whitespace or at the end.
/// Returns the value and the rest, or `None` when the kernel refuses the text.
fn kernel_int(text: &str) -> Option<(i128, &str)> {
    let t = text.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (negative, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    if !t.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let (radix, digits) = if let Some(hex) = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .filter(|h| h.starts_with(|c: char| c.is_ascii_hexdigit()))
    {
        (16, hex)
    } else if t.starts_with('0') {
        (8, t)
    } else {
        (10, t)
    };
    let len = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    let (number, rest) = digits.split_at(len);
    if !rest.is_empty() && !rest.starts_with([' ', '\t', '\n']) {
        return None;
    }
    // More than an unsigned long holds: the kernel refuses it.
    let value = u64::from_str_radix(number, radix).ok()?;
    let value = i128::from(value);
    Some((if negative { -value } else { value }, rest))
}

/// The bounds of each integer of `key` as the kernel checks them: the catalogue's
/// `kernel_range` (every integer key of the catalogue has one), else a long's range for a key
/// outside the catalogue.
fn field_bounds(key: Option<&str>) -> (i128, i128) {
    key.and_then(crate::profile::keys::kernel_range)
        .unwrap_or((i128::from(i64::MIN), i128::from(u64::MAX)))
}

/// The port range's name, and the name of the key that bounds its low end.
pub const PORT_RANGE: &str = "net.ipv4.ip_local_port_range";
pub const PORT_FLOOR: &str = "net.ipv4.ip_unprivileged_port_start";

/// The key whose value decides whether the kernel takes a write to `key`: the port range and
/// `ip_unprivileged_port_start` bound each other.
#[must_use]
pub fn port_peer(key: &str) -> Option<&'static str> {
    match crate::profile::keys::canonical(key) {
        PORT_RANGE => Some(PORT_FLOOR),
        PORT_FLOOR => Some(PORT_RANGE),
        _ => None,
    }
}

/// The first integer of a value read from the kernel (`"32768 60999"` -> 32768).
fn first_int(value: &str) -> Option<i128> {
    value.split_whitespace().next()?.parse().ok()
}

/// What the kernel keeps of `text` written to `key` (dotted; `None`: no key-specific rule)
/// whose value is `ints` integers (`None` when not numeric). `live` is the value the kernel
/// holds before the write: a write of fewer integers than the key holds changes only those
/// (`tcp_rmem = "205 87380"` keeps the third field), and a write that stops at a bad field keeps
/// the fields before it. `peer` is the value of the key's `port_peer` at the time of the write
/// (`None`: the kernel's default, 1024 or "32768 60999"). `None` when the kernel refuses the
/// whole write: a number it cannot read (`+1`, `5junk`, `-1` for an unsigned key) or out of the
/// key's bounds in the first field, a reversed port range or one that starts below
/// `ip_unprivileged_port_start`, an `ip_unprivileged_port_start` above the range's low end, a
/// congestion control that is not one name (`reno # c`). Numbers are shown in decimal (`0x10`
/// is 16). Values of other keys are kept as written, less surrounding whitespace.
#[must_use]
pub fn kernel_takes(
    key: Option<&str>,
    text: &str,
    ints: Option<usize>,
    live: Option<&str>,
    peer: Option<&str>,
) -> Option<String> {
    let Some(count) = ints else {
        return kernel_takes_text(key, text);
    };
    let name = key.map(crate::profile::keys::canonical);
    let (lo, hi) = field_bounds(key);
    let mut kept: Vec<i128> = Vec::new();
    let mut rest = text;
    let mut stopped = false;
    while kept.len() < count {
        if rest
            .trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r'])
            .is_empty()
        {
            break;
        }
        match kernel_int(rest) {
            Some((value, after)) if (lo..=hi).contains(&value) => {
                kept.push(value);
                rest = after;
            }
            _ => {
                stopped = true;
                break;
            }
        }
    }
    // ipv4_local_port_range checks the pair in a copy before storing it: all or nothing.
    if kept.is_empty() || (stopped && name == Some(PORT_RANGE)) {
        return None;
    }
    let now: Vec<String> = live
        .or(if name == Some(PORT_RANGE) {
            Some("32768 60999")
        } else {
            None
        })
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let mut fields: Vec<String> = kept.iter().map(ToString::to_string).collect();
    if fields.len() < count && now.len() == count {
        fields.extend(now[fields.len()..].iter().cloned());
    }
    if !ports_allow(name, &fields, peer) {
        return None;
    }
    Some(fields.join(" "))
}

/// The two port rules of net/ipv4/sysctl_net_ipv4.c: ipv4_local_port_range refuses a range
/// whose high end is below its low end or whose low end is below ip_unprivileged_port_start;
/// ipv4_privileged_ports refuses a start above the range's low end. `peer` is the other key's
/// value when the write happens (`None`: the kernel's default).
fn ports_allow(name: Option<&str>, fields: &[String], peer: Option<&str>) -> bool {
    let int = |i: usize| fields.get(i).and_then(|f| f.parse::<i128>().ok());
    match name {
        Some(PORT_RANGE) => {
            let floor = peer.and_then(first_int).unwrap_or(1024);
            match (int(0), int(1)) {
                (Some(low), Some(high)) => high >= low && low >= floor,
                _ => false,
            }
        }
        Some(PORT_FLOOR) => {
            let range_low = peer.and_then(first_int).unwrap_or(32768);
            int(0).is_some_and(|start| start <= range_low)
        }
        _ => true,
    }
}

/// What the kernel keeps of a text value: a congestion control must be one name, a name from a
/// fixed set must be one of them; other text is kept as written, less surrounding whitespace.
fn kernel_takes_text(key: Option<&str>, text: &str) -> Option<String> {
    use crate::profile::keys::{self, Kind};
    let v = crate::profile::value::normalise(text);
    match key.and_then(keys::known).map(|k| k.kind) {
        _ if v.is_empty() => None,
        Some(Kind::Choice { .. })
            if !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
        {
            None
        }
        Some(Kind::Names(names)) if !names.contains(&v.as_str()) => None,
        _ => Some(v),
    }
}

/// The value `key` (dotted) has after systemd-sysctl ran over `files`, and the line that set
/// it; `None` when no line writes it or the kernel refuses every write. `ints` is the number
/// of integers the key holds (see `kernel_keeps`).
#[must_use]
pub fn boot_value(files: &[BootFile], key: &str, ints: Option<usize>) -> Option<Assignment> {
    boot_value_with(files, key, ints, None, None)
}

/// `boot_value` with the key's kernel rules (`kernel_takes`) and the values the kernel holds
/// before boot writes: `live`, the key's own (the fields a partial write keeps), and
/// `peer_live`, that of its `port_peer` (`None`: the kernel's default). systemd-sysctl writes
/// in its table's order, so the port range is checked against the `ip_unprivileged_port_start`
/// an earlier line left (or `peer_live`), and the other way round.
#[must_use]
pub fn boot_value_with(
    files: &[BootFile],
    key: &str,
    ints: Option<usize>,
    live: Option<&str>,
    peer_live: Option<&str>,
) -> Option<Assignment> {
    let path = to_path(key);
    let table = table(files);
    let peer = peer_at(&table, key, live, peer_live);
    let keep = |(i, o): (usize, &Option_)| {
        let peer = match &peer {
            Some((at, written)) if *at < i => written.as_deref(),
            _ => peer_live,
        };
        let value = kernel_takes(Some(key), o.value.as_deref()?, ints, live, peer)?;
        Some(Assignment {
            key: to_dotted(&o.path),
            value,
            file: o.file.clone(),
            line: o.line,
        })
    };
    if let Some(explicit) = table.iter().enumerate().find(|(_, o)| o.path == path) {
        return keep(explicit);
    }
    table
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, o)| is_glob(&o.path) && path_matches(&o.path, &path))
        .find_map(keep)
}

/// Where in systemd-sysctl's table the explicit line of `key`'s `port_peer` is, and what the
/// kernel keeps of it (`None`: refused, the peer keeps its value before boot). That write is
/// checked against `key` as it was then: `live`, since a key has one line in the table.
fn peer_at(
    table: &[Option_],
    key: &str,
    live: Option<&str>,
    peer_live: Option<&str>,
) -> Option<(usize, Option<String>)> {
    let peer = port_peer(key)?;
    let path = to_path(peer);
    let (at, line) = table.iter().enumerate().find(|(_, o)| o.path == path)?;
    let ints = ints_of(peer, peer_live);
    let written = line
        .value
        .as_deref()
        .and_then(|v| kernel_takes(Some(peer), v, ints, peer_live, live))
        .or_else(|| peer_live.map(str::to_string));
    Some((at, written))
}

/// The explicit line that decides `key` (dotted) after systemd-sysctl parsed `files`: its raw
/// value (`None` for a `-key` line), file and line, whether or not the kernel takes the value.
#[must_use]
pub fn explicit_line(files: &[BootFile], key: &str) -> Option<(Option<String>, String, usize)> {
    let path = to_path(key);
    table(files)
        .into_iter()
        .find(|o| o.path == path)
        .map(|o| (o.value, o.file, o.line))
}

/// How many integers `key` holds, for `kernel_keeps`: from the key catalogue's shape when the
/// key is catalogued, else from the value the kernel shows now (`live`).
#[must_use]
pub fn ints_of(key: &str, live: Option<&str>) -> Option<usize> {
    use crate::profile::keys::Shape;
    match crate::profile::keys::known(key).map(|k| k.shape) {
        Some(Shape::Int) => Some(1),
        Some(Shape::Ints(n)) => Some(n),
        Some(Shape::PortList | Shape::Text) => None,
        None => live.and_then(int_count),
    }
}

/// How many integers a value read from the kernel holds, or `None` if it is not all integers.
#[must_use]
pub fn int_count(live: &str) -> Option<usize> {
    let words: Vec<&str> = live.split_whitespace().collect();
    (!words.is_empty() && words.iter().all(|w| w.parse::<i64>().is_ok())).then_some(words.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::root::Root;

    #[test]
    fn line_syntax() {
        let text = "# c\n; c\nnet.core.somaxconn=1024\n -net.ipv4.tcp_rmem =  4096\t87380 6291456 \n\
                    net/ipv4/conf/eth0.100/rp_filter = 1\nnot a line\nkernel.x =\r--net.a = 1\r\n\
                    /net/core/b = 2\n-net.core.c\n";
        let got: Vec<(String, String, usize)> = parse(text, "f")
            .into_iter()
            .map(|a| (a.key, a.value, a.line))
            .collect();
        assert_eq!(
            got,
            vec![
                ("net.core.somaxconn".into(), "1024".into(), 3),
                ("net.ipv4.tcp_rmem".into(), "4096 87380 6291456".into(), 4),
                ("net.ipv4.conf.eth0/100.rp_filter".into(), "1".into(), 5),
                ("kernel.x".into(), String::new(), 7),
                ("-net.a".into(), "1".into(), 8),
                ("net.core.b".into(), "2".into(), 9),
            ]
        );
    }

    #[test]
    fn globs() {
        let yes = [
            ("net.ipv4.conf.*.rp_filter", "net.ipv4.conf.all.rp_filter"),
            ("net.core.somaxconn", "net.core.somaxconn"),
            (
                "net.ipv4.conf.e?h0.rp_filter",
                "net.ipv4.conf.eth0.rp_filter",
            ),
            (
                "net.ipv4.conf.[a-e]*.rp_filter",
                "net.ipv4.conf.all.rp_filter",
            ),
            ("net.ipv4.conf.[!l]*.x", "net.ipv4.conf.all.x"),
            ("net.ipv4.conf.[[:alpha:]]ll.x", "net.ipv4.conf.all.x"),
            ("net.ipv4.tcp_*", "net.ipv4.tcp_fin_timeout"),
        ];
        let no = [
            ("net.ipv4.conf.*.rp_filter", "net.ipv4.conf.all.arp_filter"),
            ("net.*", "net.ipv4.tcp_fin_timeout"),
            ("net.ipv4.conf.[!l]*.x", "net.ipv4.conf.lo.x"),
            ("net.ipv4.conf.?.x", "net.ipv4.conf.lo.x"),
        ];
        for (p, k) in yes {
            assert!(matches(p, k), "{p} {k}");
        }
        for (p, k) in no {
            assert!(!matches(p, k), "{p} {k}");
        }
    }

    /// Issue 7's hostile input: many stars must not make matching exponential.
    #[test]
    fn many_stars_match_in_linear_time() {
        let pattern = format!("net.ipv4.{}b", "*a".repeat(20));
        let key = format!("net.ipv4.{}", "a".repeat(200));
        let started = std::time::Instant::now();
        assert!(!matches(&pattern, &key));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    fn f(path: &str, text: &str) -> BootFile {
        BootFile {
            path: path.into(),
            text: text.into(),
        }
    }

    /// A display path in sysctl.d folder `dir` (0 = etc, 1 = run, 3 = usr/lib).
    fn at(dir: usize, name: &str) -> String {
        Root::display(&format!("{}/{name}", crate::system::root::SYSCTL_DIRS[dir]))
    }

    #[test]
    fn masking_and_order() {
        let found = vec![
            (
                0,
                "50-a.conf".into(),
                f(&at(0, "50-a.conf"), "net.core.somaxconn = 1\n"),
            ),
            (
                3,
                "50-a.conf".into(),
                f(&at(3, "50-a.conf"), "net.core.somaxconn = 2\n"),
            ),
            (
                3,
                "10-b.conf".into(),
                f(&at(3, "10-b.conf"), "net.core.somaxconn = 3\n"),
            ),
            (
                1,
                "60-c.conf".into(),
                f(&at(1, "60-c.conf"), "fs.file-max = 9\n"),
            ),
        ];
        let files = order(found);
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                at(3, "10-b.conf").as_str(),
                at(0, "50-a.conf").as_str(),
                at(1, "60-c.conf").as_str(),
            ]
        );
        let somaxconn = boot_value(&files, "net.core.somaxconn", Some(1)).unwrap();
        assert_eq!(
            (somaxconn.value.as_str(), somaxconn.file.as_str()),
            ("1", at(0, "50-a.conf").as_str())
        );
        assert!(boot_value(&files, "net.ipv4.tcp_rmem", Some(3)).is_none());
    }

    #[test]
    fn explicit_beats_glob_and_negatives_cancel() {
        let files = [
            f(
                "a",
                "net.ipv4.conf.lo.x = 1\nnet.ipv4.conf.*.x = 2\n-net.ipv4.conf.all.x\n",
            ),
            f(
                "b",
                "net.ipv4.conf.*.y = 3\nnet.ipv4.conf.*.y = 3\nnet.ipv4.conf.l?.y = 4\n",
            ),
            f(
                "c",
                "net.core.a = 5\nnet.core.a = 6\nnet.core.a = 5\n-net.core.b\n",
            ),
        ];
        let v = |k: &str| boot_value(&files, k, Some(1)).map(|a| (a.value, a.file, a.line));
        assert_eq!(v("net.ipv4.conf.lo.x"), Some(("1".into(), "a".into(), 1)));
        assert_eq!(v("net.ipv4.conf.eth0.x"), Some(("2".into(), "a".into(), 2)));
        assert_eq!(v("net.ipv4.conf.all.x"), None);
        assert_eq!(v("net.ipv4.conf.lo.y"), Some(("4".into(), "b".into(), 3)));
        assert_eq!(v("net.ipv4.conf.all.y"), Some(("3".into(), "b".into(), 1)));
        assert_eq!(v("net.core.a"), Some(("5".into(), "c".into(), 3)));
        assert_eq!(v("net.core.b"), None);
    }

    #[test]
    fn what_the_kernel_keeps() {
        assert_eq!(kernel_keeps("33 junk", Some(1)).as_deref(), Some("33"));
        assert_eq!(kernel_keeps("5junk", Some(1)), None);
        assert_eq!(kernel_keeps("", Some(1)), None);
        assert_eq!(kernel_keeps("abc", Some(1)), None);
        assert_eq!(
            kernel_keeps("2000\t3000 x", Some(2)).as_deref(),
            Some("2000 3000")
        );
        assert_eq!(kernel_keeps(" cubic ", None).as_deref(), Some("cubic"));
        assert_eq!(kernel_keeps("", None), None);
    }

    #[test]
    fn kernel_rules_of_catalogue_keys() {
        let rmem = Some("4096 131072 33554432");
        let cases: &[(&str, &str, Option<&str>, Option<&str>)] = &[
            ("fs.nr_open", "10", None, None),
            ("fs.nr_open", "64", None, Some("64")),
            ("fs.nr_open", "2147483647", None, None),
            ("fs.file-max", "-1", None, None),
            ("fs.file-max", "9223372036854775808", None, None),
            ("net.core.rmem_max", "2303", None, None),
            ("net.core.rmem_max", "2304", None, Some("2304")),
            ("net.core.wmem_max", "4607", None, None),
            ("net.ipv4.tcp_mem", "-1 2 3", None, None),
            (
                "net.ipv4.tcp_mem",
                "18446744073709551615 2 3",
                None,
                Some("18446744073709551615 2 3"),
            ),
            ("net.netfilter.nf_conntrack_buckets", "0", None, None),
            // A vector write stores each field until a bad one: the fields before it stay.
            (
                "net.ipv4.tcp_rmem",
                "4000 0 6291456",
                rmem,
                Some("4000 131072 33554432"),
            ),
            (
                "net.ipv4.tcp_rmem",
                "4000 5junk 6",
                rmem,
                Some("4000 131072 33554432"),
            ),
            ("net.ipv4.tcp_rmem", "0 87380 6291456", rmem, None),
            // The port range's pair is checked whole.
            ("net.ipv4.ip_local_port_range", "2000 0", None, None),
            (
                "net.ipv4.ip_local_port_range",
                "2000 2000",
                None,
                Some("2000 2000"),
            ),
        ];
        for (key, text, live, want) in cases {
            let ints = ints_of(key, *live);
            assert_eq!(
                kernel_takes(Some(key), text, ints, *live, None).as_deref(),
                *want,
                "{key} = {text}"
            );
        }
    }

    #[test]
    fn port_range_and_its_floor_bound_each_other_in_table_order() {
        let range = "net.ipv4.ip_local_port_range";
        let floor = "net.ipv4.ip_unprivileged_port_start";
        let value = |text: &str, key: &str, live: &str, peer: &str| {
            let files = [f("a", text)];
            boot_value_with(
                &files,
                key,
                ints_of(key, Some(live)),
                Some(live),
                Some(peer),
            )
            .map(|a| a.value)
        };
        let (range_now, floor_now) = ("32768 60999", "1024");
        // Below the floor now: refused; the floor lowered first: taken; lowered after: refused.
        assert_eq!(
            value(
                "net.ipv4.ip_local_port_range = 1000 60999\n",
                range,
                range_now,
                floor_now
            ),
            None
        );
        let lowered = "net.ipv4.ip_unprivileged_port_start = 900\nnet.ipv4.ip_local_port_range = 1000 60999\n";
        assert_eq!(
            value(lowered, range, range_now, floor_now).as_deref(),
            Some("1000 60999")
        );
        assert_eq!(
            value(lowered, floor, floor_now, range_now).as_deref(),
            Some("900")
        );
        let late = "net.ipv4.ip_local_port_range = 1000 60999\nnet.ipv4.ip_unprivileged_port_start = 900\n";
        assert_eq!(value(late, range, range_now, floor_now), None);
        // The floor above the range's low end: refused, unless the range moved up first.
        assert_eq!(
            value(
                "net.ipv4.ip_unprivileged_port_start = 40000\n",
                floor,
                floor_now,
                range_now
            ),
            None
        );
        let raised = "net.ipv4.ip_local_port_range = 40000 60999\nnet.ipv4.ip_unprivileged_port_start = 40000\n";
        assert_eq!(
            value(raised, floor, floor_now, range_now).as_deref(),
            Some("40000")
        );
        // The floor as it is now decides, not a constant 1024.
        assert_eq!(
            value(
                "net.ipv4.ip_local_port_range = 600 60999\n",
                range,
                range_now,
                "500"
            )
            .as_deref(),
            Some("600 60999")
        );
    }
}
