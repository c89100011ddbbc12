//! Oracle: what netprofile's CLI says each login gets (`explain nofile --json`, `explain nproc
//! --json`, their `logins`) against the real pam_limits of Debian 12, 13 and sid, run through a
//! PAM session.
//!
//! Each case is a crafted limits.conf + limits.d tree. A small python3 program (ctypes on
//! libpam.so.0, no compiler needed) opens a PAM session of a private service whose only line is
//! `session required /path/to/that/release/pam_limits.so`, once per user in a fixed passwd and
//! group, and reports the nofile and nproc limits the session leaves. python3 runs through the
//! release's own ld.so with its libraries first (tests/oracle), so the release's libpam and
//! pam_limits are the ones loaded. It runs inside a private user + mount + PID namespace entered
//! as uid 65534 (`setpriv --reuid=65534 ... -- unshare -rmpf --mount-proc`): the tree, the
//! service file, passwd and group are bind-mounted over /etc, and the program is PID 1. Every
//! session starts from BASE (both halves of nofile and nproc). Without CAP_SYS_RESOURCE no
//! limit can rise above BASE, so the tree's fs.nr_open is BASE and is bind-mounted over the
//! namespace's /proc/sys/fs/nr_open (what pam_limits reads for nofile `unlimited`): a nofile
//! above it is one that setrlimit refuses, for netprofile as for the kernel here; nproc values
//! stay below BASE. `ORACLE_CASE=NAME` runs the cases whose name holds NAME and prints
//! their files.
//!
//! netprofile reads the same tree with `--root`, the release's versions in its
//! var/lib/dpkg/status, and prints what each login gets. The test only reads that output: a
//! half the CLI calls `inherited` is the session's starting BASE (clamped to the `at_most` the
//! CLI prints), and a session the CLI says fails must fail. No pam_limits rule is written here.
//! Under CI=true a release that cannot run fails.

#[path = "oracle/mod.rs"]
mod oracle;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use oracle::{Release, Rng, cli_json};

const PYTHON: &str = "/usr/bin/python3";

/// The base every session starts from (both halves of nofile and nproc); tree values stay
/// below it.
const BASE: u64 = 10_000;

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh
alice:x:1000:1000:Alice R\u{e9}sum\u{e9}:/home/alice:/bin/sh
bob:x:1001:100::/home/bob:/bin/sh
carol:x:500:500::/home/carol:/bin/sh
dave:x:2000:2000::/home/dave:/bin/sh
erin:x:1500:3000::/home/erin:/bin/sh
";

const GROUP: &str = "root:x:0:
users:x:100:
carol:x:500:
web:x:1000:
dave:x:2000:
ops:x:3000:carol
staff:x:50:bob,dave
";

const USERS: &[&str] = &["root", "alice", "bob", "carol", "dave", "erin"];

/// The profile `diff` runs on each tree (written inside it): one limit, so that the limits
/// section and its lockout warnings are planned.
const LOCKOUT_PROFILE: &str = "lockout-check.toml";
const LOCKOUT_PROFILE_TEXT: &str = "[profile]\nname = \"lockout-check\"\n\n[[limits]]\ndomain = \"*\"\ntype = \"-\"\nitem = \
     \"nofile\"\nvalue = 4096\n";

const DRIVER: &str = r#"
import ctypes, os, resource, sys
base = int(sys.argv[1])
pam = ctypes.CDLL("libpam.so.0")
CONV = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
class Conv(ctypes.Structure):
    _fields_ = [("conv", CONV), ("appdata", ctypes.c_void_p)]
callback = CONV(lambda n, m, r, d: 19)  # PAM_CONV_ERR: nothing to ask
conv = Conv(callback, None)
pam.pam_start.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(Conv), ctypes.POINTER(ctypes.c_void_p)]
pam.pam_open_session.argtypes = [ctypes.c_void_p, ctypes.c_int]
for item in (resource.RLIMIT_NOFILE, resource.RLIMIT_NPROC):
    resource.setrlimit(item, (base, base))
