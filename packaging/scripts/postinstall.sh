#!/bin/sh
# postinstall of the scanagent package (deb: postinst configure [OLD];
# rpm: %post 1 on install, 2 on upgrade). Creates the service user and its
# directories, enables the service but does not start it on a first install:
# the configuration must be filled in first. Honours DPKG_ROOT (dpkg
# --instdir/--root with --force-script-chrootless), which CI uses to
# install the .deb into a test root.
set -e
root=${DPKG_ROOT:-}

first=
case "$1" in
  configure) [ -z "$2" ] && first=1 ;;
  1) first=1 ;;
  abort-upgrade|abort-remove|abort-deconfigure) exit 0 ;;
esac

# useradd/groupadd --prefix works on a test root without chroot.
prefix=
[ -n "$root" ] && prefix="--prefix $root"
has() { grep -q "^$2:" "$root/etc/$1" 2>/dev/null; }
id_of() { awk -F: -v n="$2" '$1 == n { print $3 }' "$root/etc/$1"; }

has group dialout || groupadd $prefix --system dialout
has group scanagent || groupadd $prefix --system scanagent
if ! has passwd scanagent; then
  useradd $prefix --system --gid scanagent --groups dialout --home-dir /var/lib/scanagent \
    --no-create-home --shell /usr/sbin/nologin --comment "scanagent service" scanagent
else
  usermod $prefix -a -G dialout scanagent
fi
uid=$(id_of passwd scanagent)
gid=$(id_of group scanagent)

install -d -m 0700 -o "$uid" -g "$gid" "$root/var/lib/scanagent"
chown "0:$gid" "$root/etc/scanagent"
chmod 0750 "$root/etc/scanagent"
if [ -f "$root/etc/scanagent/config.toml" ]; then
  chown "0:$gid" "$root/etc/scanagent/config.toml"
  chmod 0640 "$root/etc/scanagent/config.toml"
fi

if command -v systemctl >/dev/null 2>&1; then
  if [ -n "$root" ]; then
    [ -n "$first" ] && systemctl --root="$root" enable scanagent.service >/dev/null 2>&1 || true
  else
    [ -d /run/systemd/system ] && systemctl daemon-reload || true
    if [ -n "$first" ]; then
      systemctl enable scanagent.service >/dev/null 2>&1 || true
    elif [ -d /run/systemd/system ]; then
      # An upgrade restarts a running agent with the new binary.
      systemctl try-restart scanagent.service || true
    fi
  fi
fi

if [ -n "$first" ]; then
  cat <<'MSG'

scanagent is installed and enabled, but not started: configure it first.
  1. Edit /etc/scanagent/config.toml: [platform] client_id, client_secret,
     app_id, and one [[reader]] per scanner (port, term_name, term_sn).
  2. Check it:   scanagent config check
  3. Start it:   systemctl start scanagent
  4. Watch it:   journalctl -u scanagent -f
If it starts before that (at the next boot), it waits for a valid
configuration and says what is wrong once in the journal.

MSG
fi
exit 0
