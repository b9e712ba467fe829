"""Mark the suite's processes and record the containers before it, so the last test can prove
the suite left nothing behind; order the tests that read what others write."""
import os
import uuid

from tests.leftovers import MARKER, snapshot

BEFORE: dict = {}


def pytest_configure(config):
    config.addinivalue_line("markers", "after_notebooks: reads the executed notebooks tests/test_notebooks.py "
                                       "writes, so runs after it")


def pytest_collection_modifyitems(items):
    "Tests marked after_notebooks run after the others, and the leftover check (test_zz_leftovers) runs last."
    items.sort(key=lambda item: (item.path.name == "test_zz_leftovers.py",
                                 item.get_closest_marker("after_notebooks") is not None))


def pytest_sessionstart(session):
    os.environ[MARKER] = uuid.uuid4().hex  # inherited by every kernel and what it starts
    BEFORE.update(snapshot())
