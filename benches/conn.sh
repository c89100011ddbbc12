#!/usr/bin/env bash
# Benchmark: netprofile's connection-test client against a minimal C epoll client
# (benches/ref/epoll_ref.c), both connecting to the same C epoll server over loopback, in one
# run: churn rate (connect, send, close) and hold ramp rate (connects/s while opening N), as
# medians over interleaved rounds and ratios. Budget: at least 90% of the C reference. Also
# measures netprofile's user-space memory per held connection (budget: under 256 bytes).
# Runs in a private user + network namespace as uid 65534 (loopback only, host untouched).
# Usage: benches/conn.sh [ROUNDS] [CHURN_N] [HOLD_N]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-7}
churn_n=${2:-50000}
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
conc=256
rate_np() {
    # churn: --duration only caps the run; hold: hold 0 s after the ramp, as the C client.
    local d=60; [ "$1" = hold ] && d=0
    "$W/netprofile" --json test "$1" --target "127.0.0.1:$2" -n "$3" --concurrency $conc --duration $d \
    | grep '"connects_per_s"' | tr -dc '0-9.'; echo; }
rate_c() { "$W/epoll_ref" "$1" "$2" "$3" $conc | awk '{print $2}'; }
# A fresh server for every measurement, and the order alternates, so neither side runs while
# the server is still closing the other side's connections.
measure() { # KIND N WHO PORT
    "$W/epoll_ref" server "$4" > "$W/server.$4" & local srv=$!
    until grep -q ready "$W/server.$4" 2>/dev/null; do sleep 0.01; done
    if [ "$3" = c ]; then rate_c "$1" "$4" "$2"; else rate_np "$1" "$4" "$2"; fi
    kill $srv; wait $srv 2>/dev/null || true
}
port=20000
for r in $(seq "$rounds"); do
    for kind in churn hold; do
        n=$churn_n; [ $kind = hold ] && n=$hold_n
        if [ $((r % 2)) = 0 ]; then
            c=$(measure $kind $n c $((port += 1))); p=$(measure $kind $n np $((port += 1)))
        else
            p=$(measure $kind $n np $((port += 1))); c=$(measure $kind $n c $((port += 1)))
        fi
        echo "$kind $c $p"
    done
done
# Memory: RSS of the client worker holding 1 000 and then $hold_n connections.
port=29999
"$W/epoll_ref" server $port > "$W/server.out" & srv=$!
until grep -q ready "$W/server.out" 2>/dev/null; do sleep 0.01; done
for n in 1000 "$hold_n"; do
    "$W/netprofile" test hold --target "127.0.0.1:$port" -n "$n" --duration 2 >/dev/null &
    np=$!
    sleep 1.2
    pid=$(pgrep -f "__worker" | head -1)
    echo "rss $n $(awk '/VmRSS/ {print $2}' /proc/$pid/status)"
    wait $np
done
kill $srv
INNER

setpriv --reuid=65534 --regid=65534 --clear-groups -- \
    unshare -rn bash "$work/inner.sh" "$work" "$rounds" "$churn_n" "$hold_n" > "$work/out"

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for kind in churn hold; do
    c=$(awk -v k=$kind '$1 == k {print $2}' "$work/out" | median)
    p=$(awk -v k=$kind '$1 == k {print $3}' "$work/out" | median)
    ratio=$(awk -v k=$kind '$1 == k && $2 > 0 {printf "%.3f\n", $3 / $2}' "$work/out" | median)
    printf '%-6s C reference median %8.0f/s   netprofile median %8.0f/s   ratio (median of rounds) %s\n' \
        "$kind" "$c" "$p" "$ratio"
done
awk '$1 == "rss" {rss[$2] = $3} END {
    n = 0; for (k in rss) { keys[n++] = k }
    lo = (keys[0] + 0 < keys[1] + 0) ? keys[0] : keys[1]; hi = (lo == keys[0]) ? keys[1] : keys[0]
    printf "memory RSS %d KiB at %d held, %d KiB at %d held: %.0f bytes per held connection\n",
        rss[lo], lo, rss[hi], hi, (rss[hi] - rss[lo]) * 1024 / (hi - lo)
}' "$work/out"
