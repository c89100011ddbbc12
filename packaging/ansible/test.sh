#!/usr/bin/env bash
# Tests the Ansible collection against localhost on a temporary root: the playbook in check mode
# (reports a change, changes nothing), run twice (the second run reports no change), then the
# scenarios (a failing profile, rollback, confirm, overrides, running processes), then `verify`
# in a private network namespace. Needs ansible-playbook (ansible-core) and a
# built netprofile: NETPROFILE=path/to/netprofile (default target/release/netprofile).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
binary="${NETPROFILE:-$repo/target/release/netprofile}"
[ -x "$binary" ] || { echo "test.sh: no netprofile at $binary (cargo build --release)" >&2; exit 2; }

work="$(mktemp -d)"
sleeper=""
trap '[ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null; rm -rf "$work"' EXIT
root="$work/root"
# A stock kernel's proc/sys in the initial network namespace (tcp_mem present), nothing in /etc.
while read -r key value; do
    f="$root/proc/sys/${key//.//}"
    mkdir -p "$(dirname "$f")"
    printf '%s\n' "$value" >"$f"
done <<'KEYS'
net.core.somaxconn 4096
net.ipv4.tcp_max_syn_backlog 2048
net.ipv4.tcp_tw_reuse 2
net.ipv4.tcp_mem 190863 254485 381726
fs.nr_open 1048576
fs.file-max 9223372036854775807
KEYS
mkdir -p "$root/etc/sysctl.d" "$root/etc/security/limits.d"
cat >"$work/fleet.toml" <<'TOML'
[profile]
name = "fleet"
description = "what the playbook rolls out"

[sysctl]
"net.core.somaxconn" = 65535
"net.ipv4.tcp_tw_reuse" = 1

[[limits]]
domain = "*"
type = "-"
item = "nofile"
value = 65536
TOML
cat >"$work/bad.toml" <<'TOML'
[profile]
name = "bad"
description = "a typo"

[sysctl]
"net.core.somaxconnn" = 65535
TOML

# A real process for `running`: a `sleep` with open-files limits 256:4096 (killed on exit), its
# proc entry copied into the root as a login process of uid 1000; and a profile that gives it
# 1024:4096 (a raise within its hard limit: no CAP_SYS_RESOURCE needed).
sh -c 'ulimit -n 4096 && ulimit -S -n 256 && exec sleep 600' </dev/null >/dev/null 2>&1 &
sleeper=$!
for _ in $(seq 100); do [ "$(cat "/proc/$sleeper/comm" 2>/dev/null)" = sleep ] && break; sleep 0.1; done
[ "$(cat "/proc/$sleeper/comm")" = sleep ] || { echo "test.sh: the sleep did not start" >&2; exit 1; }
mkdir -p "$root/proc/$sleeper"
echo sleep >"$root/proc/$sleeper/comm"
printf 'Name:\tsleep\nUid:\t1000\t1000\t1000\t1000\n' >"$root/proc/$sleeper/status"
echo 0::/user.slice/user-1000.slice/session-1.scope >"$root/proc/$sleeper/cgroup"
cat "/proc/$sleeper/limits" >"$root/proc/$sleeper/limits"

cat >"$work/running.toml" <<'TOML'
[profile]
name = "running"

[[limits]]
domain = "*"
type = "soft"
item = "nofile"
value = 1024

[[limits]]
domain = "*"
type = "hard"
item = "nofile"
value = 4096
TOML

export ANSIBLE_COLLECTIONS_PATH="$here"
export ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 ANSIBLE_LOCALHOST_WARNING=0
vars=(-e "root=$root" -e "binary=$binary" -e "profile=$work/fleet.toml" -e "bad_profile=$work/bad.toml"
      -e "sleeper=$sleeper" -e "running_profile=$work/running.toml" -e "ansible_python_interpreter=$(command -v python3)")
