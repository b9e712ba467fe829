"""What a test run could leave behind: containers (Docker's and podman's, with podman's pods, images,
secrets and volumes), and listening TCP ports of processes it started.

The suite marks its environment (`MARKER`); every process it starts on the host (kernels, and
whatever they start, daemonised or not) inherits the mark, so a listening port is the suite's if
its owner carries it. Container processes do not inherit it; leftover containers are counted
directly. Ports of other programs on the machine are not the suite's business.
"""
from __future__ import annotations

import os
from pathlib import Path

MARKER = "MNIST_COURSE_TEST_SESSION"


def _listening_inodes() -> dict[int, int]:
    "Socket inode -> port, for TCP sockets in LISTEN state (IPv4 and IPv6)."
    out = {}
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        p = Path(f)
        if not p.exists():
            continue
        for line in p.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                out[int(fields[9])] = int(fields[1].rsplit(":", 1)[1], 16)
    return out


def _marked(pid: str, session: str) -> bool:
    try:
        return f"{MARKER}={session}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def listening_ports(session: str) -> set[int]:
    "Listening TCP ports owned by processes carrying the suite's mark `session`."
    inodes = _listening_inodes()
    ports = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and int(link[8:-1]) in inodes and _marked(pid, session):
                ports.add(inodes[int(link[8:-1])])
    return ports


def containers() -> dict[str, str]:
    "All containers (running or not): id -> name."
    import docker

    client = docker.from_env()
    try:
        return {c.id: c.name for c in client.containers.list(all=True)}
    finally:
        client.close()


def podman_things() -> dict[str, list[str]]:
    "What podman holds (pods, containers, images, secrets, volumes), or nothing where podman is not installed."
    import shutil

    if shutil.which("podman") is None:
        return {}
    from mnist_course.podman import inventory

    return inventory()


def snapshot() -> dict:
    return {"containers": containers(), "podman": podman_things()}
