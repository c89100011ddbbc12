//! Oracle: the AT BOOT value and winning line that netprofile's CLI prints (`diff --json` and
//! `explain KEY --json` under `--root`) against the real systemd-sysctl of Debian 12 (252), 13
//! (257) and sid (262), each fetched by tests/oracle/fetch.sh and run through its own ld.so.
//!
//! Each case is a crafted tree of the four sysctl.d folders and /etc/sysctl.conf. The real
//! systemd-sysctl runs over it inside a private user + network + mount namespace entered as uid
//! 65534 (`setpriv --reuid=65534 ... -- unshare -rnm`): the tree is bind-mounted over
//! /etc/sysctl.d, /run/sysctl.d, /usr/local/lib/sysctl.d, /usr/lib/sysctl.d and
//! /etc/sysctl.conf, and only per-namespace `net.*` keys are named, so nothing of the host can
//! change (global keys are not writable there). The values the namespace's kernel holds after
//! the run are the answer: the kernel's own value rules (what it refuses, hex, partial writes)
//! are part of it. The CLI reads the same tree (the release's versions in var/lib/dpkg/status,
//! `proc` linked to the running kernel's) and must agree on every key: its boot value, or the
//! kernel default when it says no file sets the key; `explain` must name the value, file and
//! line `diff` names; and when the value is written once in the tree (found by reading the
//! tree's files with plain reads, no netprofile code), that file, or a link to it, and line.
//! Nothing is expected by hand. Under CI=true a release that cannot run fails.

#[path = "oracle/mod.rs"]
mod oracle;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use oracle::{Release, Rng, cli_json};

/// The folders systemd-sysctl reads (the script below mounts the tree over them), as written
/// by hand here so that the oracle shares nothing with the product.
const SYSCTL_DIRS: [&str; 4] = [
    "etc/sysctl.d",
    "run/sysctl.d",
    "usr/local/lib/sysctl.d",
    "usr/lib/sysctl.d",
];

/// Per-namespace keys whose every value 100..999 the kernel takes as written. The per-device
/// keys are IPv6 ones: writing an IPv4 `conf.default` key also changes every device that has
/// not set it (a kernel rule, not systemd's), which would blur what the files decided.
const KEYS: &[&str] = &[
    "net.core.somaxconn",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.ip_local_port_range",
    "net.ipv6.conf.all.regen_max_retry",
    "net.ipv6.conf.default.regen_max_retry",
    "net.ipv6.conf.lo.regen_max_retry",
    "net.ipv6.conf.all.max_addresses",
    "net.ipv6.conf.default.max_addresses",
    "net.ipv6.conf.lo.max_addresses",
    "net.ipv6.conf.all.dad_transmits",
    "net.ipv6.conf.default.dad_transmits",
    "net.ipv6.conf.lo.dad_transmits",
    "net.ipv4.tcp_congestion_control",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.ipv4.tcp_notsent_lowat",
    "net.ipv4.tcp_synack_retries",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.ip_unprivileged_port_start",
];

/// One thing in a tree: folder index into SYSCTL_DIRS (or `ETC` for /etc itself), name, kind.
#[derive(Clone)]
enum Node {
    File(usize, String, Vec<u8>),
    Dir(usize, String),
    Link(usize, String, String),
    /// A file whose name is raw bytes (a Latin-1 name).
    RawName(usize, Vec<u8>, Vec<u8>),
}

const ETC: usize = 9;

fn file(dir: usize, name: &str, text: &str) -> Node {
    Node::File(dir, name.into(), text.as_bytes().to_vec())
}

fn link(dir: usize, name: &str, target: &str) -> Node {
    Node::Link(dir, name.into(), target.into())
}

