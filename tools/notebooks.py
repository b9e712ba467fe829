"""Run the course's notebooks with papermill, as tests (CI parameters) and as the course (full ones)."""
from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / "nbs"
# nbdev skips `#| eval: false` cells and papermill does not: such cells are dropped from the copy
# papermill runs.
_EVAL_FALSE = re.compile(r"^\s*#\s*\|\s*eval\s*:\s*false\s*$", re.M)


def notebooks() -> list[Path]:
    "The course's notebooks in teaching order: index, the lessons by number, then the reference notebooks (90+)."
    return sorted(NBS.glob("*.ipynb"), key=lambda p: (p.stem != "index", p.stem))


def unexecuted(path: Path) -> list[int]:
    "Indices of the code cells of an executed notebook that did not run, or ended in an error."
    nb = nbformat.read(path, as_version=4)
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip() and (
        c.execution_count is None or any(o.get("output_type") == "error" for o in c.get("outputs", [])))]


def runnable_copy(src: Path, dst: Path) -> Path:
    "Write `src` to `dst` without the cells nbdev would not evaluate."
    nb = nbformat.read(src, as_version=4)
    nb.cells = [c for c in nb.cells if not (c.cell_type == "code" and _EVAL_FALSE.search(c.source))]
    dst.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dst)
    return dst


def execute(src: Path, out_dir: Path, parameters: dict, timeout: int = 1800,
            progress: bool = False) -> tuple[Path, float]:
    "Execute notebook `src` with papermill (cwd `nbs/`) into `out_dir`; return the output path and seconds."
    import papermill as pm
    from traitlets.config import Config

    out = out_dir / src.name
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mnist-course-nb-") as tmp:  # private: runs may overlap
        staged = runnable_copy(src, Path(tmp) / src.name)
        t0 = time.time()
        pm.execute_notebook(str(staged), str(out), parameters=parameters, kernel_name="python3", cwd=str(NBS),
                            execution_timeout=timeout, progress_bar=progress, log_output=False, language="python",
                            # the kernel talks to papermill over Unix sockets: no TCP port to
                            # leave open, and no "running over TCP without encryption" warning
                            config=Config({"KernelManager": {"transport": "ipc"}}))
    return out, time.time() - t0
