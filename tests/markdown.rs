//! Review output on temporary roots: `diff --format markdown` and `apply --dry-run --format
//! markdown` (a pull-request comment), `render` (the files a profile writes, no live system),
//! and `profiles NAME` (a shipped profile's TOML).

mod common;

use common::Test;

const REVIEW: &str = r#"
[profile]
name = "review"
description = "what a pull request changes"

[sysctl]
"net.core.somaxconn" = 65535
"net.ipv4.ip_local_port_range" = "1024 65535"
"net.ipv4.tcp_tw_reuse" = 2

[[limits]]
domain = "*"
type = "-"
item = "nofile"
value = 65536
"#;

const COMMENT: &str = r#"
### netprofile diff `review`

Profile `review` (`review.toml`), initial network namespace: **differs: 2 keys to set, 2 limits to set, 2 files to write**

| sysctl | live | at boot | wanted | action |
|---|---|---|---|---|
| `net.core.somaxconn` | `4096` | - | `65535` | **set** |
| `net.ipv4.ip_local_port_range` | `32768 60999` | - | `1024 65535` | **set** |
| `net.ipv4.tcp_tw_reuse` | `2` | - | `2` | ok |

| limit | live | set in | wanted | action |
|---|---|---|---|---|
| `* soft nofile` | - | - | `65536` | **set** |
| `* hard nofile` | - | - | `65536` | **set** |

#### Files

`/etc/sysctl.d/90-netprofile.conf` (create):

```diff
--- /dev/null
+++ /etc/sysctl.d/90-netprofile.conf
@@ -0,0 +1,5 @@
+# Written by netprofile from profile "review" (review.toml).
+# Do not edit: the next `netprofile apply` replaces this file.
+net.core.somaxconn = 65535
+net.ipv4.ip_local_port_range = 1024 65535
+net.ipv4.tcp_tw_reuse = 2
```

`/etc/security/limits.d/90-netprofile.conf` (create):

```diff
--- /dev/null
+++ /etc/security/limits.d/90-netprofile.conf
@@ -0,0 +1,3 @@
+# Written by netprofile from profile "review" (review.toml).
+# Do not edit: the next `netprofile apply` replaces this file.
+*            -     nofile     65536
```
"#;

#[test]
fn diff_markdown_is_a_pull_request_comment() {
    Test::new()
        .profile("review.toml", REVIEW)
        .args(&["diff", "review.toml", "--format", "markdown"])
        .env("NO_COLOR", "")
        .run()
        .code(1)
        .stderr("")
        .stdout(COMMENT);
}

#[test]
fn apply_dry_run_markdown_names_the_command_and_touches_nothing() {
    let want = common::unindent(COMMENT).replace(
        "### netprofile diff `review`",
        "### netprofile apply --dry-run `review`",
    );
    let out = Test::new()
        .profile("review.toml", REVIEW)
        .args(&["apply", "review.toml", "--dry-run", "--format", "markdown"])
        .run()
        .code(1)
        .stderr("");
    assert_eq!(out.stdout, want);
    assert!(!out.root().join("etc").exists(), "dry run wrote files");
    assert_eq!(
        std::fs::read_to_string(out.root().join("proc/sys/net/core/somaxconn")).unwrap(),
        "4096\n"
    );
}

#[test]
fn markdown_in_sync_says_so_without_files() {
    Test::new()
        .sysctl("net.core.somaxconn", "65535")
        .profile(
            "one.toml",
            "[profile]\nname = \"one\"\n[sysctl]\n\"net.core.somaxconn\" = 65535\n",
        )
        .file(
            "etc/sysctl.d/90-netprofile.conf",
            "# Written by netprofile from profile \"one\" (one.toml).\n\
             # Do not edit: the next `netprofile apply` replaces this file.\n\
             net.core.somaxconn = 65535\n",
        )
        .args(&["diff", "one.toml", "--format", "markdown"])
        .run()
        .code(0)
        .stdout(
            r#"
            ### netprofile diff `one`

            Profile `one` (`one.toml`), initial network namespace: **in sync: 1 key as wanted**

            | sysctl | live | at boot | wanted | action |
            |---|---|---|---|---|
            | `net.core.somaxconn` | `65535` | `65535` (`/etc/sysctl.d/90-netprofile.conf`:3) | `65535` | ok |
            "#,
        );
}

