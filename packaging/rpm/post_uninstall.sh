# netprofile %postun: forget the removed unit, only where systemd runs. On erase, remove the
# folders only netprofile uses, if empty: cargo-generate-rpm cannot yet make the rpm own them.
# /var/lib/netprofile (history, journal) is left alone: `netprofile rollback` may still need it.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 0 ]; then
    rmdir /usr/share/netprofile/profiles /usr/share/netprofile /usr/share/doc/netprofile/docs \
        /usr/share/doc/netprofile /usr/share/licenses/netprofile 2>/dev/null || :
fi
