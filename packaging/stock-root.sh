#!/usr/bin/env bash
# Writes a stock kernel's proc/sys (Debian 12, initial network namespace) under the folder $1:
# the temporary root that packaging/ci.sh and the DaemonSet's reconcile test diff and apply
# against, with nothing in /etc. Usage: stock-root.sh DIR.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: stock-root.sh DIR" >&2; exit 2; }
while read -r key value; do
    f="$1/proc/sys/${key//.//}"
    mkdir -p "$(dirname "$f")"
    printf '%s\n' "$value" >"$f"
done <<'KEYS'
net.core.somaxconn 4096
net.core.netdev_max_backlog 1000
net.ipv4.tcp_max_syn_backlog 2048
net.ipv4.tcp_max_tw_buckets 131072
net.ipv4.tcp_syncookies 1
net.ipv4.tcp_tw_reuse 2
net.ipv4.ip_local_port_range 32768 60999
net.ipv4.tcp_mem 190863 254485 381726
fs.file-max 9223372036854775807
fs.nr_open 1048576
KEYS
