//! The command-line mistakes a user makes most (issue 22): each gets a message that says what
//! to do, exit 2, and nothing touched; a file in the current folder named like a shipped
//! profile never silently replaces it.

mod common;

use common::Test;

#[test]
fn single_brackets_for_limits_say_to_write_double_brackets() {
    let out = Test::new()
        .profile(
            "p.toml",
            "[profile]\nname = \"p\"\n\n[limits]\ndomain = \"*\"\ntype = \"-\"\nitem = \"nofile\"\nvalue = 65536\n",
        )
        .args(&["diff", "p.toml"])
        .run()
        .code(2)
        .stderr_has("p.toml:4:1: invalid TOML")
        .stderr_has("write [[limits]] (double brackets)");
    assert_eq!(out.stdout, "");
}

#[test]
fn a_root_that_does_not_exist_is_one_clear_error() {
    // (The builder passes its own --root; this one runs the binary directly.)
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_netprofile"))
        .args([
            "--root",
            "/nonexistent/netprofile-test",
            "diff",
            "high-conn",
        ])
        .output()
        .expect("run netprofile");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().count(),
        1,
        "one error, not one per key: {stderr}"
    );
    assert!(
        stderr.contains("--root /nonexistent/netprofile-test: no such folder")
            && stderr.contains("leave --root out"),
        "{stderr}"
    );
}

/// Every path under `dir`, folders included, relative to it.
fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            out.push(
                path.strip_prefix(dir)
                    .expect("under dir")
                    .display()
                    .to_string(),
            );
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_root_that_is_not_a_root_tree_is_one_clear_error() {
    // An empty folder, and an image whose proc is not mounted (etc/ but an empty proc/).
    for (what, t) in [
        ("empty", Test::bare()),
        (
            "unmounted image",
            Test::bare()
                .file("etc/sysctl.d/10-image.conf", "net.core.somaxconn = 1024\n")
                .file("proc/.keep", ""),
        ),
    ] {
        let root = t.root();
        let before = entries(&root);
        let mut out = t.args(&["render", "high-conn"]).run();
        for args in [
            &["diff", "high-conn"][..],
            &["check", "high-conn"],
            &["apply", "high-conn"],
            &["rollback"],
            &["confirm"],
            &["status"],
            &["explain", "net.core.somaxconn"],
            &["doctor"],
            &["metrics"],
        ] {
            out = out.then(args).code(2);
            assert_eq!(
                out.stderr.lines().count(),
                1,
                "{what} {args:?}: one error, not one per key: {}",
                out.stderr
            );
            for want in [
                format!(
                    "--root {}: not a root tree, it has no proc/sys",
                    root.display()
                ),
                "the kernel's keys under proc/sys".to_string(),
                "leave --root out".to_string(),
            ] {
                assert!(
                    out.stderr.contains(&want),
                    "{what} {args:?}: {}",
                    out.stderr
                );
            }
            assert_eq!(out.stdout, "", "{what} {args:?}");
            assert_eq!(
                entries(&root),
                before,
                "{what} {args:?} wrote into the folder"
            );
        }
        // What needs no live system still works there.
        let out = out.then(&["render", "high-conn"]).code(0);
        assert!(out.stdout.contains("net.core.somaxconn"), "{}", out.stdout);
    }
}

#[test]
fn number_mistakes_say_what_to_write() {
    for (args, want) in [
        (
            &["rollback", "last"][..],
            "no argument for the last generation",
        ),
        (&["test", "hold", "-n", "1e6"][..], "write 1000000"),
        (&["doctor", "--connections", "50k"][..], "write 50000"),
        (
            &["test", "churn", "--target", "localhost:80"][..],
            "127.0.0.1:80 (host names are not resolved)",
        ),
    ] {
        let out = Test::new().args(args).run().code(2);
        assert!(out.stderr.contains(want), "{args:?}: {}", out.stderr);
        assert!(
            !out.stderr.contains("invalid digit"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            !out.root().join("var/lib/netprofile").exists(),
            "{args:?} touched the root"
        );
    }
}

#[test]
fn a_short_key_or_profile_name_gets_a_suggestion() {
    Test::new()
        .args(&["explain", "somaxconn"])
        .run()
        .code(2)
        .stderr_has("did you mean net.core.somaxconn?");
    Test::new()
        .args(&["profiles", "hig"])
        .run()
        .code(2)
        .stderr_has("did you mean \"high-conn\"?");
    Test::new()
        .args(&["diff", "hig"])
        .run()
        .code(2)
        .stderr_has("did you mean \"high-conn\"?");
}

#[test]
fn a_file_named_like_a_shipped_profile_does_not_replace_it() {
    let mine = "[profile]\nname = \"mine\"\n\n[sysctl]\n\"net.core.somaxconn\" = 1234\n";
    let out = Test::new()
        .profile("high-conn", mine)
        .args(&["render", "high-conn"])
        .run()
        .code(0)
        .stderr_has("warning: using the shipped profile \"high-conn\", not the file ./high-conn")
        .stderr_has("write ./high-conn for the file");
    assert!(
        out.stdout
            .contains("from profile \"high-conn\" (shipped:high-conn)"),
        "{}",
        out.stdout
    );
    let out = out.then(&["render", "./high-conn"]).code(0);
    assert!(
        out.stdout.contains("net.core.somaxconn = 1234"),
        "./NAME is the file: {}",
        out.stdout
    );
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
}
