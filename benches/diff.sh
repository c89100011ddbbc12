#!/usr/bin/env bash
# Benchmark: `netprofile diff` of a 40-key profile against `sysctl -p` of the same 40 keys, in
# one run, as a ratio (budget: diff within 3x of sysctl -p). Runs in a private user + network
# namespace as uid 65534 (see tests/kernel.rs), so `sysctl -p` cannot touch the host.
# Rounds interleave the two commands; each round times a batch of runs; medians are reported.
# Usage: benches/diff.sh [ROUNDS] [BATCH]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-15}
batch=${2:-20}
cargo build --release -q
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
chown 65534:65534 "$work"
cp target/release/netprofile "$work/netprofile"
ln -s /proc "$work/proc"

cat > "$work/inner.sh" <<'INNER'
set -euo pipefail
W=$1; rounds=$2; batch=$3
export PATH="$PATH:/usr/sbin:/sbin"
cd /proc/sys
# 40 per-namespace keys that hold one integer and are writable here.
n=0
: > "$W/p.conf"
printf '[profile]\nname = "bench40"\n[sysctl]\n' > "$W/p.toml"
for f in net/ipv4/tcp_* net/ipv4/ip_* net/core/*; do
    [ -f "$f" ] && [ -w "$f" ] || continue
    v=$(cat "$f" 2>/dev/null) || continue
    case "$v" in ''|*[!0-9]*) continue ;; esac
    key=$(printf '%s' "$f" | tr / .)
    printf '%s = %s\n' "$key" "$v" >> "$W/p.conf"
    printf '"%s" = %s\n' "$key" "$v" >> "$W/p.toml"
    n=$((n + 1))
    [ "$n" -eq 40 ] && break
done
[ "$n" -eq 40 ] || { echo "only $n keys found" >&2; exit 1; }
cd "$W"
./netprofile --root "$W" check p.toml >/dev/null  # in sync: exit 0
now() { date +%s%N; }
for r in $(seq "$rounds"); do
    t0=$(now)
    for i in $(seq "$batch"); do sysctl -q -p p.conf >/dev/null; done
    t1=$(now)
    for i in $(seq "$batch"); do ./netprofile --root "$W" diff p.toml >/dev/null; done
    t2=$(now)
    echo "$(( (t1 - t0) / batch )) $(( (t2 - t1) / batch ))"
done
INNER

setpriv --reuid=65534 --regid=65534 --clear-groups -- \
    unshare -rn bash "$work/inner.sh" "$work" "$rounds" "$batch" > "$work/times"

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
sysctl_ns=$(cut -d' ' -f1 "$work/times" | median)
diff_ns=$(cut -d' ' -f2 "$work/times" | median)
ratios=$(awk '{printf "%.3f\n", $2/$1}' "$work/times" | median)
printf 'keys: 40 per-namespace, rounds: %s x %s runs\n' "$rounds" "$batch"
awk -v s="$sysctl_ns" -v d="$diff_ns" 'BEGIN { printf "sysctl -p        median %8.3f ms/run\nnetprofile diff  median %8.3f ms/run\n", s / 1e6, d / 1e6 }'
printf 'ratio diff/sysctl-p: median of per-round ratios %s (budget <= 3)\n' "$ratios"
