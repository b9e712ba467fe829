"""A test-only engine whose Docker Hub is a registry on 127.0.0.1, so that the course's online branch runs here.

`mirror_registry()` runs Debian's `docker-registry` on a free port of 127.0.0.1 (the package's `local_registry`, with
its own configuration); `online_engine(mirror)` starts a second rootful dockerd for the test alone, with its own data
root, exec root, pid file and unix socket, no bridge and no iptables, `--registry-mirror` pointing at that registry
and a proxy that points nowhere, so a pull the mirror cannot serve fails at once instead of leaving the machine.
`make_stand_ins(engine, registry)` builds, on the test engine only, images made from the course's own busybox and
Python base under the official names the online branch pulls (`library/hello-world`, `library/alpine`,
`library/python:3.11-slim-bookworm`, `library/registry:2`), pushes them into the registry and removes them from the
engine again, so that `docker pull alpine` and `FROM python:3.11-slim-bookworm` fetch them through the mirror.

Nothing here touches the shared engine but `docker save` of two course images, and no stand-in ever reaches an
engine or a registry a learner uses. Both servers are stopped by their pid when their `with` block ends, whatever
happened in it; every container of the test engine is removed first.

The test engine's data root and the registry's storage stay in a root-only cache folder between runs (`CACHE`,
about 1.5 GB): the stand-ins' layers, the course images loaded from the shared engine and the layer cache of the
image build make the next run quick. Removing `CACHE` starts from nothing.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.rootless import NO_EGRESS

CACHE = Path("/var/cache/mnist-course-online")  # kept between runs: the engine's data root, the registry's storage
RUN = Path("/run/mnist-course-online")  # the engine's exec root, pid file and socket: made and removed per run
SOCKET = RUN / "docker.sock"
OFFICIAL = {  # official name the online branch pulls -> what its stand-in is made of
    "hello-world:latest": "the course's busybox printing a greeting that says it is a stand-in",
    "alpine:latest": "the course's busybox image (a shell and the usual tools, as Alpine's are busybox too)",
    "python:3.11-slim-bookworm": "the course's Python base (Debian bookworm + Python 3.11, made with debootstrap)",
    "registry:2": "the course's Python base + the host's docker-registry (it links only libc) with registry:2's layout",
}
HELLO = """
Hello from Docker!
This message comes from the mnist-course tests' stand-in for Docker Hub's hello-world. A registry on
127.0.0.1 plays Docker Hub as the test engine's registry mirror, and holds images made on this machine
under the official names. Seeing this means the online branch ran: the daemon pulled this image through
its mirror, created a container from it, and streamed its output to the docker client.
"""
# registry:2's own layout: its configuration file, storage in /var/lib/registry, address and secret from the environment
REGISTRY_YML = """\
version: 0.1
log:
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
"""


def docker(host: str | None, *args: str, input: bytes | None = None, timeout: float = 600) -> str:
    "The `docker` command against the engine at `host` (None: the shared one); its stdout, or an error with stderr."
    r = subprocess.run(["docker", *(["-H", host] if host else []), *args], input=input, capture_output=True,
                       timeout=timeout)
    if r.returncode:
        raise RuntimeError(f"docker {' '.join(args)} at {host or 'the shared engine'} failed: "
                           f"{r.stderr.decode(errors='replace').strip()[-1500:]}")
    return r.stdout.decode(errors="replace")


@contextlib.contextmanager
def cache_lock():
    "The cache folder, held by this run alone (a second run at the same time would share the engine's data root)."
    CACHE.mkdir(mode=0o700, exist_ok=True)
    os.chmod(CACHE, 0o700)
    with open(CACHE / "lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another run of the online test holds {CACHE}/lock") from None
        yield CACHE


@contextlib.contextmanager
def mirror_registry():
    "Debian's docker-registry on a free port of 127.0.0.1, storage in the cache; yields the package's `Registry`."
    from mnist_course.containers import free_port
    from mnist_course.registry import local_registry

    with local_registry(free_port(5600), storage=CACHE / "registry") as reg:
        yield reg


@dataclass
class Engine:
    "The running test engine: where it listens, its process and its log."
    host: str  # for DOCKER_HOST and `docker -H`
    proc: subprocess.Popen
    log: Path
    start_seconds: float = 0.0
    stop_seconds: float = 0.0


def _mounts_under(*roots: Path) -> list[str]:
    "Mount points under `roots`, deepest first (a stopped dockerd may leave its netns file mounted)."
    points = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    return sorted((p for p in points if any(p == str(r) or p.startswith(f"{r}/") for r in roots)), key=len, reverse=True)


def _processes_under(root: Path) -> dict[int, str]:
    "Live processes whose command line names `root`: the test engine's dockerd, its containerd and shims."
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(root) in cmd and state != "Z":
            found[int(pid)] = cmd[:160]
    return found


@contextlib.contextmanager
def online_engine(mirror: str,  # the registry that plays Docker Hub, e.g. http://127.0.0.1:5600
                  timeout: float = 60):
    "A second rootful dockerd for this test alone, Docker Hub's mirror at `mirror`; stopped by its pid when the block ends."
    if _processes_under(RUN):
        raise RuntimeError(f"a test engine of an earlier run still runs: {_processes_under(RUN)}")
    for point in _mounts_under(RUN):
        subprocess.run(["umount", point], check=True)
    shutil.rmtree(RUN, ignore_errors=True)
    RUN.mkdir(mode=0o700)
    (RUN / "daemon.json").write_text("{}")  # not /etc/docker/daemon.json: only the flags below
    log = CACHE / "dockerd.log"
    argv = ["dockerd", "--data-root", str(CACHE / "docker"), "--exec-root", str(RUN / "exec"),
            "--pidfile", str(RUN / "docker.pid"), "--config-file", str(RUN / "daemon.json"), "-H", f"unix://{SOCKET}",
            "--bridge=none", "--iptables=false", "--ip6tables=false", "--registry-mirror", mirror]
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
    env.update(NO_EGRESS, PATH=f"/usr/sbin:/usr/bin:/sbin:/bin:{os.environ.get('PATH', '')}")
    t0 = time.monotonic()
    with open(log, "wb") as out:  # this run's log only (the folder is kept between runs)
        out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    engine = Engine(f"unix://{SOCKET}", proc, log)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the test engine exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
            if SOCKET.exists() and subprocess.run(["docker", "-H", engine.host, "version"], capture_output=True).returncode == 0:
                break
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"the test engine did not answer within {timeout:g} s:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        engine.start_seconds = time.monotonic() - t0
        yield engine
    finally:
        t1 = time.monotonic()
        try:
            if proc.poll() is None:
                ids = docker(engine.host, "ps", "-aq", timeout=60).split()
                if ids:
                    docker(engine.host, "rm", "-f", "-v", *ids, timeout=120)
        finally:
            if proc.poll() is None:
                proc.terminate()  # dockerd stops its containerd with it
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            for pid in _processes_under(RUN):  # what did not go with it: killed by pid
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            for point in _mounts_under(RUN, CACHE / "docker"):
                subprocess.run(["umount", "-l", point], capture_output=True)
            shutil.rmtree(RUN, ignore_errors=True)
            engine.stop_seconds = time.monotonic() - t1


def _copy_in(engine: Engine, tag: str) -> None:
    "`docker save` the course image `tag` from the shared engine into the test engine, unless it holds the same image."
    want = docker(None, "image", "inspect", "-f", "{{.Id}}", tag).strip()
    have = subprocess.run(["docker", "-H", engine.host, "image", "inspect", "-f", "{{.Id}}", tag],
                          capture_output=True, text=True).stdout.strip()
    if have != want:
        saved = subprocess.run(["docker", "save", tag], capture_output=True, check=True).stdout
        docker(engine.host, "load", input=saved)


def _build(engine: Engine, tag: str, dockerfile: str, files: dict[str, bytes | Path] = {}) -> None:
    "Build `dockerfile` with `files` in its context on the test engine as `tag`."
    with tempfile.TemporaryDirectory(prefix="mnist-course-online-") as ctx:
        (Path(ctx) / "Dockerfile").write_text(dockerfile)
        for name, content in files.items():
            target = Path(ctx) / name
            if isinstance(content, Path):
                shutil.copy2(content, target)
            else:
                target.write_bytes(content)
        docker(engine.host, "build", "-q", "--network", "none", "-t", tag, ctx)


def make_stand_ins(engine: Engine, registry) -> dict[str, str]:
    "Build the stand-ins of `OFFICIAL` on the test engine, push them to `registry` under the official names, remove them from the engine; official name -> the digest pushed."
    from mnist_course.images import image_tag
    from mnist_course.registry import registry_binary

    busybox, python = image_tag("busybox"), image_tag("python")
    for tag in (busybox, python):
        _copy_in(engine, tag)
    local = {name: registry.ref(f"library/{name}") for name in OFFICIAL}
    _build(engine, local["hello-world:latest"], f'FROM {busybox}\nCOPY hello.txt /hello.txt\nCMD ["cat", "/hello.txt"]\n',
           {"hello.txt": HELLO.encode()})
    docker(engine.host, "tag", busybox, local["alpine:latest"])
    docker(engine.host, "tag", python, local["python:3.11-slim-bookworm"])
    _build(engine, local["registry:2"],
           f"FROM {python}\nCOPY registry /bin/registry\nCOPY config.yml /etc/docker/registry/config.yml\n"
           'VOLUME ["/var/lib/registry"]\nEXPOSE 5000\nENTRYPOINT ["/bin/registry", "serve"]\n'
           'CMD ["/etc/docker/registry/config.yml"]\n',
           {"registry": Path(registry_binary()), "config.yml": REGISTRY_YML.encode()})
    digests = {}
    for name, ref in local.items():
        pushed = docker(engine.host, "push", ref)
        digests[name] = next(w for line in pushed.splitlines() if "digest: " in line for w in line.split() if w.startswith("sha256:"))
    # gone from the engine again, so that the online branch pulls each through the mirror
    docker(engine.host, "rmi", *local.values())
    present = [n for n in OFFICIAL if subprocess.run(["docker", "-H", engine.host, "image", "inspect", n],
                                                      capture_output=True).returncode == 0]
    if present:
        docker(engine.host, "rmi", "-f", *present)
    return digests


def stream_text(notebook: Path) -> str:
    "Everything the executed notebook's cells printed."
    nb = json.loads(notebook.read_text())
    return "\n".join("".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []))
