"""The course as a static site that reads without running anything: one page per executed notebook, with
its outputs and plots, previous/contents/next links, and an `index.html` listing the lessons and then the
reference notebooks. Cells nbdev hides are hidden, nbdev's `#| ...` lines are not shown, and math is set
by a copy of MathJax beside the pages: nothing is loaded from the network.

    python -m tools.site EXECUTED_DIR OUT_DIR

`make course` writes the site into build/course/, beside the executed notebooks; the browser test builds
one from the test run's notebooks (build/test-notebooks/).
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
import mimetypes
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat

from tools.notebooks import NBS, ROOT

# MathJax, pinned: npm fetches the package once into build/vendor/, and the tarball must be the one
# npm's registry published for this version (its `dist.integrity`).
MATHJAX = "mathjax@3.2.2"
MATHJAX_INTEGRITY = "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
# TeX in, SVG out, every TeX extension built in: one file, no web fonts and nothing loaded later, which
# matters for pages opened from the file system.
MATHJAX_JS = "es5/tex-svg-full.js"
VENDOR = ROOT / "build" / "vendor"
STATIC = "_static"

CONTENTS = "index.html"  # the site's table of contents
OVERVIEW = "overview.html"  # the page of the `index` notebook (its own name is taken by the contents)

_DIRECTIVE = re.compile(r"^\s*#\s*\|\s*([\w-]+)\s*:?\s*(.*?)\s*$")
_NUMBERED = re.compile(r"^(\d+)_")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


class SiteError(RuntimeError):
    "The site could not be built; the message says why and what to do."


@dataclass
class Page:
    "One page of the site: the executed notebook it shows, its file name, title and one-line summary."
    notebook: Path
    html: str
    title: str
    summary: str
    number: int | None  # None for the index notebook

    @property
    def kind(self) -> str:
        return "overview" if self.number is None else "lesson" if self.number < 90 else "reference"


# ---------------------------------------------------------------- which pages, in which order

def title_and_summary(nb) -> tuple[str, str]:
    "The notebook's title and summary: `# Title` and `> summary` in its first markdown cell."
    md = next((c.source for c in nb.cells if c.cell_type == "markdown"  # not papermill's banner on a failure
               and "papermill-error-cell-tag" not in c.metadata.get("tags", [])), "")
    title = next((l[2:].strip() for l in md.splitlines() if l.startswith("# ")), "")
    summary = " ".join(l[1:].strip() for l in md.splitlines() if l.startswith(">"))
    return title, summary


def pages(executed_dir: Path, names=None) -> list[Page]:
    """The site's pages in reading order: the index notebook, the lessons (00-89), the reference notebooks
    (90+); only the notebooks `names` if given."""
    found = []
    for path in Path(executed_dir).glob("*.ipynb"):
        m = _NUMBERED.match(path.name)
        if (path.stem != "index" and not m) or (names is not None and path.name not in names):
            continue  # not part of the course (a scratch or stray notebook), or not asked for
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as e:  # papermill writes as it runs: a notebook still running is half written
            raise SiteError(f"{path} is not a readable notebook ({type(e).__name__}); is it still running?") from None
        title, summary = title_and_summary(nb)
        number = int(m.group(1)) if m else None
        found.append(Page(path, OVERVIEW if number is None else path.stem + ".html", title or path.stem, summary, number))
    return sorted(found, key=lambda p: (p.number is not None, p.number or 0, p.notebook.name))


# ---------------------------------------------------------------- what a page shows of a notebook

def directives(source: str) -> tuple[dict[str, str], str]:
    """nbdev's leading `#| name: value` lines of a code cell as a dict, and the source without them.
    As in nbdev, a cell magic (`%%bash`) may come first; it stays, the directives under it go."""
    lines, found, magic = source.splitlines(), {}, []
    i = 0
    while i < len(lines) and (not lines[i].strip() or _DIRECTIVE.match(lines[i]) or re.match(r"\s*%%\w+", lines[i])):
        if m := _DIRECTIVE.match(lines[i]):
            found[m.group(1)] = m.group(2)
        elif lines[i].strip():
            magic.append(lines[i])
        i += 1
    return found, "\n".join(magic + lines[i:]) if found else source


def reader_cells(nb) -> list:
    """The cells a reader sees, as they should be shown: no `#| hide` (or `include: false`) cells, no
    parameters papermill injected, no directive lines; `echo: false` keeps only the output,
    `output: false` only the source."""
    shown = []
    for cell in nb.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            continue
        if cell.cell_type == "code":
            found, source = directives(cell.source)
            if "hide" in found or found.get("include") == "false":
                continue
            cell.source = source
            if found.get("output") == "false":
                cell.outputs = []
            if found.get("echo") == "false":
                cell.metadata["transient"] = {"remove_source": True}  # nbconvert's templates honour it
            if not source.strip() and not cell.outputs:
                continue  # only directives (`#| default_exp ...`): nothing to read
        shown.append(cell)
    return shown


def _widget_html(model_id: str, state: dict, depth: int = 0) -> str | None:
    "A widget as plain HTML from its saved state (what it showed when the run ended); None if unknown here."
    model = state.get(model_id)
    if model is None or depth > 20:
        return None
    name, s = model.get("model_name", ""), model.get("state", {})
    if name in ("HBoxModel", "VBoxModel", "BoxModel"):
        kids = [_widget_html(c.removeprefix("IPY_MODEL_"), state, depth + 1) for c in s.get("children", [])]
        if any(k is None for k in kids):
            return None
        return f'<div class="course-widget-box {name[0].lower()}">{"".join(kids)}</div>'
    if name in ("HTMLModel", "HTMLMathModel"):
        return f'<div class="course-widget-html">{s.get("value", "")}</div>'  # HTML the kernel wrote
    if name in ("LabelModel", "TextModel"):
        return f'<div class="course-widget-html">{html.escape(str(s.get("value", "")))}</div>'
    if name in ("FloatProgressModel", "IntProgressModel"):
        lo, hi, value = float(s.get("min", 0)), float(s.get("max", 100)), float(s.get("value", 0))
        style = html.escape(s.get("bar_style") or "")
        return (f'<progress class="course-widget-progress {style}" max="{hi - lo:g}" '
                f'value="{min(max(value - lo, 0), hi - lo):g}"></progress>')
    return None


def static_widgets(nb) -> None:
    """Widget outputs (tqdm's progress bars) as HTML from the widget state the run saved, so a page shows
    the bar as the run left it with no widget library; without a state, the output's plain text."""
    state = nb.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            view = out.get("data", {}).pop(WIDGET_VIEW, None)
            if view is not None and (shown := _widget_html(view.get("model_id", ""), state)) is not None:
                out.data = {"text/html": shown}


# ---------------------------------------------------------------- the pages

_TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_js_mathjax -%}
{%- if resources.course.mathjax -%}
<script>
window.MathJax = {
  tex: {inlineMath: [['$', '$'], ['\\(', '\\)']], displayMath: [['$$', '$$'], ['\\[', '\\]']],
        processEscapes: true},
  svg: {fontCache: 'global'}
};
</script>
<script defer src="{{ resources.course.mathjax }}"></script>
{%- endif -%}
{%- endblock html_head_js_mathjax -%}
{% block extra_css %}<style type="text/css">{{ resources.course.css }}</style>{% endblock extra_css %}
{%- block body_header -%}{{ super() }}
{{ resources.course.nav }}
{%- endblock body_header -%}
{% block body_footer %}
{{ resources.course.nav }}
{{ super() }}
{% endblock body_footer %}
"""

_CSS = """
.course-nav { display: flex; justify-content: space-between; gap: 1em; margin: 0.5em 0 1em;
  padding: 0.5em 0; border-bottom: 1px solid #ddd; font-family: var(--jp-ui-font-family, sans-serif); }
.course-nav:last-of-type { border-bottom: none; border-top: 1px solid #ddd; margin-top: 2em; }
.course-nav a { text-decoration: none; }
.course-nav span { min-width: 10em; }
.course-widget-box { display: flex; align-items: center; gap: 0.5em; font-family: var(--jp-code-font-family, monospace); }
.course-widget-box.v { flex-direction: column; align-items: flex-start; }
.course-widget-progress { width: 20em; height: 1.2em; accent-color: #2196f3; }
.course-widget-progress.success { accent-color: #4caf50; }
.course-widget-progress.danger { accent-color: #f44336; }
"""


def _link(page: Page | None, label: str, rel: str) -> str:
    if page is None:
        return "<span></span>"
    return f'<a rel="{rel}" href="{page.html}">{label}</a>'


def _nav(prev: Page | None, nxt: Page | None) -> str:
    left = _link(prev, "&larr; " + _inline(prev.title) if prev else "", "prev")
    right = _link(nxt, _inline(nxt.title) + " &rarr;" if nxt else "", "next")
    return f'<nav class="course-nav">{left}<a href="{CONTENTS}">Contents</a>{right}</nav>'


def _inline(text: str) -> str:
    "A title or summary as HTML: escaped, with `code` spans."
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _rewrite_links(page_html: str, targets: dict[str, str]) -> str:
    "Links to a notebook of the site (`02_x.ipynb#part`) point at its page (`02_x.html#part`)."
    def swap(m: re.Match) -> str:
        name, frag = m.group(2), m.group(3) or ""
        return f'{m.group(1)}{targets[name]}{frag}"' if name in targets else m.group(0)
    return re.sub(r'(<a\b[^>]*?\bhref=")(?:\./)?([^"/#?]+\.ipynb)(#[^"]*)?"', swap, page_html)


def _embed_images(page_html: str, folders: list[Path]) -> str:
    """Images the markdown takes from files (`![diagram](images/x.svg)`, relative to the notebook) become
    part of the page (data: URLs), so a page needs no folder beside it; one not found is left as it is."""
    def embed(m: re.Match) -> str:
        src = html.unescape(m.group(2))
        if re.match(r"^([a-z][a-z0-9+.-]*:|/)", src, re.I):
            return m.group(0)  # data:, a web address or an absolute path: not the notebook's own file
        found = next((f / src for f in folders if (f / src).is_file()), None)
        if found is None:
            return m.group(0)
        mime = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
        return f'{m.group(1)}data:{mime};base64,{base64.b64encode(found.read_bytes()).decode()}"'
    return re.sub(r'(<img\b[^>]*?\bsrc=")([^"]+)"', embed, page_html)


_MATH = re.compile(r"\$|\\\(|\\\[|\\begin\{")
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)  # a `$ docker ...` prompt in code is not math


def has_math(cells) -> bool:
    "Whether a reader's cells hold TeX for MathJax: `$...$`, `$$...$$`, `\\(...\\)`, `\\[...\\]` in markdown, or LaTeX outputs."
    return any(c.cell_type == "markdown" and _MATH.search(_CODE.sub("", c.source)) for c in cells) or any(
        "text/latex" in o.get("data", {}) for c in cells for o in c.get("outputs", []))


def render_page(page: Page, prev: Page | None, nxt: Page | None, targets: dict[str, str],
                folders: list[Path] = ()) -> str:
    "One notebook as a page of the site."
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    nb = nbformat.read(page.notebook, as_version=4)
    static_widgets(nb)
    nb.cells = reader_cells(nb)
    nb.metadata["title"] = f"{page.title} - mnist-course"
    exporter = HTMLExporter(template_name="lab", extra_loaders=[DictLoader({"course.html.j2": _TEMPLATE})],
                            template_file="course.html.j2")
    body, _ = exporter.from_notebook_node(nb, resources={"course": {
        "mathjax": f"{STATIC}/mathjax/{Path(MATHJAX_JS).name}" if has_math(nb.cells) else "",  # only where needed
        "css": _CSS, "nav": _nav(prev, nxt)}})
    return _embed_images(_rewrite_links(body, targets), [page.notebook.parent, *folders])


def render_contents(site: list[Page], out_dir: Path, statuses: dict[str, dict]) -> str:
    "index.html: the overview, then the lessons and the reference notebooks with their summaries."
    overview = next((p for p in site if p.kind == "overview"), None)
    name = overview.title if overview else "mnist-course"

    def table(kind: str, heading: str) -> str:
        rows = []
        for p in (p for p in site if p.kind == kind):
            st = statuses.get(p.notebook.name)
            ran = "" if st is None else (
                f"{st['seconds']:.0f} s" if st.get("status") == "ok" and st.get("seconds") is not None
                else '<span class="failed">failed</span>')
            nb_link = (f' <a class="nb" href="{p.notebook.name}">notebook</a>'
                       if (out_dir / p.notebook.name).exists() else "")
            rows.append(f'<tr><td>{p.number:02d}</td><td><a href="{p.html}">{_inline(p.title)}</a>{nb_link}</td>'
                        f"<td>{_inline(p.summary)}</td>" + (f"<td>{ran}</td>" if statuses else "") + "</tr>")
        if not rows:
            return ""
        ran_head = "<th>ran in</th>" if statuses else ""
        return (f"<h2>{heading}</h2>\n<table><thead><tr><th></th><th>notebook</th><th>what it is about</th>"
                f"{ran_head}</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody></table>")

    intro = (f'<p class="summary">{_inline(overview.summary)}</p>\n<p><a href="{overview.html}">Start with the '
             f"overview</a>: what the course teaches, and how to run it yourself.</p>") if overview else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8" />
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{html.escape(name)}: contents</title>
<style type="text/css">
body {{ font-family: system-ui, sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; line-height: 1.5; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; vertical-align: top; padding: 0.35em 0.6em; border-bottom: 1px solid #e4e4e4; }}
th {{ white-space: nowrap; }}
.failed {{ color: #b00020; }}
td:first-child {{ color: #777; font-variant-numeric: tabular-nums; }}
a {{ color: #0b5cad; }}
a.nb {{ font-size: 0.8em; color: #777; }}
code {{ font-size: 0.92em; background: #f3f3f3; padding: 0 0.2em; }}
.summary {{ font-size: 1.15em; color: #444; }}
</style>
</head>
<body>
<main>
<h1>{_inline(name)}</h1>
{intro}
{table("lesson", "Lessons")}
{table("reference", "Reference notebooks")}
<p class="built">Each page is a notebook as it ran, outputs included. The lessons are meant to be read in
order; the reference notebooks hold the machinery the lessons use.</p>
</main>
</body>
</html>
"""


# ---------------------------------------------------------------- MathJax, fetched once with npm

def _integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def mathjax(vendor: Path = VENDOR) -> Path:
    "The directory of the pinned MathJax (its TeX-to-SVG file and licence), fetched with npm on first use."
    target = vendor / MATHJAX.replace("@", "-")
    if (target / MATHJAX_JS).exists():
        return target
    if shutil.which("npm") is None:
        raise SiteError(f"npm is needed once, to fetch {MATHJAX} for the site's math: install Node.js and npm "
                        "(Debian/Ubuntu: apt-get install npm), then build again")
    vendor.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=vendor) as tmp:
        r = subprocess.run(["npm", "pack", MATHJAX, "--silent"], cwd=tmp, capture_output=True, text=True)
        tgz = next(Path(tmp).glob("*.tgz"), None)
        if r.returncode or tgz is None:
            raise SiteError(f"npm pack {MATHJAX} failed (exit {r.returncode}):\n{r.stderr.strip()[-1500:]}")
        if (got := _integrity(tgz)) != MATHJAX_INTEGRITY:
            raise SiteError(f"{tgz.name} has integrity {got}, expected {MATHJAX_INTEGRITY}")
        shutil.rmtree(target, ignore_errors=True)  # what an interrupted fetch left
        staged = Path(tmp) / "mathjax"
        with tarfile.open(tgz) as t:
            for name in (MATHJAX_JS, "LICENSE"):
                dest = staged / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(t.extractfile(f"package/{name}").read())
        staged.replace(target)
    return target


# ---------------------------------------------------------------- the site

def _render(job: tuple) -> str:
    return render_page(*job)


def build_site(executed_dir: Path, out_dir: Path, source_dir: Path = NBS, names=None) -> list[Page]:
    """Write the site for the executed notebooks in `executed_dir` (only those named in `names`, if given)
    into `out_dir`, which may be the same directory: a page per notebook, `index.html`, and MathJax under
    `_static/`. Files the notebooks show (diagrams) are found beside them or in `source_dir`, where the
    notebooks come from. Returns the pages in reading order."""
    executed_dir, out_dir = Path(executed_dir), Path(out_dir)
    site = pages(executed_dir, names)
    if not site:
        raise SiteError(f"no executed course notebooks (index.ipynb, NN_*.ipynb) in {executed_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    js = mathjax() / MATHJAX_JS
    static = out_dir / STATIC / "mathjax"
    static.mkdir(parents=True, exist_ok=True)
    shutil.copy2(js, static / js.name)
    shutil.copy2(js.parent.parent / "LICENSE", static / "LICENSE")
    targets = {p.notebook.name: p.html for p in site}
    jobs = [(page, site[i - 1] if i else None, site[i + 1] if i + 1 < len(site) else None, targets, [Path(source_dir)])
            for i, page in enumerate(site)]
    with ProcessPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 1)) as pool:  # a second a page
        for page, body in zip(site, pool.map(_render, jobs)):
            (out_dir / page.html).write_text(body, encoding="utf-8")
    summary = executed_dir / "summary.json"  # make course's: status and seconds per notebook
    statuses = {r["notebook"]: r for r in json.loads(summary.read_text())["notebooks"]} if summary.exists() else {}
    (out_dir / CONTENTS).write_text(render_contents(site, out_dir, statuses), encoding="utf-8")
    return site


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m tools.site EXECUTED_DIR OUT_DIR", file=sys.stderr)
        return 2
    try:
        site = build_site(Path(args[0]), Path(args[1]))
    except SiteError as e:
        print(f"site: {e}", file=sys.stderr)
        return 1
    print(f"site: {len(site)} pages, open {Path(args[1]).resolve() / CONTENTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
