"""What a test run could leave behind: containers and listening TCP ports."""
from __future__ import annotations

from pathlib import Path


def listening_ports() -> set[int]:
    "Local TCP ports in LISTEN state, from /proc (IPv4 and IPv6)."
    ports = set()
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        p = Path(f)
        if not p.exists():
            continue
        for line in p.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def containers() -> dict[str, str]:
    "All containers (running or not): id -> name."
    import docker

    client = docker.from_env()
    try:
        return {c.id: c.name for c in client.containers.list(all=True)}
    finally:
        client.close()


def snapshot() -> dict:
    return {"containers": containers(), "ports": listening_ports()}
