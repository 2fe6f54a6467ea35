#!/usr/bin/env bash
# Builds scanagent for the terminals it runs on, with version information
# stamped in. Usage: packaging/build.sh [binaries]   (output in dist/)
#   VERSION=1.2.3 packaging/build.sh
set -euo pipefail
cd "$(dirname "$0")/.."

version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ldflags="-s -w -X main.version=${version} -X main.commit=${commit} -X main.date=${date}"

targets=(linux/amd64 linux/arm64 linux/arm/7 linux/386 windows/amd64 windows/386)
mkdir -p dist
for t in "${targets[@]}"; do
  IFS=/ read -r goos goarch goarm <<<"$t"
  name="scanagent-${version}-${goos}-${goarch}${goarm:+v$goarm}"
  ext=""; [ "$goos" = windows ] && ext=".exe"
  echo "building dist/${name}${ext}"
  CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch GOARM=$goarm \
    go build -trimpath -ldflags "$ldflags" -o "dist/${name}${ext}" ./cmd/scanagent
done
