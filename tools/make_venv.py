"""Make the project's venv, fast when an earlier checkout already installed the same dependencies.

usage: python3 tools/make_venv.py VENV REQUIREMENT... (the Makefile passes .venv and the torch pins)

The dependencies (torch with its CUDA libraries, JupyterLab, TorchServe's tools, ...: about 6 GB,
a minute or more of unpacking) change only with the requirements in settings.ini, setup.py, the
torch pins and the Python version. So they are installed once into a venv in the course cache
($MNIST_COURSE_CACHE/venv/KEY, default ~/.cache/mnist-course/venv/KEY), and a new VENV gets hard
links to its files (copies where the cache is on another file system) and then this project in
editable mode: a few seconds instead of a minute.

A VENV that already exists is updated in place with pip, as before, and so is everything when
MNIST_COURSE_CACHE=off. Nothing in a venv writes into its installed files, so the links stay
read-only in practice; `pip install`/`uninstall` replace files rather than edit them.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPLETE = ".complete"  # in a cached venv: written last, holds the path it was built at
# settings.ini keys that decide what `pip install -e .[dev]` installs
REQUIREMENT_KEYS = ("min_python", "requirements", "course_requirements", "dev_requirements", "pip_requirements")


def say(msg: str) -> None:
    print(f"[venv] {msg}", flush=True)


def run(*cmd) -> None:
    r = subprocess.run([str(c) for c in cmd])
    if r.returncode:
        sys.exit(f"[venv] failed (exit {r.returncode}): {' '.join(map(str, cmd))}")


def pip(venv: Path, *args) -> None:
    "pip install into `venv`, without the warning pip prints for each configured index folder that is missing."
    cmd = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *map(str, args)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in p.stdout:
        if not line.startswith("WARNING: Location"):
            print(line, end="", flush=True)
    if p.wait():
        sys.exit(f"[venv] failed (exit {p.returncode}): {' '.join(cmd)}")


def deps_key(requirements: list[str]) -> str:
    "What the dependencies depend on: the interpreter, the pins passed in, setup.py and settings.ini's requirement lines."
    h = hashlib.sha256()
    h.update(sys.version.encode())
    h.update(sys.executable.encode())  # a venv's python points at this interpreter
    h.update(" ".join(requirements).encode())
    h.update((ROOT / "setup.py").read_bytes())
    for line in (ROOT / "settings.ini").read_text().splitlines():
        if line.split("=")[0].strip() in REQUIREMENT_KEYS:
            h.update(line.encode())
    return h.hexdigest()[:16]


def install(venv: Path, requirements: list[str]) -> None:
    "pip into `venv` (made if missing): the pins, then this project with its [dev] extras, editable."
    if not (venv / "bin" / "python").exists():
        run(sys.executable, "-m", "venv", venv)
    pip(venv, *requirements)
    pip(venv, "-e", f"{ROOT}[dev]")


def site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def cached_deps(cache: Path, key: str, requirements: list[str]) -> Path:
    "The cached venv holding the dependencies of `key`, installed now if it is not there yet."
    base = cache / "venv" / key
    if (base / COMPLETE).exists():
        return base
    base.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f"{key}.building-", dir=base.parent))
    # mkdtemp makes the folder private; the caller's umask decides, so a cache that learners share as a group
    # (umask 002) stays readable and linkable for all of them
    mask = os.umask(0)
    os.umask(mask)
    building.chmod(0o777 & ~mask)
    say(f"installing the dependencies once into {base} (later checkouts link to them)")
    install(building, requirements)
    # the cache keeps the dependencies only: each checkout installs itself
    run(building / "bin" / "python", "-m", "pip", "uninstall", "--quiet", "--yes", "mnist-course")
    (building / COMPLETE).write_text(str(building))
    try:
        building.rename(base)
    except OSError:  # another checkout finished the same key first: use that one
        shutil.rmtree(building, ignore_errors=True)
    return base


def link_tree(src: Path, dst: Path) -> None:
    "Hard-link the files of `src` into `dst` (copies if they are on different file systems)."
    dst.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["cp", "-al", f"{src}/.", str(dst)], capture_output=True, text=True)
    if r.returncode:
        run("cp", "-a", f"{src}/.", dst)


def clone(base: Path, venv: Path) -> None:
    "Make `venv` from the cached venv `base`: a fresh venv, the dependencies' files linked, scripts re-pointed."
    built_at = (base / COMPLETE).read_text().strip()  # the scripts' shebangs name this path
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    link_tree(site_packages(base), site_packages(venv))
    for sub in ("share", "etc", "include"):
        if (base / sub).exists():
            link_tree(base / sub, venv / sub)
    # a kernel spec names its venv's python: `make` installs this venv's own afterwards
    shutil.rmtree(venv / "share" / "jupyter" / "kernels", ignore_errors=True)
    for entry in sorted((base / "bin").iterdir()):
        target = venv / "bin" / entry.name
        if target.exists() or target.is_symlink():  # python, activate*: the new venv's own
            continue
        if entry.is_symlink():
            target.symlink_to(os.readlink(entry))
            continue
        data = entry.read_bytes()
        if data.startswith(b"#!"):  # a console script: point it at this venv's python
            data = data.replace(f"{built_at}/bin/".encode(), f"{venv.resolve()}/bin/".encode())
        target.write_bytes(data)
        target.chmod(entry.stat().st_mode)


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        sys.exit(__doc__)
    venv, requirements = Path(argv[0]).absolute(), argv[1:]
    key, t0 = deps_key(requirements), time.time()
    # mnist_course.core.cache_dir's rule, which cannot be imported before this venv exists
    setting = os.environ.get("MNIST_COURSE_CACHE", "")
    cache = None if setting == "off" else Path(setting or Path.home() / ".cache" / "mnist-course")
    if venv.exists() or cache is None:
        install(venv, requirements)  # update in place: pip installs what changed
    else:
        base = cached_deps(cache, key, requirements)
        clone(base, venv)
        say(f"dependencies linked from {base}")
        pip(venv, "--no-deps", "--no-build-isolation", "-e", f"{ROOT}[dev]")
    say(f"{venv} ready in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
