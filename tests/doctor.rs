//! `netprofile doctor` on fixture trees (proc/net/netstat, snmp, sockstat, tcp, tcp6,
//! fs.file-nr, processes with their limits, fds and fdinfo) with table-driven expectations,
//! the capacity question, the JSON schema, and in a private network namespace doctor run right
//! after (or during) each seed failure of the connection test.

mod common;
mod doctor_common;

use common::{Test, in_netns, text};
use doctor_common::{assert_schema, json_docs};
use serde_json::Value;

const TCP_HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
const TCP6_HEADER: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

/// A quiet machine: stock sysctls, counters at zero, no sockets, two CPUs.
fn machine() -> Test {
    Test::new()
        .file(
            "proc/net/netstat",
            "TcpExt: ListenOverflows ListenDrops TCPSynRetrans TCPTimeWaitOverflow TCPAbortOnMemory\n\
             TcpExt: 0 0 0 0 0\n",
        )
        .file("proc/net/snmp", "Tcp: ActiveOpens PassiveOpens CurrEstab\nTcp: 10 20 3\n")
        .file(
            "proc/net/sockstat",
            "sockets: used 40\nTCP: inuse 5 orphan 0 tw 0 alloc 6 mem 10\n",
        )
        .file("proc/net/tcp", TCP_HEADER)
        .file("proc/net/tcp6", TCP6_HEADER)
        .sysctl("fs.file-nr", "1024\t0\t9223372036854775807")
        .sysctl("fs.epoll.max_user_watches", "5491533")
        .file("proc/uptime", "1000.00 1900.00\n")
        .file("proc/stat", "cpu  1 2 3\ncpu0 1 1 1\ncpu1 1 1 1\n")
        .file(
            "proc/self/limits",
            "Limit                     Soft Limit           Hard Limit           Units\n\
             Max open files            1024                 524288               files\n",
        )
        .file(
            "proc/slabinfo",
            "slabinfo - version: 2.1\n# name <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>\n\
             TCP 100 100 2368 13 8\nsock_inode_cache 9 9 832 19 4\ndentry 9 9 192 21 1\n\
             filp 9 9 192 21 1\neventpoll_epi 9 9 128 32 1\nlsm_inode_cache 9 9 32 128 1\n\
             lsm_file_cache 9 9 24 170 1\nep_head 9 9 16 256 1\nkmalloc-8 9 9 8 512 1\n",
        )
        .file("proc/meminfo", "MemTotal: 24000000 kB\nMemAvailable: 20000000 kB\n")
}

/// A LISTEN row on 0.0.0.0:`port` with `queue` waiting and socket inode `inode`.
fn listen_row(port: u16, queue: u32, inode: u64) -> String {
    format!(
        "   0: 00000000:{port:04X} 00000000:0000 0A 00000000:{queue:08X} 00:00000000 00000000     0        0 {inode} 1 0000000000000000 100 0 0 10 0\n"
    )
}

/// A row from 10.0.0.1:`lport` to 10.0.0.5:`rport` in state `st` (01 established, 06 TIME_WAIT).
fn conn_row(lport: u16, rport: u16, st: &str) -> String {
    format!(
        "   1: 0100000A:{lport:04X} 0500000A:{rport:04X} {st} 00000000:00000000 00:00000000 00000000     0        0 0 1\n"
    )
}

/// A process holding listener inode `inode` as fd 3 plus `extra` other fds.
struct Proc {
    pid: u32,
    comm: &'static str,
    inode: u64,
    extra: u32,
    soft: &'static str,
    service: Option<&'static str>,
    epoll: bool,
    threads: u32,
    /// utime + stime in ticks (100 Hz) over its life; it started at uptime 0.
    cpu_ticks: u64,
    uid: u32,
    /// proc/PID/loginuid: `None` writes 4294967295 (not started from a login).
    login: Option<u32>,
}

impl Default for Proc {
    fn default() -> Self {
        Proc {
            pid: 4242,
            comm: "webd",
            inode: 9001,
            extra: 10,
            soft: "1048576",
            service: None,
            epoll: true,
            threads: 4,
            cpu_ticks: 100,
            uid: 1000,
            login: Some(1000),
        }
    }
}

fn with_process(t: Test, p: &Proc) -> Test {
    let base = format!("proc/{}", p.pid);
    let mut t = t
        .file(&format!("{base}/comm"), &format!("{}\n", p.comm))
        .file(
            &format!("{base}/limits"),
            &format!(
                "Limit                     Soft Limit           Hard Limit           Units\n\
                 Max open files            {:<20} 1048576              files\n",
                p.soft
            ),
        )
        .file(
            &format!("{base}/status"),
            &format!(
                "Name:\t{}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nThreads:\t{}\n",
                p.comm,
                p.threads,
                uid = p.uid
            ),
        )
        .file(
            &format!("{base}/loginuid"),
            &p.login.unwrap_or(u32::MAX).to_string(),
        )
        .file(
            &format!("{base}/cgroup"),
            &match p.service {
                Some(s) => format!("0::/system.slice/{s}\n"),
                None => "0::/user.slice/user-0.slice/session-3.scope\n".into(),
            },
        )
        .file(
            &format!("{base}/stat"),
            &format!(
                "{} ({}) S 1 1 1 0 -1 0 0 0 0 0 {} 0 0 0 20 0 {} 0 0 0 0\n",
                p.pid, p.comm, p.cpu_ticks, p.threads
            ),
        );
    if p.epoll {
        t = t.file(
            &format!("{base}/fdinfo/4"),
            "pos:\t0\nflags:\t02000002\nmnt_id:\t15\ntfd:        3 events:       19 data:                3  pos:0 ino:2329 sdev:8\n",
        );
    }
    let fd = t.root().join(format!("{base}/fd"));
    std::fs::create_dir_all(&fd).unwrap();
    let link = |n: u32, to: &str| std::os::unix::fs::symlink(to, fd.join(n.to_string())).unwrap();
    link(3, &format!("socket:[{}]", p.inode));
    if p.epoll {
        link(4, "anon_inode:[eventpoll]");
    }
    for n in 0..p.extra {
        link(10 + n, "/dev/null");
    }
    t
}

