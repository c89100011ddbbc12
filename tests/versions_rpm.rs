//! Issue 18, item 1, on rpm roots: the systemd and pam versions come from the root's rpm
//! database (RHEL's var/lib/rpm, Fedora's and SUSE's usr/lib/sysimage/rpm), read by the real
//! `rpm`; `diff`, `status` and `explain` print them as the versions they modelled, and say
//! "unknown" (modelling the newest) when the host has no `rpm` to read the database.
//!
//! Each test builds a throwaway database under a temporary root with the real tools: packages
//! of no files named `systemd` and `pam` built by `rpmbuild`, registered with
//! `rpm --root R --dbpath DB -i --justdb --nodeps`. .ci/run installs rpm (packaging/ci.sh,
//! before `cargo test`); under CI=true a missing rpm or rpmbuild fails the test.

mod common;

use std::path::Path;
use std::process::Command;

use common::Test;
use serde_json::Value;

const PROFILE: &str = r#"
[profile]
name = "small"

[sysctl]
"net.core.somaxconn" = 65535

[[limits]]
domain = "*"
type = "-"
item = "nofile"
value = 65536
"#;

/// Whether `rpm` and `rpmbuild` run here; under CI=true their absence is a failure.
fn rpm_tools() -> bool {
    let runs = |p: &str| {
        Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let found = runs("rpm") && runs("rpmbuild");
    assert!(
        found || std::env::var("CI").as_deref() != Ok("true"),
        "rpm and rpmbuild are needed under CI=true (.ci/run installs the rpm package through \
         packaging/ci.sh)"
    );
    if !found {
        eprintln!("skipped: rpm or rpmbuild is not installed (apt-get install rpm)");
    }
    found
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run rpm tool");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Registers `packages` (name, version, release) in a new rpm database at `db` (root-relative)
/// under `root`: built by rpmbuild from a spec with no files, installed with --justdb.
fn rpm_database(root: &Path, db: &str, packages: &[(&str, &str, &str)]) {
    let work = tempfile::tempdir().expect("tempdir");
    let top = work.path().join("top");
    let dbpath = format!("/{db}");
    run(Command::new("rpm")
        .arg("--root")
        .arg(root)
        .args(["--dbpath", &dbpath, "--initdb"]));
    for (name, version, release) in packages {
        let spec = work.path().join(format!("{name}.spec"));
        std::fs::write(
            &spec,
            format!(
                "Name: {name}\nVersion: {version}\nRelease: {release}\nSummary: test\n\
                 License: MIT\nBuildArch: noarch\n%description\ntest\n%files\n"
            ),
        )
        .expect("write spec");
        run(Command::new("rpmbuild")
            .args(["-bb", "--quiet", "--nodeps", "--define"])
            .arg(format!("_topdir {}", top.display()))
            .arg("--define")
            .arg(format!("_dbpath {}", work.path().join("hostdb").display()))
            .arg(&spec));
        let rpm = top.join(format!("RPMS/noarch/{name}-{version}-{release}.noarch.rpm"));
        run(Command::new("rpm")
            .arg("--root")
            .arg(root)
            .args(["--dbpath", &dbpath])
            .args(["-i", "--justdb", "--nodeps", "--noscripts"])
            .arg(&rpm));
    }
}

/// One printed model: program, package, version (`null` when unknown), rules.
type Model = (String, String, Value, String);

fn models(doc: &Value) -> Vec<Model> {
    doc["models"]
        .as_array()
        .unwrap_or_else(|| panic!("no models in {doc:#}"))
        .iter()
        .map(|m| {
            (
                m["program"].as_str().unwrap_or_default().to_string(),
                m["package"].as_str().unwrap_or_default().to_string(),
                m["version"].clone(),
                m["rules"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// The models `diff --json`, `status --json` and `explain nofile --json` print on `t`'s root,
/// and the last run (to run more on the same root).
fn printed_models(t: Test) -> (Vec<Vec<Model>>, common::Outcome) {
    let diff = t.args(&["--json", "diff", "small.toml"]).run().code(1);
    let diff_models = models(&json(&diff.stdout));
    let status = diff.then(&["--json", "status"]).code(0);
    let status_models = models(&json(&status.stdout));
    let explain = status.then(&["--json", "explain", "nofile"]).code(0);
    let explain_models = models(&json(&explain.stdout));
    (vec![diff_models, status_models, explain_models], explain)
}

/// RHEL 9's layout and versions: systemd 252 and pam 1.5.1 in var/lib/rpm. Every command
/// models systemd-sysctl 252 and pam_limits 1.5 from the `pam` package, and says so in text.
#[test]
fn rhel_versions_come_from_var_lib_rpm() {
    if !rpm_tools() {
        return;
    }
    let t = Test::new().profile("small.toml", PROFILE);
    rpm_database(
        &t.root(),
        "var/lib/rpm",
        &[("systemd", "252.46", "1.el9"), ("pam", "1.5.1", "22.el9")],
    );
    let want = vec![
        (
            "systemd-sysctl".to_string(),
            "systemd".to_string(),
            Value::from("252.46-1.el9"),
            "252".to_string(),
        ),
        (
            "pam_limits".to_string(),
            "pam".to_string(),
            Value::from("1.5.1-22.el9"),
            "1.5".to_string(),
        ),
    ];
    let (printed, last) = printed_models(t);
    for (command, got) in ["diff", "status", "explain"].iter().zip(printed) {
        assert_eq!(got, want, "{command} --json");
    }
    let line = "modelled: systemd-sysctl 252.46-1.el9, pam_limits 1.5.1-22.el9\n";
    last.then(&["diff", "small.toml"])
        .code(1)
        .stdout_has(line)
        .then(&["status"])
        .code(0)
        .stdout_has(line);
}

/// Fedora's layout: the database in usr/lib/sysimage/rpm and var/lib/rpm an absolute link to
/// it, resolved inside the root. A package rpm does not have is "not installed" in that
/// database, modelled as the newest rules.
#[test]
fn fedora_sysimage_database_and_a_missing_package() {
    if !rpm_tools() {
        return;
    }
    let t = Test::new().profile("small.toml", PROFILE);
    rpm_database(
        &t.root(),
        "usr/lib/sysimage/rpm",
        &[("systemd", "257.9", "2.fc43")],
    );
    std::fs::create_dir_all(t.root().join("var/lib")).expect("mkdir");
    std::os::unix::fs::symlink("/usr/lib/sysimage/rpm", t.root().join("var/lib/rpm"))
        .expect("symlink");
    let status = t.args(&["--json", "status"]).run().code(0);
    let doc = json(&status.stdout);
    let got = models(&doc);
    assert_eq!(got[0].2, Value::from("257.9-2.fc43"), "{doc:#}");
    assert_eq!(got[1].1, "pam");
    assert_eq!(got[1].2, Value::Null, "{doc:#}");
    assert_eq!(got[1].3, "1.7");
    let note = doc["models"][1]["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("not installed in /usr/lib/sysimage/rpm"),
        "{note}"
    );
    status
        .then(&["status"])
        .code(0)
        .stdout_has("modelled: systemd-sysctl 257.9-2.fc43, pam_limits unknown (as 1.7)\n");
}

/// An rpm database but no `rpm` on this host (PATH without it): the versions are unknown, said
/// so with the reason, and modelled as the newest. Needs no rpm: the database is a folder.
#[test]
fn without_rpm_on_the_host_the_versions_are_unknown() {
    let empty = tempfile::tempdir().expect("tempdir");
    let out = Test::new()
        .file("var/lib/rpm/rpmdb.sqlite", "")
        .profile("small.toml", PROFILE)
        .env("PATH", &empty.path().display().to_string())
        .args(&["--json", "explain", "nofile"])
        .run()
        .code(0);
    let doc = json(&out.stdout);
    for (i, m) in models(&doc).iter().enumerate() {
        assert_eq!(m.2, Value::Null, "{doc:#}");
        let note = doc["models"][i]["note"].as_str().unwrap_or_default();
        assert!(
            note.contains("an rpm database is at /var/lib/rpm, but this host has no `rpm`"),
            "{note}"
        );
    }
    assert_eq!(models(&doc)[1].3, "1.7");
}
