//! `netprofile explain` on fixture trees: a sysctl.d tree with masked and overridden files, a
//! tuned profile, netprofile's own generations, limits.conf entries, DefaultLimitNOFILE, and
//! the errors a user can cause.

mod common;
mod doctor_common;

use common::Test;
use doctor_common::assert_schema;
use serde_json::Value;

/// somaxconn set in four files: /usr/lib's 50-default.conf is masked by /etc's, /run's
/// 60-run.conf and /etc's 50-default.conf are overridden by 99-last.conf.
fn layered(t: Test) -> Test {
    t.file(
        "usr/lib/sysctl.d/50-default.conf",
        "net.core.somaxconn = 1024\n",
    )
    .file(
        "etc/sysctl.d/50-default.conf",
        "# local copy\nnet.core.somaxconn = 2048\n",
    )
    .file("run/sysctl.d/60-run.conf", "net.core.*conn = 3000\n")
    .file(
        "etc/sysctl.d/99-last.conf",
        "fs.file-max = 100\nnet.core.somaxconn=8192\n",
    )
}

#[test]
fn the_whole_sysctl_chain_with_masked_and_overridden_files() {
    layered(Test::new())
        .args(&["explain", "net.core.somaxconn"])
        .run()
        .code(0)
        .stdout(
            "
            net.core.somaxconn (sysctl)
              live:   4096  (/proc/sys/net/core/somaxconn)
              boot:   8192  (/etc/sysctl.d/99-last.conf:2)
              scope:  per network namespace (each container has its own; a new one starts from the kernel default)
              chain (in the order read):
                /etc/sysctl.d/50-default.conf:2  2048  overridden by /etc/sysctl.d/99-last.conf:2
                /run/sysctl.d/60-run.conf:1  3000  overridden by /etc/sysctl.d/99-last.conf:2
                /etc/sysctl.d/99-last.conf:2  8192  wins
                /usr/lib/sysctl.d/50-default.conf:1  1024  masked by /etc/sysctl.d/50-default.conf
              netprofile generations:
                none changed it
              catalogue: known to netprofile (int value)
              note: live value 4096 differs from the boot value 8192 (/etc/sysctl.d/99-last.conf:2): changed since boot
              note: a masked file is never read: a file of the same name in a folder of higher precedence (/etc before /run before /usr/local/lib before /usr/lib) replaces it
              modelled: systemd-sysctl unknown (as 257)
            ",
        );
}

fn explain_json(t: Test, key: &str) -> Value {
    let out = t.args(&["--json", "explain", key]).run().code(0);
    let doc: Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", out.stdout));
    assert_schema("explain.json", &doc);
    doc
}

#[test]
fn explain_table() {
    // (key, setup, live, boot value, fates in chain order, scope)
    type Setup = fn(Test) -> Test;
    type Row = (
        &'static str,
        Setup,
        Option<&'static str>,
        Option<&'static str>,
        &'static [&'static str],
        Option<&'static str>,
    );
    let cases: &[Row] = &[
        (
            "net.core.somaxconn",
            layered,
            Some("4096"),
            Some("8192"),
            &["overridden", "overridden", "wins", "masked"],
            Some("netns"),
        ),
        (
            "fs.file-max",
            layered,
            Some("9223372036854775807"),
            Some("100"),
            &["wins"],
            Some("global"),
        ),
        (
            "net.ipv4.tcp_rmem",
            |t| t,
            Some("4096 131072 6291456"),
            None,
            &[],
            Some("netns"),
        ),
        (
            "nofile",
            |t| {
                t.file(
                    "etc/security/limits.conf",
                    "*  soft nofile 1024\n*  hard nofile 4096\n",
                )
                .file(
                    "etc/security/limits.d/90-x.conf",
                    "*  soft nofile 65536\nalice hard nofile 100\nroot - nofile 1048576\n",
                )
                .file(
                    "proc/self/limits",
                    "Limit   Soft Limit   Hard Limit   Units\nMax open files            1024                 4096                 files\n",
                )
            },
            Some("soft 1024 hard 4096"),
            Some("soft 4096 hard 4096"),
            &["overridden", "wins", "wins", "elsewhere", "wins"],
            None,
        ),
        (
            "DefaultLimitNOFILE",
            |t| {
                t.file(
                    "etc/systemd/system.conf",
                    "[Manager]\n#DefaultLimitNOFILE=1\nDefaultLimitNOFILE=1024:524288\n",
                )
                .file(
                    "etc/systemd/system.conf.d/10-x.conf",
                    "[Manager]\nDefaultLimitNOFILE=65536\n",
                )
            },
            None,
            Some("65536"),
            &["overridden", "wins"],
            None,
        ),
    ];
    for (key, setup, live, boot, fates, scope) in cases {
        let doc = explain_json(setup(Test::new()), key);
        assert_eq!(doc["live"].as_str(), *live, "{key}: {doc:#}");
        assert_eq!(doc["boot"]["value"].as_str(), *boot, "{key}: {doc:#}");
        let got: Vec<&str> = doc["chain"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["fate"].as_str().unwrap())
            .collect();
        assert_eq!(got, *fates, "{key}: {doc:#}");
        assert_eq!(doc["scope"].as_str(), *scope, "{key}");
    }
}

