//! Issue 18, item 2: logins that pam_limits refuses are doctor findings (`login-lockout`),
//! each with its severity, the file (and line) and the fix, read from the root whatever profile
//! is in force, under the pam_limits version of the root: a missing limits.conf or a dangling
//! limits.d link under 1.5.x, a `maxlogins 0` / `maxsyslogins 0` line under every version.
//! The causes are those `diff` warns of (one model, system::login_lockouts; tests/oracle_limits.rs
//! proves it against the real pam_limits), and `status` points at doctor in one line.

mod common;

use common::Test;
use serde_json::Value;

const PROFILE: &str = r#"
[profile]
name = "small"

[[limits]]
domain = "*"
type = "-"
item = "nofile"
value = 65536
"#;

/// A root with pam_limits installed at version `pam` (dpkg), root and bob (in staff) in passwd.
fn host(pam: &str) -> Test {
    Test::new()
        .file("usr/lib/x86_64-linux-gnu/security/pam_limits.so", "")
        .file(
            "var/lib/dpkg/status",
            &format!("Package: libpam-modules\nStatus: install ok installed\nVersion: {pam}\n"),
        )
        .file(
            "etc/passwd",
            "root:x:0:0::/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\n",
        )
        .file("etc/group", "root:x:0:\nstaff:x:1000:bob\n")
        .profile("small.toml", PROFILE)
}

const OLD: &str = "1.5.2-6+deb12u1";
const NEW: &str = "1.7.0-5";

/// The `login-lockout` findings of `doctor --json`: (severity, file, title, fix).
fn lockouts(out: &common::Outcome) -> Vec<(String, String, String, String)> {
    let doc: Value = serde_json::from_str(&out.stdout).expect("doctor --json");
    assert_ne!(
        doc["binding"].as_str(),
        Some("login-lockout"),
        "a lockout is not a connection limit: {doc:#}"
    );
    doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["limit"] == "login-lockout")
        .map(|f| {
            let fix: Vec<&str> = f["fix"]
                .as_array()
                .expect("fix")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            (
                f["severity"].as_str().unwrap_or_default().to_string(),
                f["file"].as_str().unwrap_or_default().to_string(),
                f["title"].as_str().unwrap_or_default().to_string(),
                fix.join("; "),
            )
        })
        .collect()
}

fn doctor(t: Test) -> common::Outcome {
    t.args(&["--json", "doctor"]).run().code(0)
}

/// limits.conf missing: every session fails under 1.5 (a critical finding naming the file and
/// "create it"); 1.7 skips it (no finding); with limits.conf present, none under 1.5 either.
#[test]
fn a_missing_limits_conf_is_a_finding_under_pam_1_5_only() {
    let found = lockouts(&doctor(host(OLD)));
    assert_eq!(
        found,
        [(
            "critical".to_string(),
            "/etc/security/limits.conf".to_string(),
            "/etc/security/limits.conf does not exist (or is a dangling link): pam_limits 1.5 \
             cannot open it and fails every session, root's too"
                .to_string(),
            "create /etc/security/limits.conf (an empty file will do)".to_string(),
        )]
    );
    assert_eq!(lockouts(&doctor(host(NEW))), []);
    assert_eq!(
        lockouts(&doctor(
            host(OLD).file("etc/security/limits.conf", "# empty\n")
        )),
        []
    );
}

