"""A Docker engine run by an ordinary user (Docker's rootless mode), for the tests that show the course works for
a learner without root.

`rootless_engine()` makes the test user when it is missing (a system user with a home and a subordinate uid/gid
range of its own), starts Debian's `dockerd-rootless.sh` as that user, yields where its socket is, and on the way
out stops its containers, the engine and everything the user still runs, whatever happened in between. `run_as()`
runs a command as that user, talking to that engine.

The engine's network lives in rootlesskit's own network namespace: Docker's default bridge and its 172.17.x
addresses exist only in there. A published port is opened on the host by rootlesskit itself (its builtin port
driver), so servers listen on 0.0.0.0 inside their container and are published on the host's loopback only
(`-p 127.0.0.1:P:P`). The namespace's one way out is slirp4netns' tap device; before the engine is handed over,
iptables rules in the namespace drop everything leaving through it, so neither the engine nor a container can
reach another machine. Published ports do not need it: rootlesskit carries their connections into the namespace
over a socket of its own, and the answers go back the same way.

The engine's images stay in the user's home between runs (`~/.local/share/docker`), so an image copied in once
makes the next run fast; `fresh=True` starts from an empty engine.
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.leftovers import MARKER, _zombie
from tools.processes import cmdline
from tools.notebooks import ROOT

SCRIPT = "/usr/share/docker.io/contrib/dockerd-rootless.sh"
# what dockerd-rootless.sh runs -> the Debian package that provides it
PACKAGES = {"rootlesskit": "rootlesskit", "rootlesskit-docker-proxy": "rootlesskit",  # namespaces, published ports
            "slirp4netns": "slirp4netns",  # the namespace's only way out, and what answers its DNS
            "newuidmap": "uidmap", "newgidmap": "uidmap",  # map the subordinate range into the namespace
            "iptables": "iptables",  # dockerd's NAT for the bridge inside the namespace, and the rules that close it
            "nsenter": "util-linux",  # root enters the namespace to put those rules in
            "dockerd": "docker.io", SCRIPT: "docker.io"}
# helpers live in /usr/sbin (dockerd, iptables) and /usr/bin (rootlesskit, newuidmap); /usr/local/bin first so the
# user's `docker` is the same client as root's
PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
# any pull the engine or a client tries fails at once on the host instead of leaving the machine
NO_EGRESS = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost",
             "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "no_proxy": "127.0.0.1,localhost"}
# the namespace's only link to the outside: slirp4netns' tap device (rootlesskit names it so)
UPLINK = "tap0"
SUBID_COUNT = 65536
SUBID_MIN = 100000  # where Debian's useradd starts handing out ranges (SUB_UID_MIN in /etc/login.defs)


@dataclass
class RootlessEngine:
    "A running rootless engine: who runs it, where its socket is, its process, and how long it took."
    user: str
    uid: int
    gid: int
    home: Path
    subids: range  # the host uids/gids that the engine's containers may run as, besides `uid`
    runtime_dir: Path  # XDG_RUNTIME_DIR: the socket, the exec root and dockerd's pid file
    log: Path
    pid: int = 0  # dockerd-rootless.sh, i.e. rootlesskit's parent, leader of the engine's process group
    netns_pid: int = 0  # rootlesskit's child: a process inside the engine's network namespace
    start_seconds: float = 0.0
    stop_seconds: float = 0.0  # set once the with-block has left
    data_root: Path = field(init=False)

    def __post_init__(self):
        self.data_root = self.home / ".local" / "share" / "docker"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.runtime_dir}/docker.sock"

    def env(self) -> dict:
        "The clean environment the user's commands run with (no variable of the caller leaks in)."
        env = {"HOME": str(self.home), "USER": self.user, "LOGNAME": self.user, "PATH": PATH, "LANG": "C.UTF-8",
               "XDG_RUNTIME_DIR": str(self.runtime_dir), "DOCKER_HOST": self.docker_host, **NO_EGRESS}
        if "MNIST_COURSE_IMAGES" in os.environ:  # the images of a run that keeps them under another prefix
            env["MNIST_COURSE_IMAGES"] = os.environ["MNIST_COURSE_IMAGES"]
        if MARKER in os.environ:  # so the suite's leftover check counts what the user starts as the suite's
            env[MARKER] = os.environ[MARKER]
        return env


def ensure_packages() -> list[str]:
    "Install (root with apt) what dockerd-rootless.sh needs and is missing; return what was installed."
    from mnist_course.engine import ensure_host_packages, missing_host_packages

    installed = ensure_host_packages(PACKAGES)
    # checked here too: where it cannot install (no root, no apt) the package's helper may just return
    if missing := sorted(set(missing_host_packages(PACKAGES))):
        raise RuntimeError(f"a rootless Docker engine needs the Debian packages {' '.join(missing)}: "
                           f"apt-get install {' '.join(missing)} (or your distribution's rootlesskit, "
                           "slirp4netns, uidmap, iptables and Docker's dockerd-rootless.sh)")
    return installed


def _subid_entries(path: Path) -> list[tuple[str, int, int]]:
    "(owner, first, count) of each range in /etc/subuid or /etc/subgid."
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            out.append((parts[0], int(parts[1]), int(parts[2])))
    return out


def _own_range(entries, user: str, uid: int) -> range | None:
    "The user's first range of at least SUBID_COUNT ids (an entry may name the user or its uid)."
    for owner, first, count in entries:
        if owner in (user, str(uid)) and count >= SUBID_COUNT:
            return range(first, first + count)
    return None


def ensure_user(user: str = "mnist-rootless") -> tuple[pwd.struct_passwd, range]:
    """The system user `user` with a home and the same subordinate uid and gid range of SUBID_COUNT ids, made
    where missing; a user left by an earlier run is used as it is."""
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        r = subprocess.run(["useradd", "--system", "--user-group", "--create-home", "--home-dir", f"/home/{user}",
                            "--shell", "/bin/bash", "--comment", "mnist-course rootless Docker tests", user],
                           capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"useradd {user} failed (exit {r.returncode}): {r.stderr.strip()}")
        pw = pwd.getpwnam(user)
    home = Path(pw.pw_dir)
    if not home.is_dir():  # a user whose home was removed by hand
        home.mkdir(parents=True, mode=0o755)
        os.chown(home, pw.pw_uid, pw.pw_gid)
    files = Path("/etc/subuid"), Path("/etc/subgid")
    have = [_own_range(_subid_entries(f), user, pw.pw_uid) for f in files]
    if have[0] and have[0] == have[1]:
        return pw, have[0]
    # one range past every range either file hands out, so it overlaps nobody's uids or gids
    first = max([SUBID_MIN] + [s + c for f in files for _, s, c in _subid_entries(f)])
    ids = f"{first}-{first + SUBID_COUNT - 1}"
    for f in files:
        f.touch(mode=0o644, exist_ok=True)
    r = subprocess.run(["usermod", "--add-subuids", ids, "--add-subgids", ids, user], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"usermod --add-subuids/--add-subgids {ids} {user} failed: {r.stderr.strip()}")
    return pw, range(first, first + SUBID_COUNT)


def user_processes(uid: int, subids: range = range(0)) -> dict[int, str]:
    "Live processes running as `uid` or as one of `subids` (the engine's containers): pid -> command line."
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            uids = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                        if line.startswith("Uid:")).split()[1:]
        except (OSError, StopIteration):
            continue
        if any(int(u) == uid or int(u) in subids for u in uids) and not _zombie(pid):
            found[int(pid)] = " ".join(cmdline(pid))[:160]
    return found


def _demote(engine: RootlessEngine) -> dict:
    "Popen arguments that run the child as the engine's user, with none of root's groups, in a session of its own."
    return {"user": engine.uid, "group": engine.gid, "extra_groups": [], "start_new_session": True}


def run_as(engine: RootlessEngine, argv: list[str],
           env: dict | None = None,  # added to (and overriding) the user's clean environment
           timeout: float | None = None,  # seconds; then the command's whole process group is killed
           cwd: str | os.PathLike | None = None,  # default: the user's home
           **popen) -> subprocess.CompletedProcess:
    "Run `argv` as the engine's user with DOCKER_HOST set to the engine; capture its output as text."
    popen = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **popen}
    proc = subprocess.Popen(argv, env={**engine.env(), **(env or {})}, cwd=cwd or engine.home,
                            **_demote(engine), **popen)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:  # a timeout or Ctrl-C: nothing the command started may outlive it
        _kill_group(proc.pid)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _private_runtime_dir(engine: RootlessEngine) -> None:
    "An empty XDG_RUNTIME_DIR only the user can enter (an earlier run's socket and pid files are stale by now)."
    d = engine.runtime_dir
    if d.is_symlink() or d.is_file():
        d.unlink()
    elif d.exists():
        shutil.rmtree(d)
    d.mkdir(mode=0o700)
    os.chown(d, engine.uid, engine.gid)
    os.chmod(d, 0o700)


def _ppid(pid: str) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def namespace_pid(engine: RootlessEngine) -> int:
    "The pid of rootlesskit's child: the engine's process that lives in the network namespace rootlesskit made."
    host = os.readlink("/proc/self/ns/net")
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if _ppid(pid) != engine.pid:
            continue
        try:
            if os.readlink(f"/proc/{pid}/ns/net") != host:  # slirp4netns, the other child, stays on the host's
                found.append(int(pid))
        except OSError:
            continue
    if len(found) != 1:
        raise RuntimeError(f"expected one child of rootlesskit (pid {engine.pid}) in a network namespace of its own, "
                           f"found {found}; last lines of {engine.log}:\n{_tail(engine.log)}")
    return found[0]


def in_namespace(engine: RootlessEngine, argv: list[str]) -> subprocess.CompletedProcess:
    "Run `argv` as root in the engine's network namespace (the host's mounts and programs, its network)."
    return subprocess.run(["nsenter", "--target", str(engine.netns_pid), "--net", *argv],
                          capture_output=True, text=True, timeout=30)


def _iptables() -> list[str]:
    "iptables, and ip6tables where the host has it."
    return ["iptables", *(["ip6tables"] if shutil.which("ip6tables", path=PATH) else [])]


EGRESS_CHAINS = ("FORWARD", "OUTPUT")  # what containers route out, and what the engine itself sends
DROP_RULE = "-o {uplink} -j DROP"


def egress_rules(engine: RootlessEngine) -> dict[str, list[str]]:
    "`iptables -S CHAIN` of each egress chain in the engine's namespace, for iptables and ip6tables: 'tool CHAIN' -> lines."
    out = {}
    for tool in _iptables():
        for chain in EGRESS_CHAINS:
            r = in_namespace(engine, [tool, "-w", "-S", chain])
            if r.returncode:
                raise RuntimeError(f"{tool} -S {chain} in the rootless engine's namespace failed: {r.stderr.strip()}")
            out[f"{tool} {chain}"] = r.stdout.splitlines()
    return out


def egress_problems(rules: dict[str, list[str]], uplink: str = UPLINK) -> list[str]:
    """What lets traffic leave through `uplink`, judging by the rule lists of `egress_rules`: a chain whose first
    rule is not the drop (Docker's ACCEPT rules for its bridge come after it, and must stay there)."""
    want = DROP_RULE.format(uplink=uplink)
    problems = []
    for name, lines in rules.items():
        chain = name.split()[1]
        first = next((line for line in lines if line.startswith(f"-A {chain} ")), None)
        if first != f"-A {chain} {want}":
            problems.append(f"{name}: first rule is {first!r}, not '-A {chain} {want}'")
    return problems


def close_egress(engine: RootlessEngine) -> dict[str, list[str]]:
    """Drop, at the top of FORWARD and OUTPUT in the engine's namespace, whatever leaves through slirp4netns' tap
    device; return the rules as listed afterwards. Raises unless the listing shows the drops in force."""
    engine.netns_pid = namespace_pid(engine)
    links = in_namespace(engine, ["ip", "-o", "link", "show"])
    if links.returncode or f": {UPLINK}:" not in links.stdout:
        raise RuntimeError(f"no {UPLINK} in the rootless engine's namespace (pid {engine.netns_pid}), so no known way "
                           f"out to close: {links.stdout or links.stderr}")
    for tool in _iptables():
        for chain in EGRESS_CHAINS:
            r = in_namespace(engine, [tool, "-w", "-I", chain, "1", *DROP_RULE.format(uplink=UPLINK).split()])
            if r.returncode:
                raise RuntimeError(f"{tool} -I {chain} ... in the rootless engine's namespace failed "
                                   f"(exit {r.returncode}): {r.stderr.strip()}")
    rules = egress_rules(engine)
    if problems := egress_problems(rules, UPLINK):
        raise RuntimeError("the rootless engine's namespace still lets traffic out: " + "; ".join(problems))
    return rules


def _wait_ready(engine: RootlessEngine, proc: subprocess.Popen, timeout: float) -> None:
    "Until `docker info` answers through the user's socket; the log's tail if the engine dies or never answers."
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"dockerd-rootless.sh exited with {proc.returncode} before answering; "
                               f"last lines of {engine.log}:\n{_tail(engine.log)}")
        if engine.runtime_dir.joinpath("docker.sock").exists():
            r = run_as(engine, ["docker", "info", "--format", "{{.ServerVersion}}"], timeout=10)
            if r.returncode == 0:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the rootless engine of {engine.user} did not answer at {engine.docker_host} "
                               f"within {timeout:.0f} s; last lines of {engine.log}:\n{_tail(engine.log)}")
        time.sleep(0.3)


