//! Every bad profile exits 2 with one clear message naming the file:line or key, and nothing
//! under the root changes.

mod common;

use common::{Test, snapshot};

/// (profile text, the message the user must see)
const CASES: &[(&str, &str)] = &[
    // Malformed TOML: file, line, column and the offending text.
    (
        "[sysctl]\n\"net.core.somaxconn\" = = 5\n",
        "error: bad.toml:2:24: invalid TOML: extra `=`",
    ),
    ("[sysctl\n", "error: bad.toml:1:"),
    // An unknown section or field.
    (
        "[sysctls]\n\"net.core.somaxconn\" = 1\n",
        "error: bad.toml:1:",
    ),
    ("[profile]\nnmae = \"x\"\n", "unknown field `nmae`"),
    // Unknown key, with the nearest existing one.
    (
        "[sysctl]\n\"net.core.somaxcon\" = 1\n",
        "error: bad.toml:2: [sysctl] \"net.core.somaxcon\": unknown key: this kernel has no /proc/sys/net/core/somaxcon. Did you mean \"net.core.somaxconn\"?",
    ),
    // Keys that would escape proc/sys.
    (
        "[sysctl]\n\"net/../../etc/passwd\" = 1\n",
        "error: bad.toml:2: [sysctl] \"net/../../etc/passwd\": key has the character '/'",
    ),
    (
        "[sysctl]\n\"/etc/shadow\" = 1\n",
        "error: bad.toml:2: [sysctl] \"/etc/shadow\": key names are relative to /proc/sys",
    ),
    // Removed keys are explained.
    (
        "[sysctl]\n\"net.ipv4.tcp_tw_recycle\" = 1\n",
        "error: bad.toml:2: [sysctl] \"net.ipv4.tcp_tw_recycle\": removed in Linux 4.12",
    ),
    // Values of the wrong shape.
    (
        "[sysctl]\n\"net.ipv4.tcp_rmem\" = \"4096 87380\"\n",
        "error: bad.toml:2: [sysctl] \"net.ipv4.tcp_rmem\": expects 3 integers",
    ),
    (
        "[sysctl]\n\"net.ipv4.tcp_tw_reuse\" = true\n",
        "write 1 or 0 instead of true or false",
    ),
    (
        "[sysctl]\n\"net.core.somaxconn\" = { min = 10, max = 20 }\n",
        "give exactly one of value, min or max",
    ),
    // Port range bounds and order.
    (
        "[ports]\nlocal_range = [61000, 32768]\n",
        "error: bad.toml:2: [ports] local_range: the first port must be below the last",
    ),
    (
        "[ports]\nlocal_range = [1024, 70000]\n",
        "error: bad.toml:2: [ports] local_range: ports must lie in 1-65535",
    ),
    (
        "[ports]\nlocal_range = [1024, 65535]\n[sysctl]\n\"net.ipv4.ip_local_port_range\" = \"1024 65535\"\n",
        "is also set in [sysctl]; keep one",
    ),
    (
        "[ports]\nreserved = [\"9010-9000\"]\n",
        "error: bad.toml:2: [ports] reserved: port range \"9010-9000\" runs backwards",
    ),
    // limits: soft above hard, nofile above fs.nr_open, bad fields.
    (
        "[[limits]]\ndomain = \"*\"\ntype = \"soft\"\nitem = \"nofile\"\nvalue = 9000\n\
         [[limits]]\ndomain = \"*\"\ntype = \"hard\"\nitem = \"nofile\"\nvalue = 4000\n",
        "error: bad.toml:6: [[limits]] * nofile: soft 9000 is above hard 4000",
    ),
    (
        "[[limits]]\ndomain = \"*\"\ntype = \"-\"\nitem = \"nofile\"\nvalue = 2000000\n",
        "error: bad.toml:1: [[limits]] * nofile: hard nofile 2000000 is above fs.nr_open 1048576",
    ),
    (
        "[[limits]]\ndomain = \"*\"\ntype = \"-\"\nitem = \"nofile\"\nvalue = \"unlimited\"\n",
        "nofile cannot be unlimited",
    ),
    (
        "[[limits]]\ndomain = \"%admins\"\ntype = \"-\"\nitem = \"maxlogins\"\nvalue = 3\n",
        "error: bad.toml:2: [[limits]] %admins - maxlogins: domain \"%admins\"",
    ),
    (
        "[[limits]]\ndomain = \"2000:1000\"\ntype = \"-\"\nitem = \"nproc\"\nvalue = 3\n",
        "the range runs backwards; write 1000:2000",
    ),
    (
        "[[limits]]\ndomain = \"*\"\ntype = \"-\"\nitem = \"openfiles\"\nvalue = 3\n",
        "item \"openfiles\" is not a pam_limits item",
    ),
    (
        "[[limits]]\ndomain = \"*\"\ntype = \"-\"\nitem = \"nofile\"\n",
        "missing field `value`",
    ),
    // systemd
    (
        "[systemd]\ndefault_limit_nofile = \"65536:1024\"\n",
        "error: bad.toml:2: [systemd] default_limit_nofile: soft 65536 is above hard 1024",
    ),
    (
        "[systemd]\ndefault_limit_nofile = 4000000\n",
        "[systemd] default_limit_nofile: hard 4000000 is above fs.nr_open 1048576",
    ),
    // extends
    (
        "[profile]\nextends = [\"hgih-conn\"]\n",
        "bad.toml:2: extends: no profile file or shipped profile named \"hgih-conn\"; did you mean \"high-conn\"?",
    ),
    (
        "[profile]\nextends = [\"bad.toml\"]\n",
        "profiles extend each other in a cycle: bad.toml -> ",
    ),
    (
        "[profile]\nextends = [\"missing/parent.toml\"]\n",
        "bad.toml:2: extends: no file ",
    ),
];