for user in sys.argv[2:]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        handle = ctypes.c_void_p()
        rc = pam.pam_start(b"np-oracle", user.encode(), ctypes.byref(conv), ctypes.byref(handle))
        if rc == 0:
            rc = pam.pam_open_session(handle, 0)
        s, h = resource.getrlimit(resource.RLIMIT_NOFILE)
        ps, ph = resource.getrlimit(resource.RLIMIT_NPROC)
        os.write(w, ("%s\t%d\t%d\t%d\t%d\t%d\n" % (user, rc, s, h, ps, ph)).encode())
        os._exit(0)
    os.close(w)
    sys.stdout.write(os.read(r, 4096).decode())
    os.waitpid(pid, 0)
"#;

/// limits.conf texts that stand for no file at all and for a directory of that name.
const MISSING: &str = "\0missing";
const DIRECTORY: &str = "\0directory";

/// A limits.d entry: a file, a directory, a /dev/null link, or a link to a path; `Extra` is a
/// file at a root-relative path outside limits.d (a link's target).
enum Node {
    File(&'static str, String),
    Dir(&'static str),
    Null(&'static str),
    Link(&'static str, &'static str),
    Extra(&'static str, &'static str),
}

fn d(name: &'static str, text: &str) -> Node {
    Node::File(name, text.to_string())
}

/// The hand-made cases: one or more per rule of pam_limits.
fn rule_cases() -> Vec<(String, String, Vec<Node>)> {
    let c =
        |name: &str, conf: &str, dropins: Vec<Node>| (name.to_string(), conf.to_string(), dropins);
    vec![
        c(
            "a user's hard raise past the hard limit, then a gid's dash",
            "root Hard nofile 10500\n",
            vec![d("20-b.conf", "@:0 - nofile 2744\n")],
        ),
        c("a gid alone", "@:0 - nofile 2745\n", vec![]),
        c(
            "a user's hard lowering, then a gid's dash",
            "root hard nofile 9500\n",
            vec![d("20-b.conf", "@:0 - nofile 2744\n")],
        ),
        c(
            "alice: her own hard line beats her gid's later dash",
            "alice hard nofile 9500\n",
            vec![d("20-b.conf", "@:1000 - nofile 2744\n")],
        ),
        c(
            "root: a gid's later hard beats root's own",
            "root hard nofile 9500\n",
            vec![d("20-b.conf", "@:0 hard nofile 2744\n")],
        ),
        c(
            "root: a gid range's later dash beats root's own hard",
            "root hard nofile 9500\n",
            vec![d("20-b.conf", "@0: - nofile 2744\n")],
        ),
        c(
            "root: root's later hard beats a gid's dash",
            "@:0 - nofile 2744\n",
            vec![d("20-b.conf", "root hard nofile 9500\n")],
        ),
        c(
            "root: a named group's dash is not root's",
            "root hard nofile 9500\n",
            vec![d("20-b.conf", "@root - nofile 2744\n")],
        ),
        c(
            "root: a default dash is not root's",
            "root hard nofile 9500\n",
            vec![d("20-b.conf", "* - nofile 2744\n")],
        ),
        c(
            "alice: her own hard line beats a later default dash",
            "alice hard nofile 9500\n",
            vec![d("20-b.conf", "* - nofile 2744\n")],
        ),
        c(
            "a user's hard raise alone",
            "root hard nofile 10500\n",
            vec![],
        ),
        c(
            "default only",
            "* soft nofile 1001\n* hard nofile 2001\n",
            vec![],
        ),
        c("dash sets both", "* - nofile 1002\n* - nproc 902\n", vec![]),
        c(
            "user beats group beats default",
            "* - nofile 1003\n@ops - nofile 1103\nalice - nofile 1203\ncarol soft nofile 1303\n",
            vec![],
        ),
        c(
            "later equal rank wins, across files",
            "* soft nofile 1004\n",
            vec![
                d("10-a.conf", "* soft nofile 1104\n"),
                d("20-b.conf", "* soft nofile 1204\n"),
            ],
        ),
        c(
            "case of type, item and value",
            "* SOFT NOFILE 1005\n* Hard NoFile 2005\n@OPS - nofile 1105\n",
            vec![],
        ),
        c(
            "extra fields and comments",
            "* soft nofile 1006 extra words here\n* hard nofile 2006 # comment\n# * - nproc 1\n",
            vec![],
        ),
        c(
            "uid ranges rank as users",
            "* - nofile 1007\n1000: - nofile 1107\n:500 - nofile 1207\n1000:1500 soft nofile 1307\n",
            vec![],
        ),
        c(
            "uid range beats a group",
            "@ops - nofile 1008\n1000: - nofile 1108\n",
            vec![],
        ),
        c(
            "gid ranges compare the primary gid",
            "* - nofile 1009\n@2000: - nofile 1109\n@:50 - nproc 909\n@100:1000 soft nofile 1209\n",
            vec![],
        ),
        c(
            "two-field dash line stops for members",
            "* - nofile 1010\n@ops -\nalice - nofile 1110\n",
            vec![d("50-x.conf", "* - nproc 910\n")],
        ),
        c(
            "two-field dash line for a user and a uid range",
            "* - nofile 1011\nbob -\n2000: -\n",
            vec![],
        ),
        c(
            "stop in limits.d",
            "* - nofile 1012\n",
            vec![
                d("50-x.conf", "@staff -\n"),
                d("60-y.conf", "* - nproc 912\n"),
            ],
        ),
        c(
            "two-field percent uid range stops too",
            "* - nofile 1029\n%:1001 -\n%ops -\n",
            vec![],
        ),
        c(
            "two-field star dash does nothing",
            "* - nofile 1013\n* -\n",
            vec![],
        ),
        c(
            "soft-only user entry drops the hard half of a later dash line",
            "alice soft nofile 1014\n* - nofile 2014\n@web - nofile 3014\n",
            vec![],
        ),
        c(
            "hard half refused alone",
            "alice hard nofile 5015\n@web - nofile 3015\n",
            vec![],
        ),
        c(
            "soft clamped to hard",
            "* soft nofile 9016\n* hard nofile 4016\nalice soft nproc 9916\nalice hard nproc 916\n",
            vec![],
        ),
        c(
            "values: trailing letters, junk, minus one",
            "* soft nofile 1017abc\n* hard nofile junk\nalice - nofile -1\nbob hard nofile infinity\n",
            vec![],
        ),
        c(
            "nofile unlimited is fs.nr_open",
            "* soft nofile 1018\nbob hard nofile unlimited\n",
            vec![],
        ),
        c(
            "percent domains set no rlimit",
            "%ops - nofile 1019\n% - nofile 1119\n* soft nofile 1219\n",
            vec![],
        ),
        c(
            "root is not special",
            "* - nofile 1020\n@root - nproc 920\n",
            vec![],
        ),
        c(
            "dotfiles and directories in limits.d",
            "* - nofile 1021\n",
            vec![
                d(".50-hidden.conf", "* - nofile 1121\n"),
                Node::Dir("60-dir.conf"),
                Node::Null("70-null.conf"),
                d("80-last.conf", "@ops - nproc 921\n"),
                d("90-not-conf.txt", "* - nofile 1221\n"),
            ],
        ),
        c(
            "limits.d in byte order",
            "",
            vec![
                d("50-B.conf", "* soft nofile 1022\n"),
                d("50-a.conf", "* soft nofile 1122\n"),
                d("50_a.conf", "* soft nofile 1222\n"),
            ],
        ),
        c(
            "bad uid range skipped",
            "* - nofile 1023\n1000:x - nofile 1123\nabc: - nofile 1223\n:: - nproc 923\n",
            vec![],
        ),
        c(
            "CR-only line ends are one line",
            "* soft nofile 1024\r* soft nofile 1124\r",
            vec![],
        ),
        c(
            "Latin-1 comment",
            "# r\u{e9}seau\n* - nofile 1025\n",
            vec![],
        ),
        c(
            "no limits.conf: pam_limits fails the session",
            MISSING,
            vec![d("50-x.conf", "* - nofile 1027\n")],
        ),
        c(
            "limits.conf is a directory: read as nothing",
            DIRECTORY,
            vec![d("50-x.conf", "* - nofile 1028\n")],
        ),
        c(
            "a dangling link in limits.d",
            "* - nofile 1040\n",
            vec![
                Node::Link("50-gone.conf", "nowhere.conf"),
                d("60-x.conf", "* - nproc 940\n"),
            ],
        ),
        c(
            "a stop line before a dangling link",
            "@ops -\n* - nofile 1041\n",
            vec![Node::Link("50-gone.conf", "/etc/security/gone.conf")],
        ),
        c(
            "an absolute link in limits.d resolves inside the root",
            "* - nofile 1042\n",
            vec![
                Node::Extra(
                    "etc/security/extra/x.conf",
                    "* soft nofile 1142\n@ops - nproc 942\n",
                ),
                Node::Link("50-x.conf", "/etc/security/extra/x.conf"),
            ],
        ),
        c(
            "a relative link in limits.d",
            "* - nofile 1043\n",
            vec![
                Node::Extra("etc/security/extra/y.conf", "alice soft nofile 1143\n"),
                Node::Link("50-y.conf", "../extra/y.conf"),
            ],
        ),
        c(
            "maxlogins 0 for everyone",
            "* - nofile 1044\n* - maxlogins 0\n",
            vec![],
        ),
        c(
            "maxlogins 0 for a user, a group, a percent group",
            "* - nofile 1045\nalice hard maxlogins 0\n@staff - maxlogins 0\n%ops - maxlogins 0\n",
            vec![],
        ),
        c(
            "maxsyslogins 0 and a user override",
            "* - maxsyslogins 0\nalice - maxlogins 5\n",
            vec![],
        ),
        c(
            "maxlogins: a better rank keeps its value",
            "alice - maxlogins 3\n* - maxlogins 0\n% - maxlogins 0\n",
            vec![],
        ),
        c(
            "gid ranges and root",
            "@:0 - nofile 1046\n@0: - nproc 946\n@:50 - nofile 1146\n",
            vec![],
        ),
        c(
            "a nofile above fs.nr_open",
            "* hard nofile 20000\nalice soft nofile 30000\n* - nproc 947\n",
            vec![],
        ),
        c(
            "a line longer than 1023 bytes",
            &format!(
                "# {}* - nofile 1048\n*{}soft nproc 948\n",
                "x".repeat(1021),
                " ".repeat(1030)
            ),
            vec![],
        ),
        c(
            "a limits.d line longer than 1023 bytes",
            "",
            vec![d(
                "50-long.conf",
                &format!(
                    "alice soft nofile 1049 {}@ops - nofile 1149\n",
                    "#".repeat(1001)
                ),
            )],
        ),
        c(
            "tabs, vertical tabs and extra words",
            "*\tsoft\tnofile\t1050 and more\nalice\x0bhard nproc 950\n",
            vec![],
        ),
        c(
            "unknown type and item",
            "* bogus nofile 1026\n* soft nofiles 1126\n* soft nofile 1226\n",
            vec![],
        ),
    ]
}

/// Trees mixing the rules: random domains, types, items and values over limits.conf and two
/// limits.d files.
fn generated_cases(count: usize) -> Vec<(String, String, Vec<Node>)> {
    let mut rng = Rng::seeded(0x2545_f491_4f6c_dd1d);
    let domains = [
        "*",
        "*",
        "alice",
        "bob",
        "root",
        "@ops",
        "@staff",
        "@web",
        "1000:",
        ":1001",
        "1000:1500",
        "@3000:",
        "@:50",
        "%ops",
        "nobody",
        "@:0",
        "@:1000",
        "%",
    ];
    let kinds = ["soft", "hard", "-", "-", "SOFT", "Hard"];
    let items = ["nofile", "nofile", "NOFILE", "nproc", "nproc"];
    let mut cases = Vec::new();
    let mut value = 2000;
    for n in 0..count {
        let mut texts = Vec::new();
        for _ in 0..3 {
            let mut text = String::new();
            for _ in 0..(rng.next() % 5) {
                value += 7;
                let line = match rng.next() % 14 {
                    0 => format!("{} -", rng.pick(&["@ops", "bob", "@staff", "2000:"])),
                    12 => format!(
                        "{} - {} {}",
                        rng.pick(&domains),
                        rng.pick(&["maxlogins", "maxlogins", "maxsyslogins"]),
                        rng.pick(&["0", "0", "7", "unlimited"])
                    ),
                    13 => format!(
                        "{} {} nofile {}",
                        rng.pick(&domains),
                        rng.pick(&kinds),
                        BASE + 500
                    ),
                    1 => format!(
                        "{} {} {} {value}abc",
                        rng.pick(&domains),
                        rng.pick(&kinds),
                        rng.pick(&items)
                    ),
                    _ => format!(
                        "{} {} {} {}",
                        rng.pick(&domains),
                        rng.pick(&kinds),
                        rng.pick(&items),
                        value % 9000 + 100
                    ),
                };
                text.push_str(&line);
                text.push('\n');
            }
            texts.push(text);
        }
        let conf = texts.remove(0);
        let mut dropins = vec![
            Node::File("10-a.conf", texts.remove(0)),
            Node::File("20-b.conf", texts.remove(0)),
        ];
        match rng.next() % 8 {
            0 => dropins.push(Node::Link("15-gone.conf", "/etc/security/nowhere.conf")),
            1 => dropins.push(Node::Null("15-null.conf")),
            _ => {}
        }
        cases.push((format!("generated #{n}"), conf, dropins));
    }
    cases
}

/// limits.conf and limits.d of a case's tree as text, to repeat a disagreement by hand.
fn tree_text(root: &Path) -> String {
    let conf = root.join("etc/security/limits.conf");
    let mut out = format!(
        "--- limits.conf\n{}",
        String::from_utf8_lossy(&std::fs::read(&conf).unwrap_or_default())
    );
    let mut names: Vec<_> = std::fs::read_dir(root.join("etc/security/limits.d"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    for path in names {
        let body = match std::fs::read_link(&path) {
            Ok(target) => format!("-> {}\n", target.display()),
            Err(_) => String::from_utf8_lossy(&std::fs::read(&path).unwrap_or_default()).into(),
        };
        out.push_str(&format!("--- {}\n{body}", path.display()));
    }
    out
}

/// Text as Latin-1 bytes (every char of the test texts is below U+0100).
fn latin1_bytes(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}

fn write_tree(root: &Path, conf: &str, dropins: &[Node], release: &Release) {
    let security = root.join("etc/security");
    std::fs::create_dir_all(security.join("limits.d")).expect("mkdir");
    std::fs::create_dir_all(root.join("etc/pam.d")).expect("mkdir");
    // The text is written as Latin-1, so `\u{e9}` in a case is the single byte 0xE9.
    let latin1 = latin1_bytes(conf);
    match conf {
        MISSING => {}
        DIRECTORY => std::fs::create_dir(security.join("limits.conf")).expect("mkdir"),
        _ => std::fs::write(security.join("limits.conf"), latin1).expect("write"),
    }
    std::fs::write(
        root.join("etc/pam.d/np-oracle"),
        format!("session required {}\n", release.pam_limits().display()),
    )
    .expect("write");
    // What netprofile reads to choose its model, and the fs.nr_open that bounds nofile here.
    std::fs::create_dir_all(root.join("var/lib/dpkg")).expect("mkdir");
    std::fs::write(root.join("var/lib/dpkg/status"), release.dpkg_status()).expect("write");
    std::fs::create_dir_all(root.join("proc/sys/fs")).expect("mkdir");
    std::fs::write(root.join("proc/sys/fs/nr_open"), format!("{BASE}\n")).expect("write");
    // Latin-1 too: alice's GECOS holds the byte 0xE9.
    std::fs::write(root.join("etc/passwd"), latin1_bytes(PASSWD)).expect("write");
    std::fs::write(root.join("etc/group"), GROUP).expect("write");
    std::fs::write(root.join("driver.py"), DRIVER).expect("write");
    // pam_limits is installed on the tree (where netprofile looks for it), and a profile with a
    // limit for `diff`: its lockout warnings are compared with the sessions that really fail.
    let security_dir = root.join("usr/lib/x86_64-linux-gnu/security");
    std::fs::create_dir_all(&security_dir).expect("mkdir");
    std::fs::write(security_dir.join("pam_limits.so"), "").expect("write");
    std::fs::write(root.join(LOCKOUT_PROFILE), LOCKOUT_PROFILE_TEXT).expect("write");
    for node in dropins {
        let dir = security.join("limits.d");
        match node {
            Node::File(name, text) => std::fs::write(dir.join(name), text).expect("write"),
            Node::Dir(name) => {
                std::fs::create_dir(dir.join(name)).expect("mkdir");
                std::fs::write(dir.join(name).join("x.conf"), "* - nofile 1\n").expect("write");
            }
            Node::Null(name) => {
                std::os::unix::fs::symlink("/dev/null", dir.join(name)).expect("symlink");
            }
            Node::Link(name, target) => {
                std::os::unix::fs::symlink(target, dir.join(name)).expect("symlink");
            }
            Node::Extra(rel, text) => {
                let path = root.join(rel);
                std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                std::fs::write(path, text).expect("write");
            }
        }
    }
}

fn sandbox_available() -> bool {
    let ok = Path::new(PYTHON).exists()
        && Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .args(["unshare", "-rmpf", "--mount-proc", "true"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        let why = format!("{PYTHON} or a private user + mount + PID namespace is missing");
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("skipped: {why}");
    }
    ok
}

/// The session the CLI describes for one login and item, as (soft, hard) from BASE, and
/// whether it says the session fails. `inherited` is what the session started with: BASE,
/// clamped to `at_most` when the CLI gives one.
fn cli_view(login: &serde_json::Value, name: &str) -> ((u64, u64), bool) {
    let half = |h: &serde_json::Value| -> u64 {
        // `inherited hard` is the session's starting hard limit: BASE.
        let cap = h["at_most"]
            .as_str()
            .map_or(u64::MAX, |c| c.parse().unwrap_or(BASE));
        match h["value"].as_str() {
            Some("unlimited") => u64::MAX,
            Some(v) => v
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("{name}: the CLI printed {v:?}"))
                .min(cap),
            None => BASE.min(cap),
        }
    };
    (
        (half(&login["soft"]), half(&login["hard"])),
        login["session"] == "fails",
    )
}

#[test]
fn pam_limits_agrees_with_the_cli_on_every_tree_and_release() {
    if !sandbox_available() {
        return;
    }
    let releases = oracle::releases();
    if releases.is_empty() {
        return;
    }
    let mut cases = rule_cases();
    cases.extend(generated_cases(40));
    assert!(cases.len() >= 60);
    if let Ok(only) = std::env::var("ORACLE_CASE") {
        cases.retain(|(name, _, _)| name.contains(&only));
    }
    let mut disagreements = Vec::new();
    let mut summary = Vec::new();
    for release in &releases {
        let mut checked = 0;
        let mut agreed = 0;
        let mut lowered = 0;
        let mut failed_sessions = 0;
        let mut lockouts_agreed = 0;
        for (name, conf, dropins) in &cases {
            let dir = tempfile::tempdir().expect("tempdir");
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
            write_tree(dir.path(), conf, dropins, release);
            if std::env::var("ORACLE_CASE").is_ok() {
                let files = [
                    "etc/security/limits.conf",
                    "etc/security/limits.d/10-a.conf",
                    "etc/security/limits.d/20-b.conf",
                ];
                for f in files {
                    eprintln!(
                        "--- {f}\n{}",
                        std::fs::read_to_string(dir.path().join(f)).unwrap_or_default()
                    );
                }
            }
            let script = format!(
                "set -e
for f in passwd group; do mount --bind \"$TREE/etc/$f\" /etc/$f; done
mount --bind \"$TREE/etc/security\" /etc/security
mount --bind \"$TREE/etc/pam.d\" /etc/pam.d
mount --bind \"$TREE/proc/sys/fs/nr_open\" /proc/sys/fs/nr_open
exec {} {PYTHON} \"$TREE/driver.py\" {BASE} {}",
                release.run_prefix(),
                USERS.join(" ")
            );
            let out = Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .args(["unshare", "-rmpf", "--mount-proc", "sh", "-c", &script])
                .env("TREE", dir.path())
                .output()
                .expect("run setpriv");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.lines().count() == USERS.len(),
                "{} case {name:?}: the sandbox failed: {stdout}{}",
                release.suite,
                String::from_utf8_lossy(&out.stderr)
            );
            let nofile = cli_json(dir.path(), &["explain", "nofile"]);
            let nproc = cli_json(dir.path(), &["explain", "nproc"]);
            let pam_model = nofile["models"]
                .as_array()
                .and_then(|m| m.iter().find(|m| m["program"] == "pam_limits"))
                .and_then(|m| m["version"].as_str())
                .unwrap_or_default()
                .to_string();
            assert_eq!(
                pam_model, release.pam,
                "the CLI did not model the root's version"
            );
            // diff warns of a lockout exactly when some login's session really fails.
            let profile = dir.path().join(LOCKOUT_PROFILE);
            let diff = cli_json(dir.path(), &["diff", &profile.to_string_lossy()]);
            let warned: Vec<String> = diff["warnings"]
                .as_array()
                .map(|w| w.iter().map(ToString::to_string).collect())
                .unwrap_or_default();
            let cli_lockout = warned
                .iter()
                .any(|w| w.contains("login lockout: ") || w.contains("is missing: wherever PAM"));
            let real_lockout = stdout
                .lines()
                .any(|l| l.split('\t').nth(1).is_some_and(|rc| rc != "0"));
            if cli_lockout == real_lockout {
                lockouts_agreed += 1;
            } else {
                disagreements.push(format!(
                    "pam_limits {} {name}: a session really fails: {real_lockout}; diff warns \
                     of a lockout: {cli_lockout} ({warned:?})",
                    release.pam
                ));
            }
            for line in stdout.lines() {
                let f: Vec<&str> = line.split('\t').collect();
                let [user, rc, s, h, ps, ph] = f[..] else {
                    panic!("case {name:?}: bad driver line {line:?}");
                };
                let real = |a: &str, b: &str| {
                    (a.parse::<u64>().unwrap_or(0), b.parse::<u64>().unwrap_or(0))
                };
                let real_fails = rc != "0";
                failed_sessions += usize::from(real_fails);
                for (item, doc, got) in [
                    ("nofile", &nofile, real(s, h)),
                    ("nproc", &nproc, real(ps, ph)),
                ] {
                    let login = doc["logins"]
                        .as_array()
                        .and_then(|l| l.iter().find(|l| l["user"] == user))
                        .unwrap_or_else(|| panic!("case {name:?}: no login {user} in the CLI"));
                    let (want, cli_fails) = cli_view(login, name);
                    checked += 1;
                    lowered += usize::from(got != (BASE, BASE));
                    if want == got && cli_fails == real_fails {
                        agreed += 1;
                    } else {
                        disagreements.push(format!(
                            "pam_limits {} {name}: {user} {item}: real soft {} hard {} session \
                             rc {rc}; CLI soft {} hard {} session {} ({})\n{}",
                            release.pam,
                            got.0,
                            got.1,
                            want.0,
                            want.1,
                            login["session"],
                            login,
                            tree_text(dir.path())
                        ));
                    }
                }
            }
        }
        summary.push(format!(
            "pam_limits {} ({}): {agreed}/{checked} login x item checks agree ({lowered} \
             lowered, {failed_sessions} failed sessions), {} trees; diff's lockout warning \
             agrees on {lockouts_agreed}/{} trees",
            release.pam,
            release.suite,
            cases.len(),
            cases.len()
        ));
        assert!(
            lowered >= 100,
            "{}: only {lowered} checks saw pam lower a limit",
            release.suite
        );
    }
    eprintln!("oracle_limits:\n  {}", summary.join("\n  "));
    assert!(
        disagreements.is_empty(),
        "{}\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}
