"""`make course`: every notebook in order with its full parameters, a summary (printed, and kept as
`build/course/summary.json`), then the course as a static site beside the executed notebooks
(`build/course/index.html`, see tools/site.py)."""
from __future__ import annotations

import argparse
import json
import sys
import time

from tools.notebooks import ROOT, execute, notebooks
from tools.site import CONTENTS, SiteError, build_site

OUT = ROOT / "build" / "course"


def failure(e: Exception) -> str:
    "One line on why a notebook failed: the cell and its error for papermill's errors, else the exception."
    if hasattr(e, "ename"):  # PapermillExecutionError: the failing cell's number and its exception
        return f"cell [{e.exec_count}] {e.ename}: {e.evalue}"[:200]
    return (f"{type(e).__name__}: {e}".strip().splitlines() or [type(e).__name__])[0][:200]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.run_course", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="every notebook with quick=True, as the test suite runs them: short training and benchmark runs")
    args = ap.parse_args(argv)
    parameters = {"quick": True} if args.quick else {}
    rows, t_all = [], time.time()
    for nb in notebooks():
        print(f"== {nb.name}", flush=True)
        try:
            _, seconds = execute(nb, OUT, parameters=parameters, timeout=7200, progress=sys.stderr.isatty())
            status = "ok"
        except Exception as e:  # keep going, to report every notebook
            seconds, status = None, f"FAILED: {failure(e)}"
        rows.append({"notebook": nb.name, "seconds": None if seconds is None else round(seconds, 1), "status": status})
    total, ok = time.time() - t_all, all(r["status"] == "ok" for r in rows)
    (OUT / "summary.json").write_text(json.dumps({"ok": ok, "quick": args.quick, "seconds": round(total, 1),
                                                  "notebooks": rows}, indent=1) + "\n")
    print(f"\nmnist-course: {len(rows)} notebooks in {total:.0f} s, outputs in {OUT}")
    for r in rows:
        took = "-" if r["seconds"] is None else f"{r['seconds']:.1f}"
        print(f"  {r['notebook']:40} {took:>8} s  {r['status']}")
    try:  # a failed notebook still has a page: what ran, up to papermill's note on the failing cell
        site = build_site(OUT, OUT, names={r["notebook"] for r in rows})  # not notebooks of an older checkout
        print(f"\nthe course as a site: {len(site)} pages, open {OUT / CONTENTS}")
    except SiteError as e:
        print(f"\nno site: {e}")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