play() { ansible-playbook -i localhost, -c local "${vars[@]}" "$@"; }
snapshot() { (cd "$root" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
recap() { grep -E '^localhost +:' "$1"; }
expect_changed() { # LOG N
    recap "$1" | grep -q "changed=$2 " || { echo "test.sh: expected changed=$2 in $1:" >&2; cat "$1" >&2; exit 1; }
}

# The module's documentation parses (ansible-doc fails on a broken DOCUMENTATION block).
ansible-doc netprofile.netprofile.netprofile >/dev/null

before="$(snapshot)"
play --check --diff "$here/tests/site.yml" >"$work/check.log"
expect_changed "$work/check.log" 1
grep -q '+net.core.somaxconn = 65535' "$work/check.log" || { echo "test.sh: check --diff shows no file diff" >&2; cat "$work/check.log" >&2; exit 1; }
[ "$before" = "$(snapshot)" ] || { echo "test.sh: check mode changed the root" >&2; exit 1; }
echo "ansible: check mode reports a change and changes nothing"

play "$here/tests/site.yml" >"$work/run1.log"
expect_changed "$work/run1.log" 1
[ "$(cat "$root/proc/sys/net/core/somaxconn")" = 65535 ] || { echo "test.sh: run 1 did not apply" >&2; exit 1; }
applied="$(snapshot)"
play "$here/tests/site.yml" >"$work/run2.log"
expect_changed "$work/run2.log" 0
play --check "$here/tests/site.yml" >"$work/check2.log"
expect_changed "$work/check2.log" 0
[ "$applied" = "$(snapshot)" ] || { echo "test.sh: the second run changed the root" >&2; exit 1; }
echo "ansible: first run changed, second run and check mode report no change"

play "$here/tests/scenarios.yml" >"$work/scenarios.log" || { cat "$work/scenarios.log" >&2; exit 1; }
recap "$work/scenarios.log" | grep -q "failed=0 " || { cat "$work/scenarios.log" >&2; exit 1; }
echo "ansible: failing profile, rollback and confirm scenarios pass"
echo "ansible: running raises a real process and rollback lowers it"

# verify: the connection test measures the running kernel, so the module's netprofile runs in a
# private user + network namespace that a holder process (uid 65534, `unshare -rn`) keeps open:
# the binary is a wrapper that enters it as that uid (nsenter), where net.* keys are the
# namespace's own and fs.* keys cannot be written; never bare `unshare -rn` as root, which
# reaches the host's fs.* keys. The root is a folder whose proc is /proc, so apply sets the
# namespace's keys and the test runs over its loopback. Ansible itself runs outside.
ns="$(mktemp -d)"
holder=""
trap '[ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null; [ -z "$holder" ] || kill "$holder" 2>/dev/null; rm -rf "$work" "$ns"' EXIT
setpriv --reuid=65534 --regid=65534 --clear-groups -- unshare -rn sleep 3600 </dev/null >/dev/null 2>&1 &
holder=$!
for _ in $(seq 100); do
    [ "$(readlink "/proc/$holder/ns/net")" != "$(readlink /proc/self/ns/net)" ] && break
    sleep 0.1
done
[ "$(readlink "/proc/$holder/ns/net")" != "$(readlink /proc/self/ns/net)" ] \
    || { echo "test.sh: no private network namespace (unshare -rn as uid 65534)" >&2; exit 1; }
cat >"$ns/in-ns" <<SH
#!/bin/sh
exec setpriv --reuid=65534 --regid=65534 --clear-groups -- nsenter --preserve-credentials -t $holder -U -n -- "\$@"
SH
cat >"$ns/netprofile" <<SH
#!/bin/sh
exec "$ns/in-ns" "$binary" "\$@"
SH
chmod 0755 "$ns/in-ns" "$ns/netprofile"
"$ns/in-ns" ip link set lo up
mkdir -p "$ns/root"
ln -s /proc "$ns/root/proc"
cat >"$ns/verify.toml" <<'TOML'
[profile]
name = "verify-ns"

[sysctl]
"net.core.somaxconn" = 8192
"net.ipv4.tcp_max_syn_backlog" = 8192
TOML
chmod 0755 "$ns"
chown -R 65534:65534 "$ns/root" "$ns/verify.toml"
ansible-playbook -i localhost, -c local -e "root=$ns/root" -e "binary=$ns/netprofile" -e "in_ns=$ns/in-ns" \
    -e "profile=$ns/verify.toml" -e "ansible_python_interpreter=$(command -v python3)" \
    "$here/tests/verify.yml" >"$work/verify.log" 2>&1 || { cat "$work/verify.log" >&2; exit 1; }
recap "$work/verify.log" | grep -q "failed=0 " || { cat "$work/verify.log" >&2; exit 1; }
echo "ansible: verify measures before and after in a private namespace and returns both reports"