fn doctor_json(t: Test, args: &[&str]) -> Value {
    let mut all = vec!["--json", "doctor"];
    all.extend(args);
    let out = t.args(&all).run().code(0);
    let doc: Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", out.stdout));
    assert_schema("doctor.json", &doc);
    doc
}

fn finding<'a>(doc: &'a Value, limit: &str) -> &'a Value {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["limit"] == limit)
        .unwrap_or_else(|| panic!("no {limit} finding in {doc:#}"))
}

/// What a case must show: the binding limit, its severity, a phrase of its title, of its
/// evidence and of its fix.
struct Case {
    name: &'static str,
    setup: fn(Test) -> Test,
    binding: Option<&'static str>,
    severity: &'static str,
    title: &'static str,
    evidence: &'static str,
    fix: &'static str,
}

#[test]
fn doctor_names_the_binding_limit_with_evidence_and_fix() {
    let cases = [
        Case {
            name: "accept queue full now under somaxconn 128",
            setup: |t| {
                t.sysctl("net.core.somaxconn", "128")
                    .file(
                        "proc/net/tcp",
                        &format!("{TCP_HEADER}{}", listen_row(8080, 129, 9001)),
                    )
                    .file(
                        "proc/net/netstat",
                        "TcpExt: ListenOverflows ListenDrops TCPSynRetrans\nTcpExt: 500 510 0\n",
                    )
            },
            binding: Some("accept-queue"),
            severity: "critical",
            title: "accept queue full now on port 8080",
            evidence: "TcpExt.ListenOverflows=500",
            fix: "[sysctl] \"net.core.somaxconn\" = 65535",
        },
        Case {
            name: "ephemeral ports to one destination, reserved ports counted out",
            setup: |t| {
                let rows: String = (40000..40095).map(|p| conn_row(p, 443, "06")).collect();
                t.sysctl("net.ipv4.ip_local_port_range", "40000\t40099")
                    .sysctl("net.ipv4.ip_local_reserved_ports", "40095-40099")
                    .file("proc/net/tcp", &format!("{TCP_HEADER}{rows}"))
            },
            binding: Some("ephemeral-ports"),
            severity: "critical",
            title: "95 of 95 ephemeral ports used toward 10.0.0.5:443",
            evidence: "TIME_WAIT sockets now=95",
            fix: "[ports] local_range = [1024, 65535]",
        },
        Case {
            name: "file handles of the whole machine",
            setup: |t| t.sysctl("fs.file-nr", "950000\t0\t1000000"),
            binding: Some("file-max"),
            severity: "critical",
            title: "950000 of 1000000 file handles",
            evidence: "fs.nr_open (ceiling of any nofile)=1048576",
            fix: "\"fs.file-max\" = { min = 1900000 }",
        },
        Case {
            name: "a systemd service at its nofile, which limits.conf does not reach",
            setup: |t| {
                with_process(
                    t.file(
                        "proc/net/tcp",
                        &format!("{TCP_HEADER}{}", listen_row(443, 0, 9001)),
                    ),
                    &Proc {
                        extra: 990,
                        soft: "1024",
                        service: Some("webd.service"),
                        ..Proc::default()
                    },
                )
            },
            binding: Some("nofile"),
            severity: "critical",
            title: "webd (pid 4242, uid 1000, webd.service, port 443) may open 1024 files and has 992 open",
            evidence: "pid 4242 started by=systemd unit webd.service (limits.conf does not apply)",
            fix: "[systemd] default_limit_nofile = 1048576",
        },
        Case {
            name: "a login-started server with the default 1024",
            setup: |t| {
                with_process(
                    t.file("proc/net/tcp6", &format!("{TCP6_HEADER}   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 9001 1\n")),
                    &Proc { soft: "1024", ..Proc::default() },
                )
            },
            binding: Some("nofile"),
            severity: "warning",
            title: "EMFILE",
            evidence: "pid 4242 started by=a login session of uid 1000 (limits.conf applies)",
            fix: "[[limits]] domain = \"*\", type = \"-\", item = \"nofile\", value = 1048576",
        },
        Case {
            name: "a server started from root's login: pam_limits never applies * to root",
            setup: |t| {
                with_process(
                    t.file(
                        "proc/net/tcp",
                        &format!("{TCP_HEADER}{}", listen_row(6379, 0, 9001)),
                    ),
                    &Proc {
                        soft: "1024",
                        uid: 0,
                        login: Some(0),
                        ..Proc::default()
                    },
                )
            },
            binding: Some("nofile"),
            severity: "warning",
            title: "webd (pid 4242, uid 0, port 6379) may open 1024",
            evidence: "pid 4242 started by=a login session of uid 0 (limits.conf applies)",
            fix: "[[limits]] domain = \"root\", type = \"-\", item = \"nofile\", value = 1048576 (it runs as root",
        },
        Case {
            name: "a server started by neither a unit nor a login: say so, do not guess",
            setup: |t| {
                with_process(
                    t.file(
                        "proc/net/tcp",
                        &format!("{TCP_HEADER}{}", listen_row(80, 0, 9001)),
                    ),
                    &Proc {
                        soft: "1024",
                        login: None,
                        ..Proc::default()
                    },
                )
            },
            binding: Some("nofile"),
            severity: "warning",
            title: "EMFILE",
            evidence: "pid 4242 started by=neither a systemd unit nor a login session",
            fix: "inherited its limit from what started it",
        },
        Case {
            name: "only the soft limit binds: apply --running raises it in place",
            setup: |t| {
                with_process(
                    t.file(
                        "proc/net/tcp",
                        &format!("{TCP_HEADER}{}", listen_row(80, 0, 9001)),
                    ),
                    &Proc {
                        soft: "1024",
                        extra: 1000,
                        ..Proc::default()
                    },
                )
            },
            binding: Some("nofile"),
            severity: "critical",
            title: "may open 1024 files and has 1002 open",
            evidence: "pid 4242 nofile hard=1048576",
            fix: "netprofile apply high-conn --running webd (only the soft limit binds",
        },
        Case {
            name: "conntrack table nearly full",
            setup: |t| {
                t.sysctl("net.netfilter.nf_conntrack_max", "262144")
                    .sysctl("net.netfilter.nf_conntrack_count", "250000")
            },
            binding: Some("conntrack"),
            severity: "critical",
            title: "conntrack table holds 250000 of 262144",
            evidence: "net.netfilter.nf_conntrack_count=250000",
            fix: "nf_conntrack_max\" = { min = 1048576, optional = true }",
        },
        Case {
            name: "TCP memory past pressure",
            setup: |t| {
                t.file(
                    "proc/net/sockstat",
                    "TCP: inuse 5000 orphan 20 tw 0 alloc 6000 mem 300000\n",
                )
                .file("proc/net/netstat", "TcpExt: TCPAbortOnMemory\nTcpExt: 7\n")
            },
            binding: Some("tcp-mem"),
            severity: "warning",
            title: "past the pressure mark 254485",
            evidence: "TcpExt.TCPAbortOnMemory=7",
            fix: "\"net.ipv4.tcp_mem\" = \"381726 508970 763452\"",
        },
        Case {
            name: "a one-thread listener pinning a core",
            setup: |t| {
                with_process(
                    t.file(
                        "proc/net/tcp",
                        &format!("{TCP_HEADER}{}", listen_row(80, 0, 9001)),
                    ),
                    &Proc {
                        threads: 1,
                        cpu_ticks: 95_000,
                        ..Proc::default()
                    },
                )
            },
            binding: Some("cpu"),
            severity: "critical",
            title: "runs one thread at 95% of a core",
            evidence: "pid 4242 threads=1",
            fix: "run more worker processes",
        },
        Case {
            name: "a listener without epoll",
            setup: |t| {
                with_process(
                    t.file(
                        "proc/net/tcp",
                        &format!("{TCP_HEADER}{}", listen_row(80, 0, 9001)),
                    ),
                    &Proc {
                        epoll: false,
                        extra: 600,
                        ..Proc::default()
                    },
                )
            },
            binding: Some("epoll"),
            severity: "warning",
            title: "without epoll (select(), poll() or a blocking accept())",
            evidence: "pid 4242 listener in epoll (fdinfo tfd)=false",
            fix: "",
        },
        Case {
            name: "a quiet machine",
            setup: |t| t,
            binding: None,
            severity: "",
            title: "",
            evidence: "",
            fix: "",
        },
    ];
    for case in cases {
        let doc = doctor_json((case.setup)(machine()), &[]);
        assert_eq!(
            doc["binding"].as_str(),
            case.binding,
            "{}: {doc:#}",
            case.name
        );
        let Some(limit) = case.binding else {
            assert!(
                doc["summary"]
                    .as_str()
                    .unwrap()
                    .starts_with("binding limit: none reached"),
                "{}: {doc:#}",
                case.name
            );
            continue;
        };
        let f = finding(&doc, limit);
        assert_eq!(f["severity"], case.severity, "{}: {f:#}", case.name);
        assert!(
            f["title"].as_str().unwrap().contains(case.title),
            "{}: {f:#}",
            case.name
        );
        let evidence: Vec<String> = f["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{}={}",
                    e["name"].as_str().unwrap(),
                    e["value"].as_str().unwrap()
                )
            })
            .collect();
        assert!(
            evidence.iter().any(|e| e.contains(case.evidence)),
            "{}: {evidence:#?}",
            case.name
        );
        let fixes: Vec<&str> = f["fix"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        assert!(
            case.fix.is_empty() && f["process_side"] == true
                || fixes.iter().any(|x| x.contains(case.fix)),
            "{}: {fixes:#?}",
            case.name
        );
        let summary = doc["summary"].as_str().unwrap();
        assert!(
            summary.starts_with(&format!("binding limit: {limit} (")),
            "{}: {summary}",
            case.name
        );
    }
}

