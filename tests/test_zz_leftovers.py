"""Runs last (file order): the suite must not leave containers or listening ports behind."""
import time

from tests.conftest import BEFORE
from tests.leftovers import containers, listening_ports


def test_nothing_left_running():
    # a server stopped by the last notebook may take a moment to release its port
    for _ in range(20):
        new_containers = {i: n for i, n in containers().items() if i not in BEFORE["containers"]}
        new_ports = listening_ports() - BEFORE["ports"]
        if not new_containers and not new_ports:
            break
        time.sleep(0.5)
    assert not new_containers, f"containers left by the suite: {sorted(new_containers.values())}"
    assert not new_ports, f"listening ports left by the suite: {sorted(new_ports)}"
