//! `netprofile diff`, `check` and `profiles` on temporary roots: what a user sees.

mod common;

use common::{Test, snapshot};

const SMALL: &str = r#"
[profile]
name = "small"
description = "two keys and a limit"

[sysctl]
"net.core.somaxconn" = 65535
"net.ipv4.tcp_max_syn_backlog" = { min = 2048 }

[[limits]]
domain = "*"
type = "-"
item = "nofile"
value = 65536
"#;

#[test]
fn diff_shows_table_and_file_diffs_and_exits_1() {
    Test::new()
        .profile("small.toml", SMALL)
        .args(&["diff", "small.toml"])
        .run()
        .code(1)
        .stderr(
            "warning: netprofile.service holds the min/max keys (net.ipv4.tcp_max_syn_backlog) \
             at boot, not the sysctl drop-in, and it is not enabled \
             (/etc/systemd/system/multi-user.target.wants/netprofile.service is absent): run \
             `systemctl enable netprofile.service`\n",
        )
        .stdout(
            r#"
            profile small (small.toml), initial network namespace
            modelled: systemd-sysctl unknown (as 257), pam_limits unknown (as 1.7)

            SYSCTL                        LIVE  AT BOOT  WANTED   ACTION
            net.core.somaxconn            4096  -        65535    set
            net.ipv4.tcp_max_syn_backlog  2048  -        >= 2048  ok

            LIMIT          LIVE  SET IN  WANTED  ACTION
            * soft nofile  -     -       65536   set
            * hard nofile  -     -       65536   set

            --- /dev/null
            +++ /etc/sysctl.d/90-netprofile.conf
            @@ -0,0 +1,3 @@
            +# Written by netprofile from profile "small" (small.toml).
            +# Do not edit: the next `netprofile apply` replaces this file.
            +net.core.somaxconn = 65535

            --- /dev/null
            +++ /etc/security/limits.d/90-netprofile.conf
            @@ -0,0 +1,3 @@
            +# Written by netprofile from profile "small" (small.toml).
            +# Do not edit: the next `netprofile apply` replaces this file.
            +*            -     nofile     65536

            differs: 1 key to set, 2 limits to set, 2 files to write
            "#,
        );
}

#[test]
fn diff_in_sync_exits_0() {
    let sysctl_dropin = "# Written by netprofile from profile \"small\" (small.toml).\n\
        # Do not edit: the next `netprofile apply` replaces this file.\n\
        net.core.somaxconn = 65535\n";
    let limits_dropin = "# Written by netprofile from profile \"small\" (small.toml).\n\
        # Do not edit: the next `netprofile apply` replaces this file.\n\
        *            -     nofile     65536\n";
    Test::new()
        .sysctl("net.core.somaxconn", "65535")
        .file("etc/sysctl.d/90-netprofile.conf", sysctl_dropin)
        .file("etc/security/limits.d/90-netprofile.conf", limits_dropin)
        .profile("small.toml", SMALL)
        .args(&["diff", "small.toml"])
        .run()
        .code(0)
        .stdout_has(
            "net.core.somaxconn            65535  65535 (/etc/sysctl.d/90-netprofile.conf:3)",
        )
        .stdout_has("* soft nofile  65536  /etc/security/limits.d/90-netprofile.conf:3  65536   ok")
        .stdout_has("\nin sync: 2 keys as wanted\n");
}

#[test]
fn check_prints_one_line() {
    Test::new()
        .profile("small.toml", SMALL)
        .args(&["check", "small.toml"])
        .run()
        .code(1)
        .stdout("differs: 1 key to set, 2 limits to set, 2 files to write (net.core.somaxconn)\n");
}

#[test]
fn json_carries_the_same_facts() {
    let out = Test::new()
        .profile("small.toml", SMALL)
        .args(&["--json", "diff", "small.toml"])
        .run()
        .code(1);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("valid JSON");
    assert_eq!(doc["schema"], 2);
    assert_eq!(doc["in_sync"], false);
    assert_eq!(doc["namespace"], "initial");
    assert_eq!(doc["sysctl"][0]["key"], "net.core.somaxconn");
    assert_eq!(doc["sysctl"][0]["live"], "4096");
    assert_eq!(doc["sysctl"][0]["wanted"], "65535");
    assert_eq!(doc["sysctl"][0]["action"], "set");
    assert_eq!(doc["sysctl"][1]["rule"], ">= 2048");
    assert_eq!(doc["sysctl"][1]["action"], "keep");
    assert_eq!(doc["limits"][0]["type"], "soft");
    assert_eq!(doc["diffs"][0]["path"], "/etc/sysctl.d/90-netprofile.conf");
    assert_eq!(doc["diffs"][0]["action"], "create");
    assert!(
        doc["diffs"][0]["diff"]
            .as_str()
            .unwrap()
            .contains("+net.core.somaxconn = 65535")
    );
}