/// The hand-made cases: one or two per rule of systemd-sysctl.
fn rule_cases() -> Vec<(String, Vec<Node>)> {
    let c = |name: &str, nodes: Vec<Node>| (name.to_string(), nodes);
    vec![
        c(
            "plain",
            vec![file(0, "50-a.conf", "net.core.somaxconn = 101\n")],
        ),
        c(
            "later name wins across folders",
            vec![
                file(3, "90-z.conf", "net.core.somaxconn = 102\n"),
                file(0, "10-a.conf", "net.core.somaxconn = 103\n"),
            ],
        ),
        c(
            "etc masks usr/lib",
            vec![
                file(0, "50-a.conf", "net.core.somaxconn = 104\n"),
                file(
                    3,
                    "50-a.conf",
                    "net.core.somaxconn = 105\nnet.ipv4.tcp_fin_timeout = 106\n",
                ),
            ],
        ),
        c(
            "run masks usr/local/lib",
            vec![
                file(1, "50-a.conf", "net.ipv4.tcp_fin_timeout = 107\n"),
                file(2, "50-a.conf", "net.core.somaxconn = 108\n"),
            ],
        ),
        c(
            "empty file masks",
            vec![
                file(0, "50-a.conf", ""),
                file(3, "50-a.conf", "net.core.somaxconn = 109\n"),
            ],
        ),
        c(
            "/dev/null link masks",
            vec![
                link(0, "50-a.conf", "/dev/null"),
                file(3, "50-a.conf", "net.core.somaxconn = 110\n"),
                file(3, "60-b.conf", "net.ipv4.tcp_fin_timeout = 111\n"),
            ],
        ),
        c(
            "directory masks and sets nothing",
            vec![
                Node::Dir(0, "50-a.conf".into()),
                file(3, "50-a.conf", "net.core.somaxconn = 112\n"),
                file(3, "70-b.conf", "net.ipv4.tcp_fin_timeout = 113\n"),
            ],
        ),
        c(
            "dangling link masks",
            vec![
                link(0, "50-a.conf", "nowhere.conf"),
                file(3, "50-a.conf", "net.core.somaxconn = 114\n"),
            ],
        ),
        c(
            "dotfile not read",
            vec![
                file(0, ".50-a.conf", "net.core.somaxconn = 115\n"),
                file(0, "40-b.conf", "net.ipv4.tcp_fin_timeout = 116\n"),
            ],
        ),
        c(
            "dotfile does not mask",
            vec![
                file(0, ".50-a.conf", "net.core.somaxconn = 117\n"),
                file(3, ".50-a.conf", "net.core.somaxconn = 118\n"),
                file(3, "50-a.conf", "net.core.somaxconn = 119\n"),
            ],
        ),
        c(
            "not .conf not read",
            vec![
                file(0, "50-a.conf.bak", "net.core.somaxconn = 120\n"),
                file(0, "README", "net.ipv4.tcp_fin_timeout = 121\n"),
            ],
        ),
        c(
            "sysctl.conf through the 99 link, at its place",
            vec![
                link(0, "99-sysctl.conf", "../sysctl.conf"),
                file(
                    ETC,
                    "sysctl.conf",
                    "net.core.somaxconn = 122\nnet.ipv4.tcp_fin_timeout = 123\n",
                ),
                file(3, "99-zzz.conf", "net.core.somaxconn = 124\n"),
                file(3, "50-a.conf", "net.ipv4.tcp_fin_timeout = 125\n"),
            ],
        ),
        c(
            "sysctl.conf without the link is not read",
            vec![
                file(ETC, "sysctl.conf", "net.core.somaxconn = 126\n"),
                file(0, "50-a.conf", "net.ipv4.tcp_fin_timeout = 127\n"),
            ],
        ),
        c(
            "negative line cancels an earlier assignment",
            vec![
                file(
                    3,
                    "10-a.conf",
                    "net.core.somaxconn = 128\nnet.ipv4.tcp_fin_timeout = 129\n",
                ),
                file(0, "20-b.conf", "-net.core.somaxconn\n"),
            ],
        ),
        c(
            "assignment after a negative line",
            vec![
                file(0, "10-a.conf", "-net.core.somaxconn\n"),
                file(0, "20-b.conf", "net.core.somaxconn = 130\n"),
            ],
        ),
        c(
            "negative line keeps a glob off",
            vec![file(
                0,
                "50-a.conf",
                "net.ipv6.conf.*.regen_max_retry = 131\n-net.ipv6.conf.lo.regen_max_retry\n",
            )],
        ),
        c(
            "negative glob does nothing",
            vec![file(
                0,
                "50-a.conf",
                "net.ipv6.conf.*.max_addresses = 132\n-net.ipv6.conf.*.max_addresses\n",
            )],
        ),
        c(
            "dash with value ignores failure and sets",
            vec![file(
                0,
                "50-a.conf",
                "-net.core.somaxconn = 133\n- net.ipv4.tcp_fin_timeout=134\n",
            )],
        ),
        c(
            "only one dash is stripped",
            vec![file(
                0,
                "50-a.conf",
                "--net.core.somaxconn = 135\nnet.ipv4.tcp_fin_timeout = 136\n",
            )],
        ),
        c(
            "leading slash dropped",
            vec![file(
                0,
                "50-a.conf",
                "/net/core/somaxconn = 137\n/net.ipv4.tcp_fin_timeout = 138\n",
            )],
        ),
        c(
            "slash form keys",
            vec![file(
                0,
                "50-a.conf",
                "net/ipv4/tcp_keepalive_time = 139\nnet/ipv6/conf/lo/max_addresses = 140\n",
            )],
        ),
        c(
            "explicit beats an earlier glob",
            vec![file(
                0,
                "50-a.conf",
                "net.ipv6.conf.*.max_addresses = 141\nnet.ipv6.conf.lo.max_addresses = 142\n",
            )],
        ),
        c(
            "explicit beats a later glob",
            vec![
                file(0, "10-a.conf", "net.ipv6.conf.lo.max_addresses = 143\n"),
                file(0, "90-b.conf", "net.ipv6.conf.*.max_addresses = 144\n"),
            ],
        ),
        c(
            "two globs: table order decides",
            vec![
                file(0, "10-a.conf", "net.ipv6.conf.l?.regen_max_retry = 145\n"),
                file(0, "20-b.conf", "net.ipv6.conf.*.regen_max_retry = 146\n"),
            ],
        ),
        c(
            "glob moved to the end by a new value",
            vec![
                file(
                    0,
                    "10-a.conf",
                    "net.ipv6.conf.*.regen_max_retry = 147\nnet.ipv6.conf.l?.regen_max_retry = 148\n",
                ),
                file(0, "20-b.conf", "net.ipv6.conf.*.regen_max_retry = 149\n"),
            ],
        ),
        c(
            "same value again keeps its place",
            vec![
                file(
                    0,
                    "10-a.conf",
                    "net.ipv6.conf.*.regen_max_retry = 150\nnet.ipv6.conf.l?.regen_max_retry = 151\n",
                ),
                file(0, "20-b.conf", "net.ipv6.conf.*.regen_max_retry = 150\n"),
            ],
        ),
        c(
            "star stays in one level",
            vec![file(
                0,
                "50-a.conf",
                "net.ipv6.*.max_addresses = 152\nnet.*.lo.max_addresses = 153\nnet.ipv6.*.*.dad_transmits = 154\n",
            )],
        ),
        c(
            "question mark and sets",
            vec![file(
                0,
                "50-a.conf",
                "net.ipv6.conf.[ad]*.max_addresses = 155\nnet.ipv6.conf.?o.regen_max_retry = 156\nnet.ipv6.conf.[!l]*.dad_transmits = 157\n",
            )],
        ),
        c(
            "many stars",
            vec![file(
                0,
                "50-a.conf",
                &format!("net.ipv6.conf.{}.max_addresses = 158\n", "*".repeat(20)),
            )],
        ),
        c(
            "trailing text after a number",
            vec![file(
                0,
                "50-a.conf",
                "net.core.somaxconn = 159 junk\nnet.ipv4.ip_local_port_range = 2000 3000 x\n",
            )],
        ),
        c(
            "refused value leaves the default",
            vec![
                file(0, "10-a.conf", "net.core.somaxconn = 160\n"),
                file(
                    0,
                    "20-b.conf",
                    "net.core.somaxconn = 161junk\nnet.ipv4.tcp_fin_timeout = +162\n",
                ),
            ],
        ),
        c(
            "refused glob leaves the earlier glob",
            vec![file(
                0,
                "50-a.conf",
                "net.ipv6.conf.*.max_addresses = 163\nnet.ipv6.conf.l?.max_addresses = bad\n",
            )],
        ),
        c(
            "empty value",
            vec![
                file(0, "10-a.conf", "net.core.somaxconn = 164\n"),
                file(0, "20-b.conf", "net.core.somaxconn =\n"),
            ],
        ),
        c(
            "comments, blank lines and non-assignments",
            vec![file(
                0,
                "50-a.conf",
                "# net.core.somaxconn = 165\n; net.ipv4.tcp_fin_timeout = 166\n\n   \nnet.ipv4.tcp_keepalive_time\nnet.ipv4.tcp_keepalive_intvl = 167\n",
            )],
        ),
        c(
            "CR-only line ends",
            vec![file(
                0,
                "50-a.conf",
                "net.core.somaxconn = 168\rnet.ipv4.tcp_fin_timeout = 169\r",
            )],
        ),
        c(
            "CRLF line ends",
            vec![file(
                0,
                "50-a.conf",
                "net.core.somaxconn = 170\r\nnet.ipv4.tcp_fin_timeout = 171\r\n",
            )],
        ),
        c(
            "Latin-1 comment",
            vec![Node::File(
                0,
                "50-a.conf".into(),
                b"# r\xe9seau\nnet.core.somaxconn = 172\n".to_vec(),
            )],
        ),
        c(
            "Latin-1 file names, in byte order",
            vec![
                Node::RawName(
                    0,
                    b"50-r\xe9.conf".to_vec(),
                    b"net.core.somaxconn = 173\n".to_vec(),
                ),
                file(0, "50-r\u{e9}.conf", "net.core.somaxconn = 183\n"),
                file(0, "50-rz.conf", "net.ipv4.tcp_fin_timeout = 184\n"),
                Node::RawName(
                    3,
                    b"50-r\xe9.conf".to_vec(),
                    b"net.ipv4.tcp_fin_timeout = 185\n".to_vec(),
                ),
            ],
        ),
        c(
            "spaces and tabs around",
            vec![file(0, "50-a.conf", "\t net.core.somaxconn\t=\t174 \t\n")],
        ),
        c(
            "last line without newline",
            vec![file(
                0,
                "50-a.conf",
                "net.ipv4.tcp_fin_timeout = 175\nnet.core.somaxconn = 176",
            )],
        ),
        c(
            "byte order of names",
            vec![
                file(0, "50-B.conf", "net.core.somaxconn = 177\n"),
                file(3, "50-a.conf", "net.core.somaxconn = 178\n"),
                file(1, "50_a.conf", "net.core.somaxconn = 179\n"),
            ],
        ),
        c(
            "netprofile's drop-in name in two folders",
            vec![
                file(0, "90-netprofile.conf", "net.core.somaxconn = 180\n"),
                file(3, "90-netprofile.conf", "net.ipv4.tcp_fin_timeout = 181\n"),
                file(3, "99-local.conf", "net.ipv4.tcp_keepalive_time = 182\n"),
            ],
        ),
    ]
}

