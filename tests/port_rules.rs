//! The kernel's rules for the ephemeral port range and `ip_unprivileged_port_start`, which
//! bound each other (net/ipv4/sysctl_net_ipv4.c: the range may not start below the start of
//! the unprivileged ports, and that start may not be above the range's low end), and the
//! kernel's bounds of global keys, as a user sees them: AT BOOT in `diff --json` and `explain
//! --json` on a `--root` tree, the plan's refusal, and `apply` on the real kernel in a private
//! user + network namespace.

mod common;

use common::{Test, in_netns, text};
use serde_json::Value;

const RANGE: &str = "net.ipv4.ip_local_port_range";
const FLOOR: &str = "net.ipv4.ip_unprivileged_port_start";

/// A profile that names `keys` as optional, at values no boot file below writes.
fn profile(keys: &[(&str, &str)]) -> String {
    let mut text = String::from("[profile]\nname = \"ports\"\n\n[sysctl]\n");
    for (key, value) in keys {
        text.push_str(&format!(
            "\"{key}\" = {{ value = {value}, optional = true }}\n"
        ));
    }
    text
}

/// What `diff --json` and `explain KEY --json` say a key holds at boot: (value, file, line)
/// from each; they must agree.
fn at_boot(t: Test, profile_keys: &[(&str, &str)], key: &str) -> Option<(String, String, u64)> {
    let out = t
        .profile("p.toml", &profile(profile_keys))
        .args(&["diff", "p.toml", "--json"])
        .run();
    assert!(out.code <= 1, "diff failed: {}{}", out.stdout, out.stderr);
    let diff: Value = serde_json::from_str(&out.stdout).expect("diff json");
    let row = diff["sysctl"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["key"] == key))
        .unwrap_or_else(|| panic!("diff has no row for {key}: {}", out.stdout))
        .clone();
    let explain = out.then(&["explain", key, "--json"]);
    let explain: Value = serde_json::from_str(&explain.stdout).expect("explain json");
    let from_diff = row["boot"]["value"].as_str().map(|v| {
        (
            v.to_string(),
            row["boot"]["source"]["file"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            row["boot"]["source"]["line"].as_u64().unwrap_or(0),
        )
    });
    let from_explain = explain["boot"]["value"].as_str().and_then(|v| {
        (explain["boot"]["fate"] == "wins").then(|| {
            (
                v.to_string(),
                explain["boot"]["file"].as_str().unwrap_or("").to_string(),
                explain["boot"]["line"].as_u64().unwrap_or(0),
            )
        })
    });
    assert_eq!(
        from_diff, from_explain,
        "diff and explain disagree on {key}"
    );
    from_diff
}

fn boot_file(at: &str, line: u64) -> (String, u64) {
    (format!("/etc/sysctl.d/{at}"), line)
}

#[test]
fn the_range_at_boot_is_checked_against_the_start_the_kernel_has_then() {
    let range_keys = [(RANGE, "\"40000 50000\""), (FLOOR, "1024")];
    // The start now (500, not a constant 1024) lets a range from 600 through.
    let low_floor = Test::new()
        .sysctl(FLOOR, "500")
        .file("etc/sysctl.d/50-a.conf", &format!("{RANGE} = 600 60999\n"));
    let got = at_boot(low_floor, &[(RANGE, "\"40000 50000\"")], RANGE);
    assert_eq!(
        got.map(|(v, f, l)| (v, (f, l))),
        Some(("600 60999".into(), boot_file("50-a.conf", 1)))
    );
    // With the start at 1024 the kernel refuses it: no boot value.
    let refused = Test::new()
        .sysctl(FLOOR, "1024")
        .file("etc/sysctl.d/50-a.conf", &format!("{RANGE} = 600 60999\n"));
    assert_eq!(at_boot(refused, &range_keys, RANGE), None);
    // A file that lowers the start earlier in systemd-sysctl's order makes room for it...
    let lowered_first = Test::new()
        .sysctl(FLOOR, "1024")
        .file("etc/sysctl.d/10-a.conf", &format!("{FLOOR} = 500\n"))
        .file("etc/sysctl.d/50-b.conf", &format!("{RANGE} = 600 60999\n"));
    let got = at_boot(lowered_first, &range_keys, RANGE);
    assert_eq!(got.map(|(v, _, _)| v).as_deref(), Some("600 60999"));
    // ...a later one does not: the range was refused before the start moved.
    let lowered_late = Test::new()
        .sysctl(FLOOR, "1024")
        .file("etc/sysctl.d/10-a.conf", &format!("{RANGE} = 600 60999\n"))
        .file("etc/sysctl.d/50-b.conf", &format!("{FLOOR} = 500\n"));
    assert_eq!(at_boot(lowered_late, &range_keys, RANGE), None);
}

#[test]
fn the_start_at_boot_is_checked_against_the_ranges_low_end() {
    let keys = [(FLOOR, "1024"), (RANGE, "\"40000 50000\"")];
    let above = Test::new().file("etc/sysctl.d/50-a.conf", &format!("{FLOOR} = 40000\n"));
    assert_eq!(at_boot(above, &keys, FLOOR), None);
    let range_moved_first = Test::new().file(
        "etc/sysctl.d/50-a.conf",
        &format!("{RANGE} = 40000 60999\n{FLOOR} = 40000\n"),
    );
    let got = at_boot(range_moved_first, &keys, FLOOR);
    assert_eq!(
        got.map(|(v, f, l)| (v, (f, l))),
        Some(("40000".into(), boot_file("50-a.conf", 2)))
    );
}

