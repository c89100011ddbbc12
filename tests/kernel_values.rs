//! The kernel's own bounds for catalogue keys (`keys::KERNEL_RANGES`), which decide what
//! `diff` and `explain` show AT BOOT, checked against the running kernel: in a private user +
//! network namespace entered as uid 65534, each bound of every per-namespace key is written (it
//! must be taken) and the value just past it (it must be refused), in every field of the key
//! at once, then the key is put back. Global keys cannot be written there (their bounds come
//! from the kernel's source); the two whose minimum is a build constant (SOCK_MIN_RCVBUF and
//! SOCK_MIN_SNDBUF: rmem_* and wmem_*) are checked by asking a socket for a 0-byte buffer,
//! which the kernel raises to that constant. Nothing of the host changes. Under CI=true a
//! namespace that cannot be entered fails the test.

use std::process::Command;

use netprofile::profile::keys::{self, KERNEL_RANGES, Scope};

/// Per-key setup before the probes: the range and the start of the unprivileged ports bound
/// each other, so each is probed with the other out of the way.
fn setup(key: &str) -> &'static str {
    match key {
        "net.ipv4.ip_local_port_range" => {
            "printf 0 > /proc/sys/net/ipv4/ip_unprivileged_port_start\n"
        }
        "net.ipv4.ip_unprivileged_port_start" => {
            "printf '65535 65535' > /proc/sys/net/ipv4/ip_local_port_range\n"
        }
        _ => "",
    }
}

fn fields(key: &str) -> usize {
    match keys::known(key).map(|k| k.shape) {
        Some(keys::Shape::Ints(n)) => n,
        _ => 1,
    }
}

#[test]
fn kernel_ranges_hold_on_the_running_kernel() {
    let mut script = String::from(
        "w() { printf '%s' \"$2\" > \"/proc/sys/$1\" 2>/dev/null && echo ok || echo no; }\n",
    );
    let netns = KERNEL_RANGES
        .iter()
        .filter(|(key, _, _)| keys::known(key).is_some_and(|k| k.scope == Scope::Netns));
    for (key, lo, hi) in netns {
        let path = key.replace('.', "/");
        let mut probes = vec![*lo, *hi];
        if *lo > i128::from(i64::MIN) {
            probes.push(lo - 1);
        }
        if *hi < i128::from(u64::MAX) {
            probes.push(hi + 1);
        }
        script.push_str(&format!(
            "if [ -e /proc/sys/{path} ]; then old=$(cat /proc/sys/{path});\n{}",
            setup(key)
        ));
        for value in &probes {
            let written = vec![value.to_string(); fields(key)].join(" ");
            script.push_str(&format!(
                "echo \"{key} {value} $(w {path} '{written}')\"; printf '%s' \"$old\" > /proc/sys/{path}\n"
            ));
        }
        script.push_str("fi\n");
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["unshare", "-rn", "sh", "-c", &script])
        .output();
    let Some(out) = out.ok().filter(|o| o.status.success()) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "cannot enter a private user + network namespace"
        );
        eprintln!("skipped: no private user + network namespace");
        return;
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut wrong = Vec::new();
    let mut checked = std::collections::BTreeSet::new();
    let mut writes = 0;
    for line in stdout.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [key, value, got] = f[..] else { continue };
        let Some((lo, hi)) = keys::kernel_range(key) else {
            continue;
        };
        let v: i128 = value.parse().unwrap_or_default();
        writes += 1;
        checked.insert(key.to_string());
        if (lo..=hi).contains(&v) != (got == "ok") {
            wrong.push(format!(
                "{key} = {value}: kernel says {got}, table [{lo}, {hi}]"
            ));
        }
    }
    eprintln!(
        "kernel_values: {writes} writes on {} keys checked",
        checked.len()
    );
    for key in [
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
    ] {
        assert!(checked.contains(key), "{key} was not probed: {stdout}");
    }
    assert!(writes >= 180, "only {writes} writes checked: {stdout}");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The smallest receive and send buffer the kernel gives a socket that asks for none: the
/// SOCK_MIN_RCVBUF and SOCK_MIN_SNDBUF that net.core.rmem_* and wmem_* take as minimum.
fn socket_minimum(option: libc::c_int) -> i128 {
    // SAFETY: a plain socket, a 0 written to one of its options and read back, then closed.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket");
        let zero: libc::c_int = 0;
        let size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        libc::setsockopt(fd, libc::SOL_SOCKET, option, (&raw const zero).cast(), size);
        let mut got: libc::c_int = 0;
        let mut len = size;
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&raw mut got).cast(),
            &raw mut len,
        );
        libc::close(fd);
        i128::from(got)
    }
}

#[test]
fn socket_buffer_minimums_match_the_running_kernel() {
    let rcv = socket_minimum(libc::SO_RCVBUF);
    let snd = socket_minimum(libc::SO_SNDBUF);
    for (key, want) in [
        ("net.core.rmem_max", rcv),
        ("net.core.rmem_default", rcv),
        ("net.core.wmem_max", snd),
        ("net.core.wmem_default", snd),
    ] {
        let (lo, _) = keys::kernel_range(key).expect("bounded");
        assert_eq!(lo, want, "{key}: the kernel's minimum is {want}");
    }
}
