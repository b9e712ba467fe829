#!/usr/bin/env bash
# Start a Docker engine the way this course needs it on a bare Debian/Ubuntu host:
# no bridge, no iptables (containers get host or no networking only), and a proxy
# that points nowhere, so an accidental pull from a public registry fails at once
# instead of leaving the machine.
set -euo pipefail
log=${DOCKERD_LOG:-/var/log/mnist-course-dockerd.log}

if docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  echo "docker engine already answers; leaving it alone"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "no Docker engine answers and this is not root on Debian/Ubuntu:" >&2
    echo "install and start Docker yourself (Docker Desktop or docker.io), then run make setup again" >&2
    exit 1
  fi
  echo "installing Debian's docker.io engine"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io >/dev/null
fi

echo "starting dockerd (no bridge, no iptables); log in $log"
HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY=127.0.0.1,localhost \
  setsid nohup dockerd --bridge=none --iptables=false --ip6tables=false >>"$log" 2>&1 </dev/null &

for _ in $(seq 1 60); do
  if docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
    echo "docker engine $(docker version --format '{{.Server.Version}}') is up"
    exit 0
  fi
  sleep 0.5
done
echo "dockerd did not answer within 30 s; see $log" >&2
tail -20 "$log" >&2 || true
exit 1
