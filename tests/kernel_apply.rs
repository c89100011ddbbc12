//! apply, rollback, failures, kills, the lock and --confirm against a real kernel, in a private
//! user + network namespace entered as uid 65534 (see tests/kernel.rs for why). Nothing is
//! persisted: in a private namespace netprofile writes no boot files, and its state lives in
//! the temporary root.

mod common;

use common::{in_netns, text};

/// Keys of every shape: integers, a tab-separated triple, a port list (merged and sorted by
/// the kernel, empty before), a range, and text.
const PROFILE: &str = r#"
[sysctl]
"net.core.somaxconn" = 8192
"net.ipv4.tcp_rmem" = "4096 65536 8388608"
"net.ipv4.tcp_tw_reuse" = 1
"net.ipv4.tcp_congestion_control" = "reno"
"net.ipv4.ip_local_reserved_ports" = "9005-9010,8080,9000-9004"

[ports]
local_range = [20000, 50000]
"#;

/// Prints every key the profile touches, one per line, exactly as the kernel shows it.
const DUMP: &str = r#"
dump() {
    for k in net/core/somaxconn net/ipv4/tcp_rmem net/ipv4/tcp_tw_reuse \
             net/ipv4/tcp_congestion_control net/ipv4/ip_local_reserved_ports \
             net/ipv4/ip_local_port_range; do
        printf '%s=%s|' "$k" "$(cat /proc/sys/$k)"
    done
    echo
}
np() { "$NP" --root "$ROOT" "$@"; }
"#;

fn run(script: &str, files: &[(&str, &str)]) -> Option<(String, String)> {
    let full = format!("{DUMP}\n{script}");
    let (out, _dir) = in_netns(&full, files)?;
    Some((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        text(&out),
    ))
}

fn field<'a>(stdout: &'a str, name: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{name}=")))
        .collect()
}

#[test]
fn apply_then_rollback_restores_every_value_byte_for_byte() {
    let Some((stdout, all)) = run(
        r#"
        echo "before=$(dump)"
        np apply -q p.toml; echo "apply=$?"
        echo "applied=$(dump)"
        np diff -q p.toml; echo "diff=$?"
        np rollback -q; echo "rollback=$?"
        echo "after=$(dump)"
        "#,
        &[("p.toml", PROFILE)],
    ) else {
        return;
    };
    assert_eq!(field(&stdout, "apply"), ["0"], "{all}");
    assert_eq!(field(&stdout, "diff"), ["0"], "{all}");
    assert_eq!(field(&stdout, "rollback"), ["0"], "{all}");
    let applied = field(&stdout, "applied")[0];
    for want in [
        "net/core/somaxconn=8192|",
        "net/ipv4/tcp_rmem=4096\t65536\t8388608|",
        "net/ipv4/tcp_congestion_control=reno|",
        "net/ipv4/ip_local_reserved_ports=8080,9000-9010|",
        "net/ipv4/ip_local_port_range=20000\t50000|",
    ] {
        assert!(applied.contains(want), "{want} not in {applied}\n{all}");
    }
    assert_eq!(field(&stdout, "before"), field(&stdout, "after"), "{all}");
    assert!(
        field(&stdout, "before")[0].contains("ip_local_reserved_ports=|"),
        "the empty value must round-trip: {all}"
    );
}

#[test]
fn a_value_the_kernel_rejects_at_any_position_leaves_every_key_as_before() {
    // Five keys in write order; the k-th gets a value this kernel refuses (EINVAL). They are
    // keys the catalogue does not know, so the plan cannot refuse the value first (catalogued
    // keys are refused at plan time with exit 2: tests/values.rs).
    let good = [
        ("net.ipv4.tcp_app_win", "30", "32"),
        ("net.ipv4.tcp_invalid_ratelimit", "400", "-1"),
        ("net.ipv4.tcp_max_reordering", "200", "0"),
        ("net.ipv4.tcp_min_rtt_wlen", "200", "-1"),
        ("net.ipv4.tcp_reordering", "4", "0"),
    ];
    let mut files = Vec::new();
    for k in 0..good.len() {
        let mut text = String::from("[sysctl]\n");
        for (i, (key, ok, bad)) in good.iter().enumerate() {
            text.push_str(&format!("\"{key}\" = {}\n", if i == k { bad } else { ok }));
        }
        files.push((format!("bad{}.toml", k + 1), text));
    }
    let file_refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let Some((stdout, all)) = run(
        r#"
        k() { for f in net/ipv4/tcp_app_win net/ipv4/tcp_invalid_ratelimit \
              net/ipv4/tcp_max_reordering net/ipv4/tcp_min_rtt_wlen net/ipv4/tcp_reordering; do
              printf '%s|' "$(cat /proc/sys/$f)"; done; echo; }
        echo "before=$(k)"
        for i in 1 2 3 4 5; do
            np apply -q bad$i.toml 2>err$i; echo "code$i=$?"
            echo "state$i=$(k)"
            grep -c "every change was rolled back" err$i | sed "s/^/rolled$i=/"
        done
        "#,
        &file_refs,
    ) else {
        return;
    };
    let before = field(&stdout, "before")[0];
    for i in 1..=5 {
        assert_eq!(field(&stdout, &format!("code{i}")), ["3"], "key {i}\n{all}");
        assert_eq!(
            field(&stdout, &format!("state{i}")),
            [before],
            "key {i}\n{all}"
        );
        assert_eq!(
            field(&stdout, &format!("rolled{i}")),
            ["1"],
            "key {i}\n{all}"
        );
    }
}

