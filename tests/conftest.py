"""Record what runs before the suite, so the last test can prove the suite left nothing behind."""
from tests.leftovers import snapshot

BEFORE: dict = {}


def pytest_sessionstart(session):
    BEFORE.update(snapshot())