/// Trees that mix the rules: random names (so masking happens) in random folders, random
/// lines from a pool of line forms, values unique within a tree.
fn generated_cases(count: usize) -> Vec<(String, Vec<Node>)> {
    let mut rng = Rng::seeded(0x9e37_79b9_7f4a_7c15);
    let names = [
        "10-a.conf",
        "50-b.conf",
        "50-B.conf",
        "90-c.conf",
        "99-d.conf",
    ];
    let explicit = [
        "net.core.somaxconn",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv6.conf.lo.max_addresses",
        "net.ipv6.conf.all.regen_max_retry",
        "net.ipv6.conf.lo.dad_transmits",
    ];
    let globs = [
        "net.ipv6.conf.*.max_addresses",
        "net.ipv6.conf.*.regen_max_retry",
        "net.ipv6.conf.l?.regen_max_retry",
        "net.ipv6.conf.*.dad_transmits",
        "net.ipv6.conf.[ad]*.dad_transmits",
        "net/ipv6/conf/*/max_addresses",
    ];
    let mut cases = Vec::new();
    let mut value = 300;
    for n in 0..count {
        let mut nodes = Vec::new();
        for _ in 0..(2 + rng.next() % 4) {
            let dir = usize::try_from(rng.next() % 4).unwrap_or(0);
            let name = *rng.pick(&names);
            match rng.next() % 10 {
                0 => nodes.push(link(dir, name, "/dev/null")),
                1 => nodes.push(Node::Dir(dir, name.into())),
                2 => nodes.push(file(dir, name, "")),
                _ => {
                    let mut text = String::new();
                    for _ in 0..(1 + rng.next() % 4) {
                        value += 1;
                        let line = match rng.next() % 10 {
                            0 | 1 => format!("{} = {value}", rng.pick(&explicit)),
                            2 | 3 => format!("{} = {value}", rng.pick(&globs)),
                            4 => format!("-{}", rng.pick(&explicit)),
                            5 => format!("-{} = {value}", rng.pick(&explicit)),
                            6 => format!("{} = {value} trailing", rng.pick(&explicit)),
                            7 => format!("# {} = {value}", rng.pick(&explicit)),
                            _ => (*rng.pick(KERNEL_RULE_LINES)).to_string(),
                        };
                        text.push_str(&line);
                        text.push_str(if rng.next().is_multiple_of(5) {
                            "\r"
                        } else {
                            "\n"
                        });
                    }
                    nodes.push(file(dir, name, &text));
                }
            }
        }
        cases.push((format!("generated #{n}"), nodes));
    }
    cases
}

