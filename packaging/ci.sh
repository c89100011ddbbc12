#!/usr/bin/env bash
# CI for what netprofile ships (called by .ci/run): builds the .rpm from source and the .deb
# from its binary, installs the .deb for real, takes it through the README's quick start in a
# private namespace, removes it again, checks both packages with their own ecosystems' tools
# (lintian, rpmlint, rpmspec, rpm -V, systemd-analyze security, ansible-test sanity,
# kubernetes-validate), and tests the Ansible collection and the Kubernetes example.
# Each step prints its duration.
#
# CAUTION: `dpkg -i` installs into the real /usr (what a CI machine is for); the package is purged
# at the end of the step. The postinst enables the service (links under /etc/systemd/system, taken
# away by the purge); it is never started here. tests/vm/run.sh boots it for real.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_DEB_VERSION=3.8.0
ANSIBLE_CORE_VERSION=2.19.14
KUBERNETES_VALIDATE_VERSION=1.37.0

step_start=$SECONDS
step() {
    echo "packaging: $1 done in $((SECONDS - step_start)) s"
    step_start=$SECONDS
}
fail() { echo "packaging: $*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------------------------
need=()
command -v rpmbuild >/dev/null 2>&1 || need+=(rpm)
command -v rpmlint >/dev/null 2>&1 || need+=(rpmlint)
command -v cpio >/dev/null 2>&1 || need+=(cpio)
command -v lintian >/dev/null 2>&1 || need+=(lintian)
command -v man >/dev/null 2>&1 || need+=(man-db)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v curl >/dev/null 2>&1 || need+=(curl)
# A static shell for the .rpm's scriptlets in a throwaway root (rpm runs them chrooted there).
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
# The Python tools live in a venv (Debian 12's python3 refuses a system-wide pip install);
# ansible-test's own sanity venvs need ensurepip too.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
if [ "${#need[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION" \
    || cargo install --locked --quiet cargo-deb --version "$CARGO_DEB_VERSION"
venv=target/ci-venv
[ -x "$venv/bin/python3" ] || python3 -m venv "$venv"
"$venv/bin/python3" -m pip install --quiet --disable-pip-version-check \
    "ansible-core==$ANSIBLE_CORE_VERSION" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
PATH="$PWD/$venv/bin:$PATH"
export PATH
step "tools (apt rpm rpmlint lintian, cargo-deb $CARGO_DEB_VERSION, ansible-core, kubernetes-validate)"

# --- the spec on its own, and the boot unit ------------------------------------------------------
rpmspec -P packaging/rpm/netprofile.spec >/dev/null || fail "rpmspec -P cannot parse the spec alone"
# The spec needs no filter: rpmlint finds netprofile.rpmlintrc beside it by itself, and its two
# filters are for the built package.
echo "--- rpmlint --ignore-unused-rpmlintrc packaging/rpm/netprofile.spec"
lint=$(rpmlint --ignore-unused-rpmlintrc packaging/rpm/netprofile.spec 2>&1) || true
echo "$lint"
grep -q ' 0 errors' <<<"$lint" || fail "rpmlint reports errors on the spec"
security=$(systemd-analyze security --offline=yes packaging/systemd/netprofile.service 2>&1) || true
score=$(sed -n 's/.*Overall exposure level for netprofile.service: \([0-9.]*\).*/\1/p' <<<"$security")
echo "systemd-analyze security --offline=yes: $score"
[ -n "$score" ] || { echo "$security"; fail "systemd-analyze security gave no score"; }
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' \
    || { echo "$security"; fail "netprofile.service exposure $score (packaging/README.md records 1.6)"; }
step "spec: rpmspec -P, rpmlint; unit: systemd-analyze security"

# --- build ---------------------------------------------------------------------------------------
packaging/build.sh
deb=$(ls target/debian/netprofile_*.deb)
rpmfile=$(ls target/rpm/netprofile-*.rpm)
step "build $deb $rpmfile (one release build, in rpmbuild's %build)"

# --- the .deb, installed for real ---------------------------------------------------------------
echo "--- lintian"
lintian --fail-on error,warning --info "$deb" || fail "lintian reports errors on $deb"
dpkg-deb --contents "$deb"
dpkg -i "$deb"
trap 'dpkg -P netprofile >/dev/null 2>&1 || true' EXIT
installed=$(dpkg -L netprofile)
wants=/etc/systemd/system/multi-user.target.wants/netprofile.service
if command -v deb-systemd-helper >/dev/null 2>&1; then
    [ -L "$wants" ] || fail "the postinst did not enable netprofile.service ($wants is absent)"
fi
# The metrics timer is installed, never enabled by the package (the postinst enables only
# netprofile.service): no link to it under /etc/systemd/system, no deb-systemd-helper state, and
# systemd itself, reading the installed tree offline, calls it disabled.
timer_links=$(find /etc/systemd/system /var/lib/systemd/deb-systemd-helper-enabled \
    -name 'netprofile-metrics.*' 2>/dev/null || true)
[ -z "$timer_links" ] || fail "installing the .deb enabled the metrics timer: $timer_links"
if command -v systemctl >/dev/null 2>&1; then
    timer_state=$(systemctl --root=/ is-enabled netprofile-metrics.timer 2>&1 || true)
    [ "$timer_state" = disabled ] \
        || fail "after installing the .deb, systemctl is-enabled netprofile-metrics.timer says '$timer_state', not disabled"
fi
for f in /usr/bin/netprofile /usr/share/man/man8/netprofile.8.gz /usr/share/man/man8/netprofile-diff.8.gz \
    /usr/share/netprofile/profiles/high-conn.toml /usr/share/netprofile/schema/apply.json \
    /usr/share/bash-completion/completions/netprofile \
    /usr/share/zsh/vendor-completions/_netprofile /usr/share/fish/vendor_completions.d/netprofile.fish \
    /lib/systemd/system/netprofile.service /lib/systemd/system/netprofile-metrics.service \
    /lib/systemd/system/netprofile-metrics.timer /usr/share/doc/netprofile/copyright; do
    [ -e "$f" ] || fail "the .deb did not install $f"
done
# The unit parses and its ExecStart exists (verify loads it offline; nothing is enabled or started).
if command -v systemd-analyze >/dev/null 2>&1; then
    systemd-analyze verify --man=no /lib/systemd/system/netprofile.service \
        || fail "systemd-analyze verify rejects netprofile.service"
    systemd-analyze verify --man=no /lib/systemd/system/netprofile-metrics.service \
        /lib/systemd/system/netprofile-metrics.timer \
        || fail "systemd-analyze verify rejects netprofile-metrics.service or .timer"
fi
/usr/bin/netprofile --version | grep -qx "netprofile $(grep -m1 '^version' Cargo.toml | cut -d'"' -f2)" \
    || fail "netprofile --version does not print the package version"
grep -q '^high-conn ' <<<"$(/usr/bin/netprofile profiles)" || fail "netprofile profiles lacks high-conn"
cmp <(/usr/bin/netprofile profiles high-conn) /usr/share/netprofile/profiles/high-conn.toml \
    || fail "the installed profile differs from the embedded one"
grep -q 'netprofile-diff(8)' <<<"$(MANWIDTH=100 man -l /usr/share/man/man8/netprofile.8.gz 2>/dev/null)" \
    || fail "man -l netprofile.8.gz does not list netprofile-diff(8)"
grep -q -- '--dry-run' <<<"$(MANWIDTH=100 man -l /usr/share/man/man8/netprofile-apply.8.gz 2>/dev/null)" \
    || fail "netprofile-apply(8) does not document --dry-run"
# A diff of a shipped profile against a temporary root: a stock kernel's keys, nothing in /etc.
tmp=$(mktemp -d)
packaging/stock-root.sh "$tmp"
set +e
/usr/bin/netprofile --root "$tmp" diff high-conn >"$tmp.out" 2>&1
code=$?
set -e
cat "$tmp.out"
[ "$code" = 1 ] || fail "diff high-conn on a stock root exited $code, not 1"
grep -q '+++ /etc/sysctl.d/90-netprofile.conf' "$tmp.out" || fail "diff shows no sysctl.d file"
rm -rf "$tmp" "$tmp.out"
# The README's quick start with the installed binary: diff, apply --verify, status, rollback,
# diff. Safely: inside a private user + network namespace entered as uid 65534 (never bare
# `unshare -rn` as root, which reaches the host's fs.* keys), on a temporary root whose `proc` is
# a symlink to /proc, so --verify measures this kernel (the namespace's loopback). There global
# keys are skipped and nothing is persisted; the state lives in the temporary root.
qs=$(mktemp -d)
ln -s /proc "$qs/proc"
chown -R 65534:65534 "$qs"
set +e
setpriv --reuid=65534 --regid=65534 --clear-groups -- unshare -rn env R="$qs" sh -c '
    ip link set lo up || exit 9
    np() { /usr/bin/netprofile --root "$R" "$@"; }
    np diff high-conn >"$R/diff-before" 2>&1; echo "diff=$?"
    cat "$R/diff-before"
    np apply --verify high-conn; echo "apply=$?"
    np status; echo "status=$?"
    np rollback; echo "rollback=$?"
    np diff high-conn >"$R/diff-after" 2>&1; echo "diff=$?"
    cmp -s "$R/diff-before" "$R/diff-after"; echo "same=$?"
' >"$qs.out" 2>&1
code=$?
set -e
cat "$qs.out"
[ "$code" = 0 ] || fail "the quick start in a private namespace exited $code"
codes=$(grep -E '^(diff|apply|status|rollback|same)=[0-9]+$' "$qs.out" | tr '\n' ' ')
[ "$codes" = "diff=1 apply=0 status=0 rollback=0 diff=1 same=0 " ] \
    || fail "quick start: exit codes $codes, wanted diff=1 apply=0 status=0 rollback=0 diff=1 same=0"
grep -q '^before: ' "$qs.out" && grep -q '^after: ' "$qs.out" \
    || fail "apply --verify printed no before/after verdict"
grep -qE 'gain' "$qs.out" || fail "apply --verify printed no gain line"
grep -q '^applied generation 1' "$qs.out" || fail "apply did not report generation 1"
grep -q '^in effect: generation 1' "$qs.out" || fail "status does not show generation 1 in effect"
grep -q '^rolled back to the state before generation 1' "$qs.out" || fail "rollback did not report"
rm -rf "$qs" "$qs.out"
dpkg -r netprofile
[ ! -e /usr/bin/netprofile ] || fail "dpkg -r left /usr/bin/netprofile"
dpkg -P netprofile
trap - EXIT
left=""
for f in $installed /var/lib/netprofile /run/netprofile.lock "$wants"; do
    [ -e "$f" ] || continue
    # A folder that other packages also own (/usr/share/man/man8) rightly stays.
    [ -d "$f" ] && dpkg -S "$f" >/dev/null 2>&1 && continue
    left="$left $f"
done
[ -z "$left" ] || fail "purge left:$left"
! dpkg -s netprofile >/dev/null 2>&1 || fail "dpkg still knows netprofile after purge"
step ".deb: lintian, install, --version, profiles, man -l, diff, quick start (namespace), remove, purge"

# --- the .rpm ------------------------------------------------------------------------------------
echo "--- rpmlint -r packaging/rpm/netprofile.rpmlintrc $rpmfile"
lint=$(rpmlint -r packaging/rpm/netprofile.rpmlintrc "$rpmfile" 2>&1) || true
echo "$lint"
grep -q ' 0 errors' <<<"$lint" || fail "rpmlint reports errors on $rpmfile"
# (Captured first: grep -q closing the pipe early would fail the pipeline under pipefail.)
rpm -qpi "$rpmfile"
files=$(rpm -qpl "$rpmfile")
echo "$files"
rpm -qpR "$rpmfile"
scripts=$(rpm -qp --scripts "$rpmfile")
echo "$scripts"
grep -qx /usr/share/netprofile/profiles/high-conn.toml <<<"$files" || fail "the .rpm lacks the profiles"
grep -qx /usr/share/netprofile/schema/apply.json <<<"$files" || fail "the .rpm lacks the JSON Schemas"
grep -q '^/usr/share/man/man8/netprofile-apply.8' <<<"$files" || fail "the .rpm lacks netprofile-apply(8)"
grep -qx /usr/lib/systemd/system/netprofile.service <<<"$files" || fail "the .rpm lacks the unit"
grep -qx /usr/lib/systemd/system/netprofile-metrics.timer <<<"$files" || fail "the .rpm lacks the metrics timer"
grep -q '/run/systemd/system\|systemd-update-helper\|systemctl' <<<"$scripts" || fail "the .rpm has no systemd scriptlets"
# The package owns every folder it creates (co-owning the completion folders).
modes=$(rpm -qp --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' "$rpmfile")
docdir=$(dirname "$(grep -m1 '/README.md$' <<<"$files")")
for d in /usr/share/netprofile /usr/share/netprofile/profiles /usr/share/netprofile/schema "$docdir" \
    /usr/share/bash-completion/completions /usr/share/zsh/site-functions /usr/share/fish/vendor_completions.d; do
    grep -qx "drwxr-xr-x $d" <<<"$modes" || fail "the .rpm does not own the folder $d"
done
grep -qx "drwx------ /var/lib/netprofile" <<<"$modes" || fail "the .rpm does not own /var/lib/netprofile (0700)"
# The scriptlets run for real: rpm runs them chrooted in the root with its /bin/sh, so the root
# gets a static shell (busybox), /dev/null (they redirect to it) and, in PATH, a systemctl that
# only logs its arguments (nothing may be enabled or reloaded on this machine). What each logged
# command does to this package's files is then replayed with the host's `systemctl --root`.
# A Fedora-like preset policy: every unit disabled unless a preset file enables it.
rroot=$(mktemp -d)
rpm --root "$rroot" --initdb
mkdir -p "$rroot/bin" "$rroot/dev" "$rroot/usr/lib/systemd/system-preset"
cp /bin/busybox "$rroot/bin/sh"
mknod -m 666 "$rroot/dev/null" c 1 3
printf '#!/bin/sh\necho "$*" >>/systemctl.log\n' >"$rroot/bin/systemctl"
chmod 0755 "$rroot/bin/systemctl"
echo 'disable *' >"$rroot/usr/lib/systemd/system-preset/99-default-disable.preset"
rpm_root() { # ARGS...: rpm --root, failing on any message but Debian's rpm's own warning
    local err
    err=$(rpm --root "$rroot" --nodeps "$@" 2>&1 >/dev/null) || { echo "$err"; fail "rpm $* exited non-zero"; }
    err=$(grep -v 'use Alien instead\|assuming you know what you are doing' <<<"$err" || true)
    [ -z "$err" ] || { echo "$err"; fail "rpm $* printed: $err"; }
}
logged() { cat "$rroot/systemctl.log" 2>/dev/null || true; }
units=(netprofile.service netprofile-metrics.timer)
wants="$rroot/etc/systemd/system/multi-user.target.wants/netprofile.service"
# First install ($1 = 1, no systemd running in the root): %post presets both units.
rpm_root -i "$rpmfile"
[ "$(logged)" = "--no-reload preset ${units[*]}" ] || fail "%post ran: [$(logged)], wanted one preset of ${units[*]}"
systemctl --root="$rroot" --no-reload preset "${units[@]}" 2>/dev/null || fail "systemctl --root preset ${units[*]} failed"
[ -L "$wants" ] || fail "the preset of %post does not enable netprofile.service"
[ -z "$(find "$rroot/etc/systemd/system" -name 'netprofile-metrics.timer')" ] \
    || fail "the preset of %post enables netprofile-metrics.timer (it must stay disabled)"
# --nodeps: the throwaway root has no libc to satisfy the requirements; -V checks every file.
rpm --root "$rroot" -V --nodeps netprofile || fail "rpm -V reports changes right after install"
[ -x "$rroot/usr/bin/netprofile" ] || fail "the .rpm did not install /usr/bin/netprofile"
"$rroot/usr/bin/netprofile" --version >/dev/null || fail "the binary from the .rpm does not run"
# What %post does on a first install (`systemctl preset`, offline in the throwaway root, which has
# no distribution preset): the package's 50-netprofile.preset enables netprofile.service and
# keeps the metrics timer disabled. systemd enables a unit no preset line matches, so the
# preset must say `disable` itself.
if command -v systemctl >/dev/null 2>&1; then
    systemctl --root="$rroot" preset netprofile.service netprofile-metrics.timer >/dev/null 2>&1 \
        || fail "systemctl --root preset failed on the .rpm's units"
    presets=$(systemctl --root="$rroot" is-enabled netprofile.service netprofile-metrics.timer 2>&1 \
        | tr '\n' ' ' || true)
    [ "$presets" = "enabled disabled " ] \
        || fail "after the .rpm's preset: netprofile.service, netprofile-metrics.timer are '$presets', wanted 'enabled disabled'"
    [ ! -e "$rroot/etc/systemd/system/timers.target.wants/netprofile-metrics.timer" ] \
        || fail "the .rpm's preset linked netprofile-metrics.timer into timers.target.wants"
fi
# rpm -V must see a changed file, or its silence above proves nothing.
echo "# changed" >>"$rroot/usr/share/netprofile/profiles/base.toml"
! rpm --root "$rroot" -V --nodeps netprofile >/dev/null 2>&1 || fail "rpm -V missed a changed file"
rpm --root "$rroot" -qf /usr/share/netprofile/profiles >/dev/null \
    || fail "rpm -qf does not name the owner of /usr/share/netprofile/profiles"
# An upgrade ($1 = 2 in %post, 1 in the old package's %preun/%postun): no preset again, so an
# administrator's disable stays; no disable; no reload where systemd does not run.
rpm_root -U --replacepkgs "$rpmfile"
[ "$(logged)" = "--no-reload preset ${units[*]}" ] || fail "an upgrade ran systemctl: [$(logged)]"
# Erase ($1 = 0) where systemd runs: %preun disables and stops both, %postun reloads.
mkdir -p "$rroot/run/systemd/system"
rpm_root -e netprofile
[ "$(logged)" = "--no-reload preset ${units[*]}
--no-reload disable --now ${units[*]}
daemon-reload" ] || fail "the erase ran: [$(logged)], wanted disable --now of ${units[*]}, then daemon-reload"
# (--now stops units; nothing runs in the throwaway root.)
systemctl --root="$rroot" --no-reload disable "${units[@]}" >/dev/null 2>&1 || true
[ ! -L "$wants" ] || fail "the disable of %preun leaves netprofile.service enabled"
# Every folder the package created goes with it (nothing else owns them in this root).
left=$(cd "$rroot" && find usr var -mindepth 1 -not -path 'var/lib/rpm*' -not -path 'usr/lib/sysimage*' 2>/dev/null \
    | grep -v '^var/lib$\|^var$\|^var/tmp$\|^usr/lib$\|^usr/share$\|^usr/bin$\|^usr/lib/systemd\|^usr/share/man$\|^usr/share/man/man8$\|^usr/share/doc$\|^usr/share/licenses$\|^usr/lib/.build-id$' || true)
[ -z "$left" ] || fail "rpm -e left: $left"
rm -rf "$rroot"
step ".rpm: rpmlint, -qpl, -qpR, owned folders, --root install with scriptlets, -V, -qf, upgrade, erase"

# --- fleet: Ansible and Kubernetes --------------------------------------------------------------
NETPROFILE="$PWD/target/packaging/netprofile" packaging/ansible/test.sh
step "ansible: check mode, two runs, failing profile, rollback, confirm, inline content, overrides, running, verify"
# ansible-test fetches its pip bootstrap from ci-files.testing.ansible.com, which CI cannot reach;
# packaging/ansible/ci/get-pip.py does the same from PyPI (ensurepip, then pip).
pip_version=$(python3 -c 'import re, ansible_test, os; print(re.search(r"pip=.(\d[\d.]*)", open(os.path.join(os.path.dirname(ansible_test.__file__), "_internal/python_requirements.py")).read()).group(1))')
mkdir -p ~/.ansible/test/cache
cp packaging/ansible/ci/get-pip.py ~/.ansible/test/cache/"get_pip_${pip_version//./_}.py"
pyver=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
(cd packaging/ansible/ansible_collections/netprofile/netprofile \
    && ansible-test sanity --python "$pyver" --requirements --color no 2>&1 | grep -v '^Installing\|^Using cached\|^Collecting\|^  Downloading\|^Successfully\|━' ) \
    || fail "ansible-test sanity failed"
rm -rf packaging/ansible/ansible_collections/netprofile/netprofile/tests/output
step "ansible-test sanity --python $pyver"
echo "--- kubernetes-validate --strict packaging/kubernetes/netprofile-daemonset.yaml"
kubernetes-validate --strict packaging/kubernetes/netprofile-daemonset.yaml \
    || fail "kubernetes-validate rejects the DaemonSet example"
k8s_profile=$(mktemp --suffix=.toml)
python3 packaging/kubernetes/check.py packaging/kubernetes/netprofile-daemonset.yaml "$k8s_profile"
target/packaging/netprofile render "$k8s_profile" >/dev/null || fail "the ConfigMap's profile does not render"
rm -f "$k8s_profile"
packaging/kubernetes/reconcile-test.sh target/packaging/netprofile
step "kubernetes: kubernetes-validate, checked, profile renders, the loop reconciles"
