#!/usr/bin/env bash
# Smoke tests of the cross-builds on this Linux machine (Debian/Ubuntu,
# root or sudo-less apt not needed if the tools are there). Used by .ci/run.
#
#   packaging/smoke.sh wine EXE     the windows/amd64 build under wine:
#                                   version, config check with Windows paths
#                                   (good and bad), run without the admin
#                                   socket (wine has no AF_UNIX), /healthz,
#                                   queue stats once the agent is stopped,
#                                   the Windows ACL code's unit tests
#   packaging/smoke.sh qemu         the unit tests built for linux/arm64, run
#                                   under qemu-aarch64-static (go test -exec)
#
# Tools: wine (Debian package wine64) and x86_64-w64-mingw32-gcc (package
# gcc-mingw-w64-x86-64-win32) for `wine`; qemu-user-static for `qemu`.
# Go 1.22+ Windows binaries need bcryptprimitives.dll (ProcessPrng), which
# Debian bookworm's wine 8.0 lacks: a stand-in is built from
# packaging/wine/bcryptprimitives.c into the throw-away wine prefix.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "smoke: $*" >&2; exit 1; }

smoke_wine() {
  local exe=${1:?usage: packaging/smoke.sh wine EXE} out code
  command -v wine >/dev/null || fail "wine is not installed (apt-get install wine64)"
  work=$(mktemp -d)
  trap 'wineserver -k >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
  export WINEPREFIX="$work/prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
  wineboot --init >/dev/null 2>&1 || true
  local sys32="$WINEPREFIX/drive_c/windows/system32"
  if [ ! -e "$sys32/bcryptprimitives.dll" ]; then
    x86_64-w64-mingw32-gcc -shared -O2 -s -o "$sys32/bcryptprimitives.dll" packaging/wine/bcryptprimitives.c -ladvapi32
  fi
  local c="$WINEPREFIX/drive_c/scanagent"
  mkdir -p "$c"
  cp "$exe" "$c/scanagent.exe"
  w() { wine 'C:\scanagent\scanagent.exe' "$@"; }

  echo "-- wine scanagent version"
  out=$(w version | tr -d '\r')
  echo "$out"
  grep -q '^os/arch: windows/amd64$' <<<"$out" || fail "version does not say windows/amd64"
  grep -q '^commit: *[0-9a-f]\{7,\}' <<<"$out" || fail "version has no stamped commit"
  grep -Eq '^built: *[0-9]{4}-' <<<"$out" || fail "version has no build date"

  echo "-- wine scanagent config check (Windows paths)"
  printf 's3cr3t\r\n' >"$c/secret.txt"
  cat >"$c/config.toml" <<'EOF'
[agent]
data_dir = 'C:\scanagent\data'
log_file = 'C:\scanagent\logs\scanagent.log'
admin_listen = "127.0.0.1:19465"

[platform]
base_url = "http://127.0.0.1:1"
client_id = "smoke"
client_secret_file = 'secret.txt'
app_id = "01"

[[reader]]
name = "till-1"
port = "COM3"
term_name = "smoke till"
term_sn = "SMOKE-1"
EOF
  out=$(w config check --config 'C:\scanagent\config.toml' 2>&1 | tr -d '\r')
  echo "$out"
  grep -qx ok <<<"$out" || fail "config check did not say ok"

  # A misspelt key, and a Windows path in double quotes (an invalid escape):
  # each named as PATH:LINE:COL, exit 2.
  sed 's/^admin_listen/admin_lisen/' "$c/config.toml" >"$c/typo.toml"
  printf '%s\n' '[agent]' 'data_dir = "C:\scanagent\data"' >"$c/quotes.toml"
  for f in typo:admin_lisen quotes:'single quotes'; do
    code=0
    out=$(w config check --config "C:\\scanagent\\${f%%:*}.toml" 2>&1 | tr -d '\r') || code=$?
    echo "$out"
    [ "$code" -eq 2 ] || fail "config check of ${f%%:*}.toml exited $code, want 2"
    grep -q "^scanagent: C:\\\\scanagent\\\\${f%%:*}.toml:[0-9]*:[0-9]*: .*${f#*:}" <<<"$out" ||
      fail "no PATH:LINE:COL message naming ${f#*:}"
  done

  echo "-- wine scanagent run: no AF_UNIX under wine, so no admin socket; queue stats once stopped"
  w run --config 'C:\scanagent\config.toml' >"$work/run.out" 2>&1 &
  local log="$c/logs/scanagent.log"
  for _ in $(seq 1 60); do
    grep -q 'scanagent started' "$log" 2>/dev/null && break
    sleep 0.5
  done
  cat "$log" || true
  grep -q 'scanagent started' "$log" || { cat "$work/run.out"; fail "the agent did not start under wine"; }
  # The agent goes on without the socket and says so once.
  [ "$(grep -c 'admin socket unavailable' "$log")" -eq 1 ] || fail "the agent did not log the missing admin socket exactly once"
  if command -v curl >/dev/null; then
    out=$(curl -fsS http://127.0.0.1:19465/healthz) || fail "/healthz on admin_listen did not answer"
    echo "$out"
    grep -q '"pending": 0' <<<"$out" || fail "/healthz has no counts"
    curl -fsS http://127.0.0.1:19465/api/queue/stats >/dev/null 2>&1 && fail "the queue API answers on admin_listen (TCP)"
  fi
  # With the agent running, a queue command says why it cannot work, fast.
  code=0
  out=$(timeout 20 wine 'C:\scanagent\scanagent.exe' queue stats --config 'C:\scanagent\config.toml' 2>&1 | tr -d '\r') || code=$?
  echo "$out"
  grep -q 'locked by another process' <<<"$out" || fail "queue stats (running agent) did not say the queue is locked"
  grep -q 'socket does not answer' <<<"$out" || fail "queue stats (running agent) did not name the missing socket"
  wineserver -k || true
  wait || true
  out=$(w queue stats --json --config 'C:\scanagent\config.toml' 2>&1 | tr -d '\r')
  echo "$out"
  grep -q '"pending": 0' <<<"$out" || fail "queue stats (stopped agent) printed no counts"
  echo "-- wine: the Windows ACL code's tests (service SID, SDDL, the writable-by-users verdict)"
  if command -v go >/dev/null; then
    GOOS=windows GOARCH=amd64 CGO_ENABLED=0 go test -c -o "$c/service.test.exe" ./internal/service/
    out=$(wine 'C:\scanagent\service.test.exe' -test.run 'TestServiceSID|TestWritableByOrdinaryUsers|TestPrivateSDDL|TestLockDown' -test.v 2>&1 | tr -d '\r')
    echo "$out" | grep -E '^(---|PASS|FAIL|ok)' || true
    grep -qx PASS <<<"$out" || { echo "$out"; fail "the Windows ACL tests failed under wine"; }
  else
    echo "go not found: skipped"
  fi
  echo "smoke wine: ok"
}

smoke_qemu() {
  command -v qemu-aarch64-static >/dev/null || fail "qemu-aarch64-static is not installed (apt-get install qemu-user-static)"
  # -short: the long forms (kill -9 loops) are for native runs. Tests that
  # re-execute the test binary as a child cannot run without binfmt_misc
  # (not available in containers): they skip themselves under -short.
  local log failed
  log=$(mktemp)
  qtest() {
    CGO_ENABLED=0 GOARCH=arm64 go test -short -count=1 -exec qemu-aarch64-static \
      -skip '^TestWriteFailureIsReported$' "$@"
  }
  if qtest ./... 2>&1 | tee "$log"; then
    rm -f "$log"
    echo "smoke qemu: ok"
    return
  fi
  # Emulation is several times slower: a test with a tight timeout (a TLS
  # handshake in 200 ms) can miss it. Failed packages get one more run; a
  # real arm64 failure fails twice.
  failed=$(awk '$1 == "FAIL" && $2 ~ /^scanagent/ { print $2 }' "$log" | sort -u)
  rm -f "$log"
  [ -n "$failed" ] || fail "arm64 tests failed to build or run"
  echo "smoke qemu: retrying under emulation: $failed"
  # shellcheck disable=SC2086
  qtest $failed || fail "arm64 tests failed twice"
  echo "smoke qemu: ok (on retry)"
}

case "${1:-}" in
  wine) shift; smoke_wine "$@" ;;
  qemu) smoke_qemu ;;
  *) echo "usage: packaging/smoke.sh wine EXE | qemu" >&2; exit 2 ;;
esac
