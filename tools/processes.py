"""Processes found by what their command line names: a private folder (a browser profile, a Jupyter runtime
directory) that only the processes started with it mention."""
from __future__ import annotations

import os
import signal
from pathlib import Path


def cmdline(pid: str | int) -> list[str]:
    "The command line of process `pid`, or [] when it has ended (or cannot be read)."
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def pids_mentioning(text: str) -> list[int]:
    "Processes whose command line contains `text` (a private directory: only what we started names it)."
    return [int(pid) for pid in filter(str.isdigit, os.listdir("/proc")) if text in "\0".join(cmdline(pid))]


def kill_mentioning(text: str) -> list[int]:
    "SIGKILL every process whose command line contains `text`; the pids it signalled."
    killed = []
    for pid in pids_mentioning(text):
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except OSError:  # ended meanwhile, or not ours
            pass
    return killed
