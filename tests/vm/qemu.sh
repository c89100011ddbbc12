#!/usr/bin/env bash
# Finds qemu-system-x86_64, or fetches Debian's and unpacks it into the cache (never installs it).
#
# Usage: tests/vm/qemu.sh        prints two lines: the qemu binary, and the firmware folder for -L
#
# An installed qemu-system-x86_64 is used as it is. Otherwise bookworm's qemu-system-x86 and the
# packages it needs that this machine lacks are downloaded with `apt-get download` and unpacked with
# `dpkg -x` into NETPROFILE_VM_CACHE/qemu-<version> (default /var/cache/netprofile-vm): a machine
# whose qemu-utils comes from backports cannot `apt-get install qemu-system-x86`, and the host's
# package set stays as it was.
set -euo pipefail
cache=${NETPROFILE_VM_CACHE:-/var/cache/netprofile-vm}
if command -v qemu-system-x86_64 >/dev/null; then
    command -v qemu-system-x86_64
    echo /usr/share/qemu
    exit 0
fi
version=$(apt-cache policy qemu-system-x86 2>/dev/null | awk '/Candidate:/ {print $2}')
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
    apt-get update -qq >/dev/null
    version=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ {print $2}')
fi
[ -n "$version" ] && [ "$version" != "(none)" ] || { echo "qemu.sh: apt knows no qemu-system-x86" >&2; exit 1; }
dir="$cache/qemu-${version//[^A-Za-z0-9.+-]/_}"
lib="$dir/root/usr/lib/x86_64-linux-gnu"
if [ ! -x "$dir/root/usr/bin/qemu-system-x86_64" ]; then
    mkdir -p "$cache"
    work=$(mktemp -d "$cache/qemu-build.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    # Every package in qemu-system-x86's dependency closure that is not installed here, less the
    # alternatives apt lists that a qemu binary never loads (debconf front ends, elogind, info).
    wanted=()
    while read -r p; do
        case "$p" in cdebconf | libdebian-installer4 | libnewt0.52 | libtextwrap1 | libelogind0 | install-info) continue ;; esac
        dpkg -s "$p" >/dev/null 2>&1 || wanted+=("$p")
    done < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
        --no-replaces --no-enhances qemu-system-x86 | grep -v '^[ <]' | sort -u)
    (cd "$work" && timeout 600 apt-get download -q "${wanted[@]}" >/dev/null 2>"$work/download.log") \
        || { cat "$work/download.log" >&2; false; } \
        || { echo "qemu.sh: apt-get download ${wanted[*]} failed" >&2; exit 1; }
    mkdir -p "$work/root"
    for deb in "$work"/*.deb; do dpkg -x "$deb" "$work/root"; done
    rm -rf "$dir"
    mkdir -p "$dir"
    mv "$work/root" "$dir/root"
fi
# The firmware links in usr/share/qemu point at /usr/share/seabios etc.: make a folder whose
# links resolve inside the unpacked tree.
fw="$dir/firmware"
if [ ! -d "$fw" ]; then
    mkdir -p "$fw.tmp"
    for f in "$dir"/root/usr/share/qemu/*; do
        t=$(readlink "$f" || true)
        case "$t" in
            /*) ln -sf "$dir/root$t" "$fw.tmp/$(basename "$f")" ;;
            *) ln -sf "$(readlink -f "$f" 2>/dev/null || echo "$f")" "$fw.tmp/$(basename "$f")" ;;
        esac
    done
    mv "$fw.tmp" "$fw"
fi
# A wrapper that finds the unpacked libraries.
cat >"$dir/qemu-system-x86_64" <<SH
#!/bin/sh
LD_LIBRARY_PATH="$lib:$dir/root/lib/x86_64-linux-gnu:$lib/pulseaudio\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$dir/root/usr/bin/qemu-system-x86_64" "\$@"
SH
chmod 755 "$dir/qemu-system-x86_64"
echo "$dir/qemu-system-x86_64"
echo "$fw"
