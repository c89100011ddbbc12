//! Oracle: netprofile's AT BOOT value and winning line against the real systemd-sysctl.
//!
//! Each case is a crafted tree of the four sysctl.d folders and /etc/sysctl.conf. The real
//! `/lib/systemd/systemd-sysctl` runs over it inside a private user + network + mount namespace
//! entered as uid 65534 (`setpriv --reuid=65534 ... -- unshare -rnm`): the tree is bind-mounted
//! over /etc/sysctl.d, /run/sysctl.d, /usr/local/lib/sysctl.d, /usr/lib/sysctl.d and
//! /etc/sysctl.conf, and only per-namespace `net.*` keys are named, so nothing of the host can
//! change (global keys are not writable there). The values the namespace's kernel holds after
//! the run are the expected answer; netprofile reads the same tree with `--root` semantics
//! (`system::boot_files` + `sysctld::boot_value`) and must agree on every key: the value, and
//! the file and line that set it when that value is written once in the tree. Nothing is
//! expected by hand. Under CI=true a case that cannot run fails.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use netprofile::system::root::{Root, SYSCTL_DIRS};
use netprofile::system::{boot_files, sysctld};

const SYSTEMD_SYSCTL: &str = "/lib/systemd/systemd-sysctl";

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

/// A small deterministic generator (xorshift) for the combined cases.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[usize::try_from(self.next() % items.len() as u64).unwrap_or(0)]
    }
}

/// Trees that mix the rules: random names (so masking happens) in random folders, random
/// lines from a pool of line forms, values unique within a tree.
fn generated_cases(count: usize) -> Vec<(String, Vec<Node>)> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
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
                        let line = match rng.next() % 8 {
                            0 | 1 => format!("{} = {value}", rng.pick(&explicit)),
                            2 | 3 => format!("{} = {value}", rng.pick(&globs)),
                            4 => format!("-{}", rng.pick(&explicit)),
                            5 => format!("-{} = {value}", rng.pick(&explicit)),
                            6 => format!("{} = {value} trailing", rng.pick(&explicit)),
                            _ => format!("# {} = {value}", rng.pick(&explicit)),
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

/// The script run in the namespace: the tree over the real folders, the keys before and after
/// the real systemd-sysctl.
fn script(keys: &[&str]) -> String {
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
{SYSTEMD_SYSCTL} 2>/dev/null || true
echo AFTER
{print}
"#
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
    let ok = Path::new(SYSTEMD_SYSCTL).exists()
        && Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .args(["unshare", "-rnm", "sh", "-c", "mount -t tmpfs tmpfs /run"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        let why = format!("{SYSTEMD_SYSCTL} or a private user + net + mount namespace is missing");
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("skipped: {why}");
    }
    ok
}

/// Where a value is written in the tree, if exactly once: `(display path, line)`.
fn written_once(root: &Path, value: &str) -> Option<(String, usize)> {
    let files = boot_files(&Root::new(root)).ok()?;
    let mut places = Vec::new();
    for f in &files {
        for (i, line) in f.text.split(['\n', '\r']).enumerate() {
            if line.contains(&format!("= {value}")) || line.contains(&format!("={value}")) {
                places.push((f.path.clone(), i + 1));
            }
        }
    }
    (places.len() == 1 && !files.iter().any(|f| f.text.contains('\r'))).then(|| places.remove(0))
}

#[test]
fn systemd_sysctl_agrees_on_every_tree() {
    if !sandbox_available() {
        return;
    }
    let mut cases = rule_cases();
    cases.extend(generated_cases(40));
    assert!(cases.len() >= 40);
    let mut disagreements = Vec::new();
    let mut checked = 0;
    let mut located = 0;
    for (name, nodes) in &cases {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        write_tree(dir.path(), nodes);
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .args(["unshare", "-rnm", "sh", "-c", &script(KEYS)])
            .env("TREE", dir.path())
            .output()
            .expect("run setpriv");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("AFTER"),
            "case {name:?}: the sandbox failed: {}{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        let before = section(&stdout, "BEFORE\n", Some("AFTER\n"));
        let after = section(&stdout, "AFTER\n", None);
        let files = boot_files(&Root::new(dir.path()))
            .unwrap_or_else(|e| panic!("case {name:?}: netprofile cannot read the tree: {e}"));
        for key in KEYS {
            let (Some(default), Some(now)) = (before.get(*key), after.get(*key)) else {
                panic!("case {name:?}: {key} missing in the namespace: {stdout}");
            };
            let real = (now != default).then(|| now.clone());
            let model = sysctld::boot_value(&files, key, sysctld::ints_of(key, Some(default)));
            let model_value = model.as_ref().map(|a| a.value.clone());
            checked += 1;
            if model_value != real {
                disagreements.push(format!(
                    "{name}: {key}: systemd-sysctl {real:?}, netprofile {model_value:?}"
                ));
                continue;
            }
            let place = real.as_ref().and_then(|v| written_once(dir.path(), v));
            located += usize::from(place.is_some());
            if let (Some(a), Some(v), Some((file, line))) = (&model, &real, place)
                && (a.file.as_str(), a.line) != (file.as_str(), line)
            {
                disagreements.push(format!(
                    "{name}: {key} = {v}: written at {file}:{line}, netprofile names {}:{}",
                    a.file, a.line
                ));
            }
        }
    }
    eprintln!(
        "oracle_sysctl: {} trees, {checked} key checks ({located} with the winning line), {} \
         disagreements",
        cases.len(),
        disagreements.len()
    );
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    assert!(located >= 40, "only {located} winning lines were checked");
}