#[test]
fn shipped_high_conn_differs_on_a_stock_machine() {
    Test::new()
        .args(&["diff", "high-conn"])
        .run()
        .code(1)
        .stdout_has("profile high-conn (shipped:high-conn), initial network namespace")
        .stdout_has(&common::unindent(
            "
            SYSCTL                          LIVE                 AT BOOT  WANTED      ACTION
            fs.file-max                     9223372036854775807  -        >= 2097152  ok
            fs.nr_open                      1048576              -        >= 1048576  ok
            net.core.netdev_max_backlog     1000                 -        >= 16384    set
            net.core.somaxconn              4096                 -        65535       set
            net.ipv4.ip_local_port_range    32768 60999          -        1024 65535  set
            net.ipv4.tcp_max_syn_backlog    2048                 -        >= 65535    set
            net.ipv4.tcp_max_tw_buckets     131072               -        >= 262144   set
            net.ipv4.tcp_syncookies         1                    -        1           ok
            net.ipv4.tcp_tw_reuse           2                    -        1           set
            net.netfilter.nf_conntrack_max  -                    -        >= 1048576  skip (absent)
            ",
        ))
        .stdout_has("+++ /etc/systemd/system.conf.d/90-netprofile.conf");
}

/// systemd 252 reads system.conf, then system.conf.d in /etc, /run, /usr/local/lib and
/// /usr/lib (a name in an earlier folder masks a later one); a later drop-in that sets
/// DefaultLimitNOFILE is named, as for sysctl.d.
#[test]
fn systemd_drop_ins_in_every_folder_and_later_overrides() {
    let profile = "[profile]\nname = \"s\"\ndescription = \"d\"\n\n[systemd]\n\
                   default_limit_nofile = 65536\n";
    Test::new()
        .file(
            "usr/lib/systemd/system.conf.d/99-vendor.conf",
            "[Manager]\nDefaultLimitNOFILE = 4096:8192\n",
        )
        .profile("s.toml", profile)
        .args(&["diff", "s.toml"])
        .run()
        .code(1)
        .stdout_has("4096:8192  /usr/lib/systemd/system.conf.d/99-vendor.conf:2")
        .stderr_has(
            "warning: /usr/lib/systemd/system.conf.d/99-vendor.conf:2 sets \
             DefaultLimitNOFILE to 4096:8192 (netprofile wants 65536), and it is read after \
             netprofile's drop-in",
        );
    let masked = Test::new()
        .file(
            "usr/lib/systemd/system.conf.d/99-vendor.conf",
            "[Manager]\nDefaultLimitNOFILE=4096:8192\n",
        )
        .file("etc/systemd/system.conf.d/99-vendor.conf", "")
        .profile("s.toml", profile)
        .args(&["diff", "s.toml"])
        .run()
        .code(1);
    assert!(
        !masked.stderr.contains("DefaultLimitNOFILE"),
        "{}",
        masked.stderr
    );
}

#[test]
fn profiles_lists_shipped_profiles() {
    Test::new().args(&["profiles"]).run().code(0).stdout(
        "
        base             Floor for any host with many TCP connections: SYN cookies, fd headroom
        high-conn        Servers that accept many short-lived or long-held TCP connections
        load-generator   Clients that open many outbound connections to few destinations
        legacy-defaults  Older-kernel defaults (somaxconn 128) to reproduce the classic failures
        ",
    );
}

#[test]
fn boot_column_names_the_file_and_later_files_that_override() {
    Test::new()
        .file(
            "usr/lib/sysctl.d/50-default.conf",
            "net.core.somaxconn = 1024\n",
        )
        .file(
            "etc/sysctl.d/99-local.conf",
            "# ops\nnet.core.somaxconn=2048\n",
        )
        .profile("small.toml", SMALL)
        .args(&["diff", "small.toml"])
        .run()
        .code(1)
        .stdout_has(
            "net.core.somaxconn            4096  2048 (/etc/sysctl.d/99-local.conf:2)  65535",
        )
        .stderr_has(
            "warning: /etc/sysctl.d/99-local.conf:2 sets net.core.somaxconn to 2048 (netprofile \
             wants 65535), and it is read after netprofile's drop-in, so at boot the value would \
             be 2048. Remove that line or the file, or pass --allow-override",
        );
}

