//! sysctl.d files: the line syntax and which file sets a key at boot.
//!
//! systemd-sysctl reads `*.conf` from /etc, /run, /usr/local/lib and /usr/lib `sysctl.d`; a file
//! masks a same-named file in a later folder; the survivors are applied in name order and the
//! last assignment of a key wins. procps' `sysctl --system` then applies /etc/sysctl.conf.
//! This module parses text and orders files given to it; system/mod.rs does the reading.

/// One `key = value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The key with `.` separators (a `/`-separated key is converted); may hold `*` globs.
    pub key: String,
    pub value: String,
    pub file: String,
    pub line: usize,
}

/// Parses sysctl.d text. Comments start with `#` or `;`; a leading `-` (ignore errors) is
/// dropped; a key whose first separator is `/` uses `/` for levels and `.` literally.
#[must_use]
pub fn parse(text: &str, file: &str) -> Vec<Assignment> {
    let mut out = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim().trim_start_matches('-').trim();
        if key.is_empty() {
            continue;
        }
        out.push(Assignment {
            key: normalise_key(key),
            value: crate::profile::value::normalise(value),
            file: file.to_string(),
            line: index + 1,
        });
    }
    out
}

/// `net/ipv4/conf/eth0.100/rp_filter` → `net.ipv4.conf.eth0/100.rp_filter`, as sysctl(8)
/// does; a dotted key stays as it is.
fn normalise_key(key: &str) -> String {
    let first = key.find(['.', '/']);
    match first.map(|i| key.as_bytes()[i]) {
        Some(b'/') => key
            .chars()
            .map(|c| match c {
                '/' => '.',
                '.' => '/',
                c => c,
            })
            .collect(),
        _ => key.to_string(),
    }
}

/// Whether a sysctl.d key (possibly with `*` globs, systemd 247+) names `key`.
#[must_use]
pub fn matches(pattern: &str, key: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == key;
    }
    glob(pattern.as_bytes(), key.as_bytes())
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

/// A file that takes part in boot: its root-relative path and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFile {
    pub path: String,
    pub text: String,
}

/// The files in the order they are applied, from `(folder, file name, text)` triples listed in
/// folder precedence order, then `/etc/sysctl.conf` if given. A name seen in an earlier folder
/// masks the same name in later ones.
#[must_use]
pub fn order(
    found: Vec<(usize, String, BootFile)>,
    sysctl_conf: Option<BootFile>,
) -> Vec<BootFile> {
    let mut chosen: std::collections::BTreeMap<String, (usize, BootFile)> =
        std::collections::BTreeMap::new();
    for (dir_rank, name, file) in found {
        match chosen.get(&name) {
            Some((rank, _)) if *rank <= dir_rank => {}
            _ => {
                chosen.insert(name, (dir_rank, file));
            }
        }
    }
    let mut files: Vec<BootFile> = chosen.into_values().map(|(_, f)| f).collect();
    files.extend(sysctl_conf);
    files
}

/// The last assignment of `key` across `files` in order.
#[must_use]
pub fn boot_value(files: &[BootFile], key: &str) -> Option<Assignment> {
    files
        .iter()
        .flat_map(|f| parse(&f.text, &f.path))
        .rfind(|a| matches(&a.key, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::root::Root;

    #[test]
    fn line_syntax() {
        let text = "# c\n; c\nnet.core.somaxconn=1024\n -net.ipv4.tcp_rmem =  4096\t87380 6291456 \n\
                    net/ipv4/conf/eth0.100/rp_filter = 1\nnot a line\nkernel.x =\n";
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
            ]
        );
    }

    #[test]
    fn globs() {
        assert!(matches(
            "net.ipv4.conf.*.rp_filter",
            "net.ipv4.conf.all.rp_filter"
        ));
        assert!(!matches(
            "net.ipv4.conf.*.rp_filter",
            "net.ipv4.conf.all.arp_filter"
        ));
        assert!(matches("net.core.somaxconn", "net.core.somaxconn"));
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
        let conf = Root::display(Root::SYSCTL_CONF);
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
        let files = order(found, Some(f(&conf, "fs.file-max = 10\n")));
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                at(3, "10-b.conf").as_str(),
                at(0, "50-a.conf").as_str(),
                at(1, "60-c.conf").as_str(),
                conf.as_str()
            ]
        );
        let somaxconn = boot_value(&files, "net.core.somaxconn").unwrap();
        assert_eq!(
            (somaxconn.value.as_str(), somaxconn.file.as_str()),
            ("1", at(0, "50-a.conf").as_str())
        );
        let filemax = boot_value(&files, "fs.file-max").unwrap();
        assert_eq!(
            (filemax.value.as_str(), filemax.file.as_str(), filemax.line),
            ("10", conf.as_str(), 1)
        );
        assert!(boot_value(&files, "net.ipv4.tcp_rmem").is_none());
    }
}