#[test]
fn counters_since_boot_are_a_past_problem_when_they_do_not_move() {
    // ListenOverflows and TCPTimeWaitOverflow since boot, and the two samples 1 s apart see
    // them unchanged (a tree's files do not move): a past problem, reported as such, never the
    // binding limit. With one sample (the default on a tree) the rate is "unmeasured".
    let t =
        || {
            machine()
            .file("proc/net/tcp", &format!("{TCP_HEADER}{}", listen_row(80, 0, 9001)))
            .file(
                "proc/net/netstat",
                "TcpExt: ListenOverflows ListenDrops TCPTimeWaitOverflow\nTcpExt: 10752 10752 31\n",
            )
        };
    let doc = doctor_json(t(), &["--interval", "1"]);
    assert_eq!(doc["binding"], Value::Null, "{doc:#}");
    assert!(doc["interval_s"].as_f64().unwrap() >= 1.0, "{doc:#}");
    let f = finding(&doc, "accept-queue");
    assert_eq!(
        (&f["severity"], &f["when"]),
        (&"info".into(), &"past".into()),
        "{f:#}"
    );
    assert!(
        f["title"]
            .as_str()
            .unwrap()
            .contains("overflowed 10752 times since boot, none in the last"),
        "{f:#}"
    );
    assert_eq!(f["rates"][0]["change"], 0, "{f:#}");
    let tw = finding(&doc, "time-wait-buckets");
    assert_eq!(
        (&tw["severity"], &tw["when"]),
        (&"info".into(), &"past".into()),
        "{tw:#}"
    );
    let doc = doctor_json(t(), &[]);
    assert_eq!(doc["interval_s"], Value::Null);
    assert_eq!(finding(&doc, "accept-queue")["when"], "unmeasured");
    assert_eq!(doc["binding"], Value::Null, "{doc:#}");
}