#[test]
fn global_keys_at_boot_follow_the_kernels_bounds() {
    // fs.nr_open takes 64-2147483584 (fs/file_table.c), rmem_max at least SOCK_MIN_RCVBUF,
    // tcp_mem no minus sign (proc_doulongvec_minmax).
    for (key, value, want) in [
        ("fs.nr_open", "10", None),
        ("fs.nr_open", "2147483647", None),
        ("fs.nr_open", "64", Some("64")),
        ("net.core.rmem_max", "100", None),
        ("net.core.rmem_max", "4194304", Some("4194304")),
        ("net.core.wmem_max", "4096", None),
        ("net.ipv4.tcp_mem", "-1 2 3", None),
        ("fs.file-max", "-1", None),
    ] {
        let t = Test::new()
            .sysctl("net.core.wmem_max", "212992")
            .file("etc/sysctl.d/50-a.conf", &format!("{key} = {value}\n"));
        let want_at = want.map(|v| (v.to_string(), boot_file("50-a.conf", 1)));
        let wanted = if key == "net.ipv4.tcp_mem" {
            "\"190863 254485 381726\""
        } else {
            "\"1048576\""
        };
        let got = at_boot(t, &[(key, wanted)], key).map(|(v, f, l)| (v, (f, l)));
        assert_eq!(got, want_at, "{key} = {value}");
    }
}

#[test]
fn a_profile_whose_range_starts_below_the_start_is_refused_naming_both_keys() {
    let out = Test::new()
        .sysctl(FLOOR, "1024")
        .profile(
            "p.toml",
            "[profile]\nname = \"p\"\n\n[ports]\nlocal_range = [1000, 60999]\n",
        )
        .args(&["diff", "p.toml"])
        .run()
        .code(2)
        .stderr_has(RANGE)
        .stderr_has(FLOOR)
        .stderr_has("(1024)");
    // The start in the profile too: accepted, and the drop-in lowers it before the range is
    // written at boot.
    let both = "[profile]\nname = \"p\"\n\n[sysctl]\n\"net.ipv4.ip_unprivileged_port_start\" \
                = 1000\n\n[ports]\nlocal_range = [1000, 60999]\n";
    std::fs::write(out.root().join("../q.toml"), both).expect("write");
    let rendered = out.then(&["render", "q.toml"]).code(0);
    let dropin = rendered.stdout.as_str();
    let (floor_at, range_at) = (dropin.find(FLOOR), dropin.find(RANGE));
    assert!(
        floor_at.is_some() && range_at.is_some() && floor_at < range_at,
        "{dropin}"
    );
    // A start above the range's live low end is refused the same way.
    Test::new()
        .sysctl(FLOOR, "1024")
        .profile(
            "p.toml",
            "[profile]\nname = \"p\"\n\n[sysctl]\n\"net.ipv4.ip_unprivileged_port_start\" = 40000\n",
        )
        .args(&["diff", "p.toml"])
        .run()
        .code(2)
        .stderr_has(RANGE)
        .stderr_has("(32768)");
}

/// `apply --no-persist` in a private namespace: both keys in one profile, in either direction,
/// reach the kernel; a range below the start is refused before anything changes.
#[test]
fn apply_writes_both_keys_in_the_order_the_kernel_takes() {
    let lower = "[profile]\nname = \"lower\"\n\n[sysctl]\n\
                 \"net.ipv4.ip_unprivileged_port_start\" = 900\n\
                 \"net.ipv4.ip_local_port_range\" = \"1000 60999\"\n";
    let raise = "[profile]\nname = \"raise\"\n\n[sysctl]\n\
                 \"net.ipv4.ip_unprivileged_port_start\" = 45000\n\
                 \"net.ipv4.ip_local_port_range\" = \"45000 60999\"\n";
    let alone = "[profile]\nname = \"alone\"\n\n[sysctl]\n\
                 \"net.ipv4.ip_local_port_range\" = \"800 60999\"\n";
    let show = "cat /proc/sys/net/ipv4/ip_unprivileged_port_start \
                /proc/sys/net/ipv4/ip_local_port_range | tr '\\t\\n' '  '; echo";
    let script = format!(
        "set -u\n\
         \"$NP\" --root \"$ROOT\" apply --no-persist alone.toml >/dev/null 2>err; echo \"alone $?\"\n\
         echo \"after-alone $({show})\"\n\
         \"$NP\" --root \"$ROOT\" apply --no-persist lower.toml >/dev/null 2>>err; echo \"lower $?\"\n\
         echo \"after-lower $({show})\"\n\
         \"$NP\" --root \"$ROOT\" apply --no-persist raise.toml >/dev/null 2>>err; echo \"raise $?\"\n\
         echo \"after-raise $({show})\"\n\
         cat err >&2\n"
    );
    let files = [
        ("lower.toml", lower),
        ("raise.toml", raise),
        ("alone.toml", alone),
    ];
    let Some((out, _dir)) = in_netns(&script, &files) else {
        return;
    };
    let all = text(&out);
    let line = |name: &str| {
        all.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| panic!("no {name} line: {all}"))
    };
    assert_eq!(line("alone"), "2", "{all}");
    assert!(all.contains(FLOOR), "the refusal names the start: {all}");
    assert_eq!(line("after-alone"), "1024 32768 60999", "{all}");
    assert_eq!(line("lower"), "0", "{all}");
    assert_eq!(line("after-lower"), "900 1000 60999", "{all}");
    assert_eq!(line("raise"), "0", "{all}");
    assert_eq!(line("after-raise"), "45000 45000 60999", "{all}");
}
