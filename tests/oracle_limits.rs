//! Oracle: netprofile's effective limits against the real pam_limits, run through a PAM session.
//!
//! Each case is a crafted limits.conf + limits.d tree. A small python3 program (ctypes on
//! libpam.so.0, no compiler needed) opens a PAM session of a private service whose only line is
//! `session required pam_limits.so`, once per user in a fixed passwd/group, and reports the
//! nofile and nproc limits the session leaves. It runs inside a private user + mount + PID
//! namespace entered as uid 65534 (`setpriv --reuid=65534 ... -- unshare -rmpf --mount-proc`):
//! the tree, the service file, passwd and group are bind-mounted over /etc, and the program is
//! PID 1, so Debian's reset to /proc/1/limits resets to the base it set itself. Without
//! CAP_SYS_RESOURCE only lowering is observable, so every value is below the base and a value
//! above it (nofile `unlimited` = fs.nr_open) must leave the base. netprofile reads the
//! same tree (`system::limit_files` + `limits::outcome`) and must agree for every user and
//! item. Nothing is expected by hand. Under CI=true a case that cannot run fails.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use netprofile::profile::limit::{Item, LimitValue};
use netprofile::system::root::Root;
use netprofile::system::{LiveState, entries, limit_files, limits, pam_limits_fails};

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

/// A limits.d entry: a file, a directory, or a /dev/null link.
enum Node {
    File(&'static str, String),
    Dir(&'static str),
    Null(&'static str),
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
            "* soft nofile 1017abc\n* hard nofile junk\nalice - nproc -1\n",
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
            "unknown type and item",
            "* bogus nofile 1026\n* soft nofiles 1126\n* soft nofile 1226\n",
            vec![],
        ),
    ]
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[usize::try_from(self.next() % items.len() as u64).unwrap_or(0)]
    }
}

/// Trees mixing the rules: random domains, types, items and values over limits.conf and two
/// limits.d files.
fn generated_cases(count: usize) -> Vec<(String, String, Vec<Node>)> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
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
                let line = match rng.next() % 12 {
                    0 => format!("{} -", rng.pick(&["@ops", "bob", "@staff", "2000:"])),
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
        cases.push((
            format!("generated #{n}"),
            conf,
            vec![
                Node::File("10-a.conf", texts.remove(0)),
                Node::File("20-b.conf", texts.remove(0)),
            ],
        ));
    }
    cases
}

/// Text as Latin-1 bytes (every char of the test texts is below U+0100).
fn latin1_bytes(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}

fn write_tree(root: &Path, conf: &str, dropins: &[Node]) {
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
        "session required pam_limits.so\n",
    )
    .expect("write");
    // Latin-1 too: alice's GECOS holds the byte 0xE9.
    std::fs::write(root.join("etc/passwd"), latin1_bytes(PASSWD)).expect("write");
    std::fs::write(root.join("etc/group"), GROUP).expect("write");
    std::fs::write(root.join("driver.py"), DRIVER).expect("write");
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

fn nr_open() -> Option<i64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn num(v: LimitValue) -> u64 {
    match v {
        LimitValue::Num(n) => u64::try_from(n).unwrap_or(u64::MAX),
        LimitValue::Unlimited => u64::MAX,
    }
}

/// What netprofile predicts a session leaves for one item, from the base: a half no line sets
/// keeps the base (soft nofile: Debian's reset to 1024); a `-` stop line leaves everything; a
/// value above the base is refused by setrlimit (Debian ignores the error) and leaves the base.
fn predicted(o: &limits::Outcome, item: Item) -> (u64, u64) {
    if o.stopped_at.is_some() {
        return (BASE, BASE);
    }
    let unset_soft = if item == Item::Nofile {
        u64::try_from(limits::DEBIAN_UNSET_SOFT_NOFILE).unwrap_or(BASE)
    } else {
        BASE
    };
    let hard = o.hard.as_ref().map_or(BASE, |r| num(r.value));
    let soft = o
        .soft
        .as_ref()
        .map_or(unset_soft, |r| num(r.value))
        .min(hard);
    if hard > BASE || soft > BASE {
        (BASE, BASE)
    } else {
        (soft, hard)
    }
}

#[test]
fn pam_limits_agrees_on_every_tree() {
    if !sandbox_available() {
        return;
    }
    let mut cases = rule_cases();
    cases.extend(generated_cases(24));
    assert!(cases.len() >= 20);
    let nr_open = nr_open();
    let mut disagreements = Vec::new();
    let mut checked = 0;
    let mut lowered = 0;
    for (name, conf, dropins) in &cases {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        write_tree(dir.path(), conf, dropins);
        let script = format!(
            "set -e
for f in passwd group; do mount --bind \"$TREE/etc/$f\" /etc/$f; done
mount --bind \"$TREE/etc/security\" /etc/security
mount --bind \"$TREE/etc/pam.d\" /etc/pam.d
exec {PYTHON} \"$TREE/driver.py\" {BASE} {}",
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
            "case {name:?}: the sandbox failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let root = Root::new(dir.path());
        let files = limit_files(&root)
            .unwrap_or_else(|e| panic!("case {name:?}: netprofile cannot read the tree: {e}"));
        let entries = entries(&files);
        let fails = pam_limits_fails(&files);
        let mut live = LiveState::default();
        live.read_accounts(&root).expect("read passwd and group");
        for line in stdout.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            let [user, rc, s, h, ps, ph] = f[..] else {
                panic!("case {name:?}: bad driver line {line:?}");
            };
            let real =
                |a: &str, b: &str| (a.parse::<u64>().unwrap_or(0), b.parse::<u64>().unwrap_or(0));
            let who = live.login(user);
            for (item, (rs, rh)) in [(Item::Nofile, real(s, h)), (Item::Nproc, real(ps, ph))] {
                let o = limits::outcome(&entries, &who, item, nr_open);
                let (ms, mh) = if fails {
                    (BASE, BASE)
                } else {
                    predicted(&o, item)
                };
                checked += 1;
                lowered += usize::from((rs, rh) != (BASE, BASE));
                if (ms, mh) != (rs, rh) {
                    disagreements.push(format!(
                        "{name}: {user} {item}: pam_limits soft {rs} hard {rh}, netprofile soft \
                         {ms} hard {mh} ({o:?})"
                    ));
                }
            }
            if (rc != "0") != fails {
                disagreements.push(format!(
                    "{name}: {user}: pam_open_session returned {rc}, netprofile expected {}",
                    if fails { "a failure" } else { "success" }
                ));
            }
        }
    }
    eprintln!(
        "oracle_limits: {} trees, {checked} user x item checks ({lowered} lowered by pam), {} \
         disagreements",
        cases.len(),
        disagreements.len()
    );
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    assert!(
        lowered >= 100,
        "only {lowered} checks saw pam lower a limit"
    );
}
