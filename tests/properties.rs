//! The fuzz targets' properties (fuzz/), run on stable in `cargo test` with a fixed seed and a
//! bounded number of cases so CI stays fast: the readers never panic on any text, and every
//! drop-in netprofile would write re-parses to exactly what the profile asks for, whatever
//! names, paths and values a profile holds. A failure prints the seed and the case to replay.
//! (A small seeded generator instead of proptest: no extra dependency for CI to build.)

use netprofile::profile::{self, limit::LimitValue};
use netprofile::system::{self, limits, sysctld};
use netprofile::transaction::verify;

/// xorshift64*: deterministic, so every run checks the same cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[usize::try_from(self.below(from.len() as u64)).unwrap_or(0)]
    }
    /// Text that likes the characters readers care about.
    fn text(&mut self, max: u64) -> String {
        const PIECES: &[&str] = &[
            "\n",
            "\r",
            "\0",
            "\t",
            " ",
            "=",
            "#",
            ";",
            "-",
            "*",
            "@",
            ":",
            "[",
            "]",
            "\"",
            "'",
            "{",
            "}",
            ",",
            ".",
            "/",
            "..",
            "net.core.somaxconn",
            "nofile",
            "hard",
            "soft",
            "unlimited",
            "[Manager]",
            "DefaultLimitNOFILE",
            "[sysctl]",
            "[profile]",
            "[[limits]]",
            "name",
            "extends",
            "value",
            "optional",
            "min",
            "max",
            "65535",
            "-1",
            "18446744073709551616",
            "é",
            "\u{202e}",
            "x",
        ];
        let n = self.below(max);
        (0..n).map(|_| self.pick(PIECES)).collect()
    }
}

const CASES: usize = 3000;

#[test]
fn readers_never_panic_on_any_text() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for case in 0..CASES {
        let text = rng.text(60);
        let _ = sysctld::parse(&text, "/etc/sysctl.d/x.conf");
        let _ = limits::parse(&text, "/etc/security/limits.conf");
        let _ = system::systemd::default_limit_nofile(&[sysctld::BootFile {
            path: "/etc/systemd/system.conf".into(),
            text: text.clone(),
        }]);
        let _ = profile::from_text(&text, "fuzz.toml");
        assert!(case < CASES);
    }
}

#[test]
fn a_parsed_line_is_what_the_reader_returns_for_it() {
    // Round trip of the sysctl.d line syntax: `key = value` reads back as (key, value).
    let mut rng = Rng(42);
    let keys = [
        "net.core.somaxconn",
        "net.ipv4.tcp_rmem",
        "fs.file-max",
        "vm.swappiness",
    ];
    for _ in 0..CASES {
        let key = rng.pick(&keys);
        let fields: Vec<String> = (0..=rng.below(3)).map(|_| rng.next().to_string()).collect();
        let value = fields.join(if rng.below(2) == 0 { " " } else { "\t" });
        let text = format!("{key} = {value}\n");
        let read = sysctld::parse(&text, "x");
        assert_eq!(read.len(), 1, "{text:?}");
        assert_eq!(read[0].key, key);
        assert_eq!(read[0].value, fields.join(" "));
    }
}

/// A profile text from random parts: names and values drawn partly from hostile text.
fn random_profile(rng: &mut Rng) -> (String, Vec<(String, String)>) {
    let name: String = if rng.below(2) == 0 {
        rng.text(8)
    } else {
        (0..=rng.below(70))
            .map(|_| char::from(b"abcXYZ019._-"[usize::try_from(rng.below(12)).unwrap_or(0)]))
            .collect()
    };
    let keys = [
        "net.core.somaxconn",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_rmem",
        "net.ipv4.ip_local_reserved_ports",
    ];
    let mut text = format!("[profile]\nname = {:?}\n[sysctl]\n", name);
    let mut values = Vec::new();
    for key in keys {
        if rng.below(2) == 0 {
            continue;
        }
        let value = if rng.below(4) == 0 {
            rng.text(6)
        } else {
            (1 + rng.below(60_000)).to_string()
        };
        text.push_str(&format!("{key:?} = {value:?}\n"));
        values.push((key.to_string(), value));
    }
    if rng.below(2) == 0 {
        let domain = rng.pick(&["*", "root", "@adm", "1000:", ":5", "a\nb", "*  hard", ""]);
        let value = rng.below(1_048_576);
        text.push_str(&format!(
            "[[limits]]\ndomain = {domain:?}\ntype = {:?}\nitem = \"nofile\"\nvalue = {value}\n",
            rng.pick(&["soft", "hard", "-"])
        ));
    }
    if rng.below(3) == 0 {
        text.push_str(&format!(
            "[systemd]\ndefault_limit_nofile = {}\n",
            1 + rng.below(1_048_576)
        ));
    }
    (text, values)
}

#[test]
fn every_dropin_of_an_accepted_profile_reparses_to_the_profile() {
    let mut rng = Rng(0xfeed_beef);
    let mut accepted = 0;
    for _ in 0..CASES {
        let (text, _) = random_profile(&mut rng);
        let source = format!("dir/{}.toml", rng.text(5));
        let Ok(mut profile) = profile::from_text(&text, &source) else {
            continue;
        };
        accepted += 1;
        assert!(profile::valid_name(&profile.name), "{text}");
        // Any path is safe in the header, even one with line breaks.
        profile.source = source;
        // The values the profile holds, as the plan would persist them (exact values).
        let values: Vec<(String, String)> = profile
            .sysctl
            .iter()
            .filter_map(|(key, setting)| match &setting.want {
                profile::Want::Exact(v) => Some((key.to_string(), v.clone())),
                _ => None,
            })
            .collect();
        if let Err(e) = verify::check_rendered(&profile, &values) {
            panic!("a drop-in does not re-parse to the profile: {e}\n{text}");
        }
        for limit in &profile.limits {
            for value in [limit.soft, limit.hard].into_iter().flatten() {
                assert!(
                    !matches!(value, LimitValue::Num(n) if n > 1 << 62),
                    "{text}"
                );
            }
        }
    }
    assert!(
        accepted > CASES / 20,
        "only {accepted} profiles were accepted"
    );
}

#[test]
fn confirm_durations_are_bounded() {
    use netprofile::cli::{MAX_CONFIRM_SECS, parse_confirm};
    let mut rng = Rng(7);
    for _ in 0..CASES {
        let n = match rng.below(3) {
            0 => rng.below(200_000),
            1 => rng.next(),
            _ => rng.below(100),
        };
        let units = ["", "s", "m", "h", "d", "ms"];
        let unit = rng.pick(&units);
        let text = format!("{n}{unit}");
        match parse_confirm(&text) {
            Ok(secs) => assert!((1..=MAX_CONFIRM_SECS).contains(&secs), "{text} -> {secs}"),
            Err(e) => assert!(!e.is_empty()),
        }
    }
    assert_eq!(parse_confirm("90"), Ok(90));
    assert_eq!(parse_confirm("90s"), Ok(90));
    assert_eq!(parse_confirm("5m"), Ok(300));
    assert!(parse_confirm("0").is_err());
    assert!(parse_confirm("18446744073709551").is_err());
}
