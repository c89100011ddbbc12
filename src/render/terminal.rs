//! Terminal-safe human output: the one boundary every human line passes before it is printed.
//!
//! Strings that come from the system or a profile (process names, paths, values, unit names,
//! descriptions) may hold control characters: a local user can name a process `\e[2J...` and
//! listen on loopback, and root's `doctor` would clear the screen or rewrite what it shows.
//! Rather than escape at each of the hundreds of places such a string is formatted, `lib.rs`
//! passes every human line (stdout and stderr, errors included) through [`for_terminal`],
//! which shows every control character visibly (`\e`, `\x07`, `\u{9b}`, bidi overrides as
//! `\u{202e}`). Colour is the one terminal control netprofile emits itself: [`style`] marks it
//! with a per-run random nonce that system text cannot guess, and only those marks become
//! escape sequences. `for_terminal` sees whole output text and so leaves newlines and tabs
//! alone: a string from the system set into a line is kept on it where it is formatted, with
//! [`one_line`] (names, paths, titles) or [`value`] (values whose tabs are their own).
//! `--json` output is never touched (serde escapes it exactly). Pure string work; never
//! performs I/O.

use std::fmt::Write as _;
use std::sync::OnceLock;

/// Starts a colour mark: MARK, the nonce, the SGR code, `m`.
const MARK: char = '\u{E000}';

/// A per-run random token (hex digits only, so never an `m`): a colour mark from `style`
/// carries it, text from the system cannot.
fn nonce() -> &'static str {
    static NONCE: OnceLock<String> = OnceLock::new();
    NONCE.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        // RandomState is seeded from the OS's randomness once per process.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(u64::from(std::process::id()));
        format!("{:016x}", h.finish())
    })
}

/// `text` in the SGR colour `code` (e.g. "31"), as a mark that `for_terminal` turns into the
/// escape sequence, and nothing else can.
#[must_use]
pub fn style(code: &str, text: &str) -> String {
    let n = nonce();
    format!("{MARK}{n}{code}m{text}{MARK}{n}0m")
}

/// How one character is shown: itself, or a visible escape for a control character (C0
/// except newline and tab, DEL, C1) and for the bidi and zero-width controls that can make a
/// line read other than it is.
fn escaped(c: char) -> Option<String> {
    match c {
        '\n' | '\t' => None,
        '\x1b' => Some("\\e".into()),
        '\r' => Some("\\r".into()),
        c if (c as u32) < 0x20 || c == '\x7f' => Some(format!("\\x{:02x}", c as u32)),
        '\u{80}'..='\u{9f}'
        | '\u{200b}'..='\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}'
        | '\u{feff}' => Some(format!("\\u{{{:x}}}", c as u32)),
        _ => None,
    }
}

/// A value from the system kept on one line and shown visibly: every character `escaped` names,
/// and newline and tab too (`\n`, `\t`), so a process name can neither start a line of its
/// own nor hide in one. For a value set into a line (a live line of `watch`) or into a TOML
/// comment (its proposal); the whole line still passes `for_terminal`, which leaves what this
/// made as it is.
#[must_use]
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => match escaped(c) {
                Some(e) => out.push_str(&e),
                None => out.push(c),
            },
        }
    }
    out
}

/// A value set into a line of human text whose tabs are its own (the kernel prints
/// `tcp_rmem` as `4096\t131072\t6291456`; a boot file may separate fields with tabs): only a
/// newline is shown (`\n`), so the value cannot start a line; tabs stay as `for_terminal`
/// keeps them, and every other control character is left to it. Names (a process, a unit, a
/// path) take `one_line`.
#[must_use]
pub fn value(text: &str) -> String {
    text.replace('\n', "\\n")
}

/// Escapes every control character of `text` visibly (see `escaped`), then turns the colour
/// marks of `style` into real SGR sequences. The result holds no terminal control that did not
/// come from `style`.
#[must_use]
pub fn for_terminal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mark = format!("{MARK}{}", nonce());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix(mark.as_str())
            && let Some(end) = after.find('m')
            && after[..end]
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b';')
        {
            let _ = write!(out, "\x1b[{}m", &after[..end]);
            rest = &after[end + 1..];
            continue;
        }
        let c = rest.chars().next().unwrap_or_default();
        match escaped(c) {
            Some(e) => out.push_str(&e),
            None => out.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// How many columns `text` takes once printed: colour marks take none, an escaped control
/// character its escape's length.
#[must_use]
pub fn width(text: &str) -> usize {
    let mark = format!("{MARK}{}", nonce());
    let mut n = 0;
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix(mark.as_str())
            && let Some(end) = after.find('m')
        {
            rest = &after[end + 1..];
            continue;
        }
        let c = rest.chars().next().unwrap_or_default();
        n += escaped(c).map_or(1, |e| e.chars().count());
        rest = &rest[c.len_utf8()..];
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_and_only_marked_colour_is_emitted() {
        let hostile = "a\x1b[2Jb\x07c\u{9b}31md\u{202e}e\r";
        assert_eq!(
            for_terminal(hostile),
            "a\\e[2Jb\\x07c\\u{9b}31md\\u{202e}e\\r"
        );
        assert_eq!(for_terminal("x\ny\tz"), "x\ny\tz");
        let red = style("31", "no");
        assert_eq!(for_terminal(&red), "\x1b[31mno\x1b[0m");
        assert_eq!(width(&red), 2);
        // A forged mark (no nonce) stays text.
        let forged = format!("{MARK}31mX");
        assert!(!for_terminal(&forged).contains('\x1b'));
        assert_eq!(width("\x1b[2J"), 5);
    }

    #[test]
    fn a_value_stays_on_one_line_with_the_same_escapes() {
        let name = "a\x1b[2J\u{202e}\u{200b}b\nc\td";
        let shown = one_line(name);
        assert_eq!(shown, "a\\e[2J\\u{202e}\\u{200b}b\\nc\\td");
        assert_eq!(for_terminal(&shown), shown);
        let v = value("4096\t131072\nbinding limit\x1b");
        assert_eq!(for_terminal(&v), "4096\t131072\\nbinding limit\\e");
    }
}
