"""The online branch, run for real (issue 20, goal 1): a test engine whose Docker Hub mirror is a registry on
127.0.0.1 holding stand-ins under the official names (tests/online.py). Against it the probe says official, one
course image builds on `python:3.11-slim-bookworm` pulled through the mirror, and lessons 00 and 01 take their online
branch and say the upstream was the test's mirror, whose stand-ins say they are stand-ins. Once the mirror is gone,
the probe says local.

Root only (it starts a second dockerd). Its data root and the registry's storage stay in /var/cache/mnist-course-online
between runs, so a warm run reuses the stand-ins' layers and the build's layer cache; the engine and the registry are
stopped, and every container removed, whatever happens. Under CI a missing prerequisite fails instead of skipping.
"""
import contextlib
import os
import shutil
import time
from pathlib import Path

import pytest

from tools.notebooks import ROOT, execute, unexecuted

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="starts a second dockerd: needs root")
SECONDS: dict = {}


def need(ok: bool, why: str) -> None:
    "A prerequisite: without it the test skips, or fails under CI (where every prerequisite must be there)."
    if not ok:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"online-bases test: {why}")


@pytest.fixture(scope="module")
def online(tmp_path_factory):
    "The registry, the test engine pointed at it (DOCKER_HOST for everything in this module) and the stand-ins."
    from mnist_course.images import image_exists, image_tag

    need(bool(shutil.which("dockerd") or shutil.which("dockerd", path="/usr/sbin")), "no dockerd (apt-get install docker.io)")
    need(bool(shutil.which("docker-registry") or shutil.which("docker-registry", path="/usr/bin")),
         "no docker-registry (apt-get install docker-registry)")
    need(all(image_exists(image_tag(n)) for n in ("busybox", "python")),
         "the shared engine lacks the course's busybox and python images (make setup)")
    from tests import online as o

    t0 = time.monotonic()
    saved = {k: os.environ.get(k) for k in ("DOCKER_HOST", "MNIST_COURSE_BASES")}
    with contextlib.ExitStack() as stack:
        stack.enter_context(o.cache_lock())
        registry = stack.enter_context(o.mirror_registry())
        # the engine after the registry: stopped first when the stack unwinds
        engine = stack.enter_context(o.online_engine(f"http://{registry.host}"))
        SECONDS["engine start"] = round(engine.start_seconds, 1)
        t1 = time.monotonic()
        digests = o.make_stand_ins(engine, registry)
        SECONDS["stand-ins"] = round(time.monotonic() - t1, 1)
        os.environ["DOCKER_HOST"] = engine.host  # the package, the lessons' kernels and their `docker` commands
        os.environ.pop("MNIST_COURSE_BASES", None)
        try:
            yield {"registry": registry, "engine": engine, "digests": digests, "stack": stack,
                   "out": tmp_path_factory.mktemp("online-notebooks")}
        finally:
            for k, v in saved.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    SECONDS["engine stop"] = round(engine.stop_seconds, 1)
    SECONDS["total"] = round(time.monotonic() - t0, 1)
    print(f"\nonline-bases test seconds: {SECONDS}")
    assert not o._processes_under(o.RUN), o._processes_under(o.RUN)
    assert not registry.running(), "the mirror registry still runs"


def mirror_served(online, repo: str, tag: str) -> bool:
    "Whether the mirror answered the engine's request for the manifest of official `repo:tag` (a HEAD or GET by tag, 200)."
    import re
    return re.search(rf'"(HEAD|GET) /v2/library/{repo}/manifests/{re.escape(tag)} HTTP/1.1" 200 ',
                     online["registry"].log.read_text()) is not None


def test_probe_says_official_through_the_mirror(online):
    from mnist_course.engine import bases_in_force, docker_client

    client = docker_client()
    assert client.course_endpoint == ("DOCKER_HOST", online["engine"].host)
    seen = bases_in_force(client, fresh=True)
    print(seen)
    mirror = f"http://{online['registry'].host}/"
    assert (seen["bases"], seen["reason"], seen["upstream"], seen["mirrors"]) == ("official", "probe", mirror, [mirror])
    assert seen["probe"]["detail"] == online["digests"]["hello-world:latest"]  # the stand-in's manifest, by digest
    assert mirror_served(online, "hello-world", "latest")
    SECONDS["probe online"] = seen["probe"]["seconds"]


