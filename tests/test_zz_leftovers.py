"""Runs last (file order, and tests/conftest.py): the suite must not leave containers, listening ports,
browsers, chromedrivers, JupyterLab servers or kernels behind."""
import os
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import BEFORE
from tests.leftovers import MARKER, containers, listening_ports, podman_things, suite_processes


def leftovers():
    new_containers = {i: n for i, n in containers().items() if i not in BEFORE["containers"]}
    session = os.environ[MARKER]
    return new_containers, listening_ports(session), suite_processes(session)


def new_in_podman(before: dict, after: dict) -> dict[str, list[str]]:
    "What podman holds now that it did not hold before, by kind (only the kinds that have some)."
    return {k: sorted(set(v) - set(before.get(k, []))) for k, v in after.items() if set(v) - set(before.get(k, []))}


def test_nothing_left_running():
    # a server stopped by the last notebook may take a moment to release its port
    for _ in range(20):
        new_containers, ports, processes = leftovers()
        if not new_containers and not ports and not processes:
            break
        time.sleep(0.5)
    assert not new_containers, f"containers left by the suite: {sorted(new_containers.values())}"
    assert not ports, f"listening ports left by the suite: {sorted(ports)}"
    assert not processes, f"processes left by the suite: {sorted(processes.values())}"


def test_nothing_left_in_podman():
    "No pod, container, image, secret or volume the suite made is left in podman (what setup put there stays)."
    left = new_in_podman(BEFORE["podman"], podman_things())
    assert not left, f"left in podman by the suite: {left}"


def test_podman_check_sees_a_new_thing():
    "The podman check is not blind: something that was not there before is reported, by kind."
    test_eq = lambda a, b: None if a == b else pytest.fail(f"{a} != {b}")
    test_eq(new_in_podman({"pods": ["a"], "images": []}, {"pods": ["a", "b"], "images": ["x@1"]}), {"pods": ["b"], "images": ["x@1"]})
    test_eq(new_in_podman({"pods": ["a"]}, {"pods": ["a"]}), {})


def test_leftover_check_sees_a_listening_child():
    "The check is not blind: a port held by a process the suite started is found, and gone once it ends."
    code = ("import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
            "print(s.getsockname()[1], flush=True); time.sleep(30)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        port = int(child.stdout.readline())
        assert port in listening_ports(os.environ[MARKER])
    finally:
        child.kill()
        child.wait()
    with socket.socket() as other:  # this process was not started by the suite: its port is not counted
        other.bind(("127.0.0.1", 0))
        other.listen()
        assert other.getsockname()[1] not in listening_ports(os.environ[MARKER])
    assert port not in listening_ports(os.environ[MARKER])


def test_leftover_check_sees_a_browser_driver():
    "The check is not blind to processes either: a chromedriver the suite started is found, and gone once it ends."
    child = subprocess.Popen(["bash", "-c", "exec -a chromedriver sleep 30"], start_new_session=True)
    try:
        found = {}
        for _ in range(20):  # until bash has become `chromedriver 30`
            found = suite_processes(os.environ[MARKER])
            if child.pid in found:
                break
            time.sleep(0.05)
        assert found.get(child.pid, "").startswith("chromedriver"), found
    finally:
        child.kill()
        child.wait()
    assert child.pid not in suite_processes(os.environ[MARKER])