#[test]
fn a_kill_at_every_step_and_at_random_moments_recovers_exactly() {
    // 6 keys: journal, change:1..6, generation; then 100 kills at random moments. After each
    // kill the next writer recovers (`confirm`: it restores, then finds nothing to confirm and
    // changes nothing); read-only commands only report an open journal.
    let Some((stdout, all)) = run(
        r#"
        before=$(dump)
        for step in journal change:1 change:2 change:3 change:4 change:5 change:6; do
            NETPROFILE_FAULT=kill:$step np apply -q p.toml >/dev/null 2>&1; echo "killed_$step=$?"
            np confirm >/dev/null 2>&1
            [ "$(dump)" = "$before" ] && echo "restored_$step=yes" || echo "restored_$step=no $(dump)"
        done
        NETPROFILE_FAULT=kill:generation np apply -q p.toml >/dev/null 2>&1; echo "killed_generation=$?"
        np confirm >/dev/null 2>&1; applied=$(dump)
        [ "$applied" != "$before" ] && echo "kept_generation=yes"
        np rollback -q >/dev/null
        [ "$(dump)" = "$before" ] && echo "rollback_generation=yes"
        same=0; done_=0; mixed=0
        for round in $(seq 100); do
            "$NP" --root "$ROOT" apply -q p.toml >/dev/null 2>&1 &
            pid=$!
            sleep "$(printf '0.%03d' $((RANDOM % 30)))"
            kill -9 $pid 2>/dev/null
            wait $pid 2>/dev/null
            np confirm >/dev/null 2>&1
            now=$(dump)
            if [ "$now" = "$before" ]; then same=$((same + 1))
            elif [ "$now" = "$applied" ]; then done_=$((done_ + 1)); np rollback -q >/dev/null
            else mixed=$((mixed + 1)); echo "MIXED $now"; np rollback -q >/dev/null; fi
            [ "$(dump)" = "$before" ] || { echo "NOT RESTORED after round $round"; break; }
        done
        echo "random=$same,$done_,$mixed"
        "#,
        &[("p.toml", PROFILE)],
    ) else {
        return;
    };
    for step in [
        "journal", "change:1", "change:2", "change:3", "change:4", "change:5", "change:6",
    ] {
        assert_eq!(
            field(&stdout, &format!("killed_{step}")),
            ["137"],
            "{step}\n{all}"
        );
        assert_eq!(
            field(&stdout, &format!("restored_{step}")),
            ["yes"],
            "{step}\n{all}"
        );
    }
    assert_eq!(field(&stdout, "kept_generation"), ["yes"], "{all}");
    assert_eq!(field(&stdout, "rollback_generation"), ["yes"], "{all}");
    let random = field(&stdout, "random");
    assert_eq!(random.len(), 1, "{all}");
    let counts: Vec<u32> = random[0].split(',').map(|n| n.parse().unwrap()).collect();
    eprintln!(
        "100 random kills: {} left the state before, {} found the apply complete",
        counts[0], counts[1]
    );
    assert_eq!(counts[0] + counts[1], 100, "{all}");
    assert_eq!(
        counts[2], 0,
        "a kill left a mix of old and new values\n{all}"
    );
    assert!(!stdout.contains("NOT RESTORED"), "{all}");
}

