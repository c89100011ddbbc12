#!/usr/bin/env bash
# Builds target/rpm/netprofile-*.rpm from source, then target/debian/netprofile_*.deb from the
# binary that build compiled: one release build for both packages.
#
# 1. The .rpm's two sources (packaging/rpm/netprofile.spec): the source tree as
#    netprofile-VERSION.tar.gz (the files git knows, uncommitted edits included) and every crate
#    of Cargo.lock as netprofile-VERSION-vendor.tar.gz (`cargo vendor --locked`), in
#    target/rpm-sources/. rpmbuild then compiles offline in %build, generates the man pages and
#    completions with the binary it built, and strips it (brp-strip).
# 2. The .deb: the binary is taken out of that .rpm (rpm2cpio) and stripped, the man pages and
#    completions are generated with it into target/packaging/ (`netprofile __generate
#    man|completions DIR`), and cargo-deb packages them (Cargo.toml's [package.metadata.deb]).
#
# Needs cargo-deb, rpmbuild, rpm2cpio and cpio (Debian's `rpm` package; packaging/ci.sh installs
# them). `--nodeps`: the spec's BuildRequires name Fedora's packages (cargo, rust, gcc,
# systemd-rpm-macros), which Debian's empty rpm database cannot show even when rustup's cargo
# and Debian's gcc are there.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "build.sh: $*" >&2; exit 1; }

version=$(grep -m1 '^version' Cargo.toml | cut -d'"' -f2)
spec_version=$(rpmspec -q --srpm --qf '%{VERSION}\n' packaging/rpm/netprofile.spec)
[ "$version" = "$spec_version" ] \
    || fail "Cargo.toml says $version, packaging/rpm/netprofile.spec says $spec_version: update the spec's Version and %changelog"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- the .rpm's sources ------------------------------------------------------------------------
sources=target/rpm-sources
rm -rf "$sources"
mkdir -p "$sources"
git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done \
    | tar --create --gzip --null --files-from=- --sort=name --owner=0 --group=0 --numeric-owner \
        --mtime="@${SOURCE_DATE_EPOCH:-0}" --transform "s,^,netprofile-$version/," \
        --file "$sources/netprofile-$version.tar.gz"
cargo vendor --locked --quiet "$work/vendor" >/dev/null
tar --create --gzip --sort=name --owner=0 --group=0 --numeric-owner --mtime="@${SOURCE_DATE_EPOCH:-0}" \
    --directory "$work" --file "$sources/netprofile-$version-vendor.tar.gz" vendor
rm -rf "$work/vendor"

# --- the .rpm, compiled from those sources -----------------------------------------------------
# Packager: set by whoever builds (Fedora's build system sets it; a spec must not). Debian's
# brp-compress uses bash's `read -r -d` under #!/bin/sh (dash), so it compresses no man page;
# __os_install_post stays on, with that one helper run by bash.
post=$(rpm --eval '%{__os_install_post}' | awk 'NF { sub(/^[ \t]+/, ""); printf "%s%s", sep, $0; sep = " ; " }')
if grep -qE 'read .*-d ' /usr/lib/rpm/brp-compress 2>/dev/null && [ "$(readlink -f /bin/sh)" != /usr/bin/bash ]; then
    post=${post//\/usr\/lib\/rpm\/brp-compress/bash /usr/lib/rpm/brp-compress}
fi
rpmbuild -bb --nodeps --quiet \
    --define "_topdir $work/rpmbuild" \
    --define "_sourcedir $PWD/$sources" \
    --define "packager ${RPM_PACKAGER:-netprofile maintainers <maintainers@users.noreply.r-seed-156001fb.example>}" \
    --define "__os_install_post $post" \
    packaging/rpm/netprofile.spec
rm -rf target/rpm
mkdir -p target/rpm
mv "$work"/rpmbuild/RPMS/*/netprofile-*.rpm target/rpm/
rpmfile=$(ls target/rpm/netprofile-*.rpm)

# --- the .deb, from the .rpm's binary ----------------------------------------------------------
out=target/packaging
rm -rf "$out"
mkdir -p "$out" "$work/rpmroot"
(cd "$work/rpmroot" && rpm2cpio "$OLDPWD/$rpmfile" | cpio --extract --make-directories --quiet ./usr/bin/netprofile)
# brp-strip keeps the symbol table (strip -g); Debian wants it gone (lintian).
strip -o "$out/netprofile" "$work/rpmroot/usr/bin/netprofile"
chmod 755 "$out/netprofile"
"$out/netprofile" __generate man "$out/man" >/dev/null
gzip -9n "$out"/man/*.8
"$out/netprofile" __generate completions "$out/completions" >/dev/null
# Debian names the upstream changelog changelog.gz (lintian: wrong-name-for-upstream-changelog).
gzip -9n <CHANGELOG.md >"$out/changelog.gz"
# --no-build: the binary is the one above; --no-strip: stripped above.
cargo deb --no-build --no-strip
ls -l target/debian/*.deb "$rpmfile"
