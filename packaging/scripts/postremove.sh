#!/bin/sh
# postremove of the scanagent package. The queue in /var/lib/scanagent and
# the user scanagent are kept, even on purge: the queue may hold scans that
# were never uploaded. Delete them by hand once `scanagent queue stats`
# shows nothing pending.
set -e
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl daemon-reload || true
fi
case "$1" in
  purge)
    if [ -d "${DPKG_ROOT:-}/var/lib/scanagent" ]; then
      echo "scanagent: /var/lib/scanagent (the scan queue) and the user scanagent were kept; remove them by hand"
    fi
    ;;
esac
exit 0
