//! doctor against real servers (nginx, redis, haproxy from Debian's packages) under real load
//! (netprofile's own `test hold --target`, and ab), each scenario in a private user, network,
//! mount and pid namespace entered as uid 65534, the server started with its own configuration
//! in a temporary folder on loopback, with a limit set on purpose. Each test asserts doctor's
//! JSON (finding, process, fix) before and after the cure. Under CI=true a missing server
//! binary fails the test (.ci/run installs them); elsewhere the test is skipped with a message.

mod common;
mod doctor_common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::text;
use doctor_common::assert_schema;
use serde_json::Value;

fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Whether every program is installed; under CI=true a missing one fails.
fn have(programs: &[&str]) -> bool {
    for p in programs {
        let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|d| std::path::Path::new(d).join(p).exists());
        if !found {
            assert!(!ci(), "{p} is not installed (.ci/run installs it)");
            eprintln!("skipped: {p} is not installed");
            return false;
        }
    }
    true
}

/// Runs `script` with bash as root of a private user + network + mount + pid namespace entered as
/// uid 65534, in a temporary folder `$D` (readable by that uid) holding `files`. `$NP` is the
/// netprofile binary, `$ROOT` a root whose `proc` is the real one. Returns every JSON
/// document the script printed (each starts with a line `{`), checked against the schema when
/// it is doctor's.
fn scenario(script: &str, files: &[(&str, &str)]) -> Option<Vec<Value>> {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for (name, content) in files {
        std::fs::write(d.join(name), content).expect("write file");
    }
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    for entry in std::fs::read_dir(d).expect("read dir") {
        let path = entry.expect("entry").path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    }
    let root = d.join("root");
    std::fs::create_dir(&root).expect("mkdir");
    std::os::unix::fs::symlink("/proc", root.join("proc")).expect("symlink");
    let np = d.join("netprofile");
    std::fs::copy(env!("CARGO_BIN_EXE_netprofile"), &np).expect("copy binary");
    std::fs::set_permissions(&np, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let run = |script: &str| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            // A pid namespace of its own too: when the script ends, the kernel ends every
            // server and load generator it started, and their output pipes close.
            .args(["unshare", "-rnm", "--pid", "--fork", "--mount-proc"])
            .args(["bash", "-c", script])
            .env("NP", &np)
            .env("ROOT", &root)
            .env("D", d)
            .env(
                "PATH",
                format!(
                    "{}:/usr/sbin:/sbin",
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .current_dir(d)
            .output()
    };
    match run("test -w /proc/sys/net/core/somaxconn") {
        Ok(probe) if probe.status.success() => {}
        other => {
            let why = format!("cannot enter a private user + network namespace: {other:?}");
            assert!(!ci(), "{why}");
            eprintln!("skipped: {why}");
            return None;
        }
    }
    // The last `wait` of a killed server is not a failure: the documents printed are checked.
    let script = format!("set -u\nip link set lo up\n{script}\ntrue\n");
    let out = run(&script).expect("run scenario");
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut docs = Vec::new();
    let mut current = String::new();
    for line in stdout.lines() {
        if line == "{" && !current.is_empty() {
            docs.push(std::mem::take(&mut current));
        }
        if line == "{" || !current.is_empty() {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs.push(current);
    let docs: Vec<Value> = docs
        .iter()
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}\n{}", text(&out))))
        .collect();
    for doc in &docs {
        if doc.get("findings").is_some() {
            assert_schema("doctor.json", doc);
        }
    }
    Some(docs)
}

fn find<'a>(doc: &'a Value, limit: &str) -> Option<&'a Value> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["limit"] == limit)
}

/// The scenario's limit binds, unless a machine-wide one that the test does not control (a
/// shared machine's file handles, TCP memory) outranks it: then the scenario's finding must
/// still be a warning or worse.
fn assert_binds(doc: &Value, limit: &str) {
    let binding = doc["binding"].as_str().unwrap_or("none");
    if binding == limit {
        return;
    }
    assert!(
        ["file-max", "tcp-mem"].contains(&binding),
        "binding {binding}, not {limit}: {doc:#}"
    );
    let f = must(doc, limit);
    assert!(
        ["warning", "critical"].contains(&f["severity"].as_str().unwrap()),
        "{f:#}"
    );
}

fn must<'a>(doc: &'a Value, limit: &str) -> &'a Value {
    find(doc, limit).unwrap_or_else(|| panic!("no {limit} finding in {doc:#}"))
}