#[test]
fn every_bad_profile_exits_2_with_a_clear_message() {
    assert!(CASES.len() >= 15);
    for (text, message) in CASES {
        let t = Test::new().profile("bad.toml", text);
        let before = snapshot(&t.root());
        let out = t.args(&["diff", "bad.toml"]).run();
        assert_eq!(out.code, 2, "{text}\n{}", out.stderr);
        assert!(
            out.stderr.contains(message),
            "profile:\n{text}\nwant: {message}\ngot:  {}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "{text}: stdout {}", out.stdout);
        assert_eq!(snapshot(&out.root()), before, "{text}: root changed");
    }
}

#[test]
fn a_toml_error_shows_the_line_and_a_caret() {
    Test::new()
        .profile("bad.toml", "[sysctl]\n\"net.core.somaxconn\" = = 5\n")
        .args(&["diff", "bad.toml"])
        .run()
        .code(2)
        .stderr_has("  \"net.core.somaxconn\" = = 5\n                         ^");
}

#[test]
fn several_problems_are_all_reported() {
    Test::new()
        .profile(
            "bad.toml",
            "[sysctl]\n\"net.ipv4.tcp_tw_recycle\" = 1\n\"net.ipv4.tcp_rmem\" = 5\n",
        )
        .args(&["check", "bad.toml"])
        .run()
        .code(2)
        .stderr_has("tcp_tw_recycle")
        .stderr_has("tcp_rmem")
        .stderr_has("2 problems; nothing was changed");
}

#[test]
fn unknown_shipped_name_suggests_the_nearest() {
    Test::new()
        .args(&["diff", "high-con"])
        .run()
        .code(2)
        .stderr_has(
            "no profile file or shipped profile named \"high-con\"; did you mean \"high-conn\"?",
        );
}

#[test]
fn missing_profile_file_names_the_path() {
    Test::new()
        .args(&["diff", "nope.toml"])
        .run()
        .code(2)
        .stderr("error: cannot read nope.toml: No such file or directory (os error 2)\n");
}

#[test]
fn bad_usage_exits_2() {
    Test::new().args(&["diff"]).run().code(2);
    Test::new().args(&["frobnicate"]).run().code(2);
}

/// Issue 16, break 10: profiles that validation accepted although applying them would lock
/// logins out, overflow pam_limits' line buffer or the kernel's module name; and errors that
/// echoed a huge value whole.
#[test]
fn lockout_values_and_oversized_names_are_refused_with_short_errors() {
    let long = |c: &str, n: usize| c.repeat(n);
    let cases: Vec<(String, &str)> = vec![
        (
            "[[limits]]\ndomain = \"*\"\ntype = \"-\"\nitem = \"nofile\"\nvalue = 0\n".into(),
            "nofile 0 would lock logins out",
        ),
        (
            "[[limits]]\ndomain = \"*\"\ntype = \"soft\"\nitem = \"nofile\"\nvalue = 1\n".into(),
            "give at least 64",
        ),
        (
            format!(
                "[[limits]]\ndomain = \"{}\"\ntype = \"-\"\nitem = \"nofile\"\nvalue = 65536\n",
                long("u", 20_000)
            ),
            "is 20000 characters long; a user or group name has at most 255",
        ),
        (
            format!("[modules]\nload = [\"{}\"]\n", long("m", 100_000)),
            "is 100000 characters long; a kernel module name has at most 55",
        ),
        (
            format!(
                "[sysctl]\n\"net.core.somaxconn\" = \"{}\"\n",
                long("9x", 100_000)
            ),
            "(200002 characters)",
        ),
        (
            format!(
                "[[limits]]\ndomain = \"*\"\ntype = \"-\"\nitem = \"nofile\"\nvalue = \"{}\"\n",
                long("v", 200_000)
            ),
            "(200002 characters)",
        ),
    ];
    for (text, message) in &cases {
        let t = Test::new().profile("bad.toml", text);
        let before = snapshot(&t.root());
        let out = t.args(&["diff", "bad.toml"]).run();
        let head: String = text.chars().take(80).collect();
        assert_eq!(out.code, 2, "{head}\n{}", out.stderr);
        assert!(
            out.stderr.contains(message),
            "profile: {head}\nwant: {message}\ngot:  {}",
            out.stderr
        );
        assert!(
            out.stderr.len() < 2_000,
            "{head}: the error echoes the value ({} bytes)",
            out.stderr.len()
        );
        assert_eq!(snapshot(&out.root()), before, "{head}: root changed");
    }
    // 64 itself, and a module name of 55, pass validation.
    Test::new()
        .profile(
            "ok.toml",
            &format!(
                "[[limits]]\ndomain = \"*\"\ntype = \"-\"\nitem = \"nofile\"\nvalue = 64\n\
                 [modules]\nload = [\"{}\"]\n",
                long("m", 55)
            ),
        )
        .args(&["render", "ok.toml"])
        .run()
        .code(0);
}

/// Issue 18: `maxlogins 0` / `maxsyslogins 0` make pam_limits refuse every session they match
/// (tests/oracle_limits.rs shows it with the real module): `apply` refuses such a profile,
/// naming the line, and writes nothing; 1 is a limit, not a lockout, and passes.
#[test]
fn maxlogins_zero_is_refused_as_a_lockout() {
    for item in ["maxlogins", "maxsyslogins"] {
        let text = format!(
            "[profile]\nname = \"t\"\n\n[[limits]]\ndomain = \"bob\"\ntype = \"-\"\nitem = \
             \"{item}\"\nvalue = 0\n"
        );
        let t = Test::new().profile("lock.toml", &text);
        let before = snapshot(&t.root());
        let out = t
            .args(&["apply", "lock.toml"])
            .run()
            .code(2)
            .stderr_has(&format!(
                "lock.toml:8: [[limits]] bob - {item}: {item} 0 would lock logins out"
            ));
        assert_eq!(snapshot(&out.root()), before, "{item}: root changed");
        Test::new()
            .profile("one.toml", &text.replace("value = 0", "value = 1"))
            .args(&["render", "one.toml"])
            .run()
            .code(0)
            .stdout_has(&format!("bob          -     {item}"));
    }
}

/// A site file that lowers fs.nr_open at boot: netprofile holds its `min` only from
/// netprofile.service on, and systemd starts services before that with DefaultLimitNOFILE
/// above it (every service failed on a Debian 13 guest: tests/vm/README.md). apply refuses,
/// says why and what to do, and changes nothing; an exact fs.nr_open in the profile (written to
/// the drop-in, which systemd-sysctl applies after 10-site.conf) is accepted.
#[test]
fn a_boot_file_lowering_nr_open_below_default_limit_nofile_is_refused() {
    let exact = "[profile]\nname = \"exact\"\n\n[sysctl]\n\"fs.nr_open\" = 1048576\n\n\
                 [systemd]\ndefault_limit_nofile = 1048576\n";
    let t = Test::new()
        .file("etc/sysctl.d/10-site.conf", "fs.nr_open = 524288\n")
        .profile("exact.toml", exact);
    let before = common::system_files(&t.root());
    let out = t
        .args(&["apply", "high-conn"])
        .run()
        .code(2)
        .stderr_has("[systemd] default_limit_nofile: hard 1048576 is above fs.nr_open 524288")
        .stderr_has("as an exact value where a boot file sets it lower");
    assert_eq!(out.system_files(), before, "nothing may change");
    let out = out.then(&["diff", "exact.toml"]).code(1);
    assert!(!out.stderr.contains("above fs.nr_open"), "{}", out.stderr);
    // systemd 252 (Debian 12) starts those services anyway: the same root there is not refused.
    let out = Test::new()
        .file("etc/sysctl.d/10-site.conf", "fs.nr_open = 524288\n")
        .file(
            "var/lib/dpkg/status",
            "Package: systemd\nStatus: install ok installed\nVersion: 252.39-1~deb12u2\n",
        )
        .args(&["diff", "high-conn"])
        .run()
        .code(1);
    assert!(!out.stderr.contains("above fs.nr_open"), "{}", out.stderr);
}