/// A dangling limits.d link fails every session under 1.5 (and pam_limits stops there, so it is
/// the cause named); under 1.7 it is skipped and the `maxlogins 0` line behind it is the cause,
/// with its line. The findings are the causes `diff` warns of on the same tree, and doctor
/// names them with no profile at all.
#[test]
fn a_dangling_link_and_maxlogins_zero_are_findings_with_file_and_fix() {
    let tree = |pam: &str| {
        let t = host(pam)
            .file("etc/security/limits.conf", "# empty\n")
            .file(
                "etc/security/limits.d/30-max.conf",
                "@staff - maxlogins 0\n",
            );
        std::os::unix::fs::symlink(
            "/nowhere/gone.conf",
            t.root().join("etc/security/limits.d/20-gone.conf"),
        )
        .expect("symlink");
        t
    };
    let old = doctor(tree(OLD));
    let found = lockouts(&old);
    assert_eq!(
        found
            .iter()
            .map(|f| (f.0.as_str(), f.1.as_str(), f.3.as_str()))
            .collect::<Vec<_>>(),
        [(
            "critical",
            "/etc/security/limits.d/20-gone.conf",
            "remove /etc/security/limits.d/20-gone.conf or point it at a file that exists"
        )]
    );
    let new = doctor(tree(NEW));
    let found_new = lockouts(&new);
    assert_eq!(
        found_new
            .iter()
            .map(|f| (f.0.as_str(), f.1.as_str(), f.3.as_str()))
            .collect::<Vec<_>>(),
        [(
            "critical",
            "/etc/security/limits.d/30-max.conf:1",
            "remove that line, or set maxlogins to the number of sessions to allow"
        )]
    );
    // The same causes as diff's warnings on the same trees (one model, two commands).
    for (outcome, found) in [(old, found), (new, found_new)] {
        let diff = outcome.then(&["diff", "small.toml"]).code(1);
        let warned: Vec<&str> = diff
            .stderr
            .lines()
            .filter(|l| l.starts_with("warning: login lockout: "))
            .collect();
        assert_eq!(warned.len(), found.len(), "{}", diff.stderr);
        for (w, f) in warned.iter().zip(&found) {
            assert_eq!(
                *w,
                format!("warning: login lockout: {}. Fix: {}", f.2, f.3),
                "doctor and diff disagree"
            );
        }
    }
}

/// `maxsyslogins 0` for `*` refuses every login but root's: a finding under both versions; and
/// with no pam_limits.so under the root, limits files refuse nothing: no finding.
#[test]
fn maxsyslogins_zero_is_a_finding_and_nothing_without_pam_limits() {
    for pam in [OLD, NEW] {
        let found = lockouts(&doctor(
            host(pam)
                .file("etc/security/limits.conf", "*  hard  maxsyslogins  0\n")
                .file("etc/security/limits.d/10-ok.conf", "* - nofile 4096\n"),
        ));
        assert_eq!(found.len(), 1, "pam_limits {pam}: {found:?}");
        assert_eq!(found[0].1, "/etc/security/limits.conf:1");
        assert!(found[0].2.contains("maxsyslogins 0"), "{found:?}");
    }
    let without = Test::new()
        .file("etc/security/limits.conf", "* hard maxlogins 0\n")
        .file(
            "etc/passwd",
            "root:x:0:0::/root:/bin/sh\nbob:x:1000:1000::/b:/bin/sh\n",
        );
    assert_eq!(lockouts(&doctor(without)), []);
}

/// What a person reads: doctor's text names the finding, the file and the fix; `status` says in
/// one stderr line that logins are refused and points at doctor (its stdout and JSON are
/// unchanged); with nothing refused, status says nothing of it.
#[test]
fn doctor_text_and_status_pointer() {
    let t = host(NEW)
        .file("etc/security/limits.conf", "# empty\n")
        .file(
            "etc/security/limits.d/30-max.conf",
            "@staff - maxlogins 0\n",
        );
    let text = t.args(&["doctor"]).run().code(0);
    let shown: Vec<&str> = text
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("critical  login-lockout: "))
        .take(4)
        .collect();
    assert_eq!(
        shown,
        [
            "critical  login-lockout: /etc/security/limits.d/30-max.conf:1 sets maxlogins 0 for \
             @staff: pam_limits refuses the session",
            "          read: modelled = pam_limits 1.7.0-5",
            "          file: /etc/security/limits.d/30-max.conf:1",
            "          fix: remove that line, or set maxlogins to the number of sessions to allow",
        ],
        "{}",
        text.stdout
    );
    let status = text.then(&["status"]).code(0);
    assert_eq!(
        status.stderr,
        "warning: pam_limits refuses logins on this root (1 cause, the first in \
         /etc/security/limits.d/30-max.conf:1): run `netprofile doctor` for each cause and its \
         fix\n"
    );
    host(NEW)
        .file("etc/security/limits.conf", "# empty\n")
        .args(&["status"])
        .run()
        .code(0)
        .stderr("");
}
