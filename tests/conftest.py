"""Mark the suite's processes and record the containers before it, so the last test can prove
the suite left nothing behind; order the tests that read what others write."""
import os
import uuid

from tests.leftovers import MARKER, snapshot

BEFORE: dict = {}


def pytest_configure(config):
    config.addinivalue_line("markers", "after_notebooks: reads the executed notebooks tests/test_notebooks.py "
                                       "writes, so runs after it")


def pytest_collection_modifyitems(config, items):
    """Tests marked after_notebooks run after the others, and the leftover check (test_zz_leftovers) runs last.
    Where the two learners' test runs in the same session (as root), the lessons it runs are not run a second time
    by test_notebooks: the learners run them on the same engine, in host mode as root would, and their executed
    copies take the place of root's (for the site test)."""
    from tests.test_learners import LESSONS
    learners = [i for i in items if i.path.name == "test_learners.py" and os.geteuid() == 0]
    if learners:
        twice = [i for i in items if i.path.name == "test_notebooks.py" and i.name.split("[", 1)[-1].rstrip("]") in LESSONS]
        if twice:
            config.hook.pytest_deselected(items=twice)
            items[:] = [i for i in items if i not in twice]
    items.sort(key=lambda item: (item.path.name == "test_zz_leftovers.py",
                                 item.get_closest_marker("after_notebooks") is not None))


def pytest_sessionstart(session):
    os.environ[MARKER] = uuid.uuid4().hex  # inherited by every kernel and what it starts
    BEFORE.update(snapshot())


NOTEBOOK_SECONDS: dict = {}


def pytest_runtest_logreport(report):
    "Keep each notebook's time (setup, run and teardown of its test) for the summary."
    if "test_notebook[" in report.nodeid:
        name = report.nodeid.split("[", 1)[1].rstrip("]")
        NOTEBOOK_SECONDS[name] = NOTEBOOK_SECONDS.get(name, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    "The time of each notebook, in the order they ran, and their total."
    if not NOTEBOOK_SECONDS:
        return
    terminalreporter.section("time per notebook (papermill, quick mode)")
    for name, seconds in NOTEBOOK_SECONDS.items():
        terminalreporter.write_line(f"  {name:32} {seconds:7.1f} s")
    terminalreporter.write_line(f"  {'total':32} {sum(NOTEBOOK_SECONDS.values()):7.1f} s")
