#!/usr/bin/env bash
# The VM test: boots a Debian guest under qemu, installs the .deb that packaging/build.sh made,
# and checks across real reboots that what netprofile persists holds at boot and at login, and
# that rollback and an unconfirmed --confirm leave the machine as it was.
#
# Usage: tests/vm/run.sh [--full] [--suite bookworm|trixie] [--deb FILE]
#   (default: the reduced scenario, 4 reboots, on bookworm, with target/debian/netprofile_*.deb)
#   --full adds a rollback of the shipped profile across a fifth reboot.
#
# Safe by construction: the guest disk is the cached image opened with snapshot=on (writes are
# thrown away when qemu exits), its only network is qemu's user-mode NIC with restrict=on (no
# route out) and one forward from 127.0.0.1 to its ssh port, the ssh key is made for this run,
# every wait has a bound, and the VM is stopped on any exit (trap). Needs: mmdebstrap and
# e2fsprogs (image), apt-get (qemu, when not installed), ssh, python3 (a free port).
# Prints one PASS/FAIL line per check with its evidence, and closes with "N passed, M failed".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
suite=bookworm
full=0
deb=""
while [ $# -gt 0 ]; do
    case "$1" in
        --full) full=1 ;;
        --suite) suite=$2; shift ;;
        --deb) deb=$2; shift ;;
        *) echo "usage: $0 [--full] [--suite bookworm|trixie] [--deb FILE]" >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$deb" ]; then
    deb=$(ls -t "$repo"/target/debian/netprofile_*.deb 2>/dev/null | head -n1 || true)
fi
[ -n "$deb" ] && [ -f "$deb" ] || { echo "vm: no .deb: run packaging/build.sh first (or pass --deb FILE)" >&2; exit 2; }

t0=$SECONDS
log() { echo "vm: [$((SECONDS - t0)) s] $*"; }
img=$("$here/image.sh" "$suite")
log "image $img"
mapfile -t qemu < <("$here/qemu.sh")
[ "${#qemu[@]}" = 2 ] || { echo "vm: could not find or fetch qemu" >&2; exit 1; }
log "qemu ${qemu[0]} ($("${qemu[0]}" --version | head -n1))"
accel=${NETPROFILE_VM_ACCEL:-tcg}
if [ -e /dev/kvm ]; then
    if (exec 3<>/dev/kvm) 2>/dev/null; then kvm="opens read/write"; else kvm="cannot be opened"; fi
    log "/dev/kvm $kvm; accelerator: $accel (NETPROFILE_VM_ACCEL=kvm to try it)"
else
    log "no /dev/kvm; accelerator: $accel"
fi

