#!/usr/bin/env bash
# Benchmark (issue 23): what the read-only commands cost on a host that holds many
# connections. In a private user + network namespace entered as uid 65534, a C server and
# client of our own (benches/ref/epoll_ref.c, built here with gcc) hold N connections over
# loopback: 127.0.0.1:999 served by S SO_REUSEPORT server processes, reached from N/6000+1 (at
# most 250) source addresses 127.0.1.x by S client processes (about 6 000 connections, under
# 10 % of the ephemeral range, per source: connect() finds a port at once, so even the 1 000 000
# ramp has no slow tail), each process under 20 000 fds (hard nofile is
# 20 000 here, so the holders shard like benches/conn_million.sh). Then, interleaved in rounds,
# each command is timed against the standard tools for the same job:
#   netprofile diff high-conn, check high-conn, status   vs  sysctl -q -p FILE + ss -ltn
#   netprofile doctor --interval 0 (one sample, as ss)   vs  ss -s + ss -ltnp
# FILE is the sysctl drop-in high-conn renders (four per-namespace keys). Medians over rounds;
# a ratio is the median of the per-round ratios. The N = 0 row is each command's idle time.
# diff, check and status run in an order that rotates every round (see the loop).
# Budgets: diff/check/status <= 2x the tools and <= 1.5x their idle time; doctor <= 1x.
# Usage: benches/busy_host.sh [ROUNDS] [N...]      (default: 5 rounds, N = 0 100000 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
shift || true
scales=("${@:-0 100000 1000000}")
cargo build --release -q
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -O2 -Wall -o "$work/epoll_ref" benches/ref/epoll_ref.c
cp target/release/netprofile "$work/netprofile"
"$work/netprofile" render high-conn |
    awk '/^==> .*sysctl.d/ {on = 1; next} /^==>/ {on = 0} on && /=/' > "$work/p.conf"
chmod 755 "$work" "$work/netprofile" "$work/epoll_ref"
chmod 644 "$work/p.conf"
chown 65534:65534 "$work"

cat > "$work/inner.sh" <<'INNER'
set -euo pipefail
W=$1; rounds=$2; shift 2
export PATH="$PATH:/usr/sbin:/sbin"
ip link set lo up
sysctl -q -p "$W/p.conf"  # the profile's per-namespace keys: range 1024-65535, tw_reuse
ms() { date +%s%N; }
# Time one command line (a batch of $2 runs) in ns per run.
t() {
    local t0 t1
    t0=$(ms)
    for _ in $(seq "$2"); do eval "$1" >/dev/null 2>&1 || true; done
    t1=$(ms)
    echo $(( (t1 - t0) / $2 ))
}
settle() { # until the last scale's sockets are gone, TIME_WAIT too (their expiry is kernel
    # work that would land in the next scale's timings), at most 300 s
    for _ in $(seq 1500); do
        awk '/^TCP:/ {exit !($3 < 2000 && $7 < 2000)}' /proc/net/sockstat && return; sleep 0.2
    done
}
NP="$W/netprofile"
STD1="sysctl -q -p $W/p.conf; ss -ltn"
STD2="ss -s; ss -ltnp"
for n in "$@"; do
    settle
    procs=$(( n / 12500 + 1 ))
    srcs=$(( n / 6000 + 1 > 250 ? 250 : n / 6000 + 1 ))
    srv=() cli=()
    if [ "$n" -gt 0 ]; then
        for i in $(seq "$procs"); do
            "$W/epoll_ref" server 999 1 3600 > "$W/s.$i" & srv+=($!)
        done
        for i in $(seq "$procs"); do
            until grep -q ready "$W/s.$i" 2>/dev/null; do sleep 0.01; done
        done
        t0=$(ms)
        for i in $(seq "$procs"); do
            "$W/epoll_ref" hold 999 $(( n / procs + (i <= n % procs) )) 256 1 "$srcs" 3600 \
                > "$W/c.$i" & cli+=($!)
        done
        # Ramped when every client printed its line (bounded: 20 min).
        for _ in $(seq 12000); do
            [ "$(cat "$W"/c.* 2>/dev/null | wc -l)" -ge "$procs" ] && break; sleep 0.1
        done
        held=$(cat "$W"/c.* | awk '{e += $4; f += $6} END {print e + 0, f + 0}')
        echo "ramp $n $procs procs, $srcs sources: $(( ($(ms) - t0) / 1000000 )) ms, held and failed: $held"
    fi
    estab=$(awk '/^Tcp:/ && $1 == "Tcp:" && $10 ~ /^[0-9]+$/ {print $10}' /proc/net/snmp | tail -1)
    echo "scale $n procs $procs CurrEstab $estab sockstat $(grep '^TCP:' /proc/net/sockstat)"
    # Batch sizes: 10 runs of the cheap commands at every N, so a batch's first (cold) run
    # weighs the same in the idle time as at 1 000 000 (it was 3 there: a third against a
    # tenth); the ones that walk every fd (ss -ltnp, doctor) once per round from 50 000
    # connections on (each is compared only with the other, in the same round).
    b=10
    b2=$(( n >= 50000 ? 1 : 10 ))
    # The command that runs right after the tools' walk of every socket (ss -ltn reads the whole
    # established table) finds the CPU caches cold: 1-2 ms more at 1 000 000 (diff 5.3-6.0 ms
    # after `ss -ltn` against 3.7-4.0 after `check`). So diff, check and status take turns in
    # that place: the order rotates every round, and the times are printed in a fixed order.
    cmds=("$NP diff high-conn" "$NP check high-conn" "$NP status")
    for r in $(seq "$rounds"); do
        tools1=$(t "$STD1" $b)
        took=()
        for k in 0 1 2; do
            i=$(( (k + r - 1) % 3 ))
            took[$i]=$(t "${cmds[$i]}" $b)
        done
        echo "time $n $r $tools1 ${took[0]} ${took[1]} ${took[2]} $(t "$STD2" $b2) \
$(t "$NP doctor --interval 0" $b2)"
    done
    # Teardown: clients first (they close), then servers.
    [ "${#cli[@]}" -gt 0 ] && { kill "${cli[@]}" 2>/dev/null || true; wait "${cli[@]}" 2>/dev/null || true; }
    [ "${#srv[@]}" -gt 0 ] && { kill "${srv[@]}" 2>/dev/null || true; wait "${srv[@]}" 2>/dev/null || true; }
    rm -f "$W"/c.* "$W"/s.*