@contextmanager
def _sigint_deferred():
    "Let a Ctrl-C during cleanup arrive after it, so the cleanup that protects the machine runs to its end."
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pressed = []
    old = signal.signal(signal.SIGINT, lambda *_: pressed.append(1))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if pressed:
        raise KeyboardInterrupt


def _remove_containers(engine: RootlessEngine, proc: subprocess.Popen | None) -> None:
    "Kill and remove every container of a running engine."
    if proc is None or proc.poll() is not None or not engine.runtime_dir.joinpath("docker.sock").exists():
        return
    # dockerd would stop them itself, but with each container's stop timeout; killing them first is quick,
    # and removing them keeps the kept data root from collecting containers run after run
    ids = run_as(engine, ["docker", "ps", "-aq"], timeout=30).stdout.split()
    if ids:
        run_as(engine, ["docker", "rm", "-f", *ids], timeout=60)


def _end_processes(engine: RootlessEngine, proc: subprocess.Popen | None, grace: float) -> dict[int, str]:
    """End the engine's process group (SIGTERM, then SIGKILL after `grace` s), then kill whatever the user still
    runs; return the processes that had to be killed after the group ended."""
    if proc is not None:
        _kill_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.wait()
    # containerd and the shims run in process groups of their own, and should end with the engine
    deadline = time.monotonic() + grace
    while (left := user_processes(engine.uid, engine.subids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while user_processes(engine.uid, engine.subids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@contextmanager
def rootless_engine(user: str = "mnist-rootless",  # the test user (made when missing)
                    fresh: bool = False,  # start from an empty data root, dropping the images kept from earlier runs
                    timeout: float = 60,  # seconds to wait for the engine to answer
                    log: str | os.PathLike | None = None,  # the engine's log (default build/rootless/<user>-dockerd.log)
                    grace: float = 20,  # seconds the engine gets to stop before it is killed
                    ):
    "A rootless Docker engine run by `user`, with no way out of its network namespace but published ports; stopped with everything the user runs when the block ends."
    if os.geteuid() != 0:
        raise PermissionError("rootless_engine() makes a user and starts its engine: run it as root")
    ensure_packages()
    pw, subids = ensure_user(user)
    engine = RootlessEngine(user=user, uid=pw.pw_uid, gid=pw.pw_gid, home=Path(pw.pw_dir), subids=subids,
                            runtime_dir=Path(f"/tmp/mnist-course-rootless-{pw.pw_uid}"),
                            log=Path(log) if log else ROOT / "build" / "rootless" / f"{user}-dockerd.log")
    if stale := user_processes(engine.uid, engine.subids):
        # another run (or one killed before its cleanup) still owns the user's engine: leave it to its owner
        raise RuntimeError(f"{user} already runs processes (another test run, or a killed one): "
                           f"{sorted(stale.items())}; stop them (kill -- -<pgid of dockerd-rootless.sh>) and retry")
    _private_runtime_dir(engine)
    if fresh and engine.data_root.exists():
        shutil.rmtree(engine.data_root)
    engine.log.parent.mkdir(parents=True, exist_ok=True)
    proc = None
    t0 = time.monotonic()
    try:
        with open(engine.log, "wb") as out:  # opened by root: the user needs no write access to build/
            out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} start as {user} ---\n".encode())
            out.flush()
            env = {k: v for k, v in engine.env().items() if k != "DOCKER_HOST"}
            # named, not left to the script's default: slirp4netns' port driver would carry published ports
            # through the tap device, which close_egress() closes
            env["DOCKERD_ROOTLESS_ROOTLESSKIT_PORT_DRIVER"] = "builtin"
            proc = subprocess.Popen([SCRIPT], env=env, cwd=engine.home, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, **_demote(engine))
        engine.pid = proc.pid
        _wait_ready(engine, proc, timeout)
        # before anything runs in the engine; a failure ends the engine in the finally below
        close_egress(engine)
        engine.start_seconds = time.monotonic() - t0
        yield engine
    finally:
        t1 = time.monotonic()
        killed = {}
        with _sigint_deferred():
            try:
                _remove_containers(engine, proc)
            finally:  # a hung engine is stopped all the same
                killed = _end_processes(engine, proc, grace)
                shutil.rmtree(engine.runtime_dir, ignore_errors=True)
        engine.stop_seconds = time.monotonic() - t1
        if still := user_processes(engine.uid, engine.subids):
            raise RuntimeError(f"processes of {user} survive SIGKILL: {sorted(still.items())}")
        if killed:
            # nothing is left running, but the engine did not take these down with it: worth a look
            print(f"rootless engine: had to kill processes of {user} after the engine stopped: {sorted(killed.items())}")