#[test]
fn folklore_is_corrected_where_it_is_found() {
    let doc = doctor_json(
        with_process(
            machine()
                .sysctl("net.ipv4.tcp_fin_timeout", "10")
                .sysctl("net.ipv4.tcp_tw_reuse", "1")
                .file(
                    "proc/net/tcp",
                    &format!(
                        "{TCP_HEADER}{}{}{}",
                        listen_row(80, 0, 9001),
                        "   1: 0100000A:0050 0500000A:C000 06 00000000:00000000 00:00000000 00000000     0        0 0 1\n",
                        "   2: 0100000A:0050 0500000A:C001 06 00000000:00000000 00:00000000 00000000     0        0 0 1\n",
                    ),
                ),
            &Proc::default(),
        ),
        &[],
    );
    let fin = finding(&doc, "fin-timeout");
    assert!(
        fin["title"]
            .as_str()
            .unwrap()
            .contains("TIME_WAIT still lasts 60 s"),
        "{fin:#}"
    );
    // tcp_tw_reuse is 1, as the shipped high-conn sets it, and the TIME_WAIT sockets are a
    // server's: doctor says what the setting is for and that these need nothing. It used to
    // say "tcp_tw_reuse is 1, but ... it does nothing for a server's side" and advise clients
    // to close first, contradicting the profile it recommends everywhere else.
    let reuse = finding(&doc, "tw-reuse");
    let title = reuse["title"].as_str().unwrap();
    assert!(
        title.starts_with("2 of 2 TIME_WAIT sockets are on accepted connections"),
        "{reuse:#}"
    );
    assert!(
        title.contains(
            "tcp_tw_reuse (1 here, as high-conn sets it) serves this host's own outgoing \
             connections, and these need nothing"
        ),
        "{reuse:#}"
    );
    assert!(
        !title.contains("does nothing") && !title.contains(", but "),
        "{reuse:#}"
    );
    assert_eq!(reuse["severity"], "info", "{reuse:#}");
    assert_eq!(reuse["fix"], serde_json::json!([]), "{reuse:#}");
    assert_eq!(reuse["process_side"], false, "{reuse:#}");
    assert_eq!(doc["binding"], Value::Null, "{doc:#}");
    // "as high-conn sets it": the shipped profile's rendered sysctl file says so.
    machine()
        .args(&["render", "high-conn"])
        .run()
        .code(0)
        .stdout_has("net.ipv4.tcp_tw_reuse = 1\n");
}

#[test]
fn a_listener_without_epoll_is_a_warning_only_from_512_fds() {
    // A developer's idle server that waits on its listener without epoll is worth a note,
    // not "binding limit: epoll"; from EPOLL_MATTERS_FDS (512) open fds on it is a warning
    // (select() fails at fd 1024). Its fds: the listener (fd 3) and `extra` others.
    for (extra, severity, binding) in [
        (8, "info", None),
        (510, "info", None),
        (511, "warning", Some("epoll")),
    ] {
        let doc = doctor_json(
            with_process(
                machine().file(
                    "proc/net/tcp",
                    &format!("{TCP_HEADER}{}", listen_row(8000, 0, 9001)),
                ),
                &Proc {
                    epoll: false,
                    extra,
                    ..Proc::default()
                },
            ),
            &[],
        );
        let fds = extra + 1;
        let f = finding(&doc, "epoll");
        assert_eq!(f["severity"], severity, "{fds} fds: {f:#}");
        assert_eq!(doc["binding"].as_str(), binding, "{fds} fds: {doc:#}");
        let title = f["title"].as_str().unwrap();
        assert!(
            title.starts_with(
                "webd (pid 4242, uid 1000, port 8000) waits on its listener without epoll"
            ),
            "{f:#}"
        );
        if severity == "info" {
            assert!(
                title.ends_with(&format!(
                    "; with {fds} fds open it matters only from several hundred connections on"
                )),
                "{f:#}"
            );
            assert!(
                doc["summary"]
                    .as_str()
                    .unwrap()
                    .starts_with("binding limit: none reached"),
                "{doc:#}"
            );
        } else {
            assert!(title.ends_with(&format!(" ({fds} fds open now)")), "{f:#}");
        }
    }
}

#[test]
fn human_output_ends_with_the_binding_line() {
    machine()
        .sysctl("net.core.somaxconn", "128")
        .file("proc/net/tcp", &format!("{TCP_HEADER}{}", listen_row(8080, 129, 9001)))
        .args(&["-q", "doctor"])
        .run()
        .code(0)
        .stdout(
            r#"
            critical  accept-queue: accept queue full now on port 8080
                      read: net.core.somaxconn = 128; TcpExt.ListenOverflows = 0; TcpExt.ListenDrops = 0; ListenOverflows now = rate not measured (one sample); listener 0.0.0.0:8080 = queue 129 (backlog not shown in proc/net/tcp)
                      capacity: any listener's backlog is capped at 128
                      fix: [sysctl] "net.core.somaxconn" = 65535
                      fix: [sysctl] "net.ipv4.tcp_max_syn_backlog" = { min = 65535 }
            binding limit: accept-queue (accept queue full now on port 8080); lift it with the shipped profile high-conn ([sysctl] "net.core.somaxconn" = 65535; [sysctl] "net.ipv4.tcp_max_syn_backlog" = { min = 65535 })
            "#,
        );
}

