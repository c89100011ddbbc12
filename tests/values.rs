//! Honest values: every value checked before anything is touched, overrides refused or recorded,
//! persisted files the same on every host, messages that say what is wrong. What a user sees,
//! on temporary roots and (for what the kernel itself refuses) in a private namespace.

mod common;

use common::{Test, in_netns, snapshot, text};

/// Runs `apply` (not a dry run) with `profile` and asserts exit 2, every `want` in stderr, and
/// the whole root (state included) byte for byte as before.
fn refused(profile: &str, want: &[&str]) {
    refused_on(Test::new(), profile, want);
}

/// Every file under the root, state included, except the lock file apply takes before it reads
/// the live state (it holds only the holder's pid).
fn files(root: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    snapshot(root)
        .into_iter()
        .filter(|(p, _)| !p.ends_with("run/netprofile.lock"))
        .collect()
}

fn refused_on(test: Test, profile: &str, want: &[&str]) {
    let test = test.profile("p.toml", profile);
    let before = files(&test.root());
    let out = test.args(&["apply", "p.toml"]).run();
    assert_eq!(out.code, 2, "{profile}\n--- stderr\n{}", out.stderr);
    for w in want {
        assert!(
            out.stderr.contains(w),
            "{profile}\nstderr lacks {w:?}\n--- stderr\n{}",
            out.stderr
        );
    }
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert_eq!(
        files(&out.root()),
        before,
        "{profile}: something was touched"
    );
}

#[test]
fn kernel_refused_values_exit_2_with_the_key_and_its_range() {
    let cases: &[(&str, &str)] = &[
        (
            "\"net.core.somaxconn\" = -5",
            "p.toml:2: [sysctl] \"net.core.somaxconn\": -5 is out of range; valid: 0-2147483647 \
             (connections)",
        ),
        (
            "\"net.ipv4.tcp_tw_reuse\" = 7",
            "p.toml:2: [sysctl] \"net.ipv4.tcp_tw_reuse\": 7 is out of range; valid: 0 (off), 1 \
             (on for outgoing connections), 2 (loopback only)",
        ),
        (
            "\"net.ipv4.ip_local_port_range\" = \"60000 1024\"",
            "[sysctl] \"net.ipv4.ip_local_port_range\": the first port must be below the last, \
             got \"60000 1024\" (the kernel refuses a reversed range); write \"1024 60000\"",
        ),
        (
            "\"net/ipv4/ip_local_port_range\" = [80, 1024]",
            "the range would start at 80, below the live net.ipv4.ip_unprivileged_port_start \
             (1024): the kernel refuses such a range (EINVAL)",
        ),
        (
            "\"net.ipv4.tcp_keepalive_probes\" = 300",
            "[sysctl] \"net.ipv4.tcp_keepalive_probes\": 300 is out of range; valid: 1-127 \
             (probes)",
        ),
        (
            "\"net.ipv4.tcp_rmem\" = \"0 87380 16777216\"",
            "valid: three integers \"MIN DEFAULT MAX\", each >= 1, not decreasing (bytes)",
        ),
        (
            "\"net.core.somaxconn\" = 2147483648",
            "2147483648 is out of range; valid: 0-2147483647",
        ),
        (
            "\"net.core.somaxconn\" = { min = -5 }",
            "min -5 is out of range; valid: 0-2147483647",
        ),
    ];
    for (line, want) in cases {
        refused(&format!("[sysctl]\n{line}\n"), &[want]);
    }
}

#[test]
fn nonsense_the_kernel_accepts_is_refused_too() {
    // Linux 6.18 takes each of these without complaint (checked as uid 65534 in a namespace).
    let cases: &[(&str, &str)] = &[
        (
            "\"net.ipv4.tcp_fin_timeout\" = -5",
            "\"net.ipv4.tcp_fin_timeout\": -5 is out of range; valid: 1-2147483 (seconds)",
        ),
        (
            "\"net.ipv4.tcp_max_syn_backlog\" = -5",
            "-5 is out of range; valid: 1-2147483647 (connections)",
        ),
        (
            "\"net.ipv4.tcp_abort_on_overflow\" = 5",
            "\"net.ipv4.tcp_abort_on_overflow\": 5 is out of range; valid: 0 or 1",
        ),
        (
            "\"net.ipv4.tcp_syncookies\" = 5",
            "valid: 0 (off), 1 (when the SYN queue overflows), 2 (always)",
        ),
        (
            "\"net.ipv4.tcp_rmem\" = \"16777216 87380 4096\"",
            "decreases; the fields are MIN DEFAULT MAX",
        ),
    ];
    for (line, want) in cases {
        refused(&format!("[sysctl]\n{line}\n"), &[want]);
    }
}