fn write_tree(root: &Path, nodes: &[Node]) {
    for dir in SYSCTL_DIRS {
        std::fs::create_dir_all(root.join(dir)).expect("mkdir");
    }
    std::fs::write(root.join("etc/sysctl.conf"), "").expect("write sysctl.conf");
    for node in nodes {
        let at = |dir: usize, name: &str| {
            if dir == ETC {
                root.join("etc").join(name)
            } else {
                root.join(SYSCTL_DIRS[dir]).join(name)
            }
        };
        match node {
            Node::File(dir, name, bytes) => {
                let path = at(*dir, name);
                if !path.exists() {
                    std::fs::write(&path, bytes).expect("write");
                }
            }
            Node::Dir(dir, name) => {
                let path = at(*dir, name);
                if !path.exists() {
                    std::fs::create_dir(&path).expect("mkdir");
                    std::fs::write(path.join("x.conf"), "net.core.somaxconn = 999\n")
                        .expect("write");
                }
            }
            Node::RawName(dir, name, bytes) => {
                use std::os::unix::ffi::OsStrExt;
                let path = root
                    .join(SYSCTL_DIRS[*dir])
                    .join(std::ffi::OsStr::from_bytes(name));
                std::fs::write(&path, bytes).expect("write");
            }
            Node::Link(dir, name, target) => {
                let path = at(*dir, name);
                if std::fs::symlink_metadata(&path).is_err() {
                    std::os::unix::fs::symlink(target, &path).expect("symlink");
                }
            }
        }
    }
}

