#!/usr/bin/env bash
# Build a Debian image with Python from Debian's own packages, for hosts that cannot pull from
# a registry. Of bookworm (Python 3.11) it stands in for python:3.11-slim-bookworm, under a name
# of its own (never publish it under the official name: contents and digest differ). Of trixie
# (Python 3.13, glibc 2.41) it is the base of programs built for a newer glibc than bookworm's.
#   usage: build-python-base.sh IMAGE_TAG [SUITE]   (SUITE: bookworm, the default, or trixie)
set -euo pipefail
tag=${1:?usage: build-python-base.sh IMAGE_TAG [SUITE]}
suite=${2:-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if ! command -v debootstrap >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { echo "debootstrap is missing: apt-get install debootstrap (as root)" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

root=$(mktemp -d /var/tmp/mnist-course-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
# minbase keeps apt and dpkg (later Dockerfiles apt-get what they need) and drops the rest.
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  "$suite" "$root" "$mirror" >"$root.log" 2>&1 || { tail -30 "$root.log" >&2; exit 1; }
rm -f "$root.log"
# Debian's chroot keeps downloaded .debs and package lists: neither belongs in an image.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import \
  -c 'ENV LANG=C.UTF-8' \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'CMD ["python3"]' \
  -m "Debian $suite minbase + python3 (debootstrap)" - "$tag" >/dev/null
echo "built $tag"