#[test]
fn an_unavailable_congestion_control_is_refused_with_the_list() {
    refused_on(
        Test::new()
            .sysctl("net.ipv4.tcp_congestion_control", "cubic")
            .sysctl("net.ipv4.tcp_available_congestion_control", "reno cubic"),
        "[sysctl]\n\"net.ipv4.tcp_congestion_control\" = \"bbr\"\n",
        &[
            "p.toml:2: [sysctl] \"net.ipv4.tcp_congestion_control\": \"bbr\" is not available on \
           this kernel: net.ipv4.tcp_available_congestion_control lists reno, cubic. Load its \
           module first (e.g. `modprobe tcp_bbr`) or choose one of those",
        ],
    );
    // An available one plans normally.
    Test::new()
        .sysctl("net.ipv4.tcp_congestion_control", "cubic")
        .sysctl("net.ipv4.tcp_available_congestion_control", "reno cubic")
        .profile(
            "p.toml",
            "[sysctl]\n\"net.ipv4.tcp_congestion_control\" = \"reno\"\n",
        )
        .args(&["diff", "p.toml"])
        .run()
        .code(1)
        .stdout_has("net.ipv4.tcp_congestion_control  cubic");
}

#[test]
fn one_setting_under_two_spellings_is_refused() {
    refused(
        "[sysctl]\n\"net/core/somaxconn\" = 1024\n\"net.core.somaxconn\" = 4096\n",
        &[
            "p.toml:3: [sysctl] \"net.core.somaxconn\": the same setting as \
           \"net/core/somaxconn\" on line 2; keep one of the two spellings",
        ],
    );
    refused(
        "[sysctl]\n\"net.nf_conntrack_max\" = 1\n\"net.netfilter.nf_conntrack_max\" = 2\n",
        &[
            "p.toml:3: [sysctl] \"net.netfilter.nf_conntrack_max\": the same setting as \
           \"net.nf_conntrack_max\" on line 2",
        ],
    );
    refused(
        "[sysctl]\n\"net.ipv4.ip_local_port_range\" = \"2000 3000\"\n[ports]\n\
         local_range = [1024, 65535]\n",
        &["[ports] local_range: net.ipv4.ip_local_port_range is also set in [sysctl]; keep one"],
    );
}