#[test]
fn a_limit_item_shows_what_a_login_gets_and_each_entry() {
    Test::new()
        .file(
            "etc/security/limits.conf",
            "*  soft nofile 1024\n*  hard nofile 4096\n",
        )
        .file(
            "etc/security/limits.d/90-x.conf",
            "*  soft nofile 65536\n@web hard nofile 100\n",
        )
        .file(
            "proc/self/limits",
            "Max open files            1024                 4096                 files\n",
        )
        .args(&["explain", "nofile"])
        .run()
        .code(0)
        .stdout(
            "
            nofile (limit)
              live:   soft 1024 hard 4096  (/proc/self/limits (this session))
              login:  soft 4096 hard 4096  (logins other than root; soft from /etc/security/limits.d/90-x.conf:1, hard from /etc/security/limits.conf:2)
              chain (in the order read):
                /etc/security/limits.conf:1  * soft nofile 1024  overridden by a later or more specific entry
                /etc/security/limits.conf:2  * hard nofile 4096  wins (in force: hard)
                /etc/security/limits.d/90-x.conf:1  * soft nofile 65536  wins (in force: soft)
                /etc/security/limits.d/90-x.conf:2  @web hard nofile 100  applies to @web only
              netprofile generations:
                none changed it
              note: limits.conf takes effect at the next login (pam_limits); running processes keep their limits (see /proc/PID/limits)
              modelled: pam_limits unknown (as 1.7)
            ",
        );
}

#[test]
fn nofile_names_what_services_get_instead() {
    let doc = explain_json(
        Test::new().file(
            "etc/systemd/system.conf",
            "[Manager]\nDefaultLimitNOFILE=4096\n",
        ),
        "nofile",
    );
    let m = &doc["managers"][0];
    assert_eq!(m["manager"], "systemd");
    assert_eq!(m["value"], "DefaultLimitNOFILE=4096");
    assert!(
        m["note"]
            .as_str()
            .unwrap()
            .contains("never reaches a systemd service")
    );
}

#[test]
fn an_active_tuned_profile_is_named() {
    let doc = explain_json(
        Test::new()
            .file("etc/tuned/active_profile", "throughput-performance\n")
            .file(
                "usr/lib/tuned/throughput-performance/tuned.conf",
                "[main]\nsummary=x\n[sysctl]\nnet.core.somaxconn=16384\n",
            )
            .file(
                "etc/tuned/mine/tuned.conf",
                "[sysctl]\nnet.core.somaxconn = 512\n",
            ),
        "net.core.somaxconn",
    );
    let managers = doc["managers"].as_array().unwrap();
    assert_eq!(managers.len(), 2, "{doc:#}");
    assert_eq!(managers[0]["file"], "/etc/tuned/mine/tuned.conf");
    assert!(
        managers[0]["note"]
            .as_str()
            .unwrap()
            .contains("not the active one")
    );
    assert_eq!(
        managers[1]["file"],
        "/usr/lib/tuned/throughput-performance/tuned.conf"
    );
    assert_eq!(managers[1]["line"], 4);
    assert!(managers[1]["note"].as_str().unwrap().contains("is active"));
}

#[test]
fn generations_that_changed_the_key_are_listed() {
    let out = Test::new()
        .profile(
            "p.toml",
            "[profile]\nname = \"p\"\n[sysctl]\n\"net.core.somaxconn\" = 8192\n",
        )
        .args(&["apply", "-q", "p.toml"])
        .run()
        .code(0)
        .then(&["--json", "explain", "net.core.somaxconn"])
        .code(0);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_schema("explain.json", &doc);
    let g = doc["generations"].as_array().unwrap();
    // The live change, and the drop-in that persists it.
    assert_eq!(g.len(), 2, "{doc:#}");
    assert_eq!(g[0]["generation"], 1);
    assert_eq!(g[0]["profile"]["name"], "p");
    assert_eq!(
        (g[0]["before"].as_str(), g[0]["after"].as_str()),
        (Some("4096"), Some("8192"))
    );
    assert!(
        g[1]["after"]
            .as_str()
            .unwrap()
            .contains("/etc/sysctl.d/90-netprofile.conf"),
        "{doc:#}"
    );
    assert_eq!(doc["boot"]["file"], "/etc/sysctl.d/90-netprofile.conf");
}

#[test]
fn a_private_namespace_and_a_global_key() {
    let doc = explain_json(
        Test::new().remove("proc/sys/net/ipv4/tcp_mem"),
        "net.ipv4.tcp_mem",
    );
    assert_eq!(doc["namespace"], "private");
    assert_eq!(doc["scope"], "global");
    assert_eq!(doc["live"], Value::Null);
    assert!(
        doc["notes"][0]
            .as_str()
            .unwrap()
            .contains("global keys exist only in the initial one"),
        "{doc:#}"
    );
}

#[test]
fn errors_name_the_key_and_change_nothing() {
    Test::new()
        .args(&["explain", "net.core.somaxcon"])
        .run()
        .code(2)
        .stderr_has("no key net.core.somaxcon")
        .stderr_has("did you mean net.core.somaxconn?");
    Test::new()
        .args(&["explain", "net..core"])
        .run()
        .code(2)
        .stderr_has("empty segment");
    let doc = explain_json(Test::new(), "net.ipv4.tcp_tw_recycle");
    assert!(
        doc["catalogue"]["removed"]
            .as_str()
            .unwrap()
            .contains("removed in Linux 4.12")
    );
}

#[test]
fn read_only_commands_leave_an_open_journal_alone_and_say_so() {
    let journal = "var/lib/netprofile/journal.json";
    let out = Test::new()
        .file(journal, "{\"left\": \"by a crash\"}")
        .args(&["explain", "net.core.somaxconn"])
        .run()
        .code(0)
        .stderr_has("warning: an interrupted netprofile run left its journal");
    let out = out
        .then(&["doctor"])
        .code(0)
        .stderr_has("warning: an interrupted netprofile run left its journal");
    assert_eq!(
        std::fs::read_to_string(out.root().join(journal)).unwrap(),
        "{\"left\": \"by a crash\"}"
    );
}
