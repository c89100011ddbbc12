#!/usr/bin/env bash
# Tests the Ansible collection against localhost on a temporary root: the playbook in check mode
# (reports a change, changes nothing), run twice (the second run reports no change), then the
# scenarios (a failing profile, rollback, confirm). Needs ansible-playbook (ansible-core) and a
# built netprofile: NETPROFILE=path/to/netprofile (default target/release/netprofile).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
binary="${NETPROFILE:-$repo/target/release/netprofile}"
[ -x "$binary" ] || { echo "test.sh: no netprofile at $binary (cargo build --release)" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
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

export ANSIBLE_COLLECTIONS_PATH="$here"
export ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 ANSIBLE_LOCALHOST_WARNING=0
vars=(-e "root=$root" -e "binary=$binary" -e "profile=$work/fleet.toml" -e "bad_profile=$work/bad.toml"
      -e "ansible_python_interpreter=$(command -v python3)")
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