/// systemd-sysctl reads /etc/sysctl.conf only through Debian's 99-sysctl.conf link, at that
/// name's place in the order; without the link it never reads it (tests/oracle_sysctl.rs).
#[test]
fn sysctl_conf_is_read_through_the_99_link_only() {
    let t = Test::new()
        .file(
            "etc/sysctl.d/10-a.conf",
            "net.core.somaxconn = 1024
",
        )
        .file(
            "etc/sysctl.conf",
            "net.core.somaxconn = 512
",
        )
        .profile("small.toml", SMALL)
        .args(&["diff", "small.toml"]);
    std::os::unix::fs::symlink(
        "../sysctl.conf",
        t.root().join("etc/sysctl.d/99-sysctl.conf"),
    )
    .expect("symlink");
    t.run()
        .stdout_has("512 (/etc/sysctl.d/99-sysctl.conf:1)")
        .stderr_has("warning: /etc/sysctl.d/99-sysctl.conf:1 sets net.core.somaxconn to 512");
    Test::new()
        .file(
            "etc/sysctl.d/10-a.conf",
            "net.core.somaxconn = 1024
",
        )
        .file(
            "etc/sysctl.conf",
            "net.core.somaxconn = 512
",
        )
        .profile("small.toml", SMALL)
        .args(&["diff", "small.toml"])
        .run()
        .stdout_has("1024 (/etc/sysctl.d/10-a.conf:1)");
}

/// pam_limits ranks a uid range as a user entry: `1000: - nofile 4096` anywhere keeps every
/// uid >= 1000 at 4096 whatever `*` says, and a `@ops -` line makes pam set nothing for ops.
#[test]
fn limits_name_the_logins_the_dropin_does_not_reach() {
    let t = Test::new()
        .file("etc/group", "ops:x:2000:carol\n")
        .file("etc/security/limits.conf", "1000: - nofile 4096\n@ops -\n")
        .profile("small.toml", SMALL)
        .args(&["diff", "small.toml"]);
    // A Latin-1 GECOS field is read, not fatal.
    std::fs::write(
        t.root().join("etc/passwd"),
        b"root:x:0:0:r\xe9:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n\
          bob:x:1001:1001::/home/bob:/bin/sh\ncarol:x:500:500::/:/bin/sh\n",
    )
    .expect("write passwd");
    t.run()
        .code(1)
        .stdout_has("* soft nofile  -     -")
        .stderr_has(
            "warning: * nofile soft 65536 hard 65536 does not reach alice, bob at login: \
             /etc/security/limits.conf:1 gives them soft 4096",
        )
        .stderr_has(
            "does not reach carol at login: /etc/security/limits.conf:2 is a `-` line for them",
        );
}

/// A later line that cancels the key or that the kernel refuses leaves the kernel's default at
/// boot: the drop-in's value never arrives, and diff says which line is to blame.
#[test]
fn later_cancel_or_refused_value_is_named() {
    Test::new()
        .file(
            "usr/lib/sysctl.d/95-a.conf",
            "net.core.somaxconn = 1024junk\n",
        )
        .profile("small.toml", SMALL)
        .args(&["diff", "small.toml"])
        .run()
        .stderr_has(
            "warning: /usr/lib/sysctl.d/95-a.conf:1 sets net.core.somaxconn = \"1024junk\", which \
             the kernel refuses, after netprofile's drop-in: at boot the kernel's default stays, \
             not 65535",
        );
    Test::new()
        .file("run/sysctl.d/99-b.conf", "-net.core.somaxconn\n")
        .profile("small.toml", SMALL)
        .args(&["diff", "small.toml"])
        .run()
        .stderr_has(
            "warning: /run/sysctl.d/99-b.conf:1 cancels net.core.somaxconn with \
             `-net.core.somaxconn` after netprofile's drop-in",
        );
}