#[test]
fn capacity_for_100000_connections_in_binding_order() {
    let t = with_process(
        machine().file(
            "proc/net/tcp",
            &format!("{TCP_HEADER}{}", listen_row(443, 0, 9001)),
        ),
        &Proc {
            soft: "65536",
            service: Some("webd.service"),
            ..Proc::default()
        },
    );
    let doc = doctor_json(t, &["--connections", "100000", "--rate", "1000/s"]);
    let cap = &doc["capacity"];
    let limits = cap["limits"].as_array().unwrap();
    let names: Vec<&str> = limits
        .iter()
        .map(|l| l["limit"].as_str().unwrap())
        .collect();
    // 100 012 fds (100 000 + the 12 open) against soft 65 536 binds first; the accept queue
    // (100 of 4096 in a 100 ms pause) and kernel memory are far from it.
    assert_eq!(cap["first_binding"], "nofile soft (one process)", "{cap:#}");
    assert_eq!(names[0], "nofile soft (one process)");
    assert_eq!(limits[0]["need"], 100_012);
    assert_eq!(limits[0]["have"], 65_536);
    assert_eq!(limits[0]["headroom"], -34_476);
    assert_eq!(limits[0]["fix"], "[systemd] default_limit_nofile = 1048576");
    let slab = limits
        .iter()
        .find(|l| l["limit"] == "kernel memory (slab)")
        .unwrap();
    // 3784 bytes per socket from the fixture's slabinfo: TCP + inode + dentry + file + epoll.
    assert_eq!(slab["need"], 100_000 * 3784 / 1024, "{slab:#}");
    assert_eq!(slab["binds"], false);
    assert_eq!(doc["slab_per_socket"]["bytes"], 3784);
    let tw = limits
        .iter()
        .find(|l| l["limit"] == "net.ipv4.tcp_max_tw_buckets")
        .unwrap();
    assert_eq!(
        (tw["need"].as_u64(), tw["have"].as_u64()),
        (Some(60_000), Some(131_072))
    );
    // Ratios only grow down the list.
    let ratio = |l: &Value| l["need"].as_f64().unwrap() / l["have"].as_f64().unwrap().max(1.0);
    assert!(
        limits.windows(2).all(|w| ratio(&w[0]) >= ratio(&w[1])),
        "{cap:#}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("ephemeral")),
        "incoming: {names:?}"
    );
}

#[test]
fn capacity_outgoing_counts_ephemeral_ports_and_time_wait() {
    let doc = doctor_json(
        machine(),
        &["--connections", "20000", "--rate", "500", "--outgoing"],
    );
    let limits = doc["capacity"]["limits"].as_array().unwrap();
    let get = |name: &str| {
        limits
            .iter()
            .find(|l| l["limit"] == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    let ports = get("ephemeral ports (one destination ip:port)");
    assert_eq!(
        (ports["need"].as_u64(), ports["have"].as_u64()),
        (Some(20_000), Some(28_232))
    );
    let tw = get("ports in TIME_WAIT (one destination)");
    // tcp_tw_reuse 2 (loopback only): each port waits 60 s: 20 000 + 500 * 60.
    assert_eq!(tw["need"], 50_000);
    assert_eq!(tw["binds"], true);
    // The session's own soft nofile (1024 in the fixture's proc/self/limits) binds first.
    assert_eq!(
        doc["capacity"]["first_binding"],
        "nofile soft (one process)"
    );
}

#[test]
fn capacity_flags_need_connections() {
    machine()
        .args(&["doctor", "--rate", "5"])
        .run()
        .code(2)
        .stderr_has("--connections");
}

#[test]
fn doctor_never_writes() {
    let out = machine().args(&["doctor"]).run().code(0);
    let before = common::snapshot(&out.root());
    let out = out
        .then(&["--json", "doctor", "--connections", "1000"])
        .code(0);
    assert_eq!(before, common::snapshot(&out.root()));
    assert!(!out.root().join("run").exists() && !out.root().join("var").exists());
}

// ---- In a private network namespace, right after or during each seed failure ----

/// Runs `script` in a fresh private user + network namespace as uid 65534 and returns the
/// doctor JSON it prints last.
fn doctor_in_netns(script: &str) -> Option<Value> {
    let mut docs = docs_in_netns(script)?;
    Some(docs.pop().expect("the script printed no doctor document"))
}

/// Every doctor JSON document `script` printed, in order.
fn docs_in_netns(script: &str) -> Option<Vec<Value>> {
    let (out, _dir) = in_netns(script, &[])?;
    assert!(out.status.success(), "{}", text(&out));
    let docs = json_docs(&out);
    assert!(
        docs.iter().all(|d| d.get("findings").is_some()),
        "{}",
        text(&out)
    );
    Some(docs)
}

#[test]
fn seed_a_accept_queue_overflowing_now_then_cleared_once_the_load_stops() {
    // The connection test's seed A on loopback in this namespace: somaxconn 128 (an older
    // kernel's), a server accepting one connection per millisecond, 600 connecting at once,
    // for up to 10 s. doctor, sampling 1 s apart, polled during the load (every half second,
    // up to 10 s), names the accept queue overflowing now; once the load has stopped the same
    // counters are a past problem and the warning clears.
    let Some(docs) = docs_in_netns(
        r#"
        ip link set lo up
        echo 128 > /proc/sys/net/core/somaxconn
        "$NP" test churn -n 20000 --concurrency 600 --accept-delay 1ms --duration 10s >/dev/null 2>&1 &
        during=
        for _ in $(seq 20); do
            during=$("$NP" --root "$ROOT" --json doctor --interval 1)
            case "$during" in *'"binding": "accept-queue"'*) break ;; esac
            sleep 0.5
        done
        printf '%s\n' "$during"
        wait
        "$NP" --root "$ROOT" --json doctor --interval 1
        "#,
    ) else {
        return;
    };
    let [during, after] = &docs[..] else {
        panic!("two documents expected: {docs:#?}");
    };
    assert_eq!(during["namespace"], "private");
    assert_eq!(during["binding"], "accept-queue", "{during:#}");
    let f = finding(during, "accept-queue");
    assert_eq!(f["when"], "now", "{f:#}");
    assert!(
        f["fix"][0].as_str().unwrap().contains("net.core.somaxconn"),
        "{f:#}"
    );
    // After the cure (the load stopped): the counters stay, the warning does not.
    let f = finding(after, "accept-queue");
    assert_eq!(f["when"], "past", "{f:#}");
    assert!(
        f["title"].as_str().unwrap().contains("a past problem"),
        "{f:#}"
    );
    assert!(f["rates"][0]["since_boot"].as_i64().unwrap() > 0, "{f:#}");
    assert_ne!(after["binding"], "accept-queue", "{after:#}");
}

#[test]
fn seed_b_after_the_ports_run_out_doctor_names_ephemeral_ports() {
    // Seed B on loopback: 1000 ephemeral ports, no TIME_WAIT reuse, the client closes first;
    // 1500 quick connections leave 1000 ports in TIME_WAIT (60 s) toward the server.
    let Some(doc) = doctor_in_netns(
        r#"
        ip link set lo up
        echo "40000 40999" > /proc/sys/net/ipv4/ip_local_port_range
        echo 0 > /proc/sys/net/ipv4/tcp_tw_reuse
        "$NP" test churn -n 1500 --closer client --duration 30s >/dev/null 2>&1
        "$NP" --root "$ROOT" --json doctor
        "#,
    ) else {
        return;
    };
    assert_eq!(doc["binding"], "ephemeral-ports", "{doc:#}");
    let f = finding(&doc, "ephemeral-ports");
    assert_eq!(f["severity"], "critical", "{f:#}");
    // Every port of the range is in TIME_WAIT toward the server, but the one the server's
    // own listener took from the same range (it bound port 0).
    let title = f["title"].as_str().unwrap();
    let used: u64 = title.split(' ').next().unwrap().parse().unwrap();
    assert!(used >= 999, "{f:#}");
    assert!(
        title.contains(" of 1000 ephemeral ports used toward 127.0.0.1:"),
        "{f:#}"
    );
}

#[test]
fn seed_c_during_a_hold_at_1024_files_doctor_names_the_servers_nofile() {
    // Seed C on loopback: the test's server and client workers play a soft nofile of 1024
    // while 3000 connections are attempted and held; doctor runs meanwhile (again every quarter
    // second until it sees the limit, at most 480 times and while the hold runs) and finds the
    // server worker (it holds the listener) at its limit. The hold is given 120 s and ended
    // (its own process group, workers too) as soon as doctor has seen it: on a loaded machine
    // one doctor run can take seconds, and an 8-s hold could end before any run saw it.
    let Some(doc) = doctor_in_netns(
        r#"
        ip link set lo up
        setsid "$NP" test hold -n 3000 --nofile 1024 --duration 120 >/dev/null 2>&1 &
        hold=$!
        out=
        for _ in $(seq 480); do
            sleep 0.25
            out=$("$NP" --root "$ROOT" --json doctor)
            case "$out" in *'"binding": "nofile"'*) break ;; esac
            kill -0 "$hold" 2>/dev/null || break
        done
        printf '%s\n' "$out"
        kill -- -"$hold" 2>/dev/null
        wait
        "#,
    ) else {
        return;
    };
    assert_eq!(doc["binding"], "nofile", "{doc:#}");
    let f = finding(&doc, "nofile");
    assert_eq!(f["severity"], "critical", "{f:#}");
    assert!(
        f["title"].as_str().unwrap().contains("may open 1024 files"),
        "{f:#}"
    );
}

