# netprofile %postun: forget the removed unit, only where systemd runs.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