done
INNER

echo "busy_host.sh: $rounds rounds, N = ${scales[*]}; $(date -u '+%F %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
# shellcheck disable=SC2068
setpriv --reuid=65534 --regid=65534 --clear-groups -- \
    unshare -rn bash "$work/inner.sh" "$work" "$rounds" ${scales[@]} | tee "$work/out" | grep -v '^time '
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "per round, ns per run: N round tools1 diff check status tools2 doctor"
grep '^time ' "$work/out" | cut -d' ' -f2-
awk '
    function median(a, k,    i, j, t, m) {
        for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        m = (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
        return m
    }
    $1 == "time" {
        n = $2; k = ++cnt[n]; if (!(n in seen)) { seen[n] = 1; order[++ns] = n }
        for (c = 1; c <= 6; c++) v[n, c, k] = $(c + 3)
        r[n, 1, k] = $5 / $4; r[n, 2, k] = $6 / $4; r[n, 3, k] = $7 / $4; r[n, 4, k] = $9 / $8
    }
    END {
        name[1] = "sysctl -p + ss -ltn"; name[2] = "diff"; name[3] = "check"; name[4] = "status"
        name[5] = "ss -s + ss -ltnp"; name[6] = "doctor"
        printf "%-9s %-22s %10s %14s %10s\n", "N", "command", "median ms", "ratio to tools", "vs idle"
        for (s = 1; s <= ns; s++) {
            n = order[s]; k = cnt[n]
            for (c = 1; c <= 6; c++) {
                for (i = 1; i <= k; i++) x[i] = v[n, c, i]
                med[n, c] = median(x, k)
            }
            for (c = 1; c <= 6; c++) {
                ratio = "";
                if (c >= 2 && c <= 4) { for (i = 1; i <= k; i++) x[i] = r[n, c - 1, i]; ratio = sprintf("%.2f", median(x, k)) }
                if (c == 6) { for (i = 1; i <= k; i++) x[i] = r[n, 4, i]; ratio = sprintf("%.2f", median(x, k)) }
                idle = (order[1] == 0 && med[0, c] > 0) ? sprintf("%.2f", med[n, c] / med[0, c]) : ""
                printf "%-9s %-22s %10.1f %14s %10s\n", n, name[c], med[n, c] / 1e6, ratio, idle
            }
        }
    }' "$work/out"
