# netprofile %preun: on erase (not upgrade), disable the unit where systemd runs. It is a oneshot
# that already ran at boot; nothing it set is undone (use `netprofile rollback` for that).
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl --no-reload disable netprofile.service >/dev/null 2>&1 || :
fi
