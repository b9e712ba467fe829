"""Mark the suite's processes and record the containers before it, so the last test can prove
the suite left nothing behind."""
import os
import uuid

from tests.leftovers import MARKER, snapshot

BEFORE: dict = {}


def pytest_sessionstart(session):
    os.environ[MARKER] = uuid.uuid4().hex  # inherited by every kernel and what it starts
    BEFORE.update(snapshot())
