# netprofile %postun: forget the removed unit, only where systemd runs. The package owns its
# folders (%dir in netprofile.spec), so rpm removes them on erase.
# /var/lib/netprofile (history, journal) is left alone: `netprofile rollback` may still need it.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
