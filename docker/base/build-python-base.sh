#!/usr/bin/env bash
# Build a Debian image with Python from Debian's own packages, for hosts that cannot pull from
# a registry. Of bookworm (Python 3.11) it stands in for python:3.11-slim-bookworm, under a name
# of its own (never publish it under the official name: contents and digest differ). Of trixie
# (Python 3.13, glibc 2.41) it is the base of programs built for a newer glibc than bookworm's.
# For another processor (PLATFORM linux/arm64 on an x86_64 host) debootstrap's second stage runs
# the image's own programs through qemu-user-static, which binfmt_misc must have registered.
#   usage: build-python-base.sh IMAGE_TAG [SUITE [PLATFORM]]
#   (SUITE: bookworm, the default, or trixie; PLATFORM: the engine's own, the default, or linux/arm64, linux/amd64)
set -euo pipefail
usage="usage: build-python-base.sh IMAGE_TAG [SUITE [PLATFORM]]"
tag=${1:?$usage}
suite=${2:-bookworm}
platform=${3:-}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
arch=
case "$platform" in
  "") ;;
  linux/amd64|linux/arm64) arch=${platform#linux/} ;;
  *) echo "platform $platform: choose linux/amd64 or linux/arm64" >&2; exit 2 ;;
esac
if [ -n "$arch" ] && [ "$arch" != "$(dpkg --print-architecture)" ]; then
  interp=$(ls /proc/sys/fs/binfmt_misc 2>/dev/null | grep -x "qemu-$( [ "$arch" = arm64 ] && echo aarch64 || echo x86_64)" || true)
  [ -n "$interp" ] || { echo "$platform programs cannot run here: install qemu-user-static and register it in binfmt_misc" \
                             "(make setup does, as root)" >&2; exit 1; }
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { echo "debootstrap is missing: apt-get install debootstrap (as root)" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

root=$(mktemp -d /var/tmp/mnist-course-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
# minbase keeps apt and dpkg (later Dockerfiles apt-get what they need) and drops the rest.
debootstrap --variant=minbase ${arch:+--arch "$arch"} --include=python3,python3-venv,ca-certificates \
  "$suite" "$root" "$mirror" >"$root.log" 2>&1 || { tail -30 "$root.log" >&2; exit 1; }
rm -f "$root.log"
# Debian's chroot keeps downloaded .debs and package lists: neither belongs in an image.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
if [ -z "$platform" ]; then
  tar -C "$root" -c . | docker import \
    -c 'ENV LANG=C.UTF-8' \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["python3"]' \
    -m "Debian $suite minbase + python3 (debootstrap)" - "$tag" >/dev/null
else
  # docker import records the engine's own architecture whatever --platform says (Docker 20.10):
  # an image built FROM scratch for the platform records the platform's
  ctx=$(mktemp -d /var/tmp/mnist-course-base-context.XXXXXX)
  trap 'rm -rf "$root" "$ctx"' EXIT
  tar -C "$root" -cf "$ctx/rootfs.tar" .
  rm -rf "$root"
  cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
ADD rootfs.tar /
ENV LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["python3"]
DOCKERFILE
  DOCKER_BUILDKIT=0 docker build --quiet --platform "$platform" --network none \
    --label "org.opencontainers.image.description=Debian $suite minbase + python3 (debootstrap, $platform)" \
    -t "$tag" "$ctx" >/dev/null 2>"$ctx/build.log" || { cat "$ctx/build.log" >&2; exit 1; }
fi
echo "built $tag${platform:+ for $platform}"