/// Lines whose fate is the kernel's: what it refuses, how it reads numbers, what a partial
/// write keeps. Mixed into the generated trees.
const KERNEL_RULE_LINES: &[&str] = &[
    "net.core.somaxconn = 0x1f5",
    "net.core.somaxconn = 0755",
    "net.core.somaxconn = 09",
    "net.core.somaxconn = -5",
    "net.core.somaxconn = +9",
    "net.core.somaxconn = 9999999999",
    "net.ipv4.tcp_fin_timeout = -3",
    "net.ipv4.tcp_fin_timeout = 0X2a",
    "net.ipv4.tcp_congestion_control = reno # c",
    "net.ipv4.tcp_congestion_control = reno",
    "net.ipv4.ip_local_port_range = 171 60999",
    "net.ipv4.ip_local_port_range = 3000 2000",
    "net.ipv4.ip_local_port_range = 2000 3000",
    "net.ipv4.ip_local_port_range = 2500",
    "net.ipv4.ip_local_port_range = 600 60999",
    "net.ipv4.ip_local_port_range = 40000 60999",
    "net.ipv4.ip_unprivileged_port_start = 500",
    "net.ipv4.ip_unprivileged_port_start = 40000",
    "net.ipv4.ip_unprivileged_port_start = 0x200",
    "net.ipv4.tcp_rmem = 205 87380",
    "net.ipv4.tcp_wmem = 0x1000 020000",
    "net.ipv4.tcp_rmem = 0 87380 6291456",
    "net.ipv4.tcp_rmem = 4000 0 6291456",
    "net.ipv4.tcp_wmem = 4000 5junk 6",
    "net.ipv4.tcp_notsent_lowat = -1",
    "net.ipv4.tcp_notsent_lowat = 0x20",
    "net.ipv4.tcp_synack_retries = 300",
    "net.ipv4.tcp_synack_retries = 7",
    "net.ipv4.tcp_syncookies = 5",
    "net.ipv4.tcp_keepalive_probes = 256",
    "net.ipv6.conf.lo.max_addresses = 0x10",
];

