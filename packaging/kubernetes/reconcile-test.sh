#!/usr/bin/env bash
# Runs the DaemonSet's own container script (taken from netprofile-daemonset.yaml) against a
# temporary root instead of the node's /host, with a stand-in `curl` that records the Events it
# would post, and checks that it reconciles: it applies a node that differs (Applied), re-applies
# after drift (a key changed by hand) and after a ConfigMap edit (the mounted file changes), and
# reports InSync in between. Usage: reconcile-test.sh PATH/TO/netprofile. No cluster needed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
binary="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
fail() { echo "reconcile-test: $*" >&2; exit 1; }

work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
pid=""
root="$work/root"
"$here/../stock-root.sh" "$root"
mkdir -p "$work/cm" "$work/bin" "$work/sa"
python3 "$here/check.py" "$here/netprofile-daemonset.yaml" "$work/cm/profile.toml" >/dev/null
python3 - "$here/netprofile-daemonset.yaml" >"$work/script.sh" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
(ds,) = [d for d in docs if d["kind"] == "DaemonSet"]
print(ds["spec"]["template"]["spec"]["containers"][0]["command"][2])
PY
# The pod's paths, moved onto the temporary tree.
sed -i -e "s#/etc/netprofile/profile.toml#$work/cm/profile.toml#" -e "s#--root /host#--root $root#" \
    -e "s#/var/run/secrets/kubernetes.io/serviceaccount#$work/sa#" "$work/script.sh"
grep -q -- "--root $root" "$work/script.sh" || fail "the container script no longer runs netprofile --root /host"
echo token >"$work/sa/token"
touch "$work/sa/ca.crt"
ln -s "$binary" "$work/bin/netprofile"
cat >"$work/bin/curl" <<'SH'
#!/bin/sh
# Records the Event body the script would post.
while [ $# -gt 0 ]; do [ "$1" = --data ] && printf '%s\n' "$2" >>"$EVENTS"; shift; done
SH
chmod +x "$work/bin/curl"

export PATH="$work/bin:$PATH" EVENTS="$work/events" INTERVAL=1 NODE_NAME=node-a POD_NAME=netprofile-x \
    POD_NAMESPACE=netprofile POD_UID=0000 KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT=1
sh "$work/script.sh" >"$work/log" 2>&1 &
pid=$!

# Waits (up to 60 s: CI shares its cores) for the log to show PATTERN N times.
wait_for() {
    for _ in $(seq 600); do
        [ "$(grep -c -- "$1" "$work/log" || true)" -ge "$2" ] && return 0
        sleep 0.1
    done
    cat "$work/log" >&2
    fail "no '$1' (x$2) in the loop's log"
}
wait_for ': Applied: ' 1
wait_for ': InSync: ' 1
[ "$(cat "$root/proc/sys/net/core/somaxconn")" = 65535 ] || fail "the first loop did not apply"
# Drift: a key changed by hand is set back.
echo 128 >"$root/proc/sys/net/core/somaxconn"
wait_for ': Applied: ' 2
wait_for ': InSync: ' 2
[ "$(cat "$root/proc/sys/net/core/somaxconn")" = 65535 ] || fail "drift was not reconciled"
# A ConfigMap edit: the kubelet rewrites the mounted file; the next loop applies it.
sed -i 's/= 65535/= 32768/' "$work/cm/profile.toml"
wait_for ': Applied: ' 3
[ "$(cat "$root/proc/sys/net/core/somaxconn")" = 32768 ] || fail "the ConfigMap edit was not applied"
# The loop logs a state before it posts its Event: the next InSync proves the Applied one was posted.
wait_for ': InSync: ' 3
kill "$pid"
wait "$pid" 2>/dev/null || true
pid=""
# Events: one per state change, each naming the pod and the reason.
reasons=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    assert e["involvedObject"] == {"kind": "Pod", "name": "netprofile-x", "namespace": "netprofile", "uid": "0000"}, e
    print(e["reason"])' "$work/events" | tr '\n' ' ')
case "$reasons" in
    "Applied InSync Applied InSync Applied InSync "*) ;;
    *) fail "events: $reasons" ;;
esac
echo "kubernetes: the DaemonSet's loop applied, re-applied after drift and after a ConfigMap edit; events: $reasons"
