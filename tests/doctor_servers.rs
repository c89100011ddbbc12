//! doctor against real servers (nginx, redis, haproxy from Debian's packages) under real load
//! (netprofile's own `test hold --target`, and ab), each scenario in a private user, network,
//! mount and pid namespace entered as uid 65534, the server started with its own configuration
//! in a temporary folder on loopback, with a limit set on purpose. Each test asserts doctor's
//! JSON (finding, process, fix) before and after the cure. Under CI=true a missing server
//! binary fails the test (.ci/run installs them); elsewhere the test is skipped with a message.

mod common;
mod doctor_common;

use common::{in_private_ns, text};
use doctor_common::json_docs;
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

/// Shell functions every scenario may use. Every wait is bounded in count and time, and
/// generous: the machine may be shared by other builds (CI has 2 cores); one that runs out
/// fails the scenario with the servers' logs and the sockets (`fail`).
/// - `wait_port P`: until something accepts on 127.0.0.1:P (at most 120 s);
/// - `established P`: the server-side established connections on port P;
/// - `wait_est P N`: until N are established on port P (at most 300 s);
/// - `doctor_until TEXT...`: doctor (1-s samples) until its JSON, spaces and newlines removed,
///   contains one of the TEXTs, at most 40 runs and 300 s, then prints the last document. The
///   load that makes the condition runs until it is killed, so a slow doctor run cannot miss
///   it;
/// - `mark NAME VALUE`: prints a small JSON document `{"mark": NAME, "value": VALUE}`.
const HELPERS: &str = r#"
fail() { echo "$*" >&2; for f in "$D"/*.log; do echo "== $f" >&2; tail -n 20 "$f" >&2; done; ss -tanp >&2; exit 1; }
wait_port() { local t=$SECONDS; until (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null; do [ $((SECONDS-t)) -ge 120 ] && fail "port $1 never opened"; sleep 0.1; done; }
established() { ss -Htn state established "( sport = :$1 )" | wc -l; }
wait_est() { local t=$SECONDS; until [ "$(established $1)" -ge $2 ]; do [ $((SECONDS-t)) -ge 300 ] && fail "only $(established $1) of $2 established on port $1"; sleep 0.2; done; }
doctor_until() {
    local out= flat= t=$SECONDS p
    for _ in $(seq 40); do
        out=$("$NP" --root "$ROOT" --json doctor --interval 1)
        flat=$(printf '%s' "$out" | tr -d ' \n')
        for p in "$@"; do case "$flat" in *"$p"*) printf '%s\n' "$out"; return 0 ;; esac; done
        [ $((SECONDS-t)) -ge 300 ] && break
        sleep 0.5
    done
    printf '%s\n' "$out"
}
mark() { printf '{\n"mark": "%s", "value": %s\n}\n' "$1" "$2"; }
"#;

/// Runs `script` with bash as root of a private user, network, mount and pid namespace
/// entered as uid 65534 (tests/common), in a temporary folder `$D` holding `files`, with
/// `HELPERS` defined. `$NP` is the netprofile binary, `$ROOT` a root whose `proc` is the real
/// one. Returns every JSON document the script printed, doctor's checked against its schema.
fn scenario(script: &str, files: &[(&str, &str)]) -> Option<Vec<Value>> {
    // The last `wait` of a killed server is not a failure: the documents printed are checked.
    let script = format!("set -u\nip link set lo up\n{HELPERS}\n{script}\ntrue\n");
    let (out, _dir) = in_private_ns(&script, files, true)?;
    assert!(out.status.success(), "{}", text(&out));
    // Shown when an assertion on the documents fails.
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    Some(json_docs(&out))
}

/// The documents that are doctor's, in order, and the marks by name.
fn split(docs: &[Value]) -> (Vec<&Value>, Vec<(&str, &Value)>) {
    let doctor = docs
        .iter()
        .filter(|d| d.get("findings").is_some())
        .collect();
    let marks = docs
        .iter()
        .filter_map(|d| Some((d.get("mark")?.as_str()?, &d["value"])))
        .collect();
    (doctor, marks)
}

/// A scenario's output: doctor's two documents (under load, then after it) and its marks.
struct Run<'a> {
    docs: &'a [Value],
    before: &'a Value,
    after: &'a Value,
    marks: Vec<(&'a str, &'a Value)>,
}

impl<'a> Run<'a> {
    fn of(docs: &'a [Value]) -> Run<'a> {
        let (doctor, marks) = split(docs);
        let [before, after] = doctor[..] else {
            panic!("{docs:#?}")
        };
        Run {
            docs,
            before,
            after,
            marks,
        }
    }

    fn mark(&self, name: &str) -> Value {
        mark_in(self.docs, name)
    }
}

/// The value the script marked as `name`.
fn mark_in(docs: &[Value], name: &str) -> Value {
    split(docs)
        .1
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| (*v).clone())
        .unwrap_or_else(|| panic!("no mark {name}: {docs:#?}"))
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

/// The findings at warning or worse about a process named `name`.
fn warnings_about<'a>(doc: &'a Value, name: &str) -> Vec<&'a Value> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["process"]["name"] == name)
        .filter(|f| ["warning", "critical"].contains(&f["severity"].as_str().unwrap()))
        .collect()
}

/// The nofile finding of the process named `name`.
fn nofile_of<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["limit"] == "nofile" && f["process"]["name"] == name)
        .unwrap_or_else(|| panic!("no nofile finding for {name}: {doc:#}"))
}

/// doctor waits until a finding of `limit` is critical, or `limit` binds.
fn until_critical(limit: &str) -> String {
    format!(r#"doctor_until '"binding":"{limit}"' '"limit":"{limit}","severity":"critical"'"#)
}

/// nginx in one process (master_process off: a user namespace has one uid, so it cannot
/// switch user), its temp paths in the scenario's folder, on 127.0.0.1:8090. Idle
/// connections (a hold's, `--payload 0`) are kept 10 minutes, longer than any scenario.
const NGINX_CONF: &str = "master_process off;\nuser root root;\npid PIDFILE;\nerror_log ERRLOG;\n\
events { worker_connections 4096; }\nhttp {\n    access_log off;\n    client_body_temp_path @D@/body;\n\
    proxy_temp_path @D@/proxy;\n    fastcgi_temp_path @D@/fastcgi;\n    uwsgi_temp_path @D@/uwsgi;\n\
    scgi_temp_path @D@/scgi;\n    client_header_timeout 600s;\n    keepalive_timeout 60s;\n    keepalive_requests 100000;\n\
    server { listen 127.0.0.1:8090; location / { return 200 \"ok\\n\"; } }\n}\n";

/// Writes nginx.conf for the folder `$D` (`@D@` in nginx.in: a bare `D/` would also match
/// the end of a temporary folder's random name, `/tmp/.tmpXXXXXD/`); `start_nginx` starts it
/// in the background (`$nginx_pid`) with a nofile of 8192, soft and hard, whatever the test
/// runner's limits: at a soft 1024 doctor rightly warns about nginx's nofile first, and a
/// scenario about something else would depend on the machine it runs on.
const START_NGINX: &str = r#"sed -e "s|PIDFILE|$D/nginx.pid|; s|ERRLOG|$D/nginx.log|; s|@D@|$D|g" "$D/nginx.in" > "$D/nginx.conf"
start_nginx() {
    (ulimit -n 8192 || { echo "cannot set nofile 8192 (hard limit $(ulimit -Hn))" >&2; exit 1; }
     exec nginx -c "$D/nginx.conf" -e "$D/nginx.log" -g 'daemon off;') & nginx_pid=$!
}
"#;

/// Connections held on 127.0.0.1:PORT by `test hold --target` in a process group of its own
/// (`$load`), until killed (`kill -- -$load`): at most 10 minutes.
fn hold_until_killed(port: u16, n: u32, extra: &str) -> String {
    format!(
        r#"setsid "$NP" --json test hold --target 127.0.0.1:{port} -n {n} --duration 600 --connect-timeout 60s {extra} > /dev/null 2>&1 & load=$!"#
    )
}

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
        &[
            START_NGINX,
            r#"
            echo 64 > /proc/sys/net/core/somaxconn
            start_nginx; wait_port 8090
            mark nofile "\"$(awk '/^Max open files/ {print $4, $5}' /proc/$nginx_pid/limits)\""
            echo 4096 > /proc/sys/net/core/somaxconn
            ss -Hltnp >&2
            "$NP" --root "$ROOT" --json doctor --interval 1
            kill $nginx_pid; wait $nginx_pid
            start_nginx; wait_port 8090
            "$NP" --root "$ROOT" --json doctor --interval 1
            "#,
        ]
        .concat(),
        &[("nginx.in", NGINX_CONF)],
    ) else {
        return;
    };
    let run = Run::of(&docs);
    let (before, after) = (run.before, run.after);
    // Its limits are the scenario's, not the runner's (a CI runner's soft 1024 would make
    // nginx's nofile the first warning).
    assert_eq!(run.marks, [("nofile", &Value::from("8192 8192"))]);
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

/// Starts redis-server (`$redis`) with /etc/redis/redis.conf (a tmpfs of this mount
/// namespace) made from redis.in with maxclients `$1`; `redis_idle` waits (at most 120 s)
/// until it counts no client but the one asking.
const START_REDIS: &str = r#"mount -t tmpfs tmpfs /etc/redis
start_redis() {
    sed "s/MAXCLIENTS/$1/" "$D/redis.in" > /etc/redis/redis.conf
    redis-server /etc/redis/redis.conf > "$D/redis.log" 2>&1 & redis=$!
    wait_port 6390
}
redis_idle() {
    local t=$SECONDS
    until [ "$(redis-cli -p 6390 info clients 2>/dev/null | tr -d '\r' | sed -n 's/^connected_clients://p')" = 1 ]; do
        [ $((SECONDS-t)) -ge 120 ] && { echo "redis still has clients" >&2; return 1; }
        sleep 0.2
    done
}
"#;

#[test]
fn redis_at_its_maxclients_is_named_with_its_setting_and_the_hold_says_the_server_closed() {
    // redis with maxclients 500 in its packaged config path, 600 connections held: redis
    // accepts 100 of them and closes them at once ("max number of clients reached"). doctor
    // names redis-server, its maxclients from the file; then, the load stopped, a user's
    // `test hold --target` of 600 says the server closed connections (500 held), not "accept
    // queue". With maxclients 2000 all 600 are held and doctor is quiet about it.
    if !have(&["redis-server", "redis-cli"]) {
        return;
    }
    let load = hold_until_killed(6390, 600, "");
    let Some(docs) = scenario(
        &format!(
            r#"{START_REDIS}
            for cap in 500 2000; do
                start_redis $cap
                {load}
                if [ $cap = 500 ]; then
                    {until}
                else
                    wait_est 6390 600
                    "$NP" --root "$ROOT" --json doctor --interval 1
                fi
                kill -- -$load; wait $load
                redis_idle
                "$NP" --json test hold --target 127.0.0.1:6390 -n 600 --duration 10 --connect-timeout 60s 2>/dev/null
                kill $redis; wait $redis
            done
            "#,
            until = until_critical("app-cap")
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

#[test]
fn redis_closing_at_a_maxclients_set_live_is_an_app_closes_finding_until_raised() {
    // redis's file says maxclients 10000, but an operator lowered it live (CONFIG SET
    // maxclients 100): 100 connections are held and a client connects again and again (one
    // at a time); redis accepts each and closes it at once ("max number of clients
    // reached"). doctor cannot read the cap (the file says 10000), but sees the signature:
    // handshakes that redis closes right after accepting while it keeps its 100. It names
    // redis-server by pid, says its file is not what runs, and the fix names maxclients.
    // Once raised live (CONFIG SET maxclients 10000) with the same load still running,
    // the finding is gone.
    if !have(&["redis-server", "redis-cli"]) {
        return;
    }
    let load = hold_until_killed(6390, 100, "--payload 0");
    let Some(docs) = scenario(
        &format!(
            r#"{START_REDIS}
            start_redis 10000
            mark redis_pid $redis
            # One client connected before the cap is lowered, to raise it again.
            mkfifo "$D/cli"
            redis-cli -p 6390 < "$D/cli" > "$D/cli.out" 2>&1 & cli=$!
            exec 5> "$D/cli"
            echo "config set maxclients 100" >&5
            {load}
            setsid "$NP" --json test churn --target 127.0.0.1:6390 -n 10000000 --concurrency 1 --duration 600s > /dev/null 2>&1 & churn=$!
            doctor_until '"limit":"app-closes"'
            echo "config set maxclients 10000" >&5
            echo "config get maxclients" >&5
            sleep 1
            "$NP" --root "$ROOT" --json doctor --interval 1
            kill -0 $churn 2>/dev/null && mark churn_running true || mark churn_running false
            kill -- -$churn -$load
            exec 5>&-
            wait $cli
            mark cli "\"$(tr -d '\r\n' < "$D/cli.out")\""
            "#
        ),
        &[("redis.in", REDIS_CONF)],
    ) else {
        return;
    };
    let run = Run::of(&docs);
    let (before, after) = (run.before, run.after);
    let mark = |name: &str| run.mark(name);
    assert_eq!(mark("cli"), "OKOKmaxclients10000", "{docs:#?}");
    assert_binds(before, "app-closes");
    let f = must(before, "app-closes");
    assert_eq!(f["severity"], "critical", "{f:#}");
    assert_eq!(f["process"]["name"], "redis-server", "{f:#}");
    assert_eq!(f["process"]["pid"], mark("redis_pid"), "{f:#}");
    let title = f["title"].as_str().unwrap();
    assert!(
        title.contains("closes or resets new connections right after accepting them"),
        "{f:#}"
    );
    assert!(
        title.contains("maxclients 10000 (from /etc/redis/redis.conf), yet it keeps only"),
        "{f:#}"
    );
    assert!(
        fixes(f).contains("raise maxclients in /etc/redis/redis.conf (CONFIG SET maxclients"),
        "{f:#}"
    );
    // After the cure, under the same load.
    assert_eq!(mark("churn_running"), true, "{docs:#?}");
    assert!(find(after, "app-closes").is_none(), "{after:#}");
    assert!(find(after, "app-cap").is_none(), "{after:#}");
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
    let load = hold_until_killed(8100, 300, "--payload 0");
    let Some(docs) = scenario(
        &format!(
            r#"for cap in 100 1000; do
                sed "s/MAXCONN/$cap/" "$D/haproxy.in" > "$D/haproxy.cfg"
                haproxy -f "$D/haproxy.cfg" -db > "$D/haproxy.log" 2>&1 & hap=$!
                wait_port 8100
                {load}
                if [ $cap = 100 ]; then
                    {until}
                else
                    wait_est 8100 300
                    "$NP" --root "$ROOT" --json doctor --interval 1
                fi
                kill -- -$load; wait $load
                kill $hap; wait $hap
            done
            "#,
            until = until_critical("app-cap")
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
fn haproxy_at_its_maxconn_beside_a_fine_nginx_names_haproxy_only() {
    // Independent scenario: two servers, one at its cap. nginx (nofile 8192) holds 200
    // connections, haproxy (frontend maxconn 100) is offered 300. doctor names haproxy's
    // maxconn and nothing at warning or worse about nginx.
    if !have(&["nginx", "haproxy"]) {
        return;
    }
    let Some(docs) = scenario(
        &format!(
            r#"{START_NGINX}
            (ulimit -n 8192; start_nginx; wait) & wait_port 8090
            sed "s/MAXCONN/100/" "$D/haproxy.in" > "$D/haproxy.cfg"
            haproxy -f "$D/haproxy.cfg" -db > "$D/haproxy.log" 2>&1 & hap=$!
            wait_port 8100
            {nginx_load}; nginx_load=$load
            wait_est 8090 200
            {haproxy_load}
            {until}
            kill -- -$load -$nginx_load
            "#,
            nginx_load = hold_until_killed(8090, 200, "--payload 0"),
            haproxy_load = hold_until_killed(8100, 300, "--payload 0"),
            until = until_critical("app-cap")
        ),
        &[("nginx.in", NGINX_CONF), ("haproxy.in", HAPROXY_CFG)],
    ) else {
        return;
    };
    let [doc] = &docs[..] else {
        panic!("{docs:#?}")
    };
    assert_binds(doc, "app-cap");
    let f = must(doc, "app-cap");
    assert_eq!(f["process"]["name"], "haproxy", "{f:#}");
    assert!(fixes(f).contains("raise maxconn"), "{f:#}");
    assert!(warnings_about(doc, "nginx").is_empty(), "{doc:#}");
}

#[test]
fn a_healthy_loaded_nginx_gets_no_binding_finding() {
    // Independent scenario: nginx (nofile 8192, worker_connections 4096) under ab's 200
    // keep-alive clients: nothing binds it, so no finding about nginx is a warning, and the
    // binding limit (if any on a shared machine) is not one of nginx's.
    if !have(&["nginx", "ab"]) {
        return;
    }
    let Some(docs) = scenario(
        &[
            START_NGINX,
            r#"
            (ulimit -n 8192; start_nginx; wait) & wait_port 8090
            (ulimit -n 4096; exec ab -q -k -c 200 -t 600 -n 100000000 -s 60 http://127.0.0.1:8090/ > /dev/null 2>&1) & ab=$!
            wait_est 8090 200
            "$NP" --root "$ROOT" --json doctor --interval 1
            mark established $(established 8090)
            kill $ab
            "#,
        ]
        .concat(),
        &[("nginx.in", NGINX_CONF)],
    ) else {
        return;
    };
    let (doctor, marks) = split(&docs);
    let [doc] = doctor[..] else {
        panic!("{docs:#?}")
    };
    assert!(
        marks
            .iter()
            .any(|(n, v)| *n == "established" && v.as_u64() >= Some(200))
    );
    assert!(warnings_about(doc, "nginx").is_empty(), "{doc:#}");
    let binding = doc["binding"].as_str().unwrap_or("none");
    assert!(
        ![
            "nofile",
            "app-cap",
            "app-closes",
            "accept-queue",
            "listener-restart",
            "epoll",
            "threads"
        ]
        .contains(&binding),
        "{doc:#}"
    );
}

#[test]
fn nginx_whose_soft_nofile_binds_gets_apply_running_then_is_fine_once_raised() {
    // Independent scenario: nginx started with a soft nofile of 1024 under a hard 8192 (no
    // worker_rlimit_nofile), 1100 idle connections offered. doctor names nginx's nofile,
    // critical, with `apply --running nginx` first (only the soft limit binds) and nginx's
    // own worker_rlimit_nofile. Raised in place (prlimit, what `apply --running` does), the
    // same 1100 are accepted and nofile is fine.
    if !have(&["nginx", "prlimit"]) {
        return;
    }
    let Some(docs) = scenario(
        &format!(
            r#"{START_NGINX}
            (ulimit -Hn 8192; ulimit -Sn 1024; exec nginx -c "$D/nginx.conf" -e "$D/nginx.log" -g 'daemon off;') & srv=$!
            wait_port 8090
            {load}
            {until}
            prlimit --pid $srv --nofile=8192:8192
            wait_est 8090 1100
            "$NP" --root "$ROOT" --json doctor --interval 1
            kill -- -$load
            "#,
            load = hold_until_killed(8090, 1100, "--payload 0"),
            until = until_critical("nofile")
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
    assert!(
        fix.starts_with("now, without a restart: netprofile apply high-conn --running nginx"),
        "{f:#}"
    );
    assert!(fix.contains("worker_rlimit_nofile"), "{f:#}");
    assert!(find(before, "app-cap").is_none(), "{before:#}");
    // After the cure.
    let g = nofile_of(after, "nginx");
    assert_eq!(g["severity"], "ok", "{g:#}");
    assert!(warnings_about(after, "nginx").is_empty(), "{after:#}");
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
        &[
            START_NGINX,
            r#"
            (ulimit -n 8192; start_nginx; wait) & wait_port 8090
            for soft in 1024 4096; do
                (ulimit -Hn 4096; ulimit -Sn $soft; exec ab -q -k -c 900 -t 600 -n 100000000 -s 60 http://127.0.0.1:8090/ > /dev/null 2>&1) & ab=$!
                if [ $soft = 1024 ]; then
                    doctor_until '"name":"ab"'
                else
                    wait_est 8090 900
                    "$NP" --root "$ROOT" --json doctor --interval 1
                fi
                kill $ab; wait $ab
            done
            "#,
        ]
        .concat(),
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
    assert!(warnings_about(after, "ab").is_empty(), "{after:#}");
}

#[test]
fn nginx_at_its_fd_limit_is_named_with_its_own_setting_and_the_hold_blames_no_somaxconn() {
    // nginx started with nofile 256 (soft and hard) and 600 idle connections held: it fails
    // accept4() with EMFILE. doctor names nginx's nofile (critical), says what started it
    // (neither a unit nor a login here: no guess), and names worker_rlimit_nofile; not an
    // application cap. Then what a user sees from `test hold --target` against this nginx
    // (1000 connections: about 250 accepted, 511 queued, the rest overflow): the accept queue
    // filled because the server stopped accepting, not somaxconn nor the built-in server's
    // backlog, and doctor is where to look. Started with nofile 8192 the same 600 leave it
    // well below its limit.
    if !have(&["nginx"]) {
        return;
    }
    let Some(docs) = scenario(
        &format!(
            r#"{START_NGINX}
            for n in 256 8192; do
                (ulimit -n $n; exec nginx -c "$D/nginx.conf" -e "$D/nginx.log" -g 'daemon off;') & srv=$!
                wait_port 8090
                {load}
                if [ $n = 256 ]; then
                    {until}
                else
                    wait_est 8090 600
                    "$NP" --root "$ROOT" --json doctor --interval 1
                fi
                kill -- -$load; wait $load
                if [ $n = 256 ]; then
                    "$NP" --json test hold --target 127.0.0.1:8090 -n 1000 --duration 5 --payload 0 --connect-timeout 20s 2>/dev/null
                    mark emfile_logged $(grep -c 'accept4() failed (24: Too many open files)' "$D/nginx.log")
                fi
                kill $srv; wait $srv
            done
            "#,
            load = hold_until_killed(8090, 600, "--payload 0"),
            until = until_critical("nofile")
        ),
        &[("nginx.in", NGINX_CONF)],
    ) else {
        return;
    };
    let [before, hold, logged, after] = &docs[..] else {
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
    assert!(find(before, "app-cap").is_none(), "{before:#}");
    // The connection test's verdict, against the real nginx at EMFILE.
    assert!(logged["value"].as_u64() > Some(0), "{logged:#}");
    assert_eq!(hold["verdict"]["limit"], "accept-queue", "{hold:#}");
    let verdict = hold["verdict"]["text"].as_str().unwrap();
    assert!(
        verdict.contains("the server stopped accepting (at its open-files limit"),
        "{hold:#}"
    );
    assert!(verdict.contains("`netprofile doctor` where 127.0.0.1:8090 runs"));
    assert!(!verdict.contains("backlog 4096"), "{hold:#}");
    // Connects waited (SYN retransmits) or timed out. How many end up held varies: a SYN
    // may get in while nginx drops the previous load's connections, and a client counts a
    // connect whose last ACK the full queue dropped as established.
    let slow = hold["stalls"].as_u64().unwrap_or(0) + hold["failed"].as_u64().unwrap_or(0);
    assert!(slow > 0, "{hold:#}");
    // After the cure.
    let g = nofile_of(after, "nginx");
    assert_eq!(g["severity"], "ok", "{g:#}");
}

/// A TCP server netprofile knows nothing about (python3, not a server of apps.rs): it listens
/// on 127.0.0.1:PORT with listen(BACKLOG), accepts up to CAP connections and keeps them, then
/// stops accepting (a connection cap in its own code) until SIGUSR1 lifts the cap.
const CAPPED_SERVER: &str = r#"import signal, socket, sys
port, backlog, cap = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
limit = [cap]
signal.signal(signal.SIGUSR1, lambda *_: limit.__setitem__(0, 10**9))
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(backlog)
kept = []
while True:
    if len(kept) < limit[0]:
        kept.append(s.accept()[0])
    else:
        signal.pause()
"#;

/// `wait_listen P`: until something listens on port P (at most 120 s), without connecting
/// (a connection would take one of a capped server's places); `queue P`: its accept queue.
const LISTEN_HELPERS: &str = r#"
wait_listen() { local t=$SECONDS; until [ -n "$(ss -Hltn "( sport = :$1 )")" ]; do [ $((SECONDS-t)) -ge 120 ] && fail "nothing listens on port $1"; sleep 0.1; done; }
queue() { ss -Hltn "( sport = :$1 )" | awk '{print $2}'; }
"#;

#[test]
fn a_server_doctor_does_not_know_that_stopped_accepting_is_its_own_cap() {
    // python3 listens with a backlog of 16 and stops accepting after 50 connections; 200 are
    // offered. Its queue stays full while it sleeps and its connections stay as many: doctor
    // names it (the "stopped accepting" signature, from two samples), says a limit in its own
    // code or configuration binds, not somaxconn, and calls the full queue its symptom. Once
    // its cap is lifted (SIGUSR1) it accepts the rest and the finding is gone.
    if !have(&["python3"]) {
        return;
    }
    let Some(docs) = scenario(
        &format!(
            r#"{LISTEN_HELPERS}
            /usr/bin/python3 "$D/capped.py" 8110 16 50 > "$D/capped.log" 2>&1 & srv=$!
            wait_listen 8110
            mark pid $srv
            mark comm "\"$(cat /proc/$srv/comm)\""
            {load}
            {until}
            kill -USR1 $srv
            t=$SECONDS
            until [ "$(queue 8110)" = 0 ] && [ "$(established 8110)" -gt 50 ]; do
                [ $((SECONDS-t)) -ge 300 ] && fail "it did not accept after SIGUSR1"
                sleep 0.2
            done
            "$NP" --root "$ROOT" --json doctor --interval 1
            mark established_after $(established 8110)
            kill -- -$load
            "#,
            // Each client sends its 12 bytes: a connection whose handshake ended in a SYN cookie
            // while the queue was full is then retried until it gets in, instead of being
            // held by a client that never learns the server has no such connection.
            load = hold_until_killed(8110, 200, ""),
            until = until_critical("app-cap")
        ),
        &[("capped.py", CAPPED_SERVER)],
    ) else {
        return;
    };
    let run = Run::of(&docs);
    let (before, after) = (run.before, run.after);
    let mark = |name: &str| run.mark(name);
    assert_binds(before, "app-cap");
    let f = must(before, "app-cap");
    assert_eq!(f["severity"], "critical", "{f:#}");
    assert_eq!(f["process"]["pid"], mark("pid"), "{f:#}");
    assert_eq!(f["process"]["name"], mark("comm"), "{f:#}");
    assert!(before["apps"].as_array().unwrap().is_empty(), "{before:#}");
    let title = f["title"].as_str().unwrap();
    assert!(
        title.starts_with(&format!(
            "{} (pid {}, ",
            mark("comm").as_str().unwrap(),
            mark("pid")
        )),
        "{f:#}"
    );
    assert!(
        title.contains("stopped accepting: its accept queue stays at its backlog while it is idle"),
        "{f:#}"
    );
    assert!(
        title.ends_with(
            "an application cap, not the kernel: a connection limit in its own configuration \
             (or a loop that stopped accepting)"
        ),
        "{f:#}"
    );
    assert_eq!(
        fixes(f),
        "raise the connection limit in the application's configuration"
    );
    // The full queue is the symptom: not critical, no somaxconn fix.
    let q = must(before, "accept-queue");
    assert_eq!(q["severity"], "warning", "{q:#}");
    assert_eq!(q["process"]["pid"], mark("pid"), "{q:#}");
    assert!(
        q["title"]
            .as_str()
            .unwrap()
            .ends_with("a symptom of the server's own cap (see app-cap), not of somaxconn"),
        "{q:#}"
    );
    assert_eq!(fixes(q), "", "{q:#}");
    // After the cure.
    assert!(mark("established_after").as_u64() > Some(50), "{docs:#?}");
    assert!(find(after, "app-cap").is_none(), "{after:#}");
    assert!(find(after, "app-closes").is_none(), "{after:#}");
    assert_ne!(
        must(after, "accept-queue")["severity"],
        "critical",
        "{after:#}"
    );
}

#[test]
fn haproxy_whose_configuration_doctor_cannot_read_gets_the_setting_to_check() {
    // haproxy (frontend maxconn 100, so its backlog is 100) offered 300 connections, but
    // doctor cannot read its configuration: the file haproxy was started with is, by then,
    // one only its owner may read (a root-owned 0600 file outside this user namespace,
    // bind-mounted over it: open() fails with EACCES, as for a doctor run by another user).
    // doctor still sees the signature (queue at its backlog, idle, connections flat), names
    // haproxy, says why the file could not be read and which setting to check there.
    if !have(&["haproxy", "mount"]) {
        return;
    }
    let secret = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        secret.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let unreadable = secret.path().join("haproxy.cfg");
    std::fs::write(&unreadable, HAPROXY_CFG.replace("MAXCONN", "100")).unwrap();
    std::fs::set_permissions(
        &unreadable,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let Some(docs) = scenario(
        &format!(
            r#"sed "s/MAXCONN/100/" "$D/haproxy.in" > "$D/haproxy.cfg"
            haproxy -f "$D/haproxy.cfg" -db > "$D/haproxy.log" 2>&1 & hap=$!
            wait_port 8100
            mount --bind "{unreadable}" "$D/haproxy.cfg"
            cat "$D/haproxy.cfg" > /dev/null 2>&1 && mark readable true || mark readable false
            mark config "\"$D/haproxy.cfg\""
            {load}
            {until}
            kill -- -$load
            "#,
            unreadable = unreadable.display(),
            load = hold_until_killed(8100, 300, "--payload 0"),
            until = until_critical("app-cap")
        ),
        &[("haproxy.in", HAPROXY_CFG)],
    ) else {
        return;
    };
    let [doc] = split(&docs).0[..] else {
        panic!("{docs:#?}")
    };
    let mark = |name: &str| mark_in(&docs, name);
    assert_eq!(mark("readable"), false, "{docs:#?}");
    let config = mark("config");
    let config = config.as_str().unwrap();
    let app = &doc["apps"][0];
    assert_eq!(app["kind"], "haproxy", "{doc:#}");
    assert_eq!(app["config"], Value::Null, "{app:#}");
    let error = app["config_error"].as_str().unwrap();
    assert!(
        error.contains("haproxy.cfg") && error.contains("ermission denied"),
        "{app:#}"
    );
    assert_binds(doc, "app-cap");
    let f = must(doc, "app-cap");
    assert_eq!(f["process"]["name"], "haproxy", "{f:#}");
    let title = f["title"].as_str().unwrap();
    assert!(title.contains("stopped accepting"), "{f:#}");
    assert!(
        title.ends_with(&format!(
            "maxconn (global and per frontend) (its configuration could not be read: {error}: \
             check it there)"
        )),
        "{f:#}"
    );
    assert!(error.contains(config), "{error} names {config}");
    assert_eq!(
        fixes(f),
        "raise maxconn (global and the frontend's) in its configuration; then reload"
    );
}

#[test]
fn a_listener_older_than_the_generation_that_raised_somaxconn_is_told_to_restart() {
    // somaxconn 64; generation 1 raises it to 128; then a server netprofile knows nothing
    // about listens, asking 511 (it gets 128); generation 2 raises somaxconn to 4096. doctor
    // names the server, the generation that raised somaxconn after it listened (as `history`
    // numbers it), and the restart; not "the application asks a small backlog", which is
    // all the backlog alone would say. Restarted, it has 511 and the advice is gone.
    if !have(&["python3"]) {
        return;
    }
    let Some(docs) = scenario(
        &format!(
            r#"{LISTEN_HELPERS}
            echo 64 > /proc/sys/net/core/somaxconn
            "$NP" --root "$ROOT" apply -q "$D/first.toml" >&2 || fail "apply first.toml"
            /usr/bin/python3 "$D/capped.py" 8120 511 1000000 > "$D/capped.log" 2>&1 & srv=$!
            wait_listen 8120
            "$NP" --root "$ROOT" apply -q "$D/second.toml" >&2 || fail "apply second.toml"
            "$NP" --root "$ROOT" --json history
            mark pid $srv
            "$NP" --root "$ROOT" --json doctor --interval 1
            kill $srv; wait $srv
            /usr/bin/python3 "$D/capped.py" 8120 511 1000000 > "$D/capped.log" 2>&1 & srv=$!
            wait_listen 8120
            "$NP" --root "$ROOT" --json doctor --interval 1
            "#
        ),
        &[
            ("capped.py", CAPPED_SERVER),
            ("first.toml", "[sysctl]\n\"net.core.somaxconn\" = 128\n"),
            ("second.toml", "[sysctl]\n\"net.core.somaxconn\" = 4096\n"),
        ],
    ) else {
        return;
    };
    let run = Run::of(&docs);
    let (before, after) = (run.before, run.after);
    let pid = run.mark("pid");
    // The generation that raised somaxconn from 128 to 4096, as history shows it.
    let history = docs
        .iter()
        .find(|d| d["command"] == "history")
        .unwrap_or_else(|| panic!("no history: {docs:#?}"));
    let raised: Vec<&Value> = history["generations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| {
            g["changes"].as_array().unwrap().iter().any(|c| {
                c["key"] == "net.core.somaxconn" && c["before"] == "128" && c["after"] == "4096"
            })
        })
        .map(|g| &g["generation"])
        .collect();
    let [generation] = raised[..] else {
        panic!("{history:#}")
    };
    assert_binds(before, "listener-restart");
    let f = must(before, "listener-restart");
    assert_eq!(f["process"]["pid"], pid, "{f:#}");
    let title = f["title"].as_str().unwrap();
    assert!(title.contains(&format!(" (pid {pid}, ")), "{f:#}");
    assert!(
        title.contains(&format!(
            "port 8120) listens with a backlog of 128 although net.core.somaxconn is now 4096: \
             its backlog 128 is the somaxconn 128 in force before netprofile generation \
             {generation} raised it to 4096; it keeps 128 until it listens again"
        )),
        "{f:#}"
    );
    let fix = fixes(f);
    assert!(
        fix.starts_with(&format!(
            "restart {} (pid {pid}, ",
            f["process"]["name"].as_str().unwrap()
        )),
        "{f:#}"
    );
    assert!(fix.contains("port 8120) (stop and start it)"), "{f:#}");
    assert!(find(before, "app-backlog").is_none(), "{before:#}");
    // After the cure.
    assert!(find(after, "listener-restart").is_none(), "{after:#}");
    let l = &after["listeners"][0];
    assert_eq!(
        (l["port"].as_u64(), l["backlog"].as_u64()),
        (Some(8120), Some(511))
    );
}