#[test]
fn format_markdown_needs_dry_run_on_apply() {
    Test::new()
        .profile("review.toml", REVIEW)
        .args(&["apply", "review.toml", "--format", "markdown"])
        .run()
        .code(2)
        .stderr_has("--dry-run")
        .stdout("");
}

#[test]
fn render_prints_the_files_without_a_live_system() {
    // An empty root: no proc/sys at all. render must not need one.
    Test::bare()
        .profile("review.toml", REVIEW)
        .args(&["render", "review.toml"])
        .run()
        .code(0)
        .stderr("")
        .stdout(
            r#"
            ==> /etc/sysctl.d/90-netprofile.conf <==
            # Written by netprofile from profile "review" (review.toml).
            # Do not edit: the next `netprofile apply` replaces this file.
            net.core.somaxconn = 65535
            net.ipv4.ip_local_port_range = 1024 65535
            net.ipv4.tcp_tw_reuse = 2

            ==> /etc/security/limits.d/90-netprofile.conf <==
            # Written by netprofile from profile "review" (review.toml).
            # Do not edit: the next `netprofile apply` replaces this file.
            *            -     nofile     65536
            "#,
        );
}

#[test]
fn render_prints_service_and_module_drop_ins() {
    Test::bare()
        .profile(
            "svc.toml",
            "[profile]\nname = \"svc\"\n\
             [systemd.services.\"nginx.service\"]\nlimit_nofile = \"65536:1048576\"\n\
             [modules]\nload = [\"nf_conntrack\"]\n",
        )
        .args(&["render", "svc.toml"])
        .run()
        .code(0)
        .stderr("")
        .stdout(
            r#"
            ==> /etc/modules-load.d/netprofile.conf <==
            # Written by netprofile from profile "svc" (svc.toml).
            # Do not edit: the next `netprofile apply` replaces this file.
            nf_conntrack

            ==> /etc/systemd/system/nginx.service.d/90-netprofile.conf <==
            # Written by netprofile from profile "svc" (svc.toml).
            # Do not edit: the next `netprofile apply` replaces this file.
            [Service]
            LimitNOFILE=65536:1048576
            "#,
        );
}

#[test]
fn render_is_the_same_on_every_host() {
    // Two different machines; the same profile writes the same bytes on both.
    let a = Test::new()
        .profile("review.toml", REVIEW)
        .args(&["render", "review.toml"])
        .run()
        .code(0);
    let b = Test::bare()
        .sysctl("net.core.somaxconn", "128")
        .profile("review.toml", REVIEW)
        .args(&["render", "review.toml"])
        .run()
        .code(0);
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn render_leaves_min_and_max_keys_to_the_boot_unit() {
    // No line for them (systemd-sysctl would set the bound and lower a higher value), and no
    // "unit not enabled" warning: render describes the fleet's files, not one host.
    Test::bare()
        .profile(
            "b.toml",
            "[profile]\nname = \"b\"\n[sysctl]\n\"net.core.somaxconn\" = 65535\n\
             \"fs.file-max\" = { min = 2097152 }\n\"net.ipv4.tcp_fin_timeout\" = { max = 30 }\n",
        )
        .args(&["render", "b.toml"])
        .run()
        .code(0)
        .stderr("")
        .stdout(
            r#"
            ==> /etc/sysctl.d/90-netprofile.conf <==
            # Written by netprofile from profile "b" (b.toml).
            # Do not edit: the next `netprofile apply` replaces this file.
            net.core.somaxconn = 65535
            "#,
        );
}

#[test]
fn render_names_a_key_it_cannot_check_without_a_kernel() {
    Test::bare()
        .profile(
            "typo.toml",
            "[profile]\nname = \"typo\"\n[sysctl]\n\"net.core.somaxconnn\" = 1\n",
        )
        .args(&["render", "typo.toml"])
        .run()
        .code(0)
        .stderr_has(
            "typo.toml:4: [sysctl] \"net.core.somaxconnn\" is not in netprofile's catalogue",
        )
        .stderr_has("did you mean \"net.core.somaxconn\"?");
}

#[test]
fn render_refuses_a_malformed_profile_with_exit_2() {
    Test::bare()
        .profile(
            "bad.toml",
            "[profile]\nname = \"bad\"\n[sysctl]\n\"net.core.somaxconn\" = \n",
        )
        .args(&["render", "bad.toml"])
        .run()
        .code(2)
        .stderr_has("bad.toml:4")
        .stdout("");
}

#[test]
fn profiles_name_prints_the_shipped_toml() {
    let out = Test::bare()
        .args(&["profiles", "high-conn"])
        .run()
        .code(0)
        .stderr("");
    assert_eq!(
        out.stdout,
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/profiles/high-conn.toml"
        ))
        .unwrap()
    );
}

