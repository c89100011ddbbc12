//! systemd manager settings (`[Manager]` in system.conf) as systemd 252 reads them.
//!
//! PID 1 parses /etc/systemd/system.conf, then the `*.conf` drop-ins of `system.conf.d` in
//! /etc, /run, /usr/local/lib and /usr/lib: a name in an earlier folder masks the same name in
//! later ones (an empty file or a /dev/null link masks and sets nothing), dotfiles are skipped,
//! and the survivors are read in name order, so the last assignment wins. A line is stripped;
//! `#` and `;` start comments; `[Section]` switches section; `key = value` may have spaces
//! around `=`; a trailing backslash joins the next line. An empty value resets the setting to
//! systemd's built-in default. This module parses text given to it and never performs I/O
//! (system/mod.rs does the reading).

use crate::system::SystemdNofile;
use crate::system::sysctld::BootFile;

/// The logical lines of a systemd unit-style file: `(first physical line number, text)`,
/// with backslash continuations joined by a space.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let (start, mut joined) = pending.take().unwrap_or((index + 1, String::new()));
        // A comment line inside a continuation is skipped, as systemd does.
        let trimmed = raw.trim_matches([' ', '\t']);
        if !joined.is_empty() && trimmed.starts_with(['#', ';']) {
            pending = Some((start, joined));
            continue;
        }
        if let Some(body) = raw.strip_suffix('\\') {
            joined.push_str(body);
            joined.push(' ');
            pending = Some((start, joined));
            continue;
        }
        joined.push_str(raw);
        out.push((start, joined));
    }
    if let Some(last) = pending {
        out.push(last);
    }
    out
}

/// The last `key=` in section `[section]` across `files` in order; `None` when none sets it or
/// the last one is empty (systemd's default applies).
#[must_use]
pub fn setting(files: &[BootFile], section: &str, key: &str) -> Option<SystemdNofile> {
    let mut found = None;
    for file in files {
        let mut current = String::new();
        for (line, text) in logical_lines(&file.text) {
            let text = text.trim_matches([' ', '\t', '\n', '\r']);
            if text.is_empty() || text.starts_with(['#', ';']) {
                continue;
            }
            if let Some(name) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
                current = name.to_string();
                continue;
            }
            if current != section {
                continue;
            }
            let Some((k, v)) = text.split_once('=') else {
                continue;
            };
            if k.trim_matches([' ', '\t']) != key {
                continue;
            }
            let value = v.trim_matches([' ', '\t']).to_string();
            found = (!value.is_empty()).then(|| SystemdNofile {
                value,
                file: file.path.clone(),
                line,
            });
        }
    }
    found
}

/// DefaultLimitNOFILE as the manager's files set it.
#[must_use]
pub fn default_limit_nofile(files: &[BootFile]) -> Option<SystemdNofile> {
    setting(files, "Manager", "DefaultLimitNOFILE")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::root::Root;

    fn f(path: &str, text: &str) -> BootFile {
        BootFile {
            path: path.into(),
            text: text.into(),
        }
    }

    #[test]
    fn manager_section_only_spaces_and_continuations() {
        let main = Root::display(Root::SYSTEMD_CONF);
        let files = [
            f(
                &main,
                "[Manager]\n#DefaultLimitNOFILE=1\nDefaultLimitNOFILE = 1024:524288\n",
            ),
            f("/x.conf", "[Other]\nDefaultLimitNOFILE=5\n"),
        ];
        let got = default_limit_nofile(&files).unwrap();
        assert_eq!(
            (got.value.as_str(), got.file.as_str(), got.line),
            ("1024:524288", main.as_str(), 3)
        );
        let files = [
            f("/a.conf", "[Manager]\nDefaultLimitNOFILE=\\\n  4096:8192\n"),
            f("/b.conf", " [Manager] \n\tDefaultLimitNOFILE\t=\t65536 \n"),
        ];
        let got = default_limit_nofile(&files).unwrap();
        assert_eq!(
            (got.value.as_str(), got.file.as_str()),
            ("65536", "/b.conf")
        );
        let got = default_limit_nofile(&files[..1]).unwrap();
        assert_eq!((got.value.as_str(), got.line), ("4096:8192", 2));
        // An empty value goes back to systemd's default.
        let files = [
            f("/a.conf", "[Manager]\nDefaultLimitNOFILE=4096\n"),
            f("/b.conf", "[Manager]\nDefaultLimitNOFILE=\n"),
        ];
        assert_eq!(default_limit_nofile(&files), None);
    }
}
