"""The course site in a real browser. Built from the test run's executed notebooks (build/test-notebooks/,
written by tests/test_notebooks.py, which is why these tests run after it), opened from the file system:
every page reached from index.html shows its outputs, images, progress bars and math, no link or image is
broken, and nothing is loaded from anywhere but the site's own files."""
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

from tests.browser import chromium, requests, screenshot
from tools.notebooks import ROOT, notebooks
from tools.site import CONTENTS, build_site, reader_cells, static_widgets
from tests.test_notebooks import OUT as EXECUTED

SITE = ROOT / "build" / "test-site"
LOCAL = ("file:", "data:", "about:", "blob:")  # what a page of the site may load from
NETWORK = re.compile(r"^(https?|wss?|ftp):", re.I)
pytestmark = pytest.mark.after_notebooks


@pytest.fixture(scope="module")
def site():
    names = {nb.name for nb in notebooks()}  # not executed copies of notebooks that no longer exist
    if not any((EXECUTED / name).exists() for name in names):
        pytest.skip(f"no executed notebooks in {EXECUTED.relative_to(ROOT)}/ to build a site from: run "
                    "tests/test_notebooks.py first (`make test` runs it before this file)")
    shutil.rmtree(SITE, ignore_errors=True)
    return build_site(EXECUTED, SITE, names=names)


def test_pages_show_what_a_reader_should_see(tmp_path):
    """On two small executed notebooks: hidden cells, nbdev's lines and papermill's parameters are not shown,
    `echo: false` shows only the output, a progress bar is drawn from the saved widget state, a link to a
    notebook leads to its page, a diagram is part of the page, and only a page with math loads MathJax."""
    v4 = nbformat.v4
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "d.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>')
    state = {"box": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_label", "IPY_MODEL_bar"]}},
             "label": {"model_name": "HTMLModel", "state": {"value": "steps: 100%"}},
             "bar": {"model_name": "FloatProgressModel", "state": {"min": 0, "max": 10, "value": 10, "bar_style": "success"}}}
    lesson = v4.new_notebook(metadata={"widgets": {"application/vnd.jupyter.widget-state+json": {"state": state}}})
    lesson.cells = [
        v4.new_markdown_cell("# A small lesson\n> what a page shows\n\n![a diagram](images/d.svg) "
                             "Then [the next one](02_next.ipynb#part), and $$x^2$$"),
        v4.new_code_cell("#| hide\nsecret = 'HIDDEN-SOURCE'", outputs=[v4.new_output("stream", text="HIDDEN-OUTPUT\n")]),
        v4.new_code_cell("# Parameters\nci = 'INJECTED'", metadata={"tags": ["injected-parameters"]}),
        v4.new_code_cell("#| default_exp small"),
        v4.new_code_cell("#| docker\nprint('shown')", outputs=[v4.new_output("stream", text="shown\n")]),
        v4.new_code_cell("#| echo: false\nx = 'ECHO-SOURCE'", outputs=[v4.new_output("stream", text="ECHO-OUTPUT\n")]),
        v4.new_code_cell("for _ in tqdm(range(10)): pass", outputs=[v4.new_output("display_data", data={
            "application/vnd.jupyter.widget-view+json": {"model_id": "box", "version_major": 2, "version_minor": 0},
            "text/plain": "  0%|          | 0/10"})]),
    ]
    nxt = v4.new_notebook()
    nxt.cells = [v4.new_markdown_cell("# The next one\n> after the small lesson\n\n## part\n\nCosts `$ 5`.")]
    nbformat.write(lesson, tmp_path / "01_small.ipynb")
    nbformat.write(nxt, tmp_path / "02_next.ipynb")

    site = build_site(tmp_path, tmp_path / "site", source_dir=tmp_path)
    assert [(p.html, p.title, p.summary) for p in site] == [
        ("01_small.html", "A small lesson", "what a page shows"), ("02_next.html", "The next one", "after the small lesson")]
    page = (tmp_path / "site" / "01_small.html").read_text()
    for hidden in ("HIDDEN-SOURCE", "HIDDEN-OUTPUT", "INJECTED", "#|", "default_exp", "ECHO-SOURCE", "0/10"):
        assert hidden not in page, f"{hidden!r} is shown"
    for shown in ("shown", "ECHO-OUTPUT", "steps: 100%", '<progress class="course-widget-progress success" max="10" value="10">',
                  'href="02_next.html#part"', 'src="data:image/svg+xml;base64,', "_static/mathjax/tex-svg-full.js"):
        assert shown in page, f"{shown!r} is not on the page"
    assert "mathjax" not in (tmp_path / "site" / "02_next.html").read_text().lower(), "a `$` in code is not math"
    contents = (tmp_path / "site" / CONTENTS).read_text()
    assert contents.index('href="01_small.html"') < contents.index('href="02_next.html"')


