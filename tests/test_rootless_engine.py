"""The rootless engine a test user runs (tests/rootless.py): it reports rootless mode, has no way out of its network
namespace, takes the course's images from the shared engine, serves published ports on the host's loopback only,
and leaves nothing behind. In it, the test user serves both model servers in publish mode with the course's own
commands (issue 19), and Triton's throughput there is compared with host mode on the shared engine."""
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import pytest

from tools.notebooks import ROOT
from tests.rootless import egress_problems, egress_rules, ensure_user, rootless_engine, run_as, user_processes

IMAGE = "mnist-course/busybox:latest"  # built on the shared engine by `make setup`
ARCHIVES = ROOT / "build" / "rootless"
# The venv's interpreter lives under /root, which the test user cannot enter; Debian's python3 of the same minor
# version runs the venv's packages (same ABI) and the checkout's code.
USER_PYTHON = "/usr/bin/python3"
USER_PYTHONPATH = f"{sysconfig.get_paths()['purelib']}:{ROOT}"
# what a course root needs besides build/, which the user must own
COURSE_LINKS = ("settings.ini", "mnist_course", "docker", "data")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="makes a test user and starts its engine: needs root")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def host_listeners(port: int) -> set[str]:
    "Local addresses (IPv4/IPv6, as /proc/net shows them) of the host's TCP sockets listening on `port`."
    found = set()
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(f).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                found.add(local.rsplit(":", 1)[0])
    return found