#[test]
fn errors_come_in_line_order() {
    // Key order (somaxconn before tcp_tw_reuse) is not line order.
    let out = Test::new()
        .profile(
            "p.toml",
            "[sysctl]\n\"net.ipv4.tcp_tw_reuse\" = 7\n\"net.ipv4.tcp_fin_timeout\" = -1\n\
             \"net.core.somaxconn\" = -5\n",
        )
        .args(&["diff", "p.toml"])
        .run()
        .code(2);
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(lines.len(), 3, "{}", out.stderr);
    assert!(lines[0].starts_with("error: p.toml:2:"), "{}", out.stderr);
    assert!(lines[1].starts_with("error: p.toml:3:"), "{}", out.stderr);
    assert!(lines[2].starts_with("error: p.toml:4:"), "{}", out.stderr);
    assert!(
        out.stderr.ends_with("3 problems; nothing was changed\n"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_integer_too_large_names_the_range() {
    let out = Test::new()
        .profile(
            "p.toml",
            "[sysctl]\n\"net.core.somaxconn\" = 99999999999999999999\n",
        )
        .args(&["diff", "p.toml"])
        .run()
        .code(2)
        .stderr(
            "error: p.toml:2: \"net.core.somaxconn\": 99999999999999999999 is too large: \
             net.core.somaxconn takes 0-2147483647 (connections)\n",
        );
    assert!(!out.stderr.contains("i128"));
}

#[test]
fn extends_of_a_system_file_says_it_is_not_a_profile() {
    Test::new()
        .profile("p.toml", "[profile]\nextends = [\"../../etc/passwd\"]\n")
        .args(&["diff", "p.toml"])
        .run()
        .code(2)
        .stderr_has(
            "error: p.toml:2: extends: \"../../etc/passwd\" is not a profile: a profile file's \
             name ends in .toml",
        );
}

#[test]
fn every_positional_argument_has_help() {
    for (args, want) in [
        (&["diff", "--help"][..], "<PROFILE>  A profile file"),
        (&["check", "--help"][..], "<PROFILE>  A profile file"),
        (&["apply", "--help"][..], "[PROFILE]  A profile file"),
        (
            &["rollback", "--help"][..],
            "[GENERATION]  The generation to undo",
        ),
    ] {
        // clap puts the help beside the name, or on the next line when any option's help is
        // long; either way the help follows the name in the Arguments section.
        let (name, help) = want.split_once("  ").expect("name and help");
        let out = Test::new().args(args).run().code(0);
        let section = out
            .stdout
            .split("Arguments:")
            .nth(1)
            .and_then(|rest| rest.split("Options:").next())
            .unwrap_or_default();
        let words: Vec<&str> = section.split_whitespace().collect();
        let at = words.iter().position(|w| *w == name);
        assert!(
            at.is_some_and(|i| words[i + 1..].join(" ").starts_with(help.trim())),
            "{args:?}: {name} lacks its help {help:?}:\n{}",
            out.stdout
        );
    }
}

const LIMITS: &str = r#"
[sysctl]
"net.core.somaxconn" = 65535

[[limits]]
domain = "*"
type = "-"
item = "nofile"
value = 65536
"#;

#[test]
fn a_later_limits_file_is_refused_then_accepted_and_reported_as_overridden() {
    let ops = "etc/security/limits.d/95-ops.conf";
    let test = Test::new().file(ops, "*   soft nofile 4096\n");
    refused_on(
        test,
        LIMITS,
        &[
            "apply refused: 1 file line that netprofile does not own would override what it \
             sets",
            "/etc/security/limits.d/95-ops.conf:1 sets * soft nofile to 4096 (netprofile wants \
             65536), and it is read after netprofile's drop-in, so at login the value would be \
             4096. Remove that line or the file, or pass --allow-override",
            "Nothing was changed",
        ],
    );
    let out = Test::new()
        .file(ops, "*   soft nofile 4096\n")
        .profile("p.toml", LIMITS)
        .args(&["apply", "-q", "--allow-override", "p.toml"])
        .run()
        .code(0)
        .stderr_has(
            "note: 1 overridden setting recorded as accepted (--allow-override); check and \
             status report it as overridden, not as drift",
        )
        .then(&["check", "p.toml"])
        .code(0)
        .stdout("in sync: 1 key as wanted, 1 overridden by other files (accepted)\n");
    // A second apply has nothing to do, and says so truthfully.
    let out = out.then(&["apply", "p.toml"]).code(0).stdout(
        "nothing to do: in sync: 1 key as wanted, 1 overridden by other files (accepted)\n",
    );
    out.then(&["status"]).code(0).stdout_has(
        "* soft nofile  overridden at login by /etc/security/limits.d/95-ops.conf:1 (4096, \
         netprofile wants 65536; accepted with --allow-override)",
    );
}

#[test]
fn a_later_systemd_drop_in_is_refused() {
    let late = "etc/systemd/system.conf.d/99-late.conf";
    let profile = "[systemd]\ndefault_limit_nofile = 1048576\n";
    refused_on(
        Test::new().file(late, "[Manager]\nDefaultLimitNOFILE=4096\n"),
        profile,
        &[
            "/etc/systemd/system.conf.d/99-late.conf:2 sets DefaultLimitNOFILE to 4096 \
           (netprofile wants 1048576), and it is read after netprofile's drop-in, so at service \
           start the value would be 4096",
        ],
    );
    Test::new()
        .file(late, "[Manager]\nDefaultLimitNOFILE=4096\n")
        .profile("p.toml", profile)
        .args(&["apply", "-q", "--allow-override", "p.toml"])
        .run()
        .code(0)
        .then(&["check", "p.toml"])
        .code(0);
}

#[test]
fn a_later_sysctl_file_is_refused_and_an_unaccepted_one_is_drift() {
    let late = "etc/sysctl.d/99-late.conf";
    refused_on(
        Test::new().file(late, "net.core.somaxconn = 1024\n"),
        LIMITS,
        &[
            "/etc/sysctl.d/99-late.conf:1 sets net.core.somaxconn to 1024 (netprofile wants \
           65535), and it is read after netprofile's drop-in, so at boot the value would be \
           1024",
        ],
    );
    // Applied cleanly, then someone adds a later file: check is not "in sync" any more.
    let out = Test::new()
        .profile("p.toml", LIMITS)
        .args(&["apply", "-q", "p.toml"])
        .run()
        .code(0)
        .then(&["check", "p.toml"])
        .code(0);
    common::write(&out.root().join(late), "net.core.somaxconn = 1024\n");
    out.then(&["check", "p.toml"])
        .code(1)
        .stdout(
            "overridden: 1 setting overridden by files netprofile does not own \
             (net.core.somaxconn by /etc/sysctl.d/99-late.conf:1)\n",
        )
        .then(&["check", "--json", "p.toml"])
        .code(1)
        .stdout_has("\"in_sync\": false")
        .stdout_has("\"file\": \"/etc/sysctl.d/99-late.conf\"")
        .stdout_has("\"accepted\": false")
        .then(&["apply", "--allow-override", "-q", "p.toml"])
        .code(0)
        .stdout("nothing to do: in sync: 1 key as wanted, 1 overridden by other files (accepted)\n")
        .then(&["check", "p.toml"])
        .code(0)
        .then(&["check", "--json", "p.toml"])
        .code(0)
        .stdout_has("\"in_sync\": true")
        .stdout_has("\"accepted\": true")
        .then(&["status"])
        .stdout_has("net.core.somaxconn  overridden at boot by /etc/sysctl.d/99-late.conf:1");
}

const RAISE: &str = r#"
[sysctl]
"net.ipv4.tcp_max_syn_backlog" = { min = 4096 }
"net.core.somaxconn" = 65535
"#;

#[test]
fn persisted_files_are_the_same_on_every_host() {
    let dropin = "etc/sysctl.d/90-netprofile.conf";
    let mut files = Vec::new();
    for live in ["1024", "8192", "262144"] {
        let out = Test::new()
            .sysctl("net.ipv4.tcp_max_syn_backlog", live)
            .profile("p.toml", RAISE)
            .args(&["apply", "-q", "p.toml"])
            .run()
            .code(0);
        files.push(std::fs::read_to_string(out.root().join(dropin)).unwrap());
    }
    assert_eq!(files[0], files[1]);
    assert_eq!(files[1], files[2]);
    // The min is not in the drop-in: systemd-sysctl would *set* it at boot, lowering a host
    // whose value is above it. netprofile.service holds it instead.
    assert!(
        files[0].ends_with("\nnet.core.somaxconn = 65535\n")
            && !files[0].contains("tcp_max_syn_backlog"),
        "{}",
        files[0]
    );
}

#[test]
fn a_later_rise_above_a_min_is_not_drift() {
    let out = Test::new()
        .sysctl("net.ipv4.tcp_max_syn_backlog", "1024")
        .profile("p.toml", RAISE)
        .args(&["apply", "-q", "p.toml"])
        .run()
        .code(0);
    common::write(
        &out.root().join("proc/sys/net/ipv4/tcp_max_syn_backlog"),
        "65536\n",
    );
    out.then(&["check", "p.toml"])
        .code(0)
        .stdout("in sync: 2 keys as wanted\n")
        .then(&["status"])
        .code(0)
        .stdout_has("net.ipv4.tcp_max_syn_backlog  65536  4096      ok\n")
        .stdout_has("2 managed keys, 0 drifted");
}

const UNIT_ENABLED: &str = "etc/systemd/system/multi-user.target.wants/netprofile.service";

#[test]
fn a_lower_boot_file_does_not_override_a_min_held_by_the_boot_unit() {
    // systemd-sysctl sets 1024 at boot, then netprofile.service (ordered after it) raises the
    // key to its min again: no override, apply is not refused, and nothing warns of a lowering.
    let out = Test::new()
        .sysctl("net.ipv4.tcp_max_syn_backlog", "8192")
        .file(
            "etc/sysctl.d/95-low.conf",
            "net.ipv4.tcp_max_syn_backlog = 1024\n",
        )
        .profile("p.toml", RAISE)
        .args(&["diff", "p.toml"])
        .run()
        .code(1)
        .stdout_has("net.ipv4.tcp_max_syn_backlog  8192  1024 (/etc/sysctl.d/95-low.conf:1)")
        .stderr(
            "warning: netprofile.service holds the min/max keys (net.ipv4.tcp_max_syn_backlog) \
             at boot, not the sysctl drop-in, and it is not enabled \
             (/etc/systemd/system/multi-user.target.wants/netprofile.service is absent): run \
             `systemctl enable netprofile.service`\n",
        );
    assert!(!out.stdout.contains("overridden"), "{}", out.stdout);
    let out = common::Test::new()
        .sysctl("net.ipv4.tcp_max_syn_backlog", "8192")
        .file(
            "etc/sysctl.d/95-low.conf",
            "net.ipv4.tcp_max_syn_backlog = 1024\n",
        )
        .file(UNIT_ENABLED, "")
        .profile("p.toml", RAISE)
        .args(&["diff", "p.toml"])
        .run()
        .code(1)
        .stderr("")
        .then(&["apply", "-q", "p.toml"])
        .code(0)
        .stderr("")
        .then(&["check", "p.toml"])
        .code(0);
    assert_eq!(
        std::fs::read_to_string(out.root().join("proc/sys/net/ipv4/tcp_max_syn_backlog")).unwrap(),
        "8192\n",
        "a min never lowers the live value"
    );
}

fn proc_key(root: &std::path::Path, key: &str) -> String {
    let rel = format!("proc/sys/{}", key.replace('.', "/"));
    std::fs::read_to_string(root.join(rel)).unwrap()
}

fn reboot_to(root: &std::path::Path, key: &str, value: &str) {
    let rel = format!("proc/sys/{}", key.replace('.', "/"));
    common::write(&root.join(rel), &format!("{value}\n"));
}

const BOUNDS: &str = r#"
[sysctl]
"net.core.somaxconn" = 65535
"net.ipv4.tcp_max_syn_backlog" = { min = 4096 }
"net.core.netdev_max_backlog" = { min = 2000 }
"net.ipv4.tcp_fin_timeout" = { max = 30 }
"#;

#[test]
fn the_boot_unit_raises_a_min_below_its_bound_and_rollback_undoes_it() {
    let out = Test::new()
        .sysctl("net.ipv4.tcp_max_syn_backlog", "1024")
        .file(UNIT_ENABLED, "")
        .profile("p.toml", BOUNDS)
        .args(&["apply", "-q", "p.toml"])
        .run()
        .code(0);
    assert_eq!(
        proc_key(&out.root(), "net.ipv4.tcp_max_syn_backlog"),
        "4096\n"
    );
    // A reboot: the kernel's default is back for one key, boot raised another above its min.
    reboot_to(&out.root(), "net.ipv4.tcp_max_syn_backlog", "1024");
    reboot_to(&out.root(), "net.core.netdev_max_backlog", "50000");
    let out = out
        .then(&["check", "p.toml"])
        .code(1)
        .then(&["apply", "--pending"])
        .code(0)
        .stdout(
            "set net.ipv4.tcp_max_syn_backlog = 4096\n\
             applied generation 2: 1 key brought back to its min/max bound\n",
        );
    assert_eq!(
        proc_key(&out.root(), "net.ipv4.tcp_max_syn_backlog"),
        "4096\n"
    );
    assert_eq!(
        proc_key(&out.root(), "net.core.netdev_max_backlog"),
        "50000\n",
        "a value above its min is never lowered"
    );
    let out = out
        .then(&["check", "p.toml"])
        .code(0)
        .then(&["status"])
        .code(0)
        .stdout_has("0 drifted")
        .then(&["apply", "--pending"])
        .code(0)
        .stdout("nothing to do: the min/max keys hold their bounds\n")
        .then(&["rollback"])
        .code(0);
    assert_eq!(
        proc_key(&out.root(), "net.ipv4.tcp_max_syn_backlog"),
        "1024\n",
        "rollback undoes the boot unit's raise"
    );
}

#[test]
fn the_boot_unit_lowers_a_max_above_its_bound_only() {
    let out = Test::new()
        .file(UNIT_ENABLED, "")
        .profile("p.toml", BOUNDS)
        .args(&["apply", "-q", "p.toml"])
        .run()
        .code(0);
    assert_eq!(proc_key(&out.root(), "net.ipv4.tcp_fin_timeout"), "30\n");
    let dropin =
        std::fs::read_to_string(out.root().join("etc/sysctl.d/90-netprofile.conf")).unwrap();
    assert!(!dropin.contains("tcp_fin_timeout"), "{dropin}");
    reboot_to(&out.root(), "net.ipv4.tcp_fin_timeout", "60");
    let out = out.then(&["apply", "--pending"]).code(0).stdout(
        "set net.ipv4.tcp_fin_timeout = 30\n\
         applied generation 2: 1 key brought back to its min/max bound\n",
    );
    reboot_to(&out.root(), "net.ipv4.tcp_fin_timeout", "10");
    let out = out
        .then(&["apply", "--pending"])
        .code(0)
        .stdout("nothing to do: the min/max keys hold their bounds\n");
    assert_eq!(
        proc_key(&out.root(), "net.ipv4.tcp_fin_timeout"),
        "10\n",
        "a value below its max is never raised"
    );
}

#[test]
fn a_no_persist_apply_is_not_held_at_boot() {
    let out = Test::new()
        .sysctl("net.ipv4.tcp_max_syn_backlog", "1024")
        .profile("p.toml", RAISE)
        .args(&["apply", "-q", "--no-persist", "p.toml"])
        .run()
        .code(0);
    reboot_to(&out.root(), "net.ipv4.tcp_max_syn_backlog", "1024");
    let out = out
        .then(&["apply", "--pending"])
        .code(0)
        .stdout("nothing to do: no pending keys\n");
    assert_eq!(
        proc_key(&out.root(), "net.ipv4.tcp_max_syn_backlog"),
        "1024\n"
    );
}

#[test]
fn optional_keys_are_persisted_as_ignorable() {
    let out = Test::new()
        .profile(
            "p.toml",
            "[sysctl]\n\"net.netfilter.nf_conntrack_max\" = { value = 1048576, optional = true \
             }\n\"net.core.somaxconn\" = 65535\n",
        )
        .args(&["apply", "-q", "p.toml"])
        .run()
        .code(0);
    let text = std::fs::read_to_string(out.root().join("etc/sysctl.d/90-netprofile.conf")).unwrap();
    assert!(
        text.contains("\n-net.netfilter.nf_conntrack_max = 1048576\n"),
        "{text}"
    );
}

// --- the real kernel, in a private user + network namespace as uid 65534 ---

const NP: &str = r#"np() { "$NP" --root "$ROOT" "$@"; }"#;

#[test]
fn in_a_namespace_kernel_refused_values_touch_nothing() {
    let bad = [
        "\"net.core.somaxconn\" = -5",
        "\"net.ipv4.tcp_tw_reuse\" = 7",
        "\"net.ipv4.ip_local_port_range\" = \"60000 1024\"",
        "\"net.ipv4.tcp_congestion_control\" = \"nope\"",
        "\"net.ipv4.tcp_keepalive_probes\" = 300",
    ];
    let files: Vec<(String, String)> = bad
        .iter()
        .enumerate()
        .map(|(i, line)| {
            (
                format!("bad{i}.toml"),
                // A good key first, so that a refusal is not merely "the first write failed".
                if i == 0 {
                    format!("[sysctl]\n{line}\n")
                } else {
                    format!("[sysctl]\n\"net.core.somaxconn\" = 8192\n{line}\n")
                },
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let script = format!(
        r#"{NP}
        k() {{ cat /proc/sys/net/core/somaxconn /proc/sys/net/ipv4/tcp_tw_reuse \
              /proc/sys/net/ipv4/ip_local_port_range /proc/sys/net/ipv4/tcp_congestion_control \
              /proc/sys/net/ipv4/tcp_keepalive_probes | tr '\n\t' '| '; }}
        before=$(k)
        for i in 0 1 2 3 4; do
            np apply --no-persist bad$i.toml 2>err$i; echo "code$i=$?"
            [ "$(k)" = "$before" ] && echo "same$i=yes"
            sed "s/^/err$i: /" err$i
        done
        "#
    );
    let Some((out, _dir)) = in_netns(&script, &refs) else {
        return;
    };
    let all = text(&out);
    for i in 0..bad.len() {
        assert!(all.contains(&format!("code{i}=2")), "{all}");
        assert!(all.contains(&format!("same{i}=yes")), "{all}");
    }
    for want in [
        "err0: error: bad0.toml:2: [sysctl] \"net.core.somaxconn\": -5 is out of range; valid: \
         0-2147483647",
        "err1: error: bad1.toml:3: [sysctl] \"net.ipv4.tcp_tw_reuse\": 7 is out of range",
        "err2: error: bad2.toml:3: [sysctl] \"net.ipv4.ip_local_port_range\": the first port \
         must be below the last",
        "err3: error: bad3.toml:3: [sysctl] \"net.ipv4.tcp_congestion_control\": \"nope\" is not \
         available on this kernel",
        "err4: error: bad4.toml:3: [sysctl] \"net.ipv4.tcp_keepalive_probes\": 300 is out of \
         range; valid: 1-127",
    ] {
        assert!(all.contains(want), "lacks {want:?}\n{all}");
    }
}

#[test]
fn in_a_namespace_global_keys_are_skipped_as_global() {
    let profile = "[sysctl]\n\"net.core.busy_poll\" = 50\n\"net.core.default_qdisc\" = \"fq\"\n\
                   \"net.core.netdev_tstamp_prequeue\" = 1\n\"net.core.somaxconn\" = 8192\n";
    let script = format!("{NP}\nnp diff p.toml; echo \"code=$?\"");
    let Some((out, _dir)) = in_netns(&script, &[("p.toml", profile)]) else {
        return;
    };
    let all = text(&out);
    assert!(all.contains("code=1"), "{all}");
    assert!(!all.contains("this kernel has no"), "{all}");
    for key in [
        "net.core.busy_poll",
        "net.core.default_qdisc",
        "net.core.netdev_tstamp_prequeue",
    ] {
        let row = all
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no row for {key}\n{all}"));
        assert!(row.ends_with("skip (global)"), "{row}\n{all}");
    }
    assert!(
        all.contains(
            "warning: net.core.netdev_tstamp_prequeue is not in this private network namespace: \
             Linux keeps it only in the initial namespace (a global key), so it was skipped"
        ),
        "{all}"
    );
}

#[test]
fn catalogue_scopes_match_a_private_namespace() {
    // A netns key exists in a fresh namespace and can be written there; a global one is absent
    // or read-only. Keys from modules that are not loaded (conntrack) are allowed to be absent.
    let keys = netprofile_catalogue();
    let mut script = String::new();
    for (key, scope) in &keys {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        script.push_str(&format!(
            "if [ -e {path} ]; then if [ -w {path} ]; then echo \"{key} {scope} rw\"; \
             else echo \"{key} {scope} ro\"; fi; else echo \"{key} {scope} absent\"; fi\n"
        ));
    }
    let Some((out, _dir)) = in_netns(&script, &[]) else {
        return;
    };
    let all = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut wrong = Vec::new();
    for line in all.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [key, scope, seen] = f[..] else { continue };
        let module = key.starts_with("net.netfilter.");
        let ok = match scope {
            "netns" => seen == "rw" || (module && seen == "absent"),
            _ => seen != "rw",
        };
        if !ok {
            wrong.push(line.to_string());
        }
    }
    assert!(
        wrong.is_empty(),
        "scope differs from the kernel: {wrong:#?}"
    );
    assert_eq!(all.lines().count(), keys.len(), "{all}");
}

/// (name, scope) of every catalogued key, from docs/keys.md (which a unit test keeps equal to
/// the catalogue).
fn netprofile_catalogue() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/keys.md"))
        .expect("docs/keys.md");
    doc.lines()
        .take_while(|l| !l.starts_with("## Removed"))
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split(" | ").collect();
            let name = cells.first()?.trim_start_matches("| `").split('`').next()?;
            Some((name.to_string(), cells.get(4)?.to_string()))
        })
        .collect()
}