class _Loads(HTMLParser):
    "What an HTML page makes the browser fetch: URLs of scripts, images, frames, media and stylesheets, and its CSS."
    ATTRS = {"script": "src", "img": "src", "iframe": "src", "source": "src", "audio": "src", "video": "src",
             "embed": "src", "object": "data", "link": "href"}

    def __init__(self):
        super().__init__()
        self.urls, self.css, self._in_style = [], [], False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in self.ATTRS and a.get(self.ATTRS[tag]):
            self.urls.append((tag, a[self.ATTRS[tag]].strip()))
        if a.get("style"):
            self.css.append(a["style"])
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.css.append(data)


def test_pages_reference_nothing_remote(site):
    "No page loads a script, style, font or image over the network; links in the prose may point anywhere."
    for page in [SITE / CONTENTS, *(SITE / p.html for p in site)]:
        found = _Loads()
        found.feed(page.read_text(encoding="utf-8"))
        remote = [f"<{tag} {url[:100]}>" for tag, url in found.urls if re.match(r"^(https?:)?//", url, re.I)]
        remote += re.findall(r"(?:url\(\s*['\"]?|@import\s+['\"]?)((?:https?:)?//[^'\")\s]+)", "\n".join(found.css), re.I)
        assert not remote, f"{page.name} loads from the network: {remote[:5]}"


def _expected(page) -> list[dict]:
    "What each cell a reader sees should show: stream text, images, progress bars, whether it has outputs."
    nb = nbformat.read(page.notebook, as_version=4)
    static_widgets(nb)
    cells = []
    for c in reader_cells(nb):
        outs = c.get("outputs", [])
        cells.append({
            "type": c.cell_type,
            "math": c.cell_type == "markdown" and "$$" in c.source,
            "outputs": len(outs),
            "images": sum(1 for o in outs if {"image/png", "image/jpeg"} & set(o.get("data", {}))),
            "progress": sum(o.get("data", {}).get("text/html", "").count("<progress") for o in outs),
            "text": [line.strip() for o in outs if o.get("output_type") == "stream"
                     for line in o["text"].splitlines()[:1] if line.strip()][:3],
        })
    return cells


_DOM = """
const cells = [...document.querySelectorAll('main > .jp-Cell')].map(c => ({
  type: c.classList.contains('jp-MarkdownCell') ? 'markdown' : c.classList.contains('jp-CodeCell') ? 'code' : 'raw',
  outputs: c.querySelectorAll('.jp-OutputArea-output').length,
  text: [...c.querySelectorAll('.jp-OutputArea-output')].map(o => o.innerText).join('\\n'),
  images: [...c.querySelectorAll('.jp-OutputArea-output img')].map(i => i.complete && i.naturalWidth > 0),
  progress: c.querySelectorAll('.jp-OutputArea-output progress').length,
  source: [...c.querySelectorAll('.jp-InputArea-editor')].map(e => e.innerText).join('\\n'),
  math: c.querySelectorAll('mjx-container').length,
  rawMath: c.classList.contains('jp-MarkdownCell') && c.innerText.includes('$$'),
}));
const links = [...document.querySelectorAll('a[href]')].map(a => [a.getAttribute('href'), a.href]);
const ids = [...document.querySelectorAll('[id], a[name]')].map(e => e.id || e.name);
const brokenImages = [...document.querySelectorAll('img')].filter(i => !(i.complete && i.naturalWidth > 0))
  .map(i => i.src.slice(0, 80));
const resources = performance.getEntriesByType('resource').map(r => r.name);
const nav = ['prev', 'next'].map(r => { const a = document.querySelector(`nav a[rel=${r}]`); return a && a.getAttribute('href'); });
return {title: document.title, h1: (document.querySelector('h1') || {}).innerText, cells, links, ids,
        brokenImages, resources, nav};
"""


def _check_links(page_name: str, dom: dict) -> int:
    "Every link to a file of the site resolves (and its #anchor exists on this page); returns the external ones."
    external = 0
    for raw, url in dom["links"]:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https", "mailto"):
            external += 1
            continue
        assert parts.scheme == "file", f"{page_name}: link {raw!r} is neither a file of the site nor a web address"
        target = Path(unquote(parts.path))
        assert target.exists(), f"{page_name}: broken link {raw!r} (no {target})"
        if raw.startswith("#") and parts.fragment:  # as a browser matches it: as written, or decoded
            assert {parts.fragment, unquote(parts.fragment)} & set(dom["ids"]), f"{page_name}: link {raw!r} has no anchor on the page"
    return external


