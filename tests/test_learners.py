"""Two learners without root, each with a clone of their own, run `make venv`, `mnist-course setup` and lessons
01, 07 and 09 in quick mode at the same time on the one engine; both pass and neither leaves anything behind.
In a session with tests/test_notebooks.py these are the runs of those three lessons (tests/conftest.py)."""
import json
import os
import shutil
import threading
import time

import docker
import pytest

from mnist_course.containers import LEARNER_LABEL
from tests.learners import ensure_learner, fresh_clone, seed_model, shared_cache

LESSONS = ("01_docker_basics", "07_torchserve_deploy", "09_triton_deploy")
RUN_LESSON = ("import sys; from pathlib import Path; from tools.notebooks import execute, unexecuted; "
              "out, s = execute(Path('nbs') / f'{sys.argv[1]}.ipynb', Path('build/test-notebooks'), {'quick': True}); "
              "bad = unexecuted(out); print(f'{sys.argv[1]} {s:.0f} s', 'failed cells' if bad else 'ok', bad or ''); "
              "sys.exit(1 if bad else 0)")


def learner_run(learner, log, has_venv: bool = False) -> dict:
    "What one learner does, in order (the clone and venv unless `has_venv`); each step's seconds."
    seconds = {} if has_venv else {"clone": round(fresh_clone(learner), 1)}
    steps = [*([] if has_venv else [("venv", ["make", "venv", "PYTHON=/usr/bin/python3"], 900)]),
             ("setup", [".venv/bin/mnist-course", "setup"], 600),
             ("doctor", [".venv/bin/mnist-course", "doctor"], 300),
             *[(nb, [".venv/bin/python", "-c", RUN_LESSON, nb], 900) for nb in LESSONS]]
    for name, argv, timeout in steps:
        t0 = time.time()
        r = learner.run(argv, timeout=timeout, log=log)
        seconds[name] = round(time.time() - t0, 1)
        if r.returncode:
            raise AssertionError(f"{learner.user}: {name} failed (exit {r.returncode}); the end of {log}:\n"
                                 + "\n".join(log.read_text().splitlines()[-40:]))
    return seconds


def hand_over(learner) -> dict:
    """Copy `learner`'s executed lessons to where root's run keeps its own (tests/test_notebooks.py's OUT), for the
    site test: in a session with this test, test_notebooks does not run these lessons again (tests/conftest.py).
    Their papermill times go into the suite's notebook table. Returns the seconds per lesson."""
    import nbformat

    from tests.conftest import NOTEBOOK_SECONDS
    from tests.test_notebooks import OUT
    OUT.mkdir(parents=True, exist_ok=True)
    seconds = {}
    for nb in LESSONS:
        src = learner.clone / "build" / "test-notebooks" / f"{nb}.ipynb"
        shutil.copyfile(src, OUT / src.name)  # root's copy: root owns it
        cells = nbformat.read(src, as_version=4).cells
        seconds[nb] = sum(c.metadata.get("papermill", {}).get("duration") or 0 for c in cells)
        NOTEBOOK_SECONDS[f"{nb} (as {learner.user}, beside another learner)"] = seconds[nb]
    return seconds


@pytest.mark.skipif(os.geteuid() != 0, reason="making the learners' accounts needs root")
def test_two_learners_share_one_engine(tmp_path):
    from mnist_course.train import ensure_trained_model, trained_model_cache
    shared_cache()
    model = ensure_trained_model()
    key_path = trained_model_cache()
    if key_path:
        seed_model(model, key_path)  # the learners' lessons copy it instead of training for minutes
    learners = [ensure_learner(u) for u in ("mnist-learner-a", "mnist-learner-b")]
    logs = {l.user: tmp_path / f"{l.user}.log" for l in learners}
    for log in logs.values():
        log.touch(mode=0o666)
        log.chmod(0o666)
    results, errors = {}, {}

    def work(learner):
        try:
            results[learner.user] = learner_run(learner, logs[learner.user], has_venv=learner is first)
        except BaseException as e:  # reported below, after both have finished
            errors[learner.user] = e

    # the first learner's venv fills the shared cache; the second links it, so it starts once that is done
    first, second = learners
    t0 = time.time()
    seconds = {"clone": round(fresh_clone(first), 1)}
    r = first.run(["make", "venv", "PYTHON=/usr/bin/python3"], timeout=900, log=logs[first.user])
    assert r.returncode == 0, logs[first.user].read_text()[-3000:]
    seconds["first venv"] = round(time.time() - t0, 1)
    threads = [threading.Thread(target=work, args=(l,)) for l in learners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"wall_s": round(time.time() - t0, 1), **seconds, **results}, indent=1))
    client = docker.from_env()
    left = {l.user: client.containers.list(all=True, filters={"label": f"{LEARNER_LABEL}={l.user}"}) for l in learners}
    for c in (c for cs in left.values() for c in cs):  # a lesson that failed part way: nothing stays on the engine
        c.remove(force=True, v=True)
    assert not any(left.values()), f"left behind: { {u: [c.name for c in cs] for u, cs in left.items()} }"
    assert not errors, "\n\n".join(str(e) for e in errors.values())
    handed = hand_over(first)
    assert sorted(handed) == sorted(LESSONS), handed
    for learner in learners:  # what the doctor said of the engine, as this learner
        text = logs[learner.user].read_text()
        assert '"detail": "Docker ' in text and "docker-group: a rootful Linux engine, used by a member of the docker group" in text, \
            f"{learner.user}'s doctor did not name the engine as a docker-group one"
