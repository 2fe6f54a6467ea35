#!/usr/bin/env bash
# Checks a built scanagent .deb without touching this machine: its contents
# (dpkg-deb -c), its conffiles, then a real `dpkg -i` into a throw-away
# root (maintainer scripts included, through DPKG_ROOT), the user, modes and
# enable link it leaves, `systemd-analyze verify` of the unit when
# available, and `dpkg -r`/`-P`. Used by .ci/run.
#   packaging/check-deb.sh dist/scanagent_*_amd64.deb
set -euo pipefail
deb=${1:?usage: packaging/check-deb.sh PACKAGE.deb}
fail() { echo "check-deb: $*" >&2; exit 1; }

echo "-- dpkg-deb -c $deb"
listing=$(dpkg-deb -c "$deb")
echo "$listing"
for want in \
  '^-rwxr-xr-x root/root .* \./usr/bin/scanagent$' \
  '^-rw-r--r-- root/root .* \./usr/lib/systemd/system/scanagent\.service$' \
  '^-rw-r----- root/root .* \./etc/scanagent/config\.toml$' \
  '^drwxr-x--- root/root .* \./etc/scanagent/$' \
  '^-rw-r--r-- root/root .* \./usr/share/doc/scanagent/config\.example\.toml$' \
  '^-rw-r--r-- root/root .* \./usr/share/doc/scanagent/docs/troubleshoot\.md$' \
  '^-rw-r--r-- root/root .* \./usr/share/doc/scanagent/docs/reference/config\.md$'; do
  grep -Eq "$want" <<<"$listing" || fail "no entry matching $want"
done
[ "$(dpkg-deb -f "$deb" Package)" = scanagent ] || fail "Package is not scanagent"
ctl=$(mktemp -d)
root=$(mktemp -d)
trap 'rm -rf "$ctl" "$root"' EXIT
dpkg-deb -e "$deb" "$ctl"
[ "$(cat "$ctl/conffiles")" = /etc/scanagent/config.toml ] || fail "conffiles: $(cat "$ctl/conffiles")"
for s in postinst prerm postrm; do [ -x "$ctl/$s" ] || fail "no $s script"; done

echo "-- dpkg -i into a test root"
mkdir -p "$root/etc" "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/info" "$root/usr/sbin"
touch "$root/var/lib/dpkg/status"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\ndialout:x:20:\n' >"$root/etc/group"
printf 'root:*:19000:0:99999:7:::\n' >"$root/etc/shadow"
printf 'root:*::\ndialout:*::\n' >"$root/etc/gshadow"
chmod 0600 "$root/etc/shadow" "$root/etc/gshadow"
dpk=(dpkg --root="$root" --force-script-chrootless --force-not-root --force-depends --log=/dev/null)
"${dpk[@]}" -i "$deb"

grep -q '^scanagent:x:[0-9]*:[0-9]*:scanagent service:/var/lib/scanagent:/usr/sbin/nologin$' "$root/etc/passwd" ||
  fail "no scanagent user: $(cat "$root/etc/passwd")"
grep -Eq '^dialout:x:20:(.*,)?scanagent(,.*)?$' "$root/etc/group" || fail "scanagent is not in dialout: $(cat "$root/etc/group")"
gid=$(awk -F: '$1=="scanagent"{print $3}' "$root/etc/group")
uid=$(awk -F: '$1=="scanagent"{print $3}' "$root/etc/passwd")
[ "$(stat -c '%a %u %g' "$root/var/lib/scanagent")" = "700 $uid $gid" ] || fail "/var/lib/scanagent: $(stat -c '%a %u %g' "$root/var/lib/scanagent")"
[ "$(stat -c '%a %u %g' "$root/etc/scanagent")" = "750 0 $gid" ] || fail "/etc/scanagent: $(stat -c '%a %u %g' "$root/etc/scanagent")"
[ "$(stat -c '%a %u %g' "$root/etc/scanagent/config.toml")" = "640 0 $gid" ] || fail "config.toml: $(stat -c '%a %u %g' "$root/etc/scanagent/config.toml")"
if command -v systemctl >/dev/null; then
  [ -L "$root/etc/systemd/system/multi-user.target.wants/scanagent.service" ] || fail "the service is not enabled"
fi
"$root/usr/bin/scanagent" version
# The shipped configuration is the example: not configured, so `config
# check` refuses it (and the unit's run --wait-config waits for it).
if "$root/usr/bin/scanagent" --config "$root/etc/scanagent/config.toml" config check >/dev/null 2>&1; then
  fail "config check accepts the unconfigured example"
fi

if command -v systemd-analyze >/dev/null; then
  echo "-- systemd-analyze verify"
  # verify needs the unit's binary in place: point it at the test root.
  unit="$root/scanagent.service"
  sed "s#/usr/bin/scanagent#$root/usr/bin/scanagent#g" "$root/usr/lib/systemd/system/scanagent.service" >"$unit"
  out=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify: $out"
  if [ -n "$out" ]; then
    echo "$out"
    grep -v -e 'Failed to' -e 'is not executable' <<<"$out" | grep -qi 'scanagent' && fail "systemd-analyze verify warns about the unit"
  fi
  rm -f "$unit"
fi

echo "-- an edited conffile survives a reinstall (upgrade path)"
echo '# edited' >>"$root/etc/scanagent/config.toml"
"${dpk[@]}" --force-confold -i "$deb"
tail -1 "$root/etc/scanagent/config.toml" | grep -q '^# edited$' || fail "the edited configuration was replaced"

echo "-- dpkg -r, dpkg -P"
"${dpk[@]}" -r scanagent
[ ! -e "$root/usr/bin/scanagent" ] || fail "binary left after remove"
[ -e "$root/etc/scanagent/config.toml" ] || fail "remove deleted the configuration"
[ ! -L "$root/etc/systemd/system/multi-user.target.wants/scanagent.service" ] || fail "still enabled after remove"
"${dpk[@]}" -P scanagent
[ ! -e "$root/etc/scanagent/config.toml" ] || fail "purge left the configuration"
[ -d "$root/var/lib/scanagent" ] || fail "purge deleted the queue directory"
echo "check-deb: ok"
