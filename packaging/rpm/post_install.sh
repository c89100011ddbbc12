# netprofile %post: make systemd see netprofile.service, only where systemd runs (not in a
# container build or a chroot). The unit is not enabled: see README.md.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
