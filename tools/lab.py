"""JupyterLab as the course opens it. `make lab` runs `python -m tools.lab`; the browser test starts the
same command, on a free port with a token of its own, and stops it (with its kernels) afterwards.

A reader's first screen should be clean: no question about fetching Jupyter's news (the project's
`lab/overrides.json` turns the feed off), and no lesson marked as modified before anyone touched it
(`CourseContentsManager`)."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager

from tools.notebooks import NBS, ROOT
from tools.processes import kill_mentioning

# The project's defaults for JupyterLab settings (`overrides.json`: no news feed, no update check).
# They are defaults: a reader who changes a setting in the UI keeps the change in their own settings.
SETTINGS = ROOT / "lab"


def lab_command(*extra: str) -> list[str]:
    """The command `make lab` runs (from the project's root, so the server imports `tools.lab`): JupyterLab
    on 127.0.0.1, notebooks from nbs/, the project's lab settings, and the course's contents manager."""
    return [sys.executable, "-m", "jupyterlab", "--ip=127.0.0.1", "--no-browser", "--allow-root",
            f"--notebook-dir={NBS}", f"--LabApp.app_settings_dir={SETTINGS}",
            "--ServerApp.contents_manager_class=tools.lab.CourseContentsManager", *extra]


class CourseContentsManager(AsyncLargeFileManager):
    """Notebooks served with the metadata JupyterLab is about to fill in, and saved back without it.

    `nbdev_clean` keeps a notebook's metadata short and the same on every machine: no `language_info`
    (it holds the Python version) and the kernel's name as its display name. JupyterLab fills in
    `language_info` when it opens a notebook, and both again from the kernel once it starts; either change
    marks a notebook nobody touched as modified. So the server hands out notebooks already completed the
    way the course's kernel will report them, and takes the two back out when a notebook is saved, which
    keeps the files as nbdev_clean leaves them."""

    async def get(self, path, content=True, type=None, format=None, **kwargs):
        model = await super().get(path, content=content, type=type, format=format, **kwargs)
        if model.get("type") == "notebook" and model.get("content"):
            self._complete(model["content"]["metadata"])
        return model

    async def save(self, model, path=""):
        if model.get("type") == "notebook" and model.get("content"):
            meta = model["content"].setdefault("metadata", {})
            meta.pop("language_info", None)
            if meta.get("kernelspec", {}).get("name"):
                meta["kernelspec"]["display_name"] = meta["kernelspec"]["name"]
        return await super().save(model, path)

    def _complete(self, meta: dict) -> None:
        "Kernel spec and language info as the installed kernel the notebook names will report them."
        name = meta.get("kernelspec", {}).get("name")
        specs = getattr(self.parent, "kernel_spec_manager", None)
        try:
            spec = specs.get_kernel_spec(name) if specs is not None and name else None
        except Exception:  # no such kernel here: JupyterLab will ask which one to use
            return
        if spec is None:
            return
        meta["kernelspec"] = {"name": name, "display_name": spec.display_name, "language": spec.language}
        if "language_info" not in meta and spec.argv and _same_python(spec.argv[0]):
            from ipykernel.ipkernel import IPythonKernel  # what this Python's kernel answers in kernel_info

            meta["language_info"] = dict(IPythonKernel.language_info)


def _same_python(executable: str) -> bool:
    "Whether a kernel spec runs the Python this server runs (then its language info is known here)."
    try:
        return Path(executable).resolve() == Path(sys.executable).resolve()
    except OSError:
        return False


class LabDidNotStart(RuntimeError):
    "JupyterLab exited or did not answer in time; the message holds the end of its log and what to try."


def _get(url: str, timeout: float = 5) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # 127.0.0.1 only
        return json.loads(r.read() or b"{}")


@contextmanager
def running_lab(timeout: float = 90):
    """JupyterLab started by `lab_command()` on a free port, with a private token, runtime, settings and
    workspace directories (so a reader's own state neither changes the test nor is changed by it).
    Yields `(base_url, token)`; on exit asks the server to shut down (it stops its kernels), then makes sure
    that neither the server nor any kernel it started is left."""
    tmp = Path(tempfile.mkdtemp(prefix="mnist-course-lab-"))
    runtime = tmp / "runtime"  # connection files of the server and of every kernel it starts
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(runtime), JUPYTER_CONFIG_DIR=str(tmp / "config"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp / "user-settings"), JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"))
    # A test must never write a lesson: no autosave of the notebooks it runs (a setting of this private user)
    docmanager = tmp / "user-settings" / "@jupyterlab" / "docmanager-extension" / "plugin.jupyterlab-settings"
    docmanager.parent.mkdir(parents=True)
    docmanager.write_text(json.dumps({"autosave": False}))
    token = secrets.token_hex(16)
    log = tmp / "jupyterlab.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(lab_command("--port=0", "--ServerApp.port_retries=0",
                                            f"--IdentityProvider.token={token}"),
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = None
    try:
        base = _wait_for_server(proc, runtime, token, log, timeout)
        yield base, token
    finally:
        _stop(proc, base, token)
        kill_mentioning(str(runtime))  # kernels the server did not stop (their connection file is there)
        shutil.rmtree(tmp, ignore_errors=True)


def _wait_for_server(proc: subprocess.Popen, runtime: Path, token: str, log: Path, timeout: float) -> str:
    "The server's base URL once its API answers; `LabDidNotStart` if it exits or does not answer in time."
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabDidNotStart(_why(f"JupyterLab exited with status {proc.returncode}", log))
        info = runtime / f"jpserver-{proc.pid}.json"
        if info.exists():
            try:
                base = json.loads(info.read_text())["url"].rstrip("/")
                _get(f"{base}/api/status?token={token}")
                return base
            except (OSError, ValueError, KeyError):
                pass  # written but not answering yet
        time.sleep(0.3)
    raise LabDidNotStart(_why(f"JupyterLab did not answer within {timeout:.0f} s", log))


def _why(what: str, log: Path) -> str:
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    return (f"{what}. Command: {' '.join(lab_command())}\nIts log ends:\n{tail}\n"
            "To fix: run `make setup` (it installs JupyterLab into .venv), then try `make lab` by hand.")


def _stop(proc: subprocess.Popen, base: str | None, token: str) -> None:
    if proc.poll() is None and base:
        try:  # a clean shutdown also shuts down every kernel the server started
            req = urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST")
            urllib.request.urlopen(req, timeout=10).close()
            proc.wait(timeout=15)
        except Exception:
            pass
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> None:
    "`make lab`: replace this process with JupyterLab, so Ctrl-C reaches it directly."
    cmd = lab_command(*sys.argv[1:])
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