/// pam_limits 1.5 fails every session when limits.conf is missing; 1.7 skips it
/// (tests/oracle_limits.rs).
#[test]
fn missing_limits_conf_is_named_where_pam_limits_1_5_is_installed() {
    let warning = "/etc/security/limits.conf is missing: wherever PAM runs pam_limits";
    let status = |pam: &str| {
        format!("Package: libpam-modules\nStatus: install ok installed\nVersion: {pam}\n")
    };
    let newer = Test::new()
        .file("usr/lib/x86_64-linux-gnu/security/pam_limits.so", "")
        .file("var/lib/dpkg/status", &status("1.7.0-5"))
        .profile("small.toml", SMALL)
        .args(&["diff", "small.toml"])
        .run();
    assert!(!newer.stderr.contains(warning), "{}", newer.stderr);
    assert!(
        newer.stdout.contains("pam_limits 1.7.0-5"),
        "{}",
        newer.stdout
    );
    let without = Test::new()
        .file("usr/lib/x86_64-linux-gnu/security/pam_limits.so", "")
        .file("var/lib/dpkg/status", &status("1.5.2-6+deb12u1"))
        .profile("small.toml", SMALL)
        .args(&["diff", "small.toml"])
        .run()
        .stderr_has(warning);
    assert_eq!(without.code, 1);
    let with = Test::new()
        .file("usr/lib/x86_64-linux-gnu/security/pam_limits.so", "")
        .file("var/lib/dpkg/status", &status("1.5.2-6+deb12u1"))
        .file("etc/security/limits.conf", "# empty\n")
        .profile("small.toml", SMALL)
        .args(&["diff", "small.toml"])
        .run();
    assert!(!with.stderr.contains(warning), "{}", with.stderr);
}

/// A directory named like a config file, a dotfile and a Latin-1 byte in any read folder are
/// read as systemd-sysctl and pam_limits read them: diff goes on (it used to abort).
#[test]
fn directories_dotfiles_and_latin1_do_not_stop_diff() {
    let t = Test::new()
        .file(
            "etc/sysctl.d/50-dir.conf/x.conf",
            "net.core.somaxconn = 1\n",
        )
        .file("usr/lib/sysctl.d/50-dir.conf", "net.core.somaxconn = 2\n")
        .file("etc/sysctl.d/.60-hidden.conf", "net.core.somaxconn = 3\n")
        .file("etc/security/limits.d/50-dir.conf/x.conf", "* - nofile 1\n")
        .file("etc/systemd/system.conf.d/50-dir.conf/x.conf", "")
        .profile("small.toml", SMALL)
        .args(&["diff", "small.toml"]);
    std::fs::write(
        t.root().join("etc/sysctl.d/70-latin1.conf"),
        b"# r\xe9seau\nnet.core.somaxconn = 4096\n",
    )
    .expect("write");
    std::fs::write(
        t.root().join("etc/security/limits.conf"),
        b"# r\xe9seau\n* soft nofile 2048\n",
    )
    .expect("write");
    t.run()
        .code(1)
        .stdout_has("4096  4096 (/etc/sysctl.d/70-latin1.conf:2)")
        .stdout_has("* soft nofile  2048  /etc/security/limits.conf:2");
}

#[test]
fn limits_follow_pam_precedence_and_name_overrides() {
    Test::new()
        .file(
            "etc/security/limits.conf",
            "*   soft nofile 1024\n*   hard nofile 4096\n",
        )
        .file("etc/security/limits.d/99-zzz.conf", "* hard nofile 8192\n")
        .profile("small.toml", SMALL)
        .args(&["diff", "small.toml"])
        .run()
        .code(1)
        .stdout_has("* soft nofile  1024  /etc/security/limits.conf:1           65536   set")
        .stdout_has("* hard nofile  8192  /etc/security/limits.d/99-zzz.conf:1  65536   overridden")
        .stderr_has(
            "warning: /etc/security/limits.d/99-zzz.conf:1 sets * hard nofile to 8192 \
             (netprofile wants 65536), and it is read after netprofile's drop-in, so at login \
             the value would be 8192",
        );
}

#[test]
fn listening_port_in_new_range_is_flagged_with_a_fix() {
    let tcp = "  sl  local_address rem_address   st\n   0: 00000000:1F90 00000000:0000 0A 0\n";
    Test::new()
        .file("proc/net/tcp", tcp)
        .args(&["diff", "high-conn"])
        .run()
        .code(1)
        .stderr_has("listening port(s) 8080 lie inside the new ephemeral range 1024-65535")
        .stderr_has("reserved = [\"8080\"]");
}

#[test]
fn reserved_port_is_not_flagged() {
    let tcp = "  sl  local_address rem_address   st\n   0: 00000000:1F90 00000000:0000 0A 0\n";
    Test::new()
        .file("proc/net/tcp", tcp)
        .profile(
            "p.toml",
            "[profile]\nextends = [\"high-conn\"]\n[ports]\nreserved = [\"8080\"]\n",
        )
        .file(
            "etc/systemd/system/multi-user.target.wants/netprofile.service",
            "",
        )
        .args(&["diff", "p.toml"])
        .run()
        .code(1)
        .stderr("");
}

