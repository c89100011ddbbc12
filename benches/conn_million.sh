#!/usr/bin/env bash
# Benchmark: 1 000 000 held connections over loopback, netprofile with no tuning flags
# (`netprofile test hold -n 1000000`) against the C reference (benches/ref/epoll_ref.c) run
# with the same process count per side, destination addresses, sources and connects in flight
# per process, which the script reads from netprofile's own report. Rate: total established /
# (last connect settled - first connect started), on one clock for both. Memory: the sum of
# the private (unshared) memory of every netprofile process while all are held, per connection
# (budget < 256 bytes), and the same for the C processes. Both in one run, the order
# alternating over rounds, with a pause until the kernel has released the last run's sockets.
# Inside a private user + network namespace as uid 65534, ephemeral range 1024-65535 (a
# profile's per-namespace range), tcp_tw_reuse = 1.
# Usage: [WARMUP=1] benches/conn_million.sh [ROUNDS] [N]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-1}
n=${2:-1000000}
cargo build --release -q
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -Wall -o "$work/epoll_ref" benches/ref/epoll_ref.c
cp target/release/netprofile "$work/netprofile"
chmod 755 "$work" "$work/netprofile" "$work/epoll_ref"
chown 65534:65534 "$work"

cat > "$work/inner.sh" <<'INNER'
set -euo pipefail
W=$1; rounds=$2; n=$3
ip link set lo up
echo "1024 65535" > /proc/sys/net/ipv4/ip_local_port_range
echo 1 > /proc/sys/net/ipv4/tcp_tw_reuse
settle() { # at most 120 s
    for _ in $(seq 600); do
        awk '/^TCP:/ {exit !($3 < 2000)}' /proc/net/sockstat && return; sleep 0.2
    done
}
# Largest sum of private memory (KiB) of the processes matching $1, sampled every 0.5 s while
# process $2 lives.
peak_private() {
    local max=0 sum
    while kill -0 "$2" 2>/dev/null; do
        sum=$(for p in $(pgrep -f "$1"); do
                  awk '/^Private_(Clean|Dirty):/ {s += $2} END {print s + 0}' \
                      "/proc/$p/smaps_rollup" 2>/dev/null || true
              done | awk '{s += $1} END {print s + 0}')
        [ "$sum" -gt "$max" ] && max=$sum
        sleep 0.5
    done
    echo "$max"
}
np_run() {
    settle
    "$W/netprofile" --json test hold -n "$n" --duration 4 > "$W/np.json" & local np=$!
    local kib; kib=$(peak_private "$W/netprofile" $np)
    wait $np
    local rate workers conc addrs held
    rate=$(grep '"connects_per_s"' "$W/np.json" | tr -dc '0-9.')
    held=$(grep '"held"' "$W/np.json" | head -1 | tr -dc '0-9')
    workers=$(grep '"workers"' "$W/np.json" | tr -dc '0-9')
    conc=$(grep '"concurrency"' "$W/np.json" | tr -dc '0-9')
    addrs=$(grep '"target"' "$W/np.json" | sed 's/.*"\([0-9]*\) addresses.*/\1/')
    echo "np $rate $held $kib $workers $conc $addrs"
    echo "$workers $conc $addrs" > "$W/shape"
}
c_run() {
    settle
    local workers conc addrs; read -r workers conc addrs < "$W/shape"
    local srv=() cli=() i
    for i in $(seq "$workers"); do
        "$W/epoll_ref" server 999 "$addrs" 600 > "$W/s.$i" & srv+=($!)
    done
    for i in $(seq "$workers"); do
        until grep -q ready "$W/s.$i" 2>/dev/null; do
            kill -0 "${srv[$((i - 1))]}" || { echo "C server $i failed" >&2; exit 1; }; sleep 0.01
        done
    done
    for i in $(seq "$workers"); do
        "$W/epoll_ref" hold 999 $(( (n + workers - 1) / workers )) $(( conc / workers )) "$addrs" 0 4 \
            > "$W/c.$i" & cli+=($!)
    done
    local kib; kib=$(peak_private "$W/epoll_ref" "${cli[0]}")
    wait "${cli[@]}"
    kill "${srv[@]}"; wait "${srv[@]}" 2>/dev/null || true
    cat "$W"/c.* | awk -v kib="$kib" '{e += $4; if (!s || $8 < s) s = $8; if ($10 > t) t = $10}
        END {printf "c %.0f %d %d\n", e / (t - s), e, kib}'
    rm -f "$W"/c.* "$W"/s.*
}
# WARMUP=1: one unmeasured C run first, so that no measured run pays for growing the kernel's
# socket slabs in a fresh namespace.
if [ "${WARMUP:-0}" = 1 ]; then
    echo "$(( (n + 17963) / 17964 )) $(( (n + 17963) / 17964 * 128 )) $(( (n + 25803) / 25804 ))" > "$W/shape"
    c_run > /dev/null
fi
for r in $(seq "$rounds"); do
    if [ $((r % 2)) = 1 ]; then np_run; c_run; else
        # C needs netprofile's shape: the first round has read it.
        c_run; np_run; fi
done
INNER

echo "conn_million.sh: $rounds round(s) of $n; $(date -u '+%F %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)"
setpriv --reuid=65534 --regid=65534 --clear-groups -- \
    env WARMUP="${WARMUP:-0}" unshare -rn bash "$work/inner.sh" "$work" "$rounds" "$n" > "$work/out"
cat "$work/out"
awk -v n="$n" '
    $1 == "np" {np[++a] = $2; held = $3; npkib = $4; shape = $5 " workers, concurrency " $6 ", " $7 " addresses"}
    $1 == "c" {c[++b] = $2; cest = $3; ckib = $4}
    END {
        printf "shape: %s (chosen by netprofile, copied to C)\n", shape
        for (i = 1; i <= a && i <= b; i++)
            printf "round %d: C %.0f/s  netprofile %.0f/s  ratio %.3f\n", i, c[i], np[i], np[i] / c[i]
        printf "netprofile held %d; private memory %.0f MiB = %.0f bytes/connection (C %.0f MiB = %.0f bytes)\n",
            held, npkib / 1024, npkib * 1024 / n, ckib / 1024, ckib * 1024 / n
    }' "$work/out"