#[test]
fn verify_holds_the_connections_in_the_sandbox() {
    // --verify runs `test hold --sandbox` as a child: 3000 connections, which no limit of a
    // fresh namespace stops, are held, and doctor says the test confirms the prediction.
    let Some(doc) = doctor_in_netns(
        r#"
        "$NP" --root "$ROOT" --json doctor --connections 3000 --verify
        "#,
    ) else {
        return;
    };
    let cap = &doc["capacity"];
    let verify = &cap["verify"];
    assert_eq!(verify["held"], 3000, "{cap:#}");
    assert!(
        verify["command"]
            .as_str()
            .unwrap()
            .starts_with("netprofile test hold --sandbox -n 3000 --workers 1 --addresses 1"),
        "{verify:#}"
    );
    // Held all: it confirms exactly when no machine-wide limit was predicted to bind.
    let machine_wide_binds =
        cap["limits"].as_array().unwrap().iter().any(|l| {
            l["binds"] == true && !l["limit"].as_str().unwrap().ends_with("(one process)")
        });
    assert_eq!(verify["confirms"], !machine_wide_binds, "{cap:#}");
}

#[test]
fn conntrack_is_not_binding_where_nothing_is_tracked() {
    // nf_conntrack is loaded (count and max exist) but this namespace has 3 connections and 0
    // entries: nothing is tracked here, so neither doctor nor the capacity question names it,
    // even for 620 000 connections at 5000/s against a max of 262 144.
    let rows: String = (40000..40003).map(|p| conn_row(p, 443, "01")).collect();
    let t = || {
        machine()
            .sysctl("net.netfilter.nf_conntrack_max", "262144")
            .sysctl("net.netfilter.nf_conntrack_count", "0")
            .file("proc/net/tcp", &format!("{TCP_HEADER}{rows}"))
    };
    let doc = doctor_json(t(), &[]);
    let f = finding(&doc, "conntrack");
    assert_eq!(f["severity"], "ok", "{f:#}");
    assert!(
        f["title"]
            .as_str()
            .unwrap()
            .starts_with("nothing is tracked in this network namespace"),
        "{f:#}"
    );
    let doc = doctor_json(
        t(),
        &["--connections", "620000", "--rate", "5000", "--outgoing"],
    );
    let limits = doc["capacity"]["limits"].as_array().unwrap();
    let c = limits
        .iter()
        .find(|l| l["limit"] == "net.netfilter.nf_conntrack_max")
        .unwrap();
    assert_eq!(c["binds"], false, "{c:#}");
    assert_ne!(
        doc["capacity"]["first_binding"],
        "net.netfilter.nf_conntrack_max"
    );
}

// ---- Application caps read from the servers' own configuration files ----

/// postgresql.conf as Debian 12's postgresql-15 ships it (an excerpt), max_connections 40.
const PG_DEBIAN_CONF: &str = "\
# -----------------------------
# PostgreSQL configuration file
# -----------------------------
#
# This file consists of lines of the form:
#
#   name = value
#
data_directory = '/var/lib/postgresql/15/main'\t\t# use data in another directory
\t\t\t\t\t# (change requires restart)
hba_file = '/etc/postgresql/15/main/pg_hba.conf'\t# host-based authentication file
\t\t\t\t\t# (change requires restart)
external_pid_file = '/var/run/postgresql/15-main.pid'\t\t\t# write an extra PID file

# - Connection Settings -

