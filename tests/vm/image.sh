#!/usr/bin/env bash
# Builds (or finds in the cache) the guest image the VM test boots: a Debian system made from
# Debian packages only by mmdebstrap, written to a raw ext4 image with `mkfs.ext4 -d`, plus the
# kernel and initrd taken out of its /boot (qemu boots them with -kernel/-initrd, so the image
# needs no boot loader).
#
# Usage: tests/vm/image.sh [SUITE]      (SUITE: bookworm (default) or trixie)
# Prints the cache folder that holds rootfs.img, vmlinuz and initrd.img.
#
# The cache lives outside the repository (NETPROFILE_VM_CACHE, default /var/cache/netprofile-vm)
# and is keyed by a hash of this script and the suite: any change to the recipe builds a new image.
# The guest is generic: the per-run ssh key comes in on the kernel command line (np_key=...), read
# by np-authkey.service before sshd starts, so one cached image serves every run.
set -euo pipefail
suite=${1:-bookworm}
case "$suite" in bookworm | trixie) ;; *) echo "image.sh: unknown suite '$suite' (bookworm or trixie)" >&2; exit 2 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
cache=${NETPROFILE_VM_CACHE:-/var/cache/netprofile-vm}
key=$(cat "$here/image.sh" | sha256sum | cut -c1-16)
dir="$cache/image-$suite-$key"
if [ -s "$dir/rootfs.img" ] && [ -s "$dir/vmlinuz" ] && [ -s "$dir/initrd.img" ]; then
    echo "$dir"
    exit 0
fi
command -v mmdebstrap >/dev/null || { echo "image.sh: mmdebstrap is missing (apt-get install mmdebstrap)" >&2; exit 1; }
command -v mkfs.ext4 >/dev/null || [ -x /sbin/mkfs.ext4 ] || { echo "image.sh: mkfs.ext4 is missing (e2fsprogs)" >&2; exit 1; }
mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
# --one-file-system: never into a mount mmdebstrap left in the chroot (proc, sys, dev/pts) if it
# was killed before it unmounted them.
trap 'rm -rf --one-file-system "$work"' EXIT
start=$SECONDS

packages=systemd,systemd-sysv,udev,dbus,kmod,libpam-modules,procps,iproute2,openssh-server,sudo
packages=$packages,linux-image-amd64,initramfs-tools,util-linux
# --variant=apt: essential packages and apt only, then exactly the list above (no recommends).
# Hooks run on the host with the rootfs as $1.
timeout 1500 mmdebstrap --variant=apt --include="$packages" \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='echo npvm >"$1/etc/hostname"' \
    --customize-hook='printf "127.0.0.1 localhost\n127.0.1.1 npvm\n" >"$1/etc/hosts"' \
    --customize-hook='printf "/dev/vda / ext4 rw,errors=remount-ro 0 1\n" >"$1/etc/fstab"' \
    --customize-hook='mkdir -p "$1/etc/systemd/network" && printf "[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n" >"$1/etc/systemd/network/10-nic.network"' \
    --customize-hook='chroot "$1" systemctl enable systemd-networkd.service ssh.service' \
    --customize-hook='chroot "$1" systemctl mask systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer man-db.timer 2>/dev/null || true' \
    --customize-hook='chroot "$1" useradd -m -s /bin/bash tester' \
    --customize-hook='chroot "$1" passwd -d root >/dev/null' \
    --customize-hook='cat >"$1/usr/local/sbin/np-authkey" <<"SH"
#!/bin/sh
# Writes the per-run ssh key from the kernel command line (np_key=BASE64) for root and tester.
set -e
for w in $(cat /proc/cmdline); do
    case "$w" in np_key=*) k=$(echo "${w#np_key=}" | base64 -d) ;; esac
done
[ -n "$k" ] || exit 0
for home in /root /home/tester; do
    mkdir -p "$home/.ssh"
    echo "$k" >"$home/.ssh/authorized_keys"
    chmod 700 "$home/.ssh"; chmod 600 "$home/.ssh/authorized_keys"
done
chown -R tester:tester /home/tester/.ssh
SH
chmod 755 "$1/usr/local/sbin/np-authkey"' \
    --customize-hook='printf "[Unit]\nDescription=ssh key from the kernel command line\nBefore=ssh.service\n\n[Service]\nType=oneshot\nExecStart=/usr/local/sbin/np-authkey\n\n[Install]\nWantedBy=multi-user.target\n" >"$1/etc/systemd/system/np-authkey.service" && chroot "$1" systemctl enable np-authkey.service' \
    --customize-hook='printf "UseDNS no\nPermitRootLogin prohibit-password\n" >"$1/etc/ssh/sshd_config.d/np.conf"' \
    --customize-hook='cp -L "$1/vmlinuz" "$1/boot/np-vmlinuz" 2>/dev/null || cp "$1"/boot/vmlinuz-* "$1/boot/np-vmlinuz"' \
    --customize-hook='cp -L "$1/initrd.img" "$1/boot/np-initrd.img" 2>/dev/null || cp "$1"/boot/initrd.img-* "$1/boot/np-initrd.img"' \
    --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*_Packages' \
    "$suite" "$work/root" http://deb.debian.org/debian >"$work/mmdebstrap.log" 2>&1 \
    || { tail -40 "$work/mmdebstrap.log" >&2; echo "image.sh: mmdebstrap failed" >&2; exit 1; }
echo "image.sh: rootfs built in $((SECONDS - start)) s" >&2
mv "$work/root/boot/np-vmlinuz" "$work/vmlinuz"
mv "$work/root/boot/np-initrd.img" "$work/initrd.img"
truncate -s 3G "$work/rootfs.img"
mkfs.ext4 -q -F -L npvm -d "$work/root" "$work/rootfs.img"
rm -rf "$work/root"
mkdir -p "$dir"
mv "$work/vmlinuz" "$work/initrd.img" "$work/rootfs.img" "$dir/"
echo "image.sh: image ready in $((SECONDS - start)) s" >&2
echo "$dir"
