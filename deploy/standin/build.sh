#!/usr/bin/env bash
# The stand-in base images for a machine without Docker Hub (README.md here): Debian
# rootfs made with debootstrap from deb.debian.org, imported, and three images on them.
#   genstudio-standin/python:3.11-bookworm  for the Dockerfile's PYTHON_IMAGE
#   genstudio-standin/postgres:17-trixie    for compose's postgres:17
#   genstudio-standin/redis:7-bookworm      for compose's redis:7-alpine
# Needs root, debootstrap and a BuildKit docker (DOCKER, default docker; builds use the
# host's network so that apt reaches the mirror).
set -euo pipefail
cd "$(dirname "$0")"
DOCKER="${DOCKER:-docker}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
WORK="${STANDIN_WORK:-/var/tmp/genstudio-standin}"

rootfs() {  # suite, extra packages: genstudio-standin/debian:<suite>, once
  local suite="$1" include="$2" tag="genstudio-standin/debian:$1"
  if "$DOCKER" image inspect "$tag" >/dev/null 2>&1; then
    echo "$tag: already there"
    return
  fi
  local dir="$WORK/$suite"
  rm -rf "$dir"
  mkdir -p "$WORK"
  debootstrap --variant=minbase --include="$include" "$suite" "$dir" "$MIRROR"
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  tar -C "$dir" --numeric-owner -c . | "$DOCKER" import --change 'CMD ["bash"]' - "$tag"
  rm -rf "$dir"
}

rootfs bookworm python3,python3-venv,ca-certificates
rootfs trixie ca-certificates

# the context: these files and the machine's own certificate authorities (local-ca/)
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cp ./*.Dockerfile ./*-entrypoint.sh "$context/"
mkdir "$context/local-ca"
cp /usr/local/share/ca-certificates/*.crt "$context/local-ca/" 2>/dev/null || true

build() {  # dockerfile, tag
  DOCKER_BUILDKIT=1 "$DOCKER" build --network host -f "$context/$1" -t "$2" "$context"
}
build python.Dockerfile genstudio-standin/python:3.11-bookworm
build postgres.Dockerfile genstudio-standin/postgres:17-trixie
build redis.Dockerfile genstudio-standin/redis:7-bookworm
"$DOCKER" image ls 'genstudio-standin/*'