#listen_addresses = 'localhost'\t\t# what IP address(es) to listen on;
port = 5432\t\t\t\t# (change requires restart)
max_connections = 40\t\t\t# (change requires restart)
#superuser_reserved_connections = 3\t# (change requires restart)
unix_socket_directories = '/var/run/postgresql'\t# comma-separated list of directories

shared_buffers = 128MB\t\t\t# min 128kB
include_dir = 'conf.d'\t\t\t# include files ending in '.conf' from
";

/// The data folder's postgresql.auto.conf as initdb writes it (no setting in it).
const PG_AUTO_CONF: &str = "# Do not edit this file manually!\n\
# It will be overwritten by the ALTER SYSTEM command.\n";

/// RHEL's postgresql.conf lives in the data folder; max_connections 100.
const PG_RHEL_CONF: &str = "\
listen_addresses = '*'
max_connections = 100\t\t\t# (change requires restart)
shared_buffers = 128MB\t\t\t# min 128kB
log_destination = 'stderr'
";

/// Debian 12's /etc/mysql/my.cnf (the alternative mariadb.cnf): includes only.
const MARIADB_MY_CNF: &str = "\
# The MariaDB configuration file
#
# The MariaDB/MySQL tools read configuration files in the following order:
# 0. \"/etc/mysql/my.cnf\" symlinks to this file, reason why all the rest is read.
# 1. \"/etc/mysql/mariadb.cnf\" (this file) to set global defaults,
# 2. \"/etc/mysql/conf.d/*.cnf\" to set global options.
# 3. \"/etc/mysql/mariadb.conf.d/*.cnf\" to set MariaDB-only options.
#
# If the same option is defined multiple times, the last one will apply.

[client-server]
# Port or socket location where to connect
# port = 3306
socket = /run/mysqld/mysqld.sock

# Import all .cnf files from configuration directory
!includedir /etc/mysql/conf.d/
!includedir /etc/mysql/mariadb.conf.d/
";

/// Debian 12's mariadb.conf.d/50-server.cnf (an excerpt), max_connections set to 200.
const MARIADB_SERVER_CNF: &str = "\
#
# These groups are read by MariaDB server.
# Use it for options that only the server (but not clients) should see

# this is read by the standalone daemon and embedded servers
[server]

# this is only for the mysqld standalone daemon
[mysqld]

#
# * Basic Settings
#

#user                    = mysql
pid-file                = /run/mysqld/mysqld.pid
basedir                 = /usr
#datadir                 = /var/lib/mysql

bind-address            = 127.0.0.1

#
# * Fine Tuning
#

#key_buffer_size        = 128M
#max_allowed_packet     = 1G
max_connections         = 200
#table_cache            = 64
";

/// Ubuntu's /etc/mysql/my.cnf and mysql.conf.d/mysqld.cnf (excerpts), max_connections 120.
const MYSQL_MY_CNF: &str = "\
#
# The MySQL database server configuration file.
#
!includedir /etc/mysql/conf.d/
!includedir /etc/mysql/mysql.conf.d/
";
const MYSQL_MYSQLD_CNF: &str = "\
#
# The MySQL database server configuration file.
#
[mysqld]
#
# * Basic Settings
#
user\t\t= mysql
# pid-file\t= /var/run/mysqld/mysqld.pid
bind-address\t\t= 127.0.0.1
key_buffer_size\t\t= 16M
max_connections        = 120
myisam-recover-options  = BACKUP
";

/// Debian's apache2.conf (an excerpt: no MaxRequestWorkers; the MPM's file sets it).
const APACHE2_CONF: &str = "\
# This is the main Apache server configuration file.  It contains the
# configuration directives that give the server its instructions.
DefaultRuntimeDir ${APACHE_RUN_DIR}
PidFile ${APACHE_PID_FILE}
Timeout 300
KeepAlive On
MaxKeepAliveRequests 100
KeepAliveTimeout 5