#[test]
fn profiles_unknown_name_lists_the_shipped_ones() {
    Test::bare()
        .args(&["profiles", "high-con"])
        .run()
        .code(2)
        .stderr(
            r#"
            error: no shipped profile named "high-con"; did you mean "high-conn"? (shipped: base, high-conn, load-generator, legacy-defaults)
            "#,
        );
}

/// The text of a Markdown line that Markdown would act on: code spans and backslash escapes
/// taken out (what is left is where a link, image, mention or emphasis could start).
fn live_markdown(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '`' => {
                let run = chars[i..].iter().take_while(|c| **c == '`').count();
                let mut j = i + run;
                let close = loop {
                    if j >= chars.len() {
                        break None;
                    }
                    if chars[j] == '`' {
                        let r = chars[j..].iter().take_while(|c| **c == '`').count();
                        if r == run {
                            break Some(j + r);
                        }
                        j += r;
                    } else {
                        j += 1;
                    }
                };
                match close {
                    Some(end) => i = end,
                    None => {
                        out.push('`');
                        i += 1;
                    }
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

#[test]
fn markdown_cells_cannot_carry_markup_from_values_and_services_have_rows() {
    const HOSTILE: &str = "<img src=x onerror=alert(1)> [x](http://e.example) @admin **b** |c `d";
    let out = Test::new()
        .sysctl("net.ipv4.tcp_congestion_control", HOSTILE)
        .sysctl(
            "net.ipv4.tcp_available_congestion_control",
            "reno cubic bbr",
        )
        .file(
            "etc/sysctl.d/50-[y](http:--e.example)@ops.conf",
            &format!("net.ipv4.tcp_congestion_control = {HOSTILE}\n"),
        )
        .profile(
            "m.toml",
            "[sysctl]\n\"net.ipv4.tcp_congestion_control\" = \"bbr\"\n\
             [systemd.services.\"web.service\"]\nlimit_nofile = 65536\n",
        )
        .args(&["diff", "m.toml", "--format", "markdown"])
        .run();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let md = &out.stdout;
    // The hostile values are there, as code.
    assert!(md.contains("<img src=x"), "{md}");
    for line in md.lines() {
        if line.starts_with("```") || line.starts_with('+') || line.starts_with('-') {
            continue;
        }
        let live = live_markdown(line);
        for bad in ["<img", "](", "@admin", "@ops", "**b", "http://"] {
            assert!(!live.contains(bad), "{bad:?} is live Markdown in {line:?}");
        }
        if line.starts_with('|') {
            // Every table row keeps its five cells: no pipe from a value splits one.
            let cells = line.replace("\\|", "").matches('|').count();
            assert_eq!(cells, 6, "{line:?}");
        }
    }
    assert!(
        md.contains("| service LimitNOFILE | now | wanted | wins after apply | action |"),
        "{md}"
    );
    assert!(md.contains("| `web.service` |"), "{md}");
}