run=$(mktemp -d)
qpid=""
stop_vm() {
    if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
        kill "$qpid" 2>/dev/null || true
        for _ in $(seq 1 20); do kill -0 "$qpid" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$qpid" 2>/dev/null || true
    fi
    qpid=""
}
cleanup() {
    stop_vm
    # The guest's console, for a failed run (target/ is the build's scratch folder).
    mkdir -p "$repo/target/vm" && cp "$run/console.log" "$repo/target/vm/console-$suite.log" 2>/dev/null || true
    rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ssh-keygen -q -t ed25519 -N '' -C netprofile-vm -f "$run/key"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
pubkey=$(base64 -w0 <"$run/key.pub")
# snapshot=on: the cached image is never written; the guest's writes live until qemu exits, so
# they survive the guest's reboots (a reboot resets the machine, the same qemu process goes on).
# -nodefaults: no VGA, floppy, CD-ROM or parallel port to probe; quiet: the serial console is
# slow under TCG; no_timer_check: on a loaded host TCG's timer looks broken to the kernel's
# IO-APIC check, which then panics ("IO-APIC + timer doesn't work").
"${qemu[0]}" -L "${qemu[1]}" -accel "$accel" -m 1536 -smp 1 -nodefaults -vga none \
    -display none -monitor none -serial "file:$run/console.log" \
    -kernel "$img/vmlinuz" -initrd "$img/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 quiet mitigations=off no_timer_check net.ifnames=0 np_key=$pubkey" \
    -drive "file=$img/rootfs.img,format=raw,if=virtio,snapshot=on" \
    -nic "user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:$port-:22" \
    >"$run/qemu.log" 2>&1 &
qpid=$!
sleep 1
if ! kill -0 "$qpid" 2>/dev/null; then
    cat "$run/qemu.log" >&2
    echo "vm: qemu did not start" >&2
    exit 1
fi

sshopts=(-q -i "$run/key" -p "$port" -o BatchMode=yes -o StrictHostKeyChecking=no
    -o UserKnownHostsFile=/dev/null -o ConnectTimeout=10 -o ServerAliveInterval=5
    -o ServerAliveCountMax=6 -o LogLevel=ERROR)
# vm CMD: runs CMD as root in the guest (bounded); its exit code is CMD's.
vm() { timeout 300 ssh "${sshopts[@]}" root@127.0.0.1 "$@"; }
vm_as() { local user=$1; shift; timeout 120 ssh "${sshopts[@]}" "$user@127.0.0.1" "$@"; }
console_tail() {
    echo "--- last lines of the guest console" >&2
    tail -n 40 "$run/console.log" 2>/dev/null | tr -d '\r' >&2 || true
}
boot_id() { timeout 20 ssh "${sshopts[@]}" root@127.0.0.1 cat /proc/sys/kernel/random/boot_id 2>/dev/null; }

boots=()
# wait_boot OLD_ID: until ssh answers with a boot id other than OLD_ID and systemd has finished
# starting (so netprofile.service has run), at most 600 s. Fails at once on a kernel panic, or
# when this boot's console says ssh.service failed (systemd gives up after 5 restarts): no ssh
# will answer then.
wait_boot() {
    local old=$1 start=$SECONDS id="" from
    from=$(($(stat -c %s "$run/console.log" 2>/dev/null || echo 0) + 1))
    while [ $((SECONDS - start)) -lt 600 ]; do
        kill -0 "$qpid" 2>/dev/null || { console_tail; echo "vm: qemu exited" >&2; exit 1; }
        if grep -q 'Kernel panic' "$run/console.log" 2>/dev/null; then
            console_tail
            echo "vm: the guest kernel panicked" >&2
            exit 1
        fi
        if [ "$(tail -c "+$from" "$run/console.log" 2>/dev/null | grep -ac 'Failed to start.*ssh\.service')" -ge 5 ]; then
            console_tail
            echo "vm: ssh.service failed to start in the guest, so no ssh can answer (console above)" >&2
            exit 1
        fi
        id=$(boot_id || true)
        if [ -n "$id" ] && [ "$id" != "$old" ]; then
            vm 'timeout 180 systemctl is-system-running --wait >/dev/null; true'
            boots+=("$((SECONDS - start))")
            log "booted in $((SECONDS - start)) s (boot id $id)"
            return 0
        fi
        sleep 3
    done
    console_tail
    echo "vm: the guest did not come up within 600 s" >&2
    exit 1
}
reboot_vm() {
    local old
    old=$(boot_id)
    log "reboot: $*"
    vm 'systemctl reboot' >/dev/null 2>&1 || true
    wait_boot "$old"
}

passed=0
failed=0
results=()
# check NAME EXPECTED ACTUAL: one scenario check; prints its evidence either way.
check() {
    if [ "$2" = "$3" ]; then
        passed=$((passed + 1))
        echo "PASS $1: $3"
    else
        failed=$((failed + 1))
        echo "FAIL $1: wanted $2, got $3"
        results+=("$1")
    fi
}
# check_grep NAME PATTERN TEXT: TEXT has a line matching the extended regex PATTERN.
check_grep() {
    local line
    line=$(grep -E -m1 -- "$2" <<<"$3" || true)
    if [ -n "$line" ]; then
        passed=$((passed + 1))
        echo "PASS $1: $line"
    else
        failed=$((failed + 1))
        echo "FAIL $1: no line matches /$2/ in:"
        sed 's/^/    /' <<<"$3" | head -n 30
        results+=("$1")
    fi
}
sysctl_of() { vm "sysctl -n $1" | tr -s ' \t' ' '; }
# The open-files limit (soft:hard) of the main process of a service.
svc_nofile() {
    vm "pid=\$(systemctl show -p MainPID --value $1); awk '/^Max open files/ {print \$4 \":\" \$5}' /proc/\$pid/limits"
}
np() { vm "netprofile $*"; }
rc_of() { set +e; vm "$@" >"$run/out" 2>&1; echo $?; set -e; }

wait_boot none
vm true
log "guest: $(vm '. /etc/os-release; echo "$PRETTY_NAME, kernel $(uname -r), $(systemctl --version | head -n1)"')"

# --- boot 0: install, a boot file that sets a min key higher, two services -----------------------
timeout 120 ssh "${sshopts[@]}" root@127.0.0.1 'cat >/root/netprofile.deb' <"$deb"
vm 'DEBIAN_FRONTEND=noninteractive dpkg -i /root/netprofile.deb' >"$run/dpkg.log" 2>&1 \
    || { cat "$run/dpkg.log"; echo "vm: dpkg -i failed" >&2; exit 1; }
log "installed $(basename "$deb")"
check "the package enables netprofile.service" enabled "$(vm 'systemctl is-enabled netprofile.service' || true)"
vm 'cat >/etc/sysctl.d/95-boot-higher.conf' <<'EOF'
# Another boot file: sets a key of high-conn's (min 16384) higher than the profile's bound.
net.core.netdev_max_backlog = 50000
EOF
# np-svc gets its own LimitNOFILE from the profile; np-demo only the manager's default.
for unit in np-svc np-demo; do
    vm "printf '[Service]\nExecStart=/bin/sleep infinity\n\n[Install]\nWantedBy=multi-user.target\n' >/etc/systemd/system/$unit.service"
done
vm 'systemctl daemon-reload && systemctl enable --now np-svc.service np-demo.service' >/dev/null 2>&1
vm 'mkdir -p /root/p && cat >/root/p/vm.toml' <<'EOF'
[profile]
name = "vm"
description = "high-conn, a module loaded at boot and one service's own limit"
extends = ["high-conn"]

[modules]
load = ["nf_conntrack"]

[systemd.services."np-svc.service"]
limit_nofile = "200000:300000"
EOF
# A site's own boot file with values against base's (tcp_syncookies = 1, fs.file-max and fs.nr_open
# raise-only): Debian's stock values already meet the profile, so without it the checks of these
# keys could not fail. Only netprofile's apply and its boot drop-in or unit can make them pass after
# a reboot, and a rollback must bring the site's values back. nr_open 524288 still covers the
# stock hard nofile of services and logins (524288).
vm 'cat >/etc/sysctl.d/10-site.conf && sysctl -q -p /etc/sysctl.d/10-site.conf' <<'EOF'
# The site's own settings, against netprofile's base profile.
net.ipv4.tcp_syncookies = 0
fs.file-max = 1000000
fs.nr_open = 524288
EOF
keys=(net.core.somaxconn net.ipv4.tcp_max_syn_backlog net.core.netdev_max_backlog
    net.ipv4.tcp_max_tw_buckets net.ipv4.tcp_tw_reuse net.ipv4.ip_local_port_range
    net.ipv4.tcp_syncookies fs.file-max fs.nr_open)
# "stock": the values before netprofile's first apply (the site file's for its three keys).
declare -A stock
for k in "${keys[@]}"; do stock[$k]=$(sysctl_of "$k"); done
stock_login=$(vm_as tester 'ulimit -Sn; ulimit -Hn' | paste -sd:)
stock_svc=$(svc_nofile np-demo.service)
check "site: tcp_syncookies before apply" 0 "${stock[net.ipv4.tcp_syncookies]}"
check "site: fs.file-max before apply" 1000000 "${stock[fs.file-max]}"
check "site: fs.nr_open before apply" 524288 "${stock[fs.nr_open]}"
log "stock: $(for k in "${keys[@]}"; do printf '%s=%s ' "$k" "${stock[$k]}"; done) login=$stock_login service=$stock_svc"
check "nf_conntrack is not loaded before apply" absent "$(vm 'test -e /proc/sys/net/netfilter/nf_conntrack_max && echo present || echo absent')"
np apply /root/p/vm.toml >"$run/out" 2>&1 || { cat "$run/out"; echo "vm: apply failed" >&2; exit 1; }
check_grep "apply vm.toml (extends high-conn)" '^applied generation 1' "$(cat "$run/out")"

# --- reboot 1: everything holds ---------------------------------------------------------------
reboot_vm "after apply"
check "netprofile check vm.toml after the reboot exits 0" 0 "$(rc_of netprofile check /root/p/vm.toml)"
[ "$(cat "$run/out" | wc -l)" -gt 0 ] && sed 's/^/    /' "$run/out" | head -n 20
check "somaxconn" 65535 "$(sysctl_of net.core.somaxconn)"
check "tcp_tw_reuse" 1 "$(sysctl_of net.ipv4.tcp_tw_reuse)"
check "ip_local_port_range" "1024 65535" "$(sysctl_of net.ipv4.ip_local_port_range)"
check "tcp_max_syn_backlog (min 65535, held at boot)" 65535 "$(sysctl_of net.ipv4.tcp_max_syn_backlog)"
check "tcp_max_tw_buckets (min 262144)" yes "$(v=$(sysctl_of net.ipv4.tcp_max_tw_buckets); [ "$v" -ge 262144 ] && echo yes || echo "no ($v)")"
check "netdev_max_backlog: the boot file's 50000 stays above the min 16384" 50000 "$(sysctl_of net.core.netdev_max_backlog)"
check "tcp_syncookies (the drop-in's 1 after the site's 0)" 1 "$(sysctl_of net.ipv4.tcp_syncookies)"
check "fs.file-max (min 2097152, above the site's 1000000)" yes "$(v=$(sysctl_of fs.file-max); [ "$v" -ge 2097152 ] && echo yes || echo "no ($v)")"
check "fs.nr_open (min 1048576, above the site's 524288)" yes "$(v=$(sysctl_of fs.nr_open); [ "$v" -ge 1048576 ] && echo yes || echo "no ($v)")"
check "nf_conntrack loaded by [modules] load" present "$(vm 'test -e /proc/sys/net/netfilter/nf_conntrack_max && echo present || echo absent')"
check "nf_conntrack_max (min 1048576, module key)" yes "$(v=$(sysctl_of net.netfilter.nf_conntrack_max); [ "$v" -ge 1048576 ] && echo yes || echo "no ($v)")"
check "np-svc.service LimitNOFILE (its own drop-in)" "200000:300000" "$(svc_nofile np-svc.service)"
check "np-demo.service gets DefaultLimitNOFILE" "1048576:1048576" "$(svc_nofile np-demo.service)"
check "ssh login (tester) nofile" "1048576:1048576" "$(vm_as tester 'ulimit -Sn; ulimit -Hn' | paste -sd:)"
check "ssh login (root) nofile" "1048576:1048576" "$(vm 'ulimit -Sn; ulimit -Hn' | paste -sd:)"
check "su - tester nofile" "1048576:1048576" "$(vm "su - tester -c 'ulimit -Sn; ulimit -Hn'" | paste -sd:)"
check "runuser -l tester nofile" "1048576:1048576" "$(vm "runuser -l tester -c 'ulimit -Sn; ulimit -Hn'" | paste -sd:)"
np history >"$run/history" 2>&1 || true
sed 's/^/    /' "$run/history"
# A plain rollback undoes the user's apply (generation 1), not the boot unit's own generation.
np rollback >"$run/out" 2>&1 || true
check_grep "plain rollback after a reboot undoes the user's apply" 'rolled back to the state before generation 1 ' "$(cat "$run/out")"
for k in "${keys[@]}"; do
    want=${stock[$k]}
    # What the other boot file sets, not the journaled value from before it took effect.
    [ "$k" = net.core.netdev_max_backlog ] && want=50000
    check "after rollback: $k" "$want" "$(sysctl_of "$k")"
done

# --- reboot 2: stock again, and an unconfirmed --confirm --------------------------------------
reboot_vm "after rollback"
for k in "${keys[@]}"; do
    want=${stock[$k]}
    [ "$k" = net.core.netdev_max_backlog ] && want=50000
    check "rollback, reboot: $k" "$want" "$(sysctl_of "$k")"
done
check "rollback, reboot: login nofile" "$stock_login" "$(vm_as tester 'ulimit -Sn; ulimit -Hn' | paste -sd:)"
check "rollback, reboot: service nofile" "$stock_svc" "$(svc_nofile np-demo.service)"
check "rollback, reboot: np-svc nofile" "$stock_svc" "$(svc_nofile np-svc.service)"
check "rollback, reboot: no drop-in left" none "$(vm 'ls /etc/sysctl.d/90-netprofile.conf /etc/security/limits.d/90-netprofile.conf /etc/systemd/system.conf.d/90-netprofile.conf /etc/modules-load.d/netprofile.conf 2>/dev/null || echo none')"
np apply --confirm 900 high-conn >"$run/out" 2>&1 || true
check_grep "apply --confirm 900 high-conn" 'generation [0-9]+' "$(cat "$run/out")"
cgen=$(grep -Eo 'generation [0-9]+' "$run/out" | head -n1 | cut -d' ' -f2)
check "--confirm is live before the reboot" 65535 "$(sysctl_of net.core.somaxconn)"

# --- reboot 3: the unconfirmed generation is gone, and says so ---------------------------------
reboot_vm "with --confirm generation $cgen unconfirmed"
check "unconfirmed, reboot: somaxconn is stock" "${stock[net.core.somaxconn]}" "$(sysctl_of net.core.somaxconn)"
check "unconfirmed, reboot: tcp_max_syn_backlog is stock" "${stock[net.ipv4.tcp_max_syn_backlog]}" "$(sysctl_of net.ipv4.tcp_max_syn_backlog)"
check "unconfirmed, reboot: check high-conn exits 1" 1 "$(rc_of netprofile check high-conn)"
np history >"$run/history" 2>&1 || true
sed 's/^/    /' "$run/history"
check_grep "history: generation $cgen dropped, not pending" "^ *$cgen .*dropped" "$(cat "$run/history")"
check "history: no generation left pending" 0 "$(grep -Ec '  pending( |$)' "$run/history" || true)"
np status >"$run/out" 2>&1 || true
check_grep "status says generation $cgen was dropped" "^dropped: generation $cgen " "$(cat "$run/out")"

# --- reboot 4: the shipped profile, applied as a user would, holds with no extra step --------------
# ... even after the package was removed and installed again (its state in /var/lib/netprofile
# kept): the reinstall enables the unit again, and dpkg -r left no link to a removed unit.
vm 'DEBIAN_FRONTEND=noninteractive dpkg -r netprofile' >"$run/dpkg.log" 2>&1 \
    || { cat "$run/dpkg.log"; echo "vm: dpkg -r failed" >&2; exit 1; }
check "dpkg -r: nothing named netprofile* under /etc/systemd (no link, no mask)" none \
    "$(vm 'find /etc/systemd -name "netprofile*" | grep . || echo none')"
check "dpkg -r: the state stays" kept "$(vm 'test -n "$(ls -A /var/lib/netprofile)" && echo kept || echo gone')"
vm 'DEBIAN_FRONTEND=noninteractive dpkg -i /root/netprofile.deb' >"$run/dpkg.log" 2>&1 \
    || { cat "$run/dpkg.log"; echo "vm: dpkg -i failed" >&2; exit 1; }
check "dpkg -r, dpkg -i: netprofile.service enabled again" enabled "$(vm 'systemctl is-enabled netprofile.service' || true)"
np apply high-conn >"$run/out" 2>&1 || true
check_grep "apply high-conn" '^applied generation [0-9]+' "$(cat "$run/out")"
reboot_vm "after apply high-conn"
check "apply high-conn, reboot: check high-conn exits 0" 0 "$(rc_of netprofile check high-conn)"
check "apply high-conn, reboot: tcp_max_syn_backlog" 65535 "$(sysctl_of net.ipv4.tcp_max_syn_backlog)"
check "apply high-conn, reboot: tcp_max_tw_buckets >= 262144" yes "$(v=$(sysctl_of net.ipv4.tcp_max_tw_buckets); [ "$v" -ge 262144 ] && echo yes || echo "no ($v)")"
check "apply high-conn, reboot: netdev_max_backlog (boot file higher)" 50000 "$(sysctl_of net.core.netdev_max_backlog)"
check "apply high-conn, reboot: ssh login nofile" "1048576:1048576" "$(vm_as tester 'ulimit -Sn; ulimit -Hn' | paste -sd:)"
check "apply high-conn, reboot: service nofile" "1048576:1048576" "$(svc_nofile np-demo.service)"

if [ "$full" = 1 ]; then
    # --- reboot 5: rollback by number, then stock after the reboot --------------------------------
    hgen=$(np history | awk '$3 == "apply" && /high-conn/ {n = $1} END {print n}')
    np rollback >"$run/out" 2>&1 || true
    check_grep "plain rollback undoes apply high-conn (generation $hgen)" "rolled back to the state before generation $hgen " "$(cat "$run/out")"
    reboot_vm "after rollback of high-conn"
    for k in "${keys[@]}"; do
        want=${stock[$k]}
        [ "$k" = net.core.netdev_max_backlog ] && want=50000
        check "rollback high-conn, reboot: $k" "$want" "$(sysctl_of "$k")"
    done
    check "rollback high-conn, reboot: login nofile" "$stock_login" "$(vm_as tester 'ulimit -Sn; ulimit -Hn' | paste -sd:)"
    check "rollback high-conn, reboot: check high-conn exits 1" 1 "$(rc_of netprofile check high-conn)"
fi

vm 'systemctl poweroff' >/dev/null 2>&1 || true
for _ in $(seq 1 60); do kill -0 "$qpid" 2>/dev/null || break; sleep 1; done
stop_vm
echo "vm: boots (s): ${boots[*]}; total $((SECONDS - t0)) s; suite $suite; accelerator $accel"
[ "$failed" = 0 ] || echo "vm: failed: ${results[*]}"
echo "vm: $passed passed, $failed failed"
[ "$failed" = 0 ]