#[test]
fn a_second_writer_is_refused_while_the_first_runs() {
    let Some((stdout, all)) = run(
        r#"
        # The first pauses 1 s at each of its 8 steps, holding the lock; the second starts once
        # the first has written its journal (polled, so a loaded machine cannot reorder them).
        pauses=pause:journal,pause:generation
        for i in 1 2 3 4 5 6; do pauses=$pauses,pause:change:$i; done
        NETPROFILE_FAULT=$pauses "$NP" --root "$ROOT" apply -q p.toml >first.out 2>&1 &
        first=$!
        for i in $(seq 600); do
            [ -e "$ROOT/var/lib/netprofile/journal.json" ] && break
            sleep 0.05
        done
        np apply -q p.toml 2>second.err; echo "second=$?"
        wait $first; echo "first=$?"
        grep -o "another netprofile (pid $first) holds /run/netprofile.lock" second.err | sed 's/^/message=/'
        np diff -q p.toml >/dev/null; echo "diff=$?"
        "#,
        &[("p.toml", PROFILE)],
    ) else {
        return;
    };
    assert_eq!(field(&stdout, "second"), ["2"], "{all}");
    assert_eq!(field(&stdout, "first"), ["0"], "{all}");
    assert_eq!(field(&stdout, "message").len(), 1, "{all}");
    assert_eq!(field(&stdout, "diff"), ["0"], "{all}");
}

#[test]
fn confirm_timeout_reverts_even_after_its_terminal_is_killed() {
    let Some((stdout, all)) = run(
        r#"
        before=$(dump)
        bash -c 'np() { "$NP" --root "$ROOT" "$@"; }; np apply -q --confirm 10 p.toml; sleep 300' >/dev/null 2>&1 &
        terminal=$!
        # Polled, not slept: on a loaded machine the apply may take seconds. The 10-s window
        # leaves time to see it applied before the deadline.
        for i in $(seq 300); do [ "$(dump)" != "$before" ] && break; sleep 0.1; done
        [ "$(dump)" != "$before" ] && echo "applied=yes"
        kill -9 $terminal
        for i in $(seq 600); do [ "$(dump)" = "$before" ] && break; sleep 0.2; done
        [ "$(dump)" = "$before" ] && echo "reverted=yes" || echo "reverted=no $(dump)"
        # The watcher writes the values back first, then records the outcome: poll that too.
        for i in $(seq 300); do np history | grep -q "reverted" && break; sleep 0.2; done
        np history | grep -c "reverted" | sed 's/^/history=/'
        "#,
        &[("p.toml", PROFILE)],
    ) else {
        return;
    };
    assert_eq!(field(&stdout, "applied"), ["yes"], "{all}");
    assert_eq!(field(&stdout, "reverted"), ["yes"], "{all}");
    assert_eq!(field(&stdout, "history"), ["1"], "{all}");
}

#[test]
fn a_key_whose_current_value_cannot_be_written_back_is_refused_before_any_change() {
    // Issue 16: in a user namespace the kernel shows ping_group_range's unmapped default as
    // "65534 65534", a value it refuses to take back. Before, apply wrote the key, failed, and
    // its undo failed too: exit 4 and a journal that stopped every later writer. Now the undo
    // is proven first: exit 2, the key as it was, no journal, and the next apply works.
    let Some((stdout, all)) = run(
        r#"
        echo "before=$(cat /proc/sys/net/ipv4/ping_group_range)"
        np apply -q bad.toml; echo "bad=$?"
        echo "after=$(cat /proc/sys/net/ipv4/ping_group_range)"
        echo "somaxconn=$(cat /proc/sys/net/core/somaxconn)"
        test -e "$ROOT/var/lib/netprofile/journal.json"; echo "journal=$?"
        np apply -q p.toml; echo "good=$?"
        "#,
        &[
            (
                "bad.toml",
                "[sysctl]\n\"net.ipv4.ping_group_range\" = \"1 0\"\n\"net.core.somaxconn\" = 8192\n",
            ),
            ("p.toml", PROFILE),
        ],
    ) else {
        return;
    };
    assert_eq!(field(&stdout, "bad"), ["2"], "{all}");
    assert!(
        all.contains("net.ipv4.ping_group_range cannot be undone: writing its current value back"),
        "{all}"
    );
    assert_eq!(field(&stdout, "before"), field(&stdout, "after"), "{all}");
    assert_eq!(field(&stdout, "somaxconn"), ["4096"], "{all}");
    assert_eq!(field(&stdout, "journal"), ["1"], "{all}");
    assert_eq!(field(&stdout, "good"), ["0"], "{all}");
}
