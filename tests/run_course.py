"""`make course`: every notebook in order with its full parameters, then HTML of each and a summary
(printed, and kept as `build/course/summary.json`)."""
from __future__ import annotations

import json
import subprocess
import sys
import time

from tests.notebooks import ROOT, execute, notebooks

OUT = ROOT / "build" / "course"


def failure(e: Exception) -> str:
    "One line on why a notebook failed: the cell and its error for papermill's errors, else the exception."
    if hasattr(e, "ename"):  # PapermillExecutionError: the failing cell's number and its exception
        return f"cell [{e.exec_count}] {e.ename}: {e.evalue}"[:200]
    return (f"{type(e).__name__}: {e}".strip().splitlines() or [type(e).__name__])[0][:200]


def main() -> int:
    rows, t_all = [], time.time()
    for nb in notebooks():
        print(f"== {nb.name}", flush=True)
        try:
            out, seconds = execute(nb, OUT, parameters={}, timeout=7200, progress=sys.stderr.isatty())
            status = "ok"
        except Exception as e:  # keep going, to report every notebook
            out, seconds, status = OUT / nb.name, None, f"FAILED: {failure(e)}"
        if out.exists():
            subprocess.run([sys.executable, "-m", "nbconvert", "--to", "html", "--log-level", "ERROR",
                            "--output-dir", str(OUT), str(out)], check=False)
        rows.append({"notebook": nb.name, "seconds": None if seconds is None else round(seconds, 1), "status": status})
    total, ok = time.time() - t_all, all(r["status"] == "ok" for r in rows)
    (OUT / "summary.json").write_text(json.dumps({"ok": ok, "seconds": round(total, 1), "notebooks": rows}, indent=1) + "\n")
    print(f"\nmnist-course: {len(rows)} notebooks in {total:.0f} s, outputs in {OUT}")
    for r in rows:
        took = "-" if r["seconds"] is None else f"{r['seconds']:.1f}"
        print(f"  {r['notebook']:40} {took:>8} s  {r['status']}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
