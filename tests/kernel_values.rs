//! The kernel's own bounds for catalogue keys (`keys::KERNEL_RANGES`), which decide what
//! `diff` and `explain` show AT BOOT, checked against the running kernel: in a private user +
//! network namespace entered as uid 65534, each bound is written (it must be taken) and the
//! value just past it (it must be refused), then the key is put back. Only per-namespace keys
//! are listed there, so nothing of the host changes. Under CI=true a namespace that cannot be
//! entered fails the test.

use std::process::Command;

use netprofile::profile::keys::KERNEL_RANGES;

#[test]
fn kernel_ranges_hold_on_the_running_kernel() {
    let mut script = String::from(
        "w() { printf '%s' \"$2\" > \"/proc/sys/$1\" 2>/dev/null && echo ok || echo no; }\n",
    );
    for (key, lo, hi) in KERNEL_RANGES {
        let path = key.replace('.', "/");
        // ip_unprivileged_port_start is also bounded by the port range's low end (32768 here).
        let mut probes = vec![(i128::from(*lo), true), (i128::from(*hi), true)];
        if *lo > i64::MIN {
            probes.push((i128::from(*lo) - 1, false));
        }
        if i128::from(*hi) < i128::from(u64::MAX) {
            probes.push((i128::from(*hi) + 1, false));
        }
        script.push_str(&format!(
            "if [ -e /proc/sys/{path} ]; then old=$(cat /proc/sys/{path});\n"
        ));
        for (value, _) in &probes {
            script.push_str(&format!(
                "echo \"{key} {value} $(w {path} {value})\"; printf '%s' \"$old\" > /proc/sys/{path}\n"
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
    let mut checked = 0;
    for line in stdout.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [key, value, got] = f[..] else { continue };
        let Some((_, lo, hi)) = KERNEL_RANGES.iter().find(|(k, _, _)| *k == key) else {
            continue;
        };
        let v: i128 = value.parse().unwrap_or_default();
        let inside = (i128::from(*lo)..=i128::from(*hi)).contains(&v);
        checked += 1;
        if inside != (got == "ok") {
            wrong.push(format!(
                "{key} = {value}: kernel says {got}, table [{lo}, {hi}]"
            ));
        }
    }
    eprintln!("kernel_values: {checked} writes checked");
    assert!(checked >= 60, "only {checked} writes checked: {stdout}");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