fn fixes(f: &Value) -> String {
    f["fix"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Polls doctor (1 s samples) until its JSON names `limit` as binding, at most 6 times, and
/// prints the last document: on a loaded machine the load may take seconds to build.
fn poll_doctor(limit: &str) -> String {
    format!(
        r#"out=
        for _ in $(seq 6); do
            out=$("$NP" --root "$ROOT" --json doctor --interval 1)
            case "$out" in *'"binding": "{limit}"'*|*'"limit": "{limit}",'*'"severity": "critical"'*) break ;; esac
            sleep 0.5
        done
        printf '%s\n' "$out""#
    )
}

/// nginx in one process (master_process off: a user namespace has one uid, so it cannot
/// switch user), its temp paths in the scenario's folder, on 127.0.0.1:8090.
const NGINX_CONF: &str = "master_process off;\nuser root root;\npid PIDFILE;\nerror_log ERRLOG;\n\
events { worker_connections 4096; }\nhttp {\n    access_log off;\n    client_body_temp_path D/body;\n\
    proxy_temp_path D/proxy;\n    fastcgi_temp_path D/fastcgi;\n    uwsgi_temp_path D/uwsgi;\n\
    scgi_temp_path D/scgi;\n    keepalive_timeout 60s;\n    keepalive_requests 100000;\n\
    server { listen 127.0.0.1:8090; location / { return 200 \"ok\\n\"; } }\n}\n";

/// Writes nginx.conf for the folder `$D` and starts nginx with it in the background.
const START_NGINX: &str = r#"sed -e "s|PIDFILE|$D/nginx.pid|; s|ERRLOG|$D/nginx.log|; s|D/|$D/|g" "$D/nginx.in" > "$D/nginx.conf"
start_nginx() { nginx -c "$D/nginx.conf" -e "$D/nginx.log" -g 'daemon off;' & nginx_pid=$!; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }
"#;

#[test]
fn nginx_listening_before_somaxconn_was_raised_gets_restart_advice_until_restarted() {
    // nginx asks a backlog of 511, but somaxconn was 64 when it called listen(); then
    // somaxconn is raised (as `apply` would). doctor names nginx, the backlog it kept and
    // the restart that gives it 511, not "the application asks a small backlog"; after the
    // restart the finding is gone and the listener has 511.
    if !have(&["nginx"]) {
        return;
    }
    let Some(docs) = scenario(
        &format!(
            r#"{START_NGINX}
            echo 64 > /proc/sys/net/core/somaxconn
            start_nginx; wait_port 8090
            echo 4096 > /proc/sys/net/core/somaxconn
            "$NP" --root "$ROOT" --json doctor --interval 1
            kill $nginx_pid; wait $nginx_pid
            start_nginx; wait_port 8090
            "$NP" --root "$ROOT" --json doctor --interval 1
            "#
        ),
        &[("nginx.in", NGINX_CONF)],
    ) else {
        return;
    };
    let [before, after] = &docs[..] else {
        panic!("{docs:#?}")
    };
    assert_binds(before, "listener-restart");
    let f = must(before, "listener-restart");
    assert_eq!(f["process"]["name"], "nginx", "{f:#}");
    assert!(
        f["title"]
            .as_str()
            .unwrap()
            .contains("listens with a backlog of 64 although net.core.somaxconn is now 4096"),
        "{f:#}"
    );
    assert!(fixes(f).starts_with("restart nginx (pid "), "{f:#}");
    assert!(find(before, "app-backlog").is_none(), "{before:#}");
    // After the cure.
    assert!(find(after, "listener-restart").is_none(), "{after:#}");
    let l = &after["listeners"][0];
    assert_eq!(
        (l["port"].as_u64(), l["backlog"].as_u64()),
        (Some(8090), Some(511))
    );
}

const REDIS_CONF: &str = "port 6390\nbind 127.0.0.1\ndaemonize no\nsave \"\"\nappendonly no\n\
dir /tmp\nmaxclients MAXCLIENTS\nlogfile \"\"\n";

#[test]
fn redis_at_its_maxclients_is_named_with_its_setting_and_the_hold_says_the_server_closed() {
    // redis with maxclients 500 in its packaged config path (/etc/redis/redis.conf, a tmpfs
    // of this mount namespace), 600 connections held: redis accepts 100 of them and closes
    // them at once ("max number of clients reached"). doctor names redis-server, its
    // maxclients from the file, and `test hold --target` says the server closed connections,
    // not "accept queue". With maxclients 2000 all 600 are held and doctor is quiet about it.
    if !have(&["redis-server"]) {
        return;
    }
    let hold = r#""$NP" --json test hold --target 127.0.0.1:6390 -n 600 --duration 20 --connect-timeout 20s > "$D/hold.json" 2>/dev/null"#;
    let Some(docs) = scenario(
        &format!(
            r#"wait_port() {{ for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }}
            mount -t tmpfs tmpfs /etc/redis
            for cap in 500 2000; do
                sed "s/MAXCLIENTS/$cap/" "$D/redis.in" > /etc/redis/redis.conf
                redis-server /etc/redis/redis.conf > "$D/redis.log" 2>&1 & redis=$!
                wait_port 6390
                {hold} & hold=$!
                sleep 1
                if [ $cap = 500 ]; then
                    {poll}
                else
                    "$NP" --root "$ROOT" --json doctor --interval 1
                fi
                wait $hold; cat "$D/hold.json"
                kill $redis; wait $redis
            done
            "#,
            poll = poll_doctor("app-cap")
        ),
        &[("redis.in", REDIS_CONF)],
    ) else {
        return;
    };
    let [before, hold_before, after, hold_after] = &docs[..] else {
        panic!("{docs:#?}")
    };
    assert_binds(before, "app-cap");
    let f = must(before, "app-cap");
    assert_eq!(f["process"]["name"], "redis-server", "{f:#}");
    assert!(
        f["title"]
            .as_str()
            .unwrap()
            .contains("its own cap maxclients 500 (from /etc/redis/redis.conf)"),
        "{f:#}"
    );
    assert!(
        fixes(f).contains("raise maxclients in /etc/redis/redis.conf"),
        "{f:#}"
    );
    // Its nofile (redis set it to maxclients + 32) is not what binds: its maxclients is.
    if let Some(n) = find(before, "nofile") {
        assert!(
            n["capacity"]
                .as_str()
                .unwrap()
                .contains("its own maxclients"),
            "{n:#}"
        );
    }
    assert_eq!(
        hold_before["verdict"]["limit"], "server-closed",
        "{hold_before:#}"
    );
    assert_eq!(hold_before["held"], 500, "{hold_before:#}");
    // After the cure.
    assert!(find(after, "app-cap").is_none(), "{after:#}");
    assert_ne!(after["binding"], "app-cap");
    assert_eq!(hold_after["held"], 600, "{hold_after:#}");
    assert_ne!(
        hold_after["verdict"]["limit"], "server-closed",
        "{hold_after:#}"
    );
}

const HAPROXY_CFG: &str = "global\n    maxconn 4000\ndefaults\n    mode http\n    timeout client 60s\n\
    timeout http-request 60s\nfrontend front\n    bind 127.0.0.1:8100\n    maxconn MAXCONN\n\
    http-request return status 200\n";

#[test]
fn haproxy_at_its_maxconn_is_the_binding_limit_not_somaxconn() {
    // haproxy with a frontend maxconn of 100 and 300 idle connections held: it stops
    // accepting at 100, its queue (backlog 100, from maxconn) fills while it is idle. doctor
    // names haproxy's maxconn from its configuration, and the full queue as its symptom (not
    // critical, not somaxconn's). With maxconn 1000 the same load leaves no app-cap finding.
    if !have(&["haproxy"]) {
        return;
    }
    let Some(docs) = scenario(
        &format!(
            r#"wait_port() {{ for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }}
            for cap in 100 1000; do
                sed "s/MAXCONN/$cap/" "$D/haproxy.in" > "$D/haproxy.cfg"
                haproxy -f "$D/haproxy.cfg" -db > "$D/haproxy.log" 2>&1 & hap=$!
                wait_port 8100
                "$NP" --json test hold --target 127.0.0.1:8100 -n 300 --duration 40 --payload 0 --connect-timeout 20s > /dev/null 2>&1 & hold=$!
                sleep 1
                if [ $cap = 100 ]; then
                    {poll}
                else
                    "$NP" --root "$ROOT" --json doctor --interval 1
                fi
                kill $hold; wait $hold
                kill $hap; wait $hap
            done
            "#,
            poll = poll_doctor("app-cap")
        ),
        &[("haproxy.in", HAPROXY_CFG)],
    ) else {
        return;
    };
    let [before, after] = &docs[..] else {
        panic!("{docs:#?}")
    };
    assert_binds(before, "app-cap");
    let f = must(before, "app-cap");
    assert_eq!(f["process"]["name"], "haproxy", "{f:#}");
    assert!(
        f["title"].as_str().unwrap().contains("maxconn 100 (from "),
        "{f:#}"
    );
    assert!(fixes(f).contains("raise maxconn"), "{f:#}");
    if let Some(q) = find(before, "accept-queue") {
        assert_ne!(q["severity"], "critical", "{q:#}");
    }
    assert!(find(after, "app-cap").is_none(), "{after:#}");
}

#[test]
fn a_client_near_its_nofile_is_found_by_plain_doctor() {
    // ab holding 900 keep-alive connections to nginx with a soft nofile of 1024 (hard 4096):
    // plain doctor (no --connections, no --outgoing) names ab, and since only the soft limit
    // binds its fix starts with `apply --running`. With a soft limit of 4096 ab is not named.
    if !have(&["nginx", "ab"]) {
        return;
    }
    let Some(docs) = scenario(
        &format!(
            r#"{START_NGINX}
            (ulimit -n 8192; start_nginx; wait) & wait_port 8090
            for soft in 1024 4096; do
                (ulimit -Hn 4096; ulimit -Sn $soft; exec ab -q -k -c 900 -t 40 -n 100000000 -s 30 http://127.0.0.1:8090/ > /dev/null 2>&1) & ab=$!
                sleep 1
                out=
                for _ in $(seq 6); do
                    out=$("$NP" --root "$ROOT" --json doctor --interval 1)
                    case "$out" in *'"name": "ab"'*) [ $soft = 1024 ] && break ;; esac
                    [ $soft = 4096 ] && break
                    sleep 0.5
                done
                printf '%s\n' "$out"
                kill $ab 2>/dev/null; wait $ab
            done
            "#
        ),
        &[("nginx.in", NGINX_CONF)],
    ) else {
        return;
    };
    let [before, after] = &docs[..] else {
        panic!("{docs:#?}")
    };
    let f = before["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["limit"] == "nofile" && f["process"]["name"] == "ab")
        .unwrap_or_else(|| panic!("no nofile finding for ab: {before:#}"));
    assert!(
        ["warning", "critical"].contains(&f["severity"].as_str().unwrap()),
        "{f:#}"
    );
    assert!(f["title"].as_str().unwrap().contains("a client"), "{f:#}");
    assert!(
        fixes(f).starts_with("now, without a restart: netprofile apply high-conn --running ab"),
        "{f:#}"
    );
    let named = |doc: &Value| {
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["limit"] == "nofile" && f["process"]["name"] == "ab")
    };
    assert!(!named(after), "{after:#}");
}

#[test]
fn nginx_at_its_fd_limit_is_named_with_its_own_setting() {
    // nginx started with nofile 256 (soft and hard) and 600 idle connections held: it fails
    // accept4() with EMFILE. doctor names nginx's nofile (critical), says what started it
    // (neither a unit nor a login here: no guess), and names worker_rlimit_nofile. Started with
    // nofile 8192 the same load leaves it well below its limit.
    if !have(&["nginx"]) {
        return;
    }
    let Some(docs) = scenario(
        &format!(
            r#"{START_NGINX}
            for n in 256 8192; do
                (ulimit -n $n; start_nginx; wait) & srv=$!
                wait_port 8090
                "$NP" --json test hold --target 127.0.0.1:8090 -n 600 --duration 40 --payload 0 --connect-timeout 20s > /dev/null 2>&1 & hold=$!
                sleep 1
                if [ $n = 256 ]; then
                    {poll}
                else
                    "$NP" --root "$ROOT" --json doctor --interval 1
                fi
                kill $hold; wait $hold
                kill $(cat "$D/nginx.pid"); wait $srv
            done
            "#,
            poll = poll_doctor("nofile")
        ),
        &[("nginx.in", NGINX_CONF)],
    ) else {
        return;
    };
    let [before, after] = &docs[..] else {
        panic!("{docs:#?}")
    };
    assert_binds(before, "nofile");
    let f = must(before, "nofile");
    assert_eq!(f["severity"], "critical", "{f:#}");
    assert_eq!(f["process"]["name"], "nginx", "{f:#}");
    let fix = fixes(f);
    assert!(fix.contains("worker_rlimit_nofile"), "{f:#}");
    if f["process"]["started_by"] == "unknown" {
        assert!(
            fix.contains("neither a systemd unit nor a login session"),
            "{f:#}"
        );
    }
    assert!(!fix.contains("--running"), "hard = soft = 256: {f:#}");
    let g = must(after, "nofile");
    assert_eq!(g["severity"], "ok", "{g:#}");
}