#[test]
fn private_namespace_skips_global_keys_and_persists_nothing() {
    Test::new()
        .remove("proc/sys/net/ipv4/tcp_mem")
        .sysctl("net.core.somaxconn", "65535")
        .args(&["diff", "high-conn"])
        .run()
        .code(1)
        .stdout_has("private network namespace")
        .stdout_has("fs.file-max")
        .stdout_has("skip (global)")
        .stdout_has("net.core.somaxconn              65535")
        .stderr_has("nothing is persisted");
}

#[test]
fn extends_relative_path_later_wins() {
    let out = Test::new()
        .profile(
            "lib/parent.toml",
            "[sysctl]\n\"net.core.somaxconn\" = 1000\n\"net.ipv4.tcp_fin_timeout\" = 30\n",
        )
        .profile(
            "child.toml",
            "[profile]\nextends = [\"lib/parent.toml\"]\n[sysctl]\n\"net.core.somaxconn\" = 2000\n",
        )
        .args(&["--json", "diff", "child.toml"])
        .run()
        .code(1);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let rows = doc["sysctl"].as_array().unwrap();
    let find = |k: &str| rows.iter().find(|r| r["key"] == k).unwrap()["wanted"].clone();
    assert_eq!(find("net.core.somaxconn"), "2000");
    assert_eq!(find("net.ipv4.tcp_fin_timeout"), "30");
}

#[test]
fn colour_only_when_asked_or_on_a_terminal() {
    Test::new()
        .profile("small.toml", SMALL)
        .args(&["--color", "always", "diff", "small.toml"])
        .run()
        .stdout_has("\x1b[33mset\x1b[0m");
    let plain = Test::new()
        .profile("small.toml", SMALL)
        .args(&["diff", "small.toml"])
        .run();
    assert!(!plain.stdout.contains('\x1b'));
}

#[test]
fn diff_never_writes() {
    let t = Test::new().profile("small.toml", SMALL);
    let before = snapshot(&t.root());
    let out = t.args(&["diff", "small.toml"]).run().code(1);
    assert_eq!(snapshot(&out.root()), before);
}

/// Issue 18: logins pam_limits refuses today are warnings of diff and check, with the file and
/// the fix, under the version that refuses them (tests/oracle_limits.rs runs the real module):
/// a limits.d link that points nowhere fails every session under 1.5 (1.7 skips it), and a
/// `maxlogins 0` line refuses its domain's sessions under both. They stay after apply: check
/// in sync (exit 0) still names them.
#[test]
fn login_lockouts_are_warnings_of_diff_and_check() {
    let dangling = "warning: login lockout: /etc/security/limits.d/20-gone.conf does not exist \
                    (or is a dangling link): pam_limits 1.5 cannot open it and fails every \
                    session, root's too. Fix: remove /etc/security/limits.d/20-gone.conf or \
                    point it at a file that exists";
    let maxlogins = "warning: login lockout: /etc/security/limits.d/30-max.conf:1 sets maxlogins \
                     0 for @staff: pam_limits refuses the session. Fix: remove that line, or set \
                     maxlogins to the number of sessions to allow";
    let host = |pam: &str, link: bool| {
        let t = Test::new()
            .file("usr/lib/x86_64-linux-gnu/security/pam_limits.so", "")
            .file(
                "var/lib/dpkg/status",
                &format!("Package: libpam-modules\nStatus: install ok installed\nVersion: {pam}\n"),
            )
            .file("etc/security/limits.conf", "# empty\n")
            .file(
                "etc/passwd",
                "root:x:0:0::/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\n",
            )
            .file("etc/group", "root:x:0:\nstaff:x:1000:bob\n")
            .file(
                "etc/security/limits.d/30-max.conf",
                "@staff - maxlogins 0\n",
            )
            .profile("small.toml", SMALL);
        if link {
            std::os::unix::fs::symlink(
                "/nowhere/gone.conf",
                t.root().join("etc/security/limits.d/20-gone.conf"),
            )
            .expect("symlink");
        }
        t
    };
    // 1.5 stops at the file it cannot open: that is the cause to fix first.
    let old = host("1.5.2-6+deb12u1", true)
        .args(&["diff", "small.toml"])
        .run()
        .code(1)
        .stderr_has(dangling);
    assert!(!old.stderr.contains("maxlogins 0"), "{}", old.stderr);
    let new = host("1.7.0-5", true)
        .args(&["diff", "small.toml"])
        .run()
        .code(1)
        .stderr_has(maxlogins);
    assert!(!new.stderr.contains("20-gone.conf"), "{}", new.stderr);
    host("1.5.2-6+deb12u1", false)
        .args(&["apply", "small.toml"])
        .run()
        .code(0)
        .then(&["check", "small.toml"])
        .code(0)
        .stderr_has(maxlogins);
}
