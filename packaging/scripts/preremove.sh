#!/bin/sh
# preremove of the scanagent package (deb: prerm remove|upgrade …; rpm:
# %preun 0 on erase, 1 on upgrade). On removal the service is stopped (the
# queue is closed cleanly) and disabled; an upgrade leaves it running and
# postinstall restarts it. Honours DPKG_ROOT like postinstall.
set -e
root=${DPKG_ROOT:-}
case "$1" in
  remove|0)
    if command -v systemctl >/dev/null 2>&1; then
      if [ -n "$root" ]; then
        systemctl --root="$root" disable scanagent.service >/dev/null 2>&1 || true
      else
        [ -d /run/systemd/system ] && systemctl stop scanagent.service || true
        systemctl disable scanagent.service >/dev/null 2>&1 || true
      fi
    fi
    ;;
esac
exit 0
