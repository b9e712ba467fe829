"""Ordinary users in the `docker` group, each with a clone of their own, sharing the course's engine: how a
classroom on one Linux machine uses the course without root.

`ensure_learner(name)` makes such a user where missing (a member of `docker`, and of a group the learners
share for the course cache). `Learner.run()` runs a command as that user in their clone, with a clean
environment: their own HOME, the learner's PATH (Debian's python3 first, not root's), the package index
settings pip needs, and the shared course cache, so the second learner's venv links the dependencies the
first one installed instead of unpacking 6 GB again.
"""
from __future__ import annotations

import grp
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.leftovers import MARKER
from tools.notebooks import ROOT
from tests.rootless import _kill_group, ensure_user

GROUP = "mnist-learners"  # the learners' shared group: the course cache is theirs together
# Files in it are group-writable (the learners run with umask 002), so each learner may hard-link the other's:
# with fs.protected_hardlinks a user links only files they may write.
SHARED_CACHE = Path("/var/cache/mnist-course-learners")
PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"  # no root-only interpreter on it: python3 is Debian's


def _ensure_group(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        subprocess.run(["groupadd", "--system", name], check=True, capture_output=True)
        return grp.getgrnam(name).gr_gid


@dataclass
class Learner:
    "A non-root user of the course's engine, and their clone."
    user: str
    uid: int
    gid: int
    home: Path
    group_names: tuple = ("docker", GROUP)  # the groups the learner's commands run with
    docker_host: str = "unix:///var/run/docker.sock"  # the engine they use (the shared one by default)
    extra_env: dict = field(default_factory=dict)  # more of the learner's environment (a rootless engine's runtime dir)

    @property
    def clone(self) -> Path:
        return self.home / "course"

    @property
    def groups(self) -> list[int]:
        return [grp.getgrnam(g).gr_gid for g in self.group_names]

    def env(self) -> dict:
        "The learner's environment: nothing of root's but pip's index settings and the suite's marker."
        env = {"HOME": str(self.home), "USER": self.user, "LOGNAME": self.user, "LANG": "C.UTF-8",
               "PATH": f"{self.clone}/.venv/bin:{PATH}", "MNIST_COURSE_CACHE": str(SHARED_CACHE),
               # the engine is named: another one answering on a socket the course looks at is not this learner's
               "DOCKER_HOST": self.docker_host, **self.extra_env}
        # MNIST_COURSE_IMAGES: a run that keeps its images under another prefix (a cold run) means them for its learners too
        env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_") or k in (MARKER, "MNIST_COURSE_IMAGES")})
        return env

    def run(self, argv: list[str], timeout: float, cwd: Path | None = None, log: Path | None = None,
            env: dict | None = None) -> subprocess.CompletedProcess:
        "Run `argv` as the learner (in their clone), output into `log` if given; the whole group is killed on a timeout."
        out = open(log, "a") if log else subprocess.PIPE
        try:
            proc = subprocess.Popen(argv, cwd=cwd or self.clone, env={**self.env(), **(env or {})}, user=self.uid, group=self.gid,
                                    extra_groups=self.groups, umask=0o002, start_new_session=True,
                                    stdout=out, stderr=subprocess.STDOUT, text=True)
            try:
                stdout, _ = proc.communicate(timeout=timeout)
            except BaseException:
                _kill_group(proc.pid)
                proc.communicate()
                raise
        finally:
            if log:
                out.close()
        return subprocess.CompletedProcess(argv, proc.returncode, stdout or "", "")


def ensure_learner(user: str) -> Learner:
    "The learner `user`: an ordinary user in the `docker` group and the learners' group, made where missing."
    docker_gid = grp.getgrnam("docker").gr_gid  # Debian's docker.io makes the group; the socket is root:docker 660
    _ensure_group(GROUP)
    pw, _ = ensure_user(user)
    members = {g.gr_name for g in grp.getgrall() if user in g.gr_mem}
    if not {"docker", GROUP} <= members:
        subprocess.run(["usermod", "--append", "--groups", f"docker,{GROUP}", user], check=True, capture_output=True)
    assert docker_gid in Learner(user, pw.pw_uid, pw.pw_gid, Path(pw.pw_dir)).groups
    return Learner(user, pw.pw_uid, pw.pw_gid, Path(pw.pw_dir))


def shared_cache() -> Path:
    "The learners' course cache: a folder of their group's, where what one learner installs the other links."
    gid = _ensure_group(GROUP)
    SHARED_CACHE.mkdir(parents=True, exist_ok=True)
    os.chown(SHARED_CACHE, 0, gid)
    SHARED_CACHE.chmod(0o2775)  # setgid: everything made inside belongs to the group
    return SHARED_CACHE


def seed_model(model: Path, key_path: Path) -> None:
    "Put root's trained model where the learners' cache looks for it (the same code trains the same model)."
    rel = key_path.relative_to(key_path.parents[2])  # models/KEY/mnist_cnn.pt
    dst = SHARED_CACHE / rel
    if dst.is_file():
        return
    for d in (dst.parent.parent, dst.parent):
        d.mkdir(exist_ok=True)
        os.chown(d, 0, grp.getgrnam(GROUP).gr_gid)
        d.chmod(0o2775)
    shutil.copyfile(model, dst)
    dst.chmod(0o664)


def fresh_clone(learner: Learner) -> float:
    "A new clone of this checkout's committed state in the learner's home; its seconds."
    t0 = time.time()
    if learner.clone.exists():
        shutil.rmtree(learner.clone)
    # the checkout is root's: git reads another user's repository only when a protected (global) configuration
    # says it is safe, and the upload-pack process the clone starts reads it too
    config = learner.home / ".gitconfig-mnist-course"
    config.write_text(f"[safe]\n\tdirectory = {ROOT / '.git'}\n\tdirectory = {ROOT}\n")
    os.chown(config, learner.uid, learner.gid)
    trust = {"GIT_CONFIG_GLOBAL": str(config)}
    r = learner.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(learner.clone)],
                    timeout=120, cwd=learner.home, env=trust)
    assert r.returncode == 0, r.stdout
    return time.time() - t0
