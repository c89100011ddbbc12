#!/usr/bin/env bash
# Benchmark: netprofile's connection-test client against a minimal C epoll client
# (benches/ref/epoll_ref.c), both connecting to the same C epoll server, with the kernel out of
# the way so the clients are what is measured: ephemeral range 1024-65535, tcp_tw_reuse = 1,
# two destination addresses (127.0.0.1 and .2). For 1 and then 2 worker processes per side
# (the C server and the C client run as that many processes too, the server's sharing the port
# with SO_REUSEPORT), in interleaved rounds with the order alternating: churn rate (connect,
# send 12 bytes, close) and hold ramp rate (connects/s while opening N and keeping them). A
# multi-process rate is total established / (last connect settled - first connect started), on
# one clock for both sides. Prints medians and the median of per-round ratios (budget: >= 0.9),
# then netprofile's user-space memory per held connection (budget: < 256 bytes).
# Runs in a private user + network namespace as uid 65534 (loopback only, host untouched).
# Usage: benches/conn.sh [ROUNDS] [CHURN_N] [HOLD_N_PER_WORKER]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
churn_n=${2:-60000}
hold_n=${3:-15000}
cargo build --release -q
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -Wall -o "$work/epoll_ref" benches/ref/epoll_ref.c
cp target/release/netprofile "$work/netprofile"
chmod 755 "$work" "$work/netprofile" "$work/epoll_ref"
chown 65534:65534 "$work"

cat > "$work/inner.sh" <<'INNER'
set -euo pipefail
W=$1; rounds=$2; churn_n=$3; hold_n=$4
ip link set lo up
echo "1024 65535" > /proc/sys/net/ipv4/ip_local_port_range
echo 1 > /proc/sys/net/ipv4/tcp_tw_reuse
conc=256 addrs=2
# Waits (at most 30 s) until the kernel has let go of the last measurement's sockets.
settle() {
    for _ in $(seq 150); do
        awk '/^TCP:/ {exit !($3 < 500)}' /proc/net/sockstat && return; sleep 0.2
    done
}
rate_np() { # KIND PORT N WORKERS
    # churn: --duration only caps the run; hold: hold 0 s after the ramp, as the C client.
    local d=60; [ "$1" = hold ] && d=0
    "$W/netprofile" --json test "$1" --target "127.0.0.1:$2" --addresses $addrs -n "$3" \
        --concurrency $conc --workers "$4" --duration $d \
    | grep '"connects_per_s"' | tr -dc '0-9.'; echo; }
rate_c() { # KIND PORT N WORKERS
    local pids=() i
    for i in $(seq "$4"); do
        "$W/epoll_ref" "$1" "$2" $(( $3 / $4 )) $(( conc / $4 )) $addrs 0 0 > "$W/c.$i" & pids+=($!)
    done
    wait "${pids[@]}"
    cat "$W"/c.* | awk '{e += $4; if (!s || $8 < s) s = $8; if ($10 > t) t = $10}
        END {printf "%.0f\n", e / (t - s)}'
    rm -f "$W"/c.*
}
# A fresh server for every measurement, and the order alternates, so neither side runs while
# the server is still closing the other side's connections.
measure() { # KIND N WHO PORT WORKERS
    settle
    local srv=() i
    for i in $(seq "$5"); do
        "$W/epoll_ref" server "$4" $addrs 300 > "$W/server.$4.$i" & srv+=($!)
        until grep -q ready "$W/server.$4.$i" 2>/dev/null; do
            kill -0 "${srv[$((i - 1))]}" || { echo "C server failed" >&2; exit 1; }; sleep 0.01
        done
    done
    if [ "$3" = c ]; then rate_c "$1" "$4" "$2" "$5"; else rate_np "$1" "$4" "$2" "$5"; fi
    kill "${srv[@]}"; wait "${srv[@]}" 2>/dev/null || true
}
# Ports below the ephemeral range (1024-65535), so no client socket can hold one.
port=100
for r in $(seq "$rounds"); do
    for w in 1 2; do
        for kind in churn hold; do
            n=$churn_n; [ $kind = hold ] && n=$((hold_n * w))
            if [ $((r % 2)) = 0 ]; then
                c=$(measure $kind $n c $((port += 1)) $w); p=$(measure $kind $n np $((port += 1)) $w)
            else
                p=$(measure $kind $n np $((port += 1)) $w); c=$(measure $kind $n c $((port += 1)) $w)
            fi
            echo "$kind-$w $c $p"
        done
    done
done
# Memory: RSS of the one client worker holding 1 000 and then $hold_n connections.
settle
port=999
"$W/epoll_ref" server $port $addrs 300 > "$W/server.out" & srv=$!
until grep -q ready "$W/server.out" 2>/dev/null; do sleep 0.01; done
for n in 1000 "$hold_n"; do
    "$W/netprofile" test hold --target "127.0.0.1:$port" --addresses $addrs --workers 1 -n "$n" \
        --duration 2 >/dev/null &
    np=$!
    # The worker's largest RSS while it lives (it holds all $n for the last 2 s).
    max=0
    while kill -0 $np 2>/dev/null; do
        pid=$(pgrep -P $np -f "__worker" | head -1 || true)
        kb=$( [ -n "$pid" ] && awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        [ "${kb:-0}" -gt $max ] && max=$kb
        sleep 0.1
    done
    echo "rss $n $max"
done
kill $srv
INNER

echo "conn.sh: $rounds rounds, churn $churn_n, hold $hold_n per worker; $(date -u '+%F %H:%M UTC')," \
    "load $(cut -d' ' -f1-3 /proc/loadavg)"
setpriv --reuid=65534 --regid=65534 --clear-groups -- \
    unshare -rn bash "$work/inner.sh" "$work" "$rounds" "$churn_n" "$hold_n" > "$work/out"

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for kind in churn-1 hold-1 churn-2 hold-2; do
    c=$(awk -v k=$kind '$1 == k {print $2}' "$work/out" | median)
    p=$(awk -v k=$kind '$1 == k {print $3}' "$work/out" | median)
    ratio=$(awk -v k=$kind '$1 == k && $2 > 0 {printf "%.3f\n", $3 / $2}' "$work/out" | median)
    all=$(awk -v k=$kind '$1 == k && $2 > 0 {printf "%s%.2f", sep, $3 / $2; sep = " "}' "$work/out")
    printf '%-7s worker(s): C median %7.0f/s  netprofile median %7.0f/s  ratio %s  (rounds: %s)\n' \
        "${kind%-*} ${kind#*-}" "$c" "$p" "$ratio" "$all"
done
awk '$1 == "rss" {rss[$2] = $3} END {
    n = 0; for (k in rss) { keys[n++] = k }
    lo = (keys[0] + 0 < keys[1] + 0) ? keys[0] : keys[1]; hi = (lo == keys[0]) ? keys[1] : keys[0]
    printf "memory RSS %d KiB at %d held, %d KiB at %d held: %.0f bytes per held connection\n",
        rss[lo], lo, rss[hi], hi, (rss[hi] - rss[lo]) * 1024 / (hi - lo)
}' "$work/out"
