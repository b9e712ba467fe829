"""What a test run could leave behind: containers (Docker's and podman's, with podman's pods, images,
secrets and volumes), listening TCP ports of processes it started, and the browsers, chromedrivers,
JupyterLab servers and kernels it started.

The suite marks its environment (`MARKER`); every process it starts on the host (kernels, JupyterLab,
chromedriver and the browser, and whatever they start, daemonised or not) inherits the mark, so a
listening port or a process is the suite's if its owner carries it. Container processes do not inherit
it; leftover containers are counted directly. Other programs on the machine are not the suite's business.
"""
from __future__ import annotations

import os
from pathlib import Path

from tools.processes import cmdline

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


def process_kind(argv: list[str]) -> str | None:
    "What a command line is, of the programs the browser tests start: browser, chromedriver, JupyterLab, kernel."
    if not argv:
        return None
    prog = os.path.basename(argv[0])
    if prog == "chromedriver":
        return "chromedriver"
    if prog in ("chromium", "chromium-browser", "chrome", "google-chrome", "headless_shell", "chrome_crashpad_handler"):
        return "browser"
    if prog in ("jupyter-lab", "jupyter-server") or argv[1:3] in (["-m", "jupyterlab"], ["-m", "jupyter_server"]):
        return "JupyterLab"
    if "ipykernel_launcher" in argv or argv[1:3] == ["-m", "ipykernel"]:
        return "kernel"
    return None


def suite_processes(session: str) -> dict[int, str]:
    "Browsers, chromedrivers, JupyterLab servers and kernels still running with the suite's mark: pid -> what."
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        kind = process_kind(cmdline(pid))
        if kind and int(pid) != os.getpid() and _marked(pid, session) and not _zombie(pid):
            found[int(pid)] = f"{kind} ({' '.join(cmdline(pid))[:120]})"
    return found


def _zombie(pid: str) -> bool:
    "Exited but not yet reaped: nothing runs any more."
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


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