/// Hand-made cases for the kernel's value rules, the reader's line limit and links.
fn kernel_cases() -> Vec<(String, Vec<Node>)> {
    let mut cases: Vec<(String, Vec<Node>)> = KERNEL_RULE_LINES
        .iter()
        .map(|line| {
            (
                format!("kernel rule: {line}"),
                vec![
                    file(
                        3,
                        "10-base.conf",
                        "net.core.somaxconn = 401\nnet.ipv4.tcp_fin_timeout = 402\n",
                    ),
                    file(0, "50-a.conf", &format!("{line}\n")),
                ],
            )
        })
        .collect();
    cases.push((
        "a refused value after an accepted one (systemd writes only the last)".into(),
        vec![file(
            0,
            "50-a.conf",
            "net.core.somaxconn = 164\nnet.core.somaxconn = x\n",
        )],
    ));
    for (name, first, second) in [
        (
            "the start lowered before the range",
            "ip_unprivileged_port_start = 500",
            "ip_local_port_range = 600 60999",
        ),
        (
            "the range before the start is lowered",
            "ip_local_port_range = 600 60999",
            "ip_unprivileged_port_start = 500",
        ),
        (
            "the range raised before the start",
            "ip_local_port_range = 40000 60999",
            "ip_unprivileged_port_start = 40000",
        ),
        (
            "the start raised before the range",
            "ip_unprivileged_port_start = 40000",
            "ip_local_port_range = 40000 60999",
        ),
    ] {
        cases.push((
            format!("port rules: {name}"),
            vec![
                file(3, "10-a.conf", &format!("net.ipv4.{first}\n")),
                file(0, "50-b.conf", &format!("net.ipv4.{second}\n")),
            ],
        ));
    }
    cases.push((
        "a line over the reader's limit ends the file".into(),
        vec![
            file(
                0,
                "50-a.conf",
                &format!(
                    "net.core.somaxconn = 403\n# {}\nnet.ipv4.tcp_fin_timeout = 404\n",
                    "c".repeat(1 << 20)
                ),
            ),
            file(0, "60-b.conf", "net.ipv4.tcp_keepalive_time = 405\n"),
        ],
    ));
    cases.push((
        "a line just under the reader's limit".into(),
        vec![file(
            0,
            "50-a.conf",
            &format!(
                "# {}\nnet.ipv4.tcp_fin_timeout = 406\n",
                "c".repeat((1 << 20) - 10)
            ),
        )],
    ));
    cases.push((
        "an absolute link in sysctl.d resolves inside the root".into(),
        vec![
            file(3, "extra.txt", "net.core.somaxconn = 407\n"),
            link(0, "50-a.conf", "/usr/lib/sysctl.d/extra.txt"),
        ],
    ));
    cases.push((
        "an absolute link to a missing file masks".into(),
        vec![
            link(0, "50-a.conf", "/etc/nowhere.conf"),
            file(3, "50-a.conf", "net.core.somaxconn = 408\n"),
        ],
    ));
    cases
}

