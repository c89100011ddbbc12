#!/usr/bin/env bash
# Fetches the real systemd-sysctl and pam_limits of Debian 12 (bookworm), 13 (trixie) and sid
# for the oracle tests, unpacked, each with its own glibc, into a cache outside the repository:
#   ${NETPROFILE_ORACLE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/netprofile-oracle}/SUITE-SYSTEMD-PAM/
# Nothing is installed: `apt-get download` runs with a private apt state (its own lists, cache
# and sources list) and the packages are unpacked with `dpkg -x`. A suite already in the cache
# is reused without touching the network. Prints one line per suite:
#   SUITE<TAB>SYSTEMD_VERSION<TAB>PAM_VERSION<TAB>DIR
# The tests run DIR/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 --library-path ... on the
# programs in DIR, so the host's own libraries are never replaced.
set -euo pipefail

suites=(bookworm trixie sid)
packages=(systemd libsystemd-shared libsystemd0 libc6 libpam0g libpam-modules)
cache="${NETPROFILE_ORACLE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/netprofile-oracle}"
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

print_cached() {
    local suite=$1 dir
    for dir in "$cache/$suite"-*; do
        [ -f "$dir/ok" ] || continue
        printf '%s\t%s\t%s\t%s\n' "$suite" "$(sed -n 1p "$dir/ok")" "$(sed -n 2p "$dir/ok")" "$dir"
        return 0
    done
    return 1
}

missing=()
for suite in "${suites[@]}"; do
    print_cached "$suite" >/dev/null || missing+=("$suite")
done

if [ "${#missing[@]}" -gt 0 ]; then
    apt_state="$cache/apt"
    mkdir -p "$apt_state/lists/partial" "$apt_state/cache/archives/partial" "$apt_state/etc/apt.conf.d"
    : >"$apt_state/status"
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    : >"$apt_state/etc/sources.list"
    for suite in "${missing[@]}"; do
        echo "deb [signed-by=$keyring] http://deb.debian.org/debian $suite main" \
            >>"$apt_state/etc/sources.list"
    done
    apt_opts=(
        -q -o "Dir::State::Lists=$apt_state/lists"
        -o "Dir::Etc::SourceList=$apt_state/etc/sources.list"
        -o Dir::Etc::SourceParts=/nonexistent
        -o "Dir::Cache=$apt_state/cache"
        -o "Dir::State::Status=$apt_state/status"
        -o Acquire::Languages=none
        -o APT::Sandbox::User=root
        -o "Dir::Etc::Parts=$apt_state/etc/apt.conf.d"
    )
    apt-get "${apt_opts[@]}" update >&2
    for suite in "${missing[@]}"; do
        work="$cache/.work-$suite"
        rm -rf "$work"
        mkdir -p "$work/debs"
        (cd "$work/debs" && apt-get "${apt_opts[@]}" download "${packages[@]/%//$suite}" >&2)
        # libsystemd-shared 257 and later need a newer libcrypto than Debian 12 has; the
        # package is libssl3t64 from Debian 13 on, libssl3 before.
        (cd "$work/debs" && { apt-get "${apt_opts[@]}" download "libssl3t64/$suite" >&2 ||
            apt-get "${apt_opts[@]}" download "libssl3/$suite" >&2; })
        for deb in "$work"/debs/*.deb; do
            dpkg -x "$deb" "$work/root"
        done
        sd=$(dpkg-deb -f "$work"/debs/systemd_*.deb Version)
        pam=$(dpkg-deb -f "$work"/debs/libpam-modules_*.deb Version)
        dir="$cache/$suite-$sd-$pam"
        rm -rf "$dir"
        mv "$work/root" "$dir"
        rm -rf "$work"
        printf '%s\n%s\n' "$sd" "$pam" >"$dir/ok"
    done
fi

for suite in "${suites[@]}"; do
    print_cached "$suite"
done