def ipv4_addresses(netns_pid: int | None = None) -> list[str]:
    "The IPv4 addresses of the host's interfaces, or of the network namespace process `netns_pid` is in."
    cmd = ["ip", "-4", "-o", "addr", "show"]
    if netns_pid:
        cmd = ["nsenter", "--target", str(netns_pid), "--net", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [f"{line.split()[1]} {line.split()[3]}" for line in out.splitlines()]


def get(url: str, timeout: float = 10, headers: dict | None = None) -> tuple[int, str]:
    "Status and body at `url`, retried until the server is up; no proxy (the server is on the host's loopback)."
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while True:
        try:
            with opener.open(urllib.request.Request(url, headers=headers or {}), timeout=2) as r:
                return r.status, r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def docker_at(host: str | None, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    "The `docker` command as root, against the engine at `host` (None: the shared engine)."
    r = subprocess.run(["docker", *(["-H", host] if host else []), *args], capture_output=True, text=True, timeout=600)
    if check and r.returncode:
        raise AssertionError(f"docker {' '.join(args)} at {host or 'the shared engine'} failed: {r.stderr.strip()}")
    return r


def image_id(host: str | None, tag: str) -> str | None:
    r = docker_at(host, "image", "inspect", "--format", "{{.Id}}", tag, check=False)
    return r.stdout.strip() if r.returncode == 0 else None


def copy_image(engine, image: str) -> float:
    "`docker save` on the shared engine piped into `docker load` run as the test user; return the seconds."
    t0 = time.monotonic()
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        load = run_as(engine, ["docker", "load"], stdin=save.stdout, timeout=300)
    finally:
        save.stdout.close()
        save.wait()
    assert save.returncode == 0, f"docker save {image} failed: {save.stderr.read().decode()}"
    assert load.returncode == 0, f"docker load as {engine.user} failed: {load.stderr}"
    return time.monotonic() - t0


def test_egress_check_sees_an_open_chain():
    "The rule check is not blind: a chain whose first rule accepts, or that has no drop, is reported."
    closed = {"iptables FORWARD": ["-P FORWARD ACCEPT", "-A FORWARD -o tap0 -j DROP", "-A FORWARD -j DOCKER-USER"],
              "iptables OUTPUT": ["-P OUTPUT ACCEPT", "-A OUTPUT -o tap0 -j DROP"]}
    assert egress_problems(closed) == []
    late = {**closed, "iptables FORWARD": ["-P FORWARD ACCEPT", "-A FORWARD -i docker0 ! -o docker0 -j ACCEPT",
                                           "-A FORWARD -o tap0 -j DROP"]}
    assert [p.split(":")[0] for p in egress_problems(late)] == ["iptables FORWARD"]
    assert [p.split(":")[0] for p in egress_problems({**closed, "iptables OUTPUT": ["-P OUTPUT ACCEPT"]})] == ["iptables OUTPUT"]


def test_no_engine_without_egress_rules(monkeypatch):
    "Where the rules cannot go in (here: the way out has another name), the engine is not handed over, and stops."
    import tests.rootless

    monkeypatch.setattr(tests.rootless, "UPLINK", "tap-missing")
    ran = []
    with pytest.raises(RuntimeError, match="no tap-missing in the rootless engine's namespace"):
        with rootless_engine() as engine:
            ran.append(engine)
    assert not ran
    pw, subids = ensure_user()
    assert not user_processes(pw.pw_uid, subids), user_processes(pw.pw_uid, subids)


@pytest.fixture(scope="module")
def engine():
    """One rootless engine for the tests below (each start and stop costs about 15 s); when the module is done it
    stops, and nothing of the test user may be left running."""
    with rootless_engine() as e:
        yield e
    left = user_processes(e.uid, e.subids)
    assert not left, f"processes of {e.user} left after its engine stopped: {left}"
    print(f"\nrootless engine: start {e.start_seconds:.1f} s, stop {e.stop_seconds:.1f} s")


def test_rootless_engine_serves_on_loopback_only(engine):
    token = secrets.token_hex(8)  # the page only this test's server holds
    port = free_port()
    docker = lambda *args: run_as(engine, ["docker", *args], timeout=120)
    info = json.loads(docker("info", "--format", "{{json .}}").stdout)
    assert "name=rootless" in info["SecurityOptions"], info["SecurityOptions"]
    load_seconds = copy_image(engine, IMAGE)
    # the server listens on every address of its container; only the host's loopback publishes it
    script = f"mkdir -p /www && echo {token} > /www/index.html && exec httpd -f -p 0.0.0.0:8080 -h /www"
    run = docker("run", "-d", "--name", "mnist-course-rootless-httpd", "-p", f"127.0.0.1:{port}:8080",
                 IMAGE, "sh", "-c", script)
    assert run.returncode == 0, run.stderr
    cid = run.stdout.strip()
    assert get(f"http://127.0.0.1:{port}/")[1].strip() == token

    assert docker("port", cid, "8080/tcp").stdout.split() == [f"127.0.0.1:{port}"]
    ports = json.loads(docker("inspect", "--format", "{{json .NetworkSettings.Ports}}", cid).stdout)
    assert [b["HostIp"] for b in ports["8080/tcp"]] == ["127.0.0.1"], ports
    # on the host, the one listener on the port is rootlesskit's (the user's), on 127.0.0.1 only
    assert host_listeners(port) == {"0100007F"}, host_listeners(port)

    # the bridge and the container's address exist in rootlesskit's namespace, not on the host
    net = json.loads(docker("network", "inspect", "bridge").stdout)[0]["IPAM"]["Config"][0]
    addr = json.loads(docker("inspect", "--format", "{{json .NetworkSettings}}", cid).stdout)["IPAddress"]
    inside, host = ipv4_addresses(engine.netns_pid), ipv4_addresses()
    print(f"\nbridge {net['Subnet']} gateway {net['Gateway']}; container {addr}; "
          f"namespace: {inside}; host: {host}")
    assert any(a.startswith("docker0 172.17.") for a in inside), inside
    assert not any(" 172.17." in a or a.startswith("docker0") for a in host), host
    assert addr.startswith("172.17.")

    # the drops stay first once Docker has added the container's rules; read, never tested with traffic
    rules = egress_rules(engine)
    assert not egress_problems(rules), rules
    print("egress rules in the namespace:", {k: [r for r in v if not r.startswith("-P")] for k, v in rules.items()})
    assert docker("rm", "-f", cid).returncode == 0
    deadline = time.monotonic() + 5  # the forwarders close the port once the container is gone
    while answers(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not answers(port), f"127.0.0.1:{port} still answers after its container was removed"
    print(f"rootless engine: load {IMAGE} {load_seconds:.1f} s")


# ---- issue 19: publish mode, with the course's own commands run by the test user ----

def user_python_problem() -> str | None:
    "Why the test user cannot run the course with Debian's python3 and the venv's packages, or None."
    if not Path(USER_PYTHON).exists():
        return f"{USER_PYTHON} is missing (apt-get install python3)"
    r = subprocess.run([USER_PYTHON, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                       capture_output=True, text=True)
    want = f"{sys.version_info.major}.{sys.version_info.minor}"
    if r.stdout.strip() != want:
        return f"{USER_PYTHON} is Python {r.stdout.strip() or '?'}, the venv's packages are built for {want}"
    return None


def user_course(engine, model: Path) -> Path:
    """A course root in the user's home: the checkout's code, images' Dockerfiles and data linked, a build/ of the
    user's own holding a copy of `model`, and a bin/ with what the venv's scripts cannot give the user."""
    root = engine.home / "course"
    for d in (root, root / "build", root / "build" / "models", root / "bin"):
        d.mkdir(exist_ok=True)
        os.chown(d, engine.uid, engine.gid)
    for name in COURSE_LINKS:
        link = root / name
        if link.is_symlink() and os.readlink(link) == str(ROOT / name):
            continue
        if link.is_dir() and not link.is_symlink():
            shutil.rmtree(link)
        else:
            link.unlink(missing_ok=True)
        link.symlink_to(ROOT / name)
        os.lchown(link, engine.uid, engine.gid)
    shutil.copyfile(model, root / "build" / "models" / model.name)
    os.chown(root / "build" / "models" / model.name, engine.uid, engine.gid)
    # `serve torchserve` runs torch-model-archiver from PATH; the venv's script names the venv's interpreter
    archiver = root / "bin" / "torch-model-archiver"
    archiver.write_text(f"#!/bin/sh\nexec {USER_PYTHON} -c 'import sys; from model_archiver.model_packaging import "
                        "generate_model_archive; sys.exit(generate_model_archive())' \"$@\"\n")
    archiver.chmod(0o755)
    os.chown(archiver, engine.uid, engine.gid)
    return root


def copy_images(engine, names: list[str], archive: Path, course_cli) -> dict:
    """Give the rootless engine the shared engine's course images `names` with the course's own commands: root runs
    `mnist-course images save`, the user `mnist-course images load` (`course_cli`). What the engine already holds with
    the same ids (the data root is kept between runs) is not copied again. Seconds of each and the archive's bytes."""
    from mnist_course.images import image_tag

    want = {n: image_id(None, image_tag(n)) for n in names}
    assert all(want.values()), f"not on the shared engine: {[n for n, i in want.items() if not i]}: run `make setup`"
    names = [n for n in names if image_id(engine.docker_host, image_tag(n)) != want[n]]  # only what it lacks
    if not names:
        return {"copied": [], "save_seconds": 0.0, "load_seconds": 0.0, "archive_bytes": 0}
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "mnist_course.cli", "images", "save", str(archive), "--only", *names],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"mnist-course images save failed (exit {r.returncode}):\n{r.stderr[-3000:]}"
    archive.chmod(0o644)  # the user's load reads it
    t1 = time.monotonic()
    try:
        loaded = course_cli("images", "load", str(archive), timeout=900)
        t2, size = time.monotonic(), archive.stat().st_size
    finally:
        # the kept data root makes the next run skip the copy: the archive (gigabytes) is not worth keeping
        archive.unlink(missing_ok=True)
    assert {r["tag"]: r["id"] for r in loaded} == {image_tag(n): want[n] for n in names}, loaded
    return {"copied": names, "save_seconds": round(t1 - t0, 1), "load_seconds": round(t2 - t1, 1), "archive_bytes": size}


def published(engine, container: str) -> tuple[dict, dict]:
    "A container's requested port bindings and the ports its network settings show, read by root from the host."
    attrs = json.loads(docker_at(engine.docker_host, "inspect", container).stdout)[0]
    return attrs["HostConfig"]["PortBindings"] or {}, attrs["NetworkSettings"]["Ports"] or {}


# what carries a published port's bytes in rootless mode: rootlesskit from the host's loopback into its namespace
# (its parent and its child, /proc/self/exe), then docker-proxy to the container
FORWARDERS = ("rootlesskit", "exe", "docker-proxy", "rootlesskit-docker-proxy")


def forwarders_cpu_seconds(engine) -> float:
    "CPU seconds the engine's port forwarders have used so far."
    ticks = 0
    for pid, cmd in user_processes(engine.uid).items():
        if os.path.basename(cmd.split()[0]) in FORWARDERS:
            try:
                ticks += sum(map(int, Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[11:13]))
            except (OSError, ValueError):
                pass  # ended meanwhile
    return ticks / os.sysconf("SC_CLK_TCK")


LOOP = {"batch": 1, "warmup": 0.3, "duration": 1.5}  # one load run of the mode comparison ...
CONCURRENCIES = (1, 4, 16)  # ... at each of these client counts, as the benchmark's single-image runs


def triton_load(url: str, inputs, concurrency: int) -> dict:
    "A short closed loop (`LOOP`) from the host against the Triton at `url`: images/s and latencies."
    from mnist_course.loadgen import closed_loop
    from mnist_course.triton import TritonClient

    clients = []

    def make_predict():
        c = TritonClient(url)
        clients.append(c)
        return c.infer

    try:
        r = closed_loop(make_predict, inputs, progress=False, concurrency=concurrency, **LOOP)
    finally:
        for c in clients:  # an open keep-alive connection would hold the server's stop for its exit timeout
            c.close()
    assert r["errors"] == 0, r["error_messages"]
    return {k: round(r[k], 2) for k in ("throughput", "p50_ms", "p99_ms", "seconds")} | \
        {"requests": r["requests"], "concurrency": concurrency}


def compare_modes(engine, urls: dict[str, str], inputs, rounds: int = 2) -> dict:
    """`rounds` sweeps over `CONCURRENCIES` against each Triton of `urls` (mode -> URL), the modes taking turns at
    each step, so that load from elsewhere on the shared machine falls on both; per mode every run and the best
    images/s (the benchmark's "best throughput"), and for publish mode the CPU its port forwarders used."""
    out, cpu = {mode: {"runs": []} for mode in urls}, 0.0
    for _ in range(rounds):
        for c in CONCURRENCIES:
            for mode, url in urls.items():
                before = forwarders_cpu_seconds(engine)
                out[mode]["runs"].append(triton_load(url, inputs, c))
                if mode == "publish":
                    cpu += forwarders_cpu_seconds(engine) - before
    for mode in out:
        out[mode]["best"] = max(r["throughput"] for r in out[mode]["runs"])
        out[mode]["best_by_concurrency"] = {c: max(r["throughput"] for r in out[mode]["runs"] if r["concurrency"] == c)
                                            for c in CONCURRENCIES}
    out["publish"]["forwarders_cpu_seconds"] = round(cpu, 2)
    return out


def test_publish_mode_serves_both_servers(engine):
    if problem := user_python_problem():
        why = f"the test user runs the course with {USER_PYTHON}: {problem}"
        if os.environ.get("CI"):  # where the suite is the gate, a missing interpreter must not pass as a skip
            pytest.fail(why)
        pytest.skip(why)
    from mnist_course.containers import free_port_base
    from mnist_course.torchserve import TorchServe
    from mnist_course.train import ensure_trained_model, load_mnist
    from mnist_course.triton import Triton

    servers = {"torchserve": TorchServe, "triton": Triton}
    model = ensure_trained_model()
    inputs = load_mnist("test")[0][:1000].numpy()
    serve_seconds, stop_seconds, predictions = {}, {}, {}
    course = user_course(engine, model)
    env = {"PYTHONPATH": USER_PYTHONPATH, "MNIST_COURSE_ROOT": str(course), "MNIST_COURSE_CACHE": "off",
           "PATH": f"{course / 'bin'}:{engine.env()['PATH']}"}

    def course_cli(*args, timeout=300) -> list[dict]:
        "`mnist-course ARGS` as the test user in its course root: the JSON lines it printed."
        r = run_as(engine, [USER_PYTHON, "-m", "mnist_course.cli", *args], env=env, cwd=course, timeout=timeout)
        assert r.returncode == 0, f"mnist-course {' '.join(args)} as {engine.user} failed (exit {r.returncode}):\n{r.stderr[-3000:]}"
        return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]

    r = run_as(engine, [USER_PYTHON, "-c", "import mnist_course, docker, requests, tritonclient.http"], env=env, cwd=course)
    assert r.returncode == 0, f"{engine.user} cannot import the course with {USER_PYTHON}: {r.stderr[-2000:]}"
    copied = copy_images(engine, list(servers), ARCHIVES / "images.tar", course_cli)
    print(f"\nrootless engine: start {engine.start_seconds:.1f} s; server images copied: {copied}")

    for kind, server in servers.items():
        ports = server.ports_at(free_port_base(len(server.port_names)))
        t0 = time.monotonic()
        info = course_cli("serve", kind, "--model", str(course / "build" / "models" / model.name),
                          "--port-base", str(min(ports.values())))[-1]
        serve_seconds[kind] = round(time.monotonic() - t0, 1)
        print(f"mnist-course serve {kind} as {engine.user}: {serve_seconds[kind]} s, {info['network']} mode")
        assert info["network"] == "publish", info
        for name, port in ports.items():  # every URL on the host's loopback, at the port chosen
            assert re.fullmatch(rf"(http://)?127\.0\.0\.1:{port}(/metrics)?", info[name]), (name, info[name])

        # root's view from the host: each port published on 127.0.0.1 only, and nothing else published
        asked, shown = published(engine, info["container"])
        want = {f"{p}/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(p)}] for p in ports.values()}
        assert asked == want, asked
        assert {k: v for k, v in shown.items() if v} == want, shown  # an image's EXPOSEd ports stay unpublished
        for port in ports.values():
            assert host_listeners(port) == {"0100007F"}, (port, host_listeners(port))
        if kind == "triton":
            assert get(f"{info['http']}/v2/health/ready")[0] == 200
        else:
            token = json.loads(Path(info["token_file"]).read_text())["inference"]["key"]
            status, body = get(f"{info['inference']}/ping", headers={"Authorization": f"Bearer {token}"})
            assert (status, json.loads(body)) == (200, {"status": "Healthy"}), (status, body)

        rows = course_cli("predict", kind, "0", "1", "2", "3", "4")
        predictions[kind] = [(row["label"], row["prediction"]) for row in rows]
        assert [row["test_index"] for row in rows] == [0, 1, 2, 3, 4], rows
        assert all(label == guess for label, guess in predictions[kind]), predictions[kind]

        if kind == "triton":  # the same loops against the same server in host mode on the shared engine
            with Triton.running(model, free_port_base(len(Triton.port_names)),
                                name="mnist-course-rootless-host-triton", owner="rootless-publish-vs-host") as s:
                assert s.network == "host", s.network
                load = compare_modes(engine, {"publish": info["http"], "host": s.urls["http"]}, inputs)

        t0 = time.monotonic()
        assert course_cli("stop", kind)[-1] == {"server": kind, "container": info["container"], "stopped": True}
        stop_seconds[kind] = round(time.monotonic() - t0, 1)
        assert docker_at(engine.docker_host, "ps", "-aq", "--filter", f"name=^/{info['container']}$").stdout == ""
        deadline = time.monotonic() + 5
        while (open_ports := [p for p in ports.values() if answers(p)]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not open_ports, f"{kind}: ports {open_ports} still answer after `mnist-course stop {kind}`"

    rules = egress_rules(engine)
    assert not egress_problems(rules), rules

    ratio = load["publish"]["best"] / load["host"]["best"]
    result = {"engine_start_seconds": round(engine.start_seconds, 1),
              "image_copy": copied, "serve_seconds": serve_seconds, "stop_seconds": stop_seconds,
              "predictions": predictions, "triton_loop": {**LOOP, "concurrencies": CONCURRENCIES}, "triton": load, "publish_over_host_best": round(ratio, 3),
              "load_average": os.getloadavg(), "cpus": os.cpu_count(),
              "issue_19_budget": "publish >= 0.85 x host's best (printed, not asserted: the machine is shared)"}
    (ARCHIVES / "publish-vs-host.json").write_text(json.dumps(result, indent=1))
    print(f"rootless engine: images {copied}")
    print(f"serve in publish mode: {serve_seconds} s; stop: {stop_seconds} s; predictions (label, prediction): {predictions}")
    publish_seconds = len(load["publish"]["runs"]) * (LOOP["warmup"] + LOOP["duration"])
    for mode in ("host", "publish"):
        print(f"Triton {mode} mode, batch {LOOP['batch']}, best images/s by client count: {load[mode]['best_by_concurrency']}")
    print(f"best publish/host = {load['publish']['best']:.0f}/{load['host']['best']:.0f} = {ratio:.2f} (issue 19 asks "
          f">= 0.85); the port forwarders used {load['publish']['forwarders_cpu_seconds']} CPU-s in "
          f"{publish_seconds:.1f} s of publish-mode loops on {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")


# what make test runs in publish mode (issue 19); MNIST_COURSE_PUBLISH_LESSONS="01_docker_basics 10_serving_benchmark ..."
# runs others by hand (lesson 10, the benchmark with perf_analyzer beside the published servers, passes: 72 s)
# the images each lesson runs on the engine, copied into the rootless engine before it runs there
LESSON_IMAGES = {"01_docker_basics": ("busybox", "hello-world"), "06_torchserve_handler": ("torchserve",),
                 "07_torchserve_deploy": ("torchserve",), "08_triton_model_repository": ("triton",),
                 "09_triton_deploy": ("triton",), "10_serving_benchmark": ("torchserve", "triton", "perf-analyzer"),
                 "11_distributed_training": ("train-cpu",)}
PUBLISH_LESSONS = tuple(os.environ.get("MNIST_COURSE_PUBLISH_LESSONS", "").split()) or \
    ("01_docker_basics", "07_torchserve_deploy", "09_triton_deploy")


def test_lessons_in_publish_mode(engine, tmp_path):
    """As the rootless engine's user, with a clone and venv of its own and the images handed over as a file, lessons
    01, 07 and 09 run in quick mode and pass in publish mode; the user's engine is left with no container."""
    from mnist_course.train import ensure_trained_model, trained_model_cache
    from tests.learners import GROUP, Learner, fresh_clone, seed_model, shared_cache
    from tests.test_learners import RUN_LESSON

    shared_cache()
    model, key_path = ensure_trained_model(), trained_model_cache()
    if key_path:
        seed_model(model, key_path)
    log = tmp_path / "rootless-lessons.log"
    log.touch()
    seconds = {}
    # in the learners' group for the shared course cache only: not in `docker`, so the shared engine is out of reach
    subprocess.run(["usermod", "--append", "--groups", GROUP, engine.user], check=True, capture_output=True)
    learner = Learner(engine.user, engine.uid, engine.gid, engine.home, group_names=(GROUP,),
                      docker_host=engine.docker_host,
                      # pip reaches the package index as for any learner; the engine itself keeps its proxy to nowhere
                      extra_env={"XDG_RUNTIME_DIR": str(engine.runtime_dir)})

    def step(name, argv, timeout=900):
        t0 = time.monotonic()
        r = learner.run(argv, timeout=timeout, log=log)
        seconds[name] = round(time.monotonic() - t0, 1)
        assert r.returncode == 0, f"{name} as {engine.user} failed (exit {r.returncode}):\n" + \
            "\n".join(log.read_text().splitlines()[-40:])

    seconds["clone"] = round(fresh_clone(learner), 1)
    step("venv", ["make", "venv", "PYTHON=/usr/bin/python3"])

    def course_cli(*args, timeout=900) -> list[dict]:
        r = learner.run([str(learner.clone / ".venv" / "bin" / "mnist-course"), *args], timeout=timeout)
        assert r.returncode == 0, f"mnist-course {' '.join(args)} as {engine.user} failed:\n{r.stdout[-3000:]}"
        return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]

    names = list(dict.fromkeys(["busybox", *(n for nb in PUBLISH_LESSONS for n in LESSON_IMAGES.get(nb, ()))]))
    seconds["images"] = copy_images(engine, names, ARCHIVES / "lesson-images.tar", course_cli)
    # set-up as the learner would run it: the loaded images are taken as up to date, nothing is built
    built = [r for r in course_cli("setup", "--only", *names) if r.get("step") == "image"]
    assert [r["built"] for r in built] == [False] * len(names), built
    engine_line = next(r for r in course_cli("setup", "--only", "busybox") if r.get("step") == "engine")
    assert (engine_line["kind"], engine_line["network"]) == ("rootless", "publish"), engine_line
    for nb in PUBLISH_LESSONS:
        step(nb, [".venv/bin/python", "-c", RUN_LESSON, nb])
    left = docker_at(engine.docker_host, "ps", "-aq").stdout.split()
    assert not left, f"the lessons left {len(left)} container(s) on {engine.user}'s engine"
    # lesson 01's registry runs on the host's loopback, out of this engine's reach: the lesson says so and goes on
    if "01_docker_basics" in PUBLISH_LESSONS:
        executed = (learner.clone / "build" / "test-notebooks" / "01_docker_basics.ipynb").read_text()
        assert "skipped: section 9 needs an engine that shares this host's network" in executed
    print(f"\nlessons in publish mode as {engine.user}: {json.dumps(seconds)}")