# Include module configuration:
IncludeOptional mods-enabled/*.load
IncludeOptional mods-enabled/*.conf

# Include list of ports to listen on
Include ports.conf
";

/// Debian's mods-available/mpm_event.conf, as shipped (MaxRequestWorkers 150).
const APACHE_MPM_EVENT: &str = "\
# event MPM
# StartServers: initial number of server processes to start
# MinSpareThreads: minimum number of worker threads which are kept spare
# MaxSpareThreads: maximum number of worker threads which are kept spare
# ThreadsPerChild: constant number of worker threads in each server process
# MaxRequestWorkers: maximum number of worker threads
# MaxConnectionsPerChild: maximum number of requests a server process serves

<IfModule mpm_event_module>
\tStartServers\t\t\t 2
\tMinSpareThreads\t\t 25
\tMaxSpareThreads\t\t 75
\tThreadLimit\t\t\t 64
\tThreadsPerChild\t\t 25
\tMaxRequestWorkers\t  150
\tMaxConnectionsPerChild   0
</IfModule>
";

/// A known server on a fixture tree: its process (comm and command line), its files as it
/// sees them (under proc/PID/root), symlinks among them, and how many connections it holds.
struct AppCase {
    name: &'static str,
    comm: &'static str,
    cmdline: &'static [&'static str],
    port: u16,
    files: &'static [(&'static str, &'static str)],
    /// (link, target) under proc/PID/root, as the package installs them.
    links: &'static [(&'static str, &'static str)],
    /// Established connections at its cap, and well below it.
    at: u32,
    below: u32,
    severity: &'static str,
    kind: &'static str,
    /// The cap doctor states, with the file it was read from.
    cap: &'static str,
    fix: &'static str,
}

fn app_tree(case: &AppCase, established: u32) -> Test {
    let rows: String = (0..established)
        .map(|i| conn_row(case.port, 40000 + u16::try_from(i).unwrap(), "01"))
        .collect();
    let mut t = machine().file(
        "proc/net/tcp",
        &format!("{TCP_HEADER}{}{rows}", listen_row(case.port, 0, 9001)),
    );
    t = t.file(
        "proc/4242/cmdline",
        &case
            .cmdline
            .iter()
            .map(|a| format!("{a}\0"))
            .collect::<String>(),
    );
    for (path, text) in case.files {
        t = t.file(&format!("proc/4242/root/{path}"), text);
    }
    for (link, target) in case.links {
        let link = t.root().join(format!("proc/4242/root/{link}"));
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, link).unwrap();
    }
    with_process(
        t,
        &Proc {
            comm: case.comm,
            ..Proc::default()
        },
    )
}

#[test]
fn a_database_or_apache_at_its_own_cap_is_named_with_the_setting_and_its_file() {
    let cases = [
        AppCase {
            name: "PostgreSQL on Debian: pg_ctlcluster passes -c config_file=",
            comm: "postgres",
            cmdline: &[
                "/usr/lib/postgresql/15/bin/postgres",
                "-D",
                "/var/lib/postgresql/15/main",
                "-c",
                "config_file=/etc/postgresql/15/main/postgresql.conf",
            ],
            port: 5432,
            files: &[
                ("etc/postgresql/15/main/postgresql.conf", PG_DEBIAN_CONF),
                (
                    "var/lib/postgresql/15/main/postgresql.auto.conf",
                    PG_AUTO_CONF,
                ),
            ],
            links: &[],
            at: 39,
            below: 20,
            severity: "critical",
            kind: "postgresql",
            cap: "max_connections 40 (from /etc/postgresql/15/main/postgresql.conf)",
            fix: "raise max_connections in /etc/postgresql/15/main/postgresql.conf (restart needed)",
        },
        AppCase {
            name: "PostgreSQL on RHEL: postgresql.conf in the data folder",
            comm: "postmaster",
            cmdline: &["/usr/bin/postmaster", "-D", "/var/lib/pgsql/data"],
            port: 5432,
            files: &[("var/lib/pgsql/data/postgresql.conf", PG_RHEL_CONF)],
            links: &[],
            at: 80,
            below: 50,
            severity: "warning",
            kind: "postgresql",
            cap: "max_connections 100 (from /var/lib/pgsql/data/postgresql.conf)",
            fix: "raise max_connections in /var/lib/pgsql/data/postgresql.conf",
        },
        AppCase {
            name: "MariaDB on Debian: my.cnf only includes, 50-server.cnf sets it",
            comm: "mariadbd",
            cmdline: &["/usr/sbin/mariadbd"],
            port: 3306,
            files: &[
                ("etc/mysql/my.cnf", MARIADB_MY_CNF),
                ("etc/mysql/mariadb.conf.d/50-server.cnf", MARIADB_SERVER_CNF),
            ],
            links: &[],
            at: 199,
            below: 100,
            severity: "critical",
            kind: "mysql",
            cap: "max_connections 200 (from /etc/mysql/mariadb.conf.d/50-server.cnf)",
            fix: "raise max_connections in /etc/mysql/mariadb.conf.d/50-server.cnf (SET GLOBAL \
                  max_connections works live)",
        },
        AppCase {
            name: "MySQL on Ubuntu: mysql.conf.d/mysqld.cnf",
            comm: "mysqld",
            cmdline: &["/usr/sbin/mysqld"],
            port: 3306,
            files: &[
                ("etc/mysql/my.cnf", MYSQL_MY_CNF),
                ("etc/mysql/mysql.conf.d/mysqld.cnf", MYSQL_MYSQLD_CNF),
            ],
            links: &[],
            at: 100,
            below: 60,
            severity: "warning",
            kind: "mysql",
            cap: "max_connections 120 (from /etc/mysql/mysql.conf.d/mysqld.cnf)",
            fix: "raise max_connections in /etc/mysql/mysql.conf.d/mysqld.cnf",
        },
        AppCase {
            name: "Apache on Debian: MaxRequestWorkers in the enabled MPM's file (a symlink)",
            comm: "apache2",
            cmdline: &["/usr/sbin/apache2", "-k", "start"],
            port: 80,
            files: &[
                ("etc/apache2/apache2.conf", APACHE2_CONF),
                (
                    "etc/apache2/mods-available/mpm_event.conf",
                    APACHE_MPM_EVENT,
                ),
            ],
            links: &[(
                "etc/apache2/mods-enabled/mpm_event.conf",
                "../mods-available/mpm_event.conf",
            )],
            at: 150,
            below: 90,
            severity: "critical",
            kind: "apache",
            cap: "MaxRequestWorkers 150 (from /etc/apache2/mods-enabled/mpm_event.conf)",
            fix: "raise MaxRequestWorkers (and ServerLimit) in \
                  /etc/apache2/mods-enabled/mpm_event.conf; then apachectl graceful",
        },
    ];
    for case in &cases {
        let doc = doctor_json(app_tree(case, case.at), &[]);
        let app = &doc["apps"][0];
        assert_eq!(app["kind"], case.kind, "{}: {doc:#}", case.name);
        let f = finding(&doc, "app-cap");
        assert_eq!(f["severity"], case.severity, "{}: {f:#}", case.name);
        assert_eq!(f["process"]["name"], case.comm, "{}: {f:#}", case.name);
        let title = f["title"].as_str().unwrap();
        assert!(
            title.starts_with(&format!(
                "{} (pid 4242, uid 1000, port {}) holds {} connections against its own cap {}",
                case.comm, case.port, case.at, case.cap
            )),
            "{}: {f:#}",
            case.name
        );
        assert!(
            f["fix"][0].as_str().unwrap().starts_with(case.fix),
            "{}: {f:#}",
            case.name
        );
        // The setting's own record names the file that sets it, as the title does.
        let from = case
            .cap
            .split("(from ")
            .nth(1)
            .unwrap()
            .trim_end_matches(')');
        assert_eq!(app["settings"][0]["source"], from, "{}: {app:#}", case.name);
        if case.severity == "critical" {
            assert_eq!(doc["binding"], "app-cap", "{}: {doc:#}", case.name);
        }
        // Well below its cap the same server is not named.
        let doc = doctor_json(app_tree(case, case.below), &[]);
        assert!(
            !doc["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["limit"] == "app-cap"),
            "{}: {doc:#}",
            case.name
        );
        assert_eq!(doc["binding"], Value::Null, "{}: {doc:#}", case.name);
    }
}
