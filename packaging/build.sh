#!/usr/bin/env bash
# Builds scanagent for the terminals it runs on, with version information
# stamped in (scanagent version). Output in dist/.
#
#   packaging/build.sh [binaries|packages|all]     (default: binaries)
#     binaries  linux/amd64, linux/arm64, linux/arm (GOARM=7), linux/386,
#               windows/amd64, windows/386; CGO_ENABLED=0
#     packages  the binaries, then a .deb and an .rpm per Linux architecture
#               (nfpm, packaging/nfpm.yaml) and a zip per Windows one
#     all       the same as packages
#
#   VERSION=1.2.3 packaging/build.sh all     (default: git describe)
#   SOURCE_DATE_EPOCH=…                      fixes the build date
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-binaries}
case "$what" in
  binaries|packages|all) ;;
  *) echo "usage: packaging/build.sh [binaries|packages|all]" >&2; exit 2 ;;
esac

# nfpm is run from the Go module proxy at a pinned version (v2.46 and later
# need modules outside proxy.golang.org).
NFPM=${NFPM:-github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.0}

version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
  date=$(date -u -d "@${SOURCE_DATE_EPOCH}" +%Y-%m-%dT%H:%M:%SZ)
else
  date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
fi
ldflags="-s -w -X main.version=${version} -X main.commit=${commit} -X main.date=${date}"

# Package versions must start with a digit: v1.2.3 -> 1.2.3, a bare commit
# (no tag yet) -> 0.0.0~git<commit>; "-" separates the deb revision, so
# later ones become "~" (1.2.3-4-gabc -> 1.2.3~4~gabc, sorts before 1.2.3).
pkgversion() {
  local v=${version#v}
  if [[ ! $v =~ ^[0-9]+\.[0-9]+ ]]; then
    v="0.0.0~git${commit:0:12}"
    [[ $version == *-dirty ]] && v+="~dirty"
  fi
  echo "${v//-/\~}"
}

targets=(linux/amd64 linux/arm64 linux/arm/7 linux/386 windows/amd64 windows/386)
mkdir -p dist

binary_name() { # goos goarch goarm
  local ext=""
  [ "$1" = windows ] && ext=".exe"
  echo "dist/scanagent-${version}-$1-$2${3:+v$3}${ext}"
}

build_binaries() {
  for t in "${targets[@]}"; do
    IFS=/ read -r goos goarch goarm <<<"$t"
    out=$(binary_name "$goos" "$goarch" "$goarm")
    echo "building ${out}"
    CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch GOARM=$goarm \
      go build -trimpath -ldflags "$ldflags" -o "$out" ./cmd/scanagent
  done
}

build_packages() {
  local pv stage
  pv=$(pkgversion)
  for t in "${targets[@]}"; do
    IFS=/ read -r goos goarch goarm <<<"$t"
    bin=$(binary_name "$goos" "$goarch" "$goarm")
    if [ "$goos" = linux ]; then
      for fmt in deb rpm; do
        echo "packaging ${fmt} for ${goarch}${goarm:+v$goarm} (version ${pv})"
        PKG_VERSION=$pv PKG_ARCH=${goarch}${goarm} PKG_BINARY=$bin \
          go run "$NFPM" package --config packaging/nfpm.yaml --packager "$fmt" --target dist/
      done
    else
      stage=$(mktemp -d)
      mkdir "$stage/scanagent"
      cp "$bin" "$stage/scanagent/scanagent.exe"
      # Windows line endings for Notepad.
      sed 's/$/\r/' config.example.toml >"$stage/scanagent/config.example.toml"
      sed 's/$/\r/' packaging/windows/INSTALL-windows.txt >"$stage/scanagent/INSTALL-windows.txt"
      zip="$PWD/dist/scanagent-${version}-windows-${goarch}.zip"
      rm -f "$zip"
      echo "packaging ${zip#"$PWD"/}"
      (cd "$stage" && zip -q -r -X "$zip" scanagent)
      rm -rf "$stage"
    fi
  done
}

build_binaries
if [ "$what" != binaries ]; then
  build_packages
fi
ls -l dist/
