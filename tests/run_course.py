"""`make course`: every notebook in order with its full parameters, then HTML of each and a summary."""
from __future__ import annotations

import subprocess
import sys
import time

from tests.notebooks import ROOT, execute, notebooks

OUT = ROOT / "build" / "course"


def main() -> int:
    rows, t_all = [], time.time()
    for nb in notebooks():
        print(f"== {nb.name}", flush=True)
        try:
            out, seconds = execute(nb, OUT, parameters={}, timeout=7200)
            status = "ok"
        except Exception as e:  # papermill's error names the failing cell; keep going to report all
            out, seconds, status = OUT / nb.name, float("nan"), f"FAILED: {(str(e).strip().splitlines() or [type(e).__name__])[0][:150]}"
        if out.exists():
            subprocess.run([sys.executable, "-m", "nbconvert", "--to", "html", "--log-level", "WARN",
                            "--output-dir", str(OUT), str(out)], check=False)
        rows.append((nb.name, seconds, status))
    print(f"\nmnist-course: {len(rows)} notebooks in {time.time() - t_all:.0f} s, outputs in {OUT}")
    for name, seconds, status in rows:
        print(f"  {name:40} {seconds:8.1f} s  {status}")
    return 0 if all(s == "ok" for _, _, s in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