def test_site_in_a_browser(site):
    "Follow every link of index.html; each page shows what its notebook produced, and only local files load."
    shots, seen = [], set()
    with chromium(width=1200, height=900) as d:
        requests(d)  # forget the browser's own start-up page
        d.get((SITE / CONTENTS).as_uri())
        contents = d.execute_script(_DOM)
        links = [url for raw, url in contents["links"] if url.startswith("file:") and url.endswith(".html")]
        assert [Path(urlsplit(u).path).name for u in links] == [p.html for p in site], \
            f"index.html should link every page in reading order, links: {links}"
        _check_links(CONTENTS, contents)
        shots.append(screenshot(d, "site-index"))

        for i, (url, page) in enumerate(zip(links, site)):
            d.get(url)
            # MathJax (on pages with math) typesets after the page loads; wait until it is done
            d.set_script_timeout(30)
            d.execute_async_script("const done = arguments[arguments.length - 1];"
                                   "if (!document.querySelector('script[src*=mathjax]')) done(false); else wait();"
                                   "function wait() { if (window.MathJax && MathJax.startup && MathJax.startup.promise)"
                                   " MathJax.startup.promise.then(() => done(true)); else setTimeout(wait, 50); }")
            dom = d.execute_script(_DOM)
            name = page.html
            assert dom["title"].startswith(page.title) and dom["h1"], f"{name}: title {dom['title']!r}, h1 {dom['h1']!r}"
            want = _expected(page)
            assert [c["type"] for c in dom["cells"]] == [c["type"] for c in want], \
                f"{name}: the page shows other cells than the notebook's (hidden cells shown, or cells lost)"
            for n, (got, exp) in enumerate(zip(dom["cells"], want)):
                where = f"{name}, cell {n}"
                assert (got["outputs"] > 0) == (exp["outputs"] > 0), f"{where}: {exp['outputs']} outputs in the notebook, {got['outputs']} shown"
                assert len(got["images"]) == exp["images"] and all(got["images"]), f"{where}: images {got['images']}, expected {exp['images']}"
                assert got["progress"] == exp["progress"], f"{where}: {got['progress']} progress bars, expected {exp['progress']}"
                for line in exp["text"]:
                    assert line[:60] in got["text"], f"{where}: output {line[:60]!r} not shown"
                assert not re.search(r"^\s*#\s*\|", got["source"], re.M), f"{where}: an nbdev directive is shown: {got['source'][:80]!r}"
                if exp["math"]:
                    assert got["math"] and not got["rawMath"], f"{where}: math not typeset ({got['math']} formulas, raw $$: {got['rawMath']})"
            assert not dom["brokenImages"], f"{name}: broken images {dom['brokenImages']}"
            prev, nxt = (site[i - 1].html if i else None), (site[i + 1].html if i + 1 < len(site) else None)
            assert dom["nav"] == [prev, nxt], f"{name}: previous/next links {dom['nav']}, expected {[prev, nxt]}"
            _check_links(name, dom)
            remote = [r for r in dom["resources"] if not r.startswith(LOCAL)]
            assert not remote, f"{name} loaded {remote[:5]}"
            seen.add(name)
            for kind, found in (("plot", any(c["images"] for c in dom["cells"])), ("progress", any(c["progress"] for c in dom["cells"])),
                                ("math", any(c["math"] for c in dom["cells"]))):
                if found and f"site-{kind}" not in {s.stem for s in shots}:
                    d.execute_script({"plot": "document.querySelector('.jp-OutputArea-output img')",
                                      "progress": "document.querySelector('.jp-OutputArea-output progress')",
                                      "math": "document.querySelector('mjx-container')"}[kind] + ".scrollIntoView({block: 'center'})")
                    shots.append(screenshot(d, f"site-{kind}"))

        asked = requests(d)
        console = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    assert seen == {p.html for p in site}
    from_site = [url for url, doc in asked if doc.startswith("file:")]
    assert from_site, "Chrome's performance log recorded no request of the site's pages"
    remote = sorted({url for url in from_site if not url.startswith(LOCAL)} | {url for url, _ in asked if NETWORK.match(url)})
    assert not remote, f"requests that left the file system: {remote[:10]}"
    assert not console, f"errors in the browser console: {[e['message'][:200] for e in console[:5]]}"
    print(f"{len(site)} pages checked; screenshots: {', '.join(str(s.relative_to(ROOT)) for s in shots)}")