/// The script run in the namespace: the tree over the real folders, the keys before and after
/// the release's systemd-sysctl.
fn script(keys: &[&str], release: &Release) -> String {
    let print = keys
        .iter()
        .map(|k| {
            format!(
                "printf '%s\\t%s\\n' {k} \"$(cat /proc/sys/{} 2>&1)\"",
                k.replace('.', "/")
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    format!(
        r#"set -e
# A machine without /etc/sysctl.conf (no procps) gets a private /etc holding only the tree.
if [ -e /etc/sysctl.conf ] && [ -d /etc/sysctl.d ]; then
    mount --bind "$TREE/etc/sysctl.conf" /etc/sysctl.conf
else
    mount -t tmpfs tmpfs /etc && mkdir /etc/sysctl.d && cp "$TREE/etc/sysctl.conf" /etc/
fi
mount -t tmpfs tmpfs /run && mkdir /run/sysctl.d
mount -t tmpfs tmpfs /usr/local/lib && mkdir /usr/local/lib/sysctl.d
for d in etc/sysctl.d run/sysctl.d usr/local/lib/sysctl.d usr/lib/sysctl.d; do
    mount --bind "$TREE/$d" "/$d"
done
echo BEFORE
{print}
{prefix} {sysctl} || true
echo AFTER
{print}
"#,
        prefix = release.run_prefix(),
        sysctl = release.systemd_sysctl().display(),
    )
}

/// `key -> value` (tabs folded to spaces) for the lines between `from` and `to`.
fn section(out: &str, from: &str, to: Option<&str>) -> std::collections::BTreeMap<String, String> {
    let start = out.find(from).map_or(out.len(), |i| i + from.len());
    let end = to
        .and_then(|t| out[start..].find(t).map(|i| start + i))
        .unwrap_or(out.len());
    out[start..end]
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect()
}

fn sandbox_available() -> bool {
    let ok = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["unshare", "-rnm", "sh", "-c", "mount -t tmpfs tmpfs /run"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let why = "a private user + net + mount namespace is missing";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("skipped: {why}");
    }
    ok
}

/// Every regular file under `dir` (recursively), and every symbolic link with the path it
/// leads to inside the tree (an absolute target is taken inside the tree, as `--root` does).
fn walk(root: &Path, dir: &Path, files: &mut Vec<PathBuf>, links: &mut Vec<(PathBuf, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            let Ok(target) = std::fs::read_link(&path) else {
                continue;
            };
            let to = match target.strip_prefix("/") {
                Ok(inside) => root.join(inside),
                Err(_) => path.parent().unwrap_or(dir).join(target),
            };
            if let Ok(real) = std::fs::canonicalize(&to) {
                links.push((path, real));
            }
        } else if meta.is_dir() {
            walk(root, &path, files, links);
        } else if meta.is_file() {
            files.push(path);
        }
    }
}

/// Where a value is written in the tree the test made, found with plain file reads: if in
/// exactly one line of one file, the names systemd-sysctl can read that file by (its own path
/// and every link in the tree that leads to it, shown from the root) and the line.
fn written_once(root: &Path, value: &str) -> Option<(Vec<String>, usize)> {
    let (mut files, mut links) = (Vec::new(), Vec::new());
    for dir in SYSCTL_DIRS {
        walk(root, &root.join(dir), &mut files, &mut links);
    }
    files.push(root.join("etc/sysctl.conf"));
    let mut places = Vec::new();
    for file in &files {
        let text = String::from_utf8_lossy(&std::fs::read(file).ok()?).into_owned();
        if text.contains('\r') {
            return None;
        }
        for (i, line) in text.split('\n').enumerate() {
            if line.contains(&format!("= {value}")) || line.contains(&format!("={value}")) {
                places.push((file.clone(), i + 1));
            }
        }
    }
    let [(file, line)] = &places[..] else {
        return None;
    };
    let real = std::fs::canonicalize(file).ok()?;
    let shown = |p: &Path| format!("/{}", p.strip_prefix(root).unwrap_or(p).display());
    let mut names = vec![shown(file)];
    names.extend(
        links
            .iter()
            .filter(|(_, to)| *to == real)
            .map(|(link, _)| shown(link)),
    );
    Some((names, *line))
}

/// The profile `diff` reads: every key, optional, at a value no case writes.
fn profile(keys: &[&str]) -> String {
    let mut text = String::from("[profile]\nname = \"oracle\"\n\n[sysctl]\n");
    for k in keys {
        let v = match *k {
            "net.ipv4.tcp_congestion_control" => "\"reno\"".to_string(),
            "net.ipv4.tcp_rmem" | "net.ipv4.tcp_wmem" => "\"4096 87380 6291456\"".to_string(),
            "net.ipv4.ip_local_port_range" => "\"40000 50000\"".to_string(),
            "net.ipv4.tcp_syncookies" => "1".to_string(),
            "net.ipv4.tcp_synack_retries" | "net.ipv4.tcp_keepalive_probes" => "9".to_string(),
            _ => "99".to_string(),
        };
        text.push_str(&format!("\"{k}\" = {{ value = {v}, optional = true }}\n"));
    }
    text
}

#[test]
fn systemd_sysctl_agrees_with_the_cli_on_every_tree_and_release() {
    if !sandbox_available() {
        return;
    }
    let releases = oracle::releases();
    if releases.is_empty() {
        return;
    }
    let mut cases = rule_cases();
    cases.extend(kernel_cases());
    cases.extend(generated_cases(30));
    assert!(cases.len() >= 100);
    if let Ok(only) = std::env::var("ORACLE_CASE") {
        cases.retain(|(name, _)| name.contains(&only));
    }
    let profile_dir = tempfile::tempdir().expect("tempdir");
    let profile_path = profile_dir.path().join("oracle.toml");
    std::fs::write(&profile_path, profile(KEYS)).expect("write profile");
    let profile_arg = profile_path.to_string_lossy().into_owned();
    let mut disagreements = Vec::new();
    let mut summary = Vec::new();
    for release in &releases {
        let (mut checked, mut agreed, mut located, mut changed) = (0, 0, 0, 0);
        for (name, nodes) in &cases {
            let dir = tempfile::tempdir().expect("tempdir");
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
            write_tree(dir.path(), nodes);
            std::fs::create_dir_all(dir.path().join("var/lib/dpkg")).expect("mkdir");
            std::fs::write(
                dir.path().join("var/lib/dpkg/status"),
                release.dpkg_status(),
            )
            .expect("write");
            let out = Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .args(["unshare", "-rnm", "sh", "-c", &script(KEYS, release)])
                .env("TREE", dir.path())
                .output()
                .expect("run setpriv");
            let stdout = String::from_utf8_lossy(&out.stdout);
            if std::env::var("ORACLE_CASE").is_ok() {
                eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
            }
            assert!(
                out.status.success() && stdout.contains("AFTER"),
                "{} case {name:?}: the sandbox failed: {}{}",
                release.suite,
                stdout,
                String::from_utf8_lossy(&out.stderr)
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !stderr.contains("required by") && !stderr.contains("cannot open shared"),
                "{}: systemd-sysctl cannot run: {stderr}",
                release.suite
            );
            let before = section(&stdout, "BEFORE\n", Some("AFTER\n"));
            let after = section(&stdout, "AFTER\n", None);
            // The CLI's proc/sys: the namespace's values before boot (what a partial write
            // keeps), tcp_mem so that it is the initial namespace, and the congestion controls.
            let mut procfs: Vec<(String, String)> =
                before.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            procfs.push(("net.ipv4.tcp_mem".into(), "190863 254485 381726".into()));
            procfs.push((
                "net.ipv4.tcp_available_congestion_control".into(),
                std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_congestion_control")
                    .unwrap_or_else(|_| "reno cubic".into()),
            ));
            for (k, v) in procfs {
                let path = dir.path().join("proc/sys").join(k.replace('.', "/"));
                std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                std::fs::write(path, format!("{}\n", v.trim())).expect("write");
            }
            let diff = cli_json(dir.path(), &["diff", &profile_arg]);
            let model = diff["models"]
                .as_array()
                .and_then(|m| m.iter().find(|m| m["program"] == "systemd-sysctl"))
                .and_then(|m| m["version"].as_str())
                .unwrap_or_default()
                .to_string();
            assert_eq!(
                model, release.systemd,
                "the CLI did not model the root's version"
            );
            for key in KEYS {
                let (Some(default), Some(now)) = (before.get(*key), after.get(*key)) else {
                    panic!("case {name:?}: {key} missing in the namespace: {stdout}");
                };
                let row = diff["sysctl"]
                    .as_array()
                    .and_then(|rows| rows.iter().find(|r| r["key"] == *key))
                    .unwrap_or_else(|| panic!("case {name:?}: diff has no row for {key}"));
                let boot = &row["boot"];
                let diff_value = boot["value"]
                    .as_str()
                    .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "));
                // explain for every key the boot files set (diff's "no file" is checked
                // against the kernel above).
                let (explain_value, explain_at) = if diff_value.is_some() {
                    let explain = cli_json(dir.path(), &["explain", key]);
                    (
                        explain["boot"]["value"]
                            .as_str()
                            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" ")),
                        (
                            explain["boot"]["file"].as_str().map(str::to_string),
                            explain["boot"]["line"].as_u64(),
                        ),
                    )
                } else {
                    (None, (None, None))
                };
                checked += 1;
                changed += usize::from(now != default);
                // No boot value: the kernel's default stays.
                let cli = diff_value.clone().unwrap_or_else(|| default.clone());
                let mut ok = true;
                if &cli != now {
                    ok = false;
                    disagreements.push(format!(
                        "systemd {} {name}: {key}: systemd-sysctl leaves {now:?} (default \
                         {default:?}), diff says {diff_value:?}",
                        release.systemd
                    ));
                }
                if explain_value != diff_value {
                    ok = false;
                    disagreements.push(format!(
                        "systemd {} {name}: {key}: explain says {explain_value:?}, diff says \
                         {diff_value:?}",
                        release.systemd
                    ));
                }
                let at = (
                    boot["source"]["file"].as_str().map(str::to_string),
                    boot["source"]["line"].as_u64(),
                );
                if explain_at != at {
                    ok = false;
                    disagreements.push(format!(
                        "systemd {} {name}: {key}: explain names {explain_at:?}, diff {at:?}",
                        release.systemd
                    ));
                }
                if now != default
                    && let Some((names, line)) = written_once(dir.path(), now)
                {
                    located += 1;
                    let named = at.0.as_ref().is_some_and(|f| names.contains(f));
                    if !named || at.1 != u64::try_from(line).ok() {
                        ok = false;
                        disagreements.push(format!(
                            "systemd {} {name}: {key} = {now}: written at {names:?}:{line}, \
                             diff names {at:?}",
                            release.systemd
                        ));
                    }
                }
                agreed += usize::from(ok);
            }
        }
        summary.push(format!(
            "systemd-sysctl {} ({}): {agreed}/{checked} key checks agree ({changed} changed by \
             boot, {located} with the winning line), {} trees",
            release.systemd,
            release.suite,
            cases.len()
        ));
        assert!(
            std::env::var("ORACLE_CASE").is_ok() || located >= 40,
            "only {located} winning lines were checked"
        );
    }
    eprintln!("oracle_sysctl:\n  {}", summary.join("\n  "));
    assert!(
        disagreements.is_empty(),
        "{}\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}
