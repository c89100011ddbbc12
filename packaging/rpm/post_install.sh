# netprofile %post: on the first install, enable netprofile.service through its preset
# (/usr/lib/systemd/system-preset/50-netprofile.preset; a site preset can say otherwise), as
# %systemd_post does, so `apply` followed by a reboot needs no other step: the unit holds at boot
# what a static drop-in cannot and is skipped until something was applied. systemctl preset works
# without a running systemd; systemd is reloaded only where it runs.
if [ "$1" -eq 1 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl --no-reload preset netprofile.service >/dev/null 2>&1 || :
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