def test_build_takes_the_official_base(online):
    from mnist_course.engine import docker_client
    from mnist_course.images import BASE_LABEL, OFFICIAL_PYTHON, build_image, image_tag, up_to_date

    client = docker_client()
    t0 = time.monotonic()
    record = build_image("torch-cpu", force=True, progress=False, client=client)
    SECONDS["build torch-cpu"] = round(time.monotonic() - t0, 1)
    print(record)
    assert (record["built"], record["base"]) == (True, OFFICIAL_PYTHON)
    assert mirror_served(online, "python", "3.11-slim-bookworm")
    built, base = client.images.get(image_tag("torch-cpu")), client.images.get(OFFICIAL_PYTHON)
    assert base.attrs["RepoDigests"] == [f"python@{online['digests'][OFFICIAL_PYTHON]}"], base.attrs["RepoDigests"]
    stand_in = base.attrs["RootFS"]["Layers"]
    assert built.attrs["RootFS"]["Layers"][:len(stand_in)] == stand_in
    assert len(built.attrs["RootFS"]["Layers"]) > len(stand_in)  # and the venv with torch on top
    assert built.labels[BASE_LABEL] == OFFICIAL_PYTHON and up_to_date("torch-cpu", client)


def lesson(online, name: str, **parameters) -> str:
    "Run lesson `name` in quick mode against the test engine; what its cells printed."
    t0 = time.monotonic()
    out, _ = execute(ROOT / "nbs" / f"{name}.ipynb", online["out"], parameters={"quick": True, **parameters})
    SECONDS[name] = round(time.monotonic() - t0, 1)
    assert not unexecuted(out), f"{name}: cells that failed or did not run: {unexecuted(out)} (see {out})"
    from tests.online import stream_text
    return stream_text(out)


def test_lesson_00_shows_official_bases(online):
    mirror = f"http://{online['registry'].host}/"
    text = lesson(online, "00_setup", doctor_images=["torch-cpu"])  # the one course image this engine holds
    assert f'registry mirrors: ["{mirror}"]' in text, text[-3000:]
    assert f"bases: official, chosen by probe: the engine fetched hello-world's manifest from {mirror} (the engine's registry mirror)" in text
    assert "torch-cpu      is built on python:3.11-slim-bookworm" in text
    assert "triton         is built on debian:bookworm-slim" in text
    assert "ok  image torch-cpu" in text and "on python:3.11-slim-bookworm" in text


def test_lesson_01_takes_the_online_branch(online):
    mirror = f"http://{online['registry'].host}/"
    text = lesson(online, "01_docker_basics")
    assert f"this run used hello-world from {mirror} (the engine's registry mirror of Docker Hub)" in text, text[:3000]
    assert "Hello from Docker!" in text and "stand-in for Docker Hub's hello-world" in text  # the upstream was a stand-in
    assert f"the tiny image of this lesson: alpine (pulled from {mirror}" in text
    assert f"the registry of section 9: registry:2 from {mirror}" in text
    for repo, tag in (("alpine", "latest"), ("registry", "2")):
        assert mirror_served(online, repo, tag), (repo, tag)
    import json
    results = json.loads((ROOT / "build" / "results" / "01_docker_basics.json").read_text())
    assert (results["docker_hub_reachable"], results["tiny_image"], results["registry"], results["registry_blobs"]) == \
        (True, "alpine", "registry:2", 5), results


def test_probe_says_local_once_the_mirror_is_gone(online):
    "Last: stops the registry. The engine then falls back to Docker Hub, which its proxy refuses at once."
    from mnist_course.engine import bases_in_force, docker_client

    registry = online["registry"]
    registry.process.terminate()
    registry.process.wait(timeout=10)
    seen = bases_in_force(docker_client(), fresh=True)
    print(seen)
    assert (seen["bases"], seen["reason"], seen["probe"]["reachable"]) == ("local", "probe", False), seen
    assert seen["probe"]["seconds"] < 12, seen
    SECONDS["probe offline"] = seen["probe"]["seconds"]
