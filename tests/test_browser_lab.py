"""The course as a reader sees it in JupyterLab: started the way `make lab` starts it, driven in a real
headless Chromium. The index's lesson table renders with working links; lesson 01 opens clean (no news
question, not marked modified) and its first cells run from the UI on the course's kernel; a tqdm
progress bar renders as a widget, not as text; a plot renders as an image. Each step leaves a screenshot
under build/browser/."""
import json
import re
import shutil
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

from tools import lab as lab_module
from tests.browser import BrowserUnavailable, chromium, find_chromium, screenshot, wait_for
from tools.lab import LabDidNotStart, running_lab
from tools.processes import pids_mentioning
from tools.notebooks import NBS

LESSON = "01_docker_basics.ipynb"
# Steps 4 and 5 run in a notebook of their own, so they do not depend on what a lesson's cells are. It
# lives under nbs/ (JupyterLab serves nothing else) in a folder nbdev skips, and is removed afterwards.
SCRATCH_DIR = NBS / "_browser_test"
SCRATCH = SCRATCH_DIR / "widgets_and_plots.ipynb"

# The notebook on screen and what it shows, in one round trip.
_PANEL = """
const panel = document.querySelector('#jp-main-dock-panel .jp-NotebookPanel:not(.lm-mod-hidden)');
if (!panel) return null;
const tab = document.querySelector('#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current');
const status = panel.querySelector('.jp-Notebook-ExecutionIndicator');
const cells = [...panel.querySelectorAll('.jp-Notebook .jp-Cell')];
return {
  tab: tab ? tab.innerText.trim() : '', modified: !!(tab && tab.classList.contains('jp-mod-dirty')),
  kernel: (panel.querySelector('.jp-Toolbar-kernelName') || {}).innerText,
  status: status ? status.getAttribute('data-status') : null,
  cells: cells.map(c => ({
    prompt: (c.querySelector('.jp-InputArea-prompt') || {}).innerText || '',
    text: [...c.querySelectorAll('.jp-OutputArea-output')].map(o => o.innerText).join('\\n'),
    widgets: c.querySelectorAll('.jp-OutputArea-output .jupyter-widgets').length,
    progress: c.querySelectorAll('.jp-OutputArea-output .widget-progress, .jp-OutputArea-output .widget-hprogress').length,
    images: [...c.querySelectorAll('.jp-OutputArea-output img')].map(i => i.complete && i.naturalWidth > 0),
  })),
  toasts: [...document.querySelectorAll('.Toastify__toast')].map(t => t.innerText),
};
"""


@pytest.fixture(scope="module")
def browser():
    try:
        with chromium(width=1366, height=900) as driver:
            yield driver
    except BrowserUnavailable as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="module")
def lab():
    try:
        with running_lab() as (base, token):
            yield base, token
    except LabDidNotStart as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="module")
def course_kernel():
    "The kernel the notebooks name (python3) as `make setup` installs it: this environment's Python."
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        pytest.fail("no python3 kernel is installed: `make setup` installs the course's kernel", pytrace=False)
    if Path(spec.argv[0]).resolve() != Path(sys.executable).resolve():
        pytest.fail(f"the python3 kernel runs {spec.argv[0]}, not this environment's Python ({sys.executable}): "
                    "`make setup` installs the course's kernel", pytrace=False)
    return spec


def open_notebook(driver, lab, path: str) -> dict:
    "Open `path` (relative to nbs/) in a workspace of its own; return the panel once loaded and its kernel idle."
    base, token = lab
    workspace = re.sub(r"\W", "-", path)  # a new workspace: only this notebook open, as a reader first sees it
    driver.get(f"{base}/lab/workspaces/{workspace}/tree/{path}?token={token}")
    cells = len(nbformat.read(NBS / path, as_version=4).cells)
    name = path.rsplit("/", 1)[-1]
    return wait_for(f"{path} to load and its kernel to be idle", lambda: (
        (p := driver.execute_script(_PANEL)) and p["tab"] == name and len(p["cells"]) == cells
        and p["kernel"] not in ("", "No Kernel") and p["status"] == "idle" and p), timeout=60)


def run_cells(driver, count: int) -> None:
    "Select the first cell and press Shift+Enter `count` times, as a reader steps through a notebook."
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    first = driver.find_element("css selector", "#jp-main-dock-panel .jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell")
    first.click()
    keys = ActionChains(driver).send_keys(Keys.ESCAPE)
    for _ in range(count):
        keys = keys.key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT)
    keys.perform()


def ran(prompt: str) -> bool:
    return bool(re.fullmatch(r"\[\d+\]:", prompt.strip()))


def test_index_renders_the_lesson_table(browser, lab):
    "index.ipynb opens, its markdown renders, and its table's links lead to the course's notebooks."
    open_notebook(browser, lab, "index.ipynb")
    links = browser.execute_script("return [...document.querySelectorAll("
                                   "'.jp-NotebookPanel:not(.lm-mod-hidden) .jp-RenderedMarkdown table a')].map(a => a.href)")
    rendered = browser.execute_script("return document.querySelectorAll("
                                      "'.jp-NotebookPanel:not(.lm-mod-hidden) .jp-RenderedMarkdown h1').length")
    shot = screenshot(browser, "lab-1-index")
    assert rendered, f"index.ipynb's markdown did not render (see {shot})"
    source = "\n".join(c.source for c in nbformat.read(NBS / "index.ipynb", as_version=4).cells if c.cell_type == "markdown")
    in_tables = re.findall(r"^\|.*\]\(([^)#]+\.ipynb)", source, re.M)
    assert in_tables, "index.ipynb has no markdown table linking the lessons"
    targets = [unquote(urlsplit(u).path).rsplit("/files/", 1)[-1] for u in links if ".ipynb" in u]
    assert targets, f"the lesson table rendered without links (see {shot})"
    missing = [t for t in targets if not (NBS / t).exists()]
    assert not missing, f"the lesson table links to notebooks that do not exist: {missing}"
    assert set(in_tables) <= set(targets), f"links of the table not rendered: {set(in_tables) - set(targets)}"
    first = browser.find_element("css selector", ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-RenderedMarkdown table a")
    first.click()  # JupyterLab opens a linked notebook in a new tab
    wait_for(f"the link to {targets[0]} to open it", lambda: browser.execute_script(_PANEL)["tab"] == targets[0].rsplit("/", 1)[-1])
    print(f"index: {len(targets)} lesson links, all to existing notebooks")


def test_lesson_opens_clean_and_runs(browser, lab, course_kernel):
    """Lesson 01 opens with no news question and not marked modified, on the course's kernel; its cells up
    to the first `docker run` run from the UI and show what that command prints."""
    before = (NBS / LESSON).read_bytes()
    panel = open_notebook(browser, lab, LESSON)
    cells = nbformat.read(NBS / LESSON, as_version=4).cells
    target = next((i for i, c in enumerate(cells) if c.cell_type == "code" and "docker run" in c.source), None)
    assert target is not None, f"{LESSON} has no cell running `docker run`: choose another cell for this check"
    echo = re.search(r"\becho\s+([^\n'\"{}|;)\]]+)", cells[target].source)
    expected = echo.group(1).strip() if echo else None  # what `echo` in the container prints, if it echoes

    assert panel["kernel"] == course_kernel.display_name, \
        f"{LESSON} runs on {panel['kernel']!r}, not the course's kernel {course_kernel.display_name!r}: run `make setup`"
    time.sleep(1)  # JupyterLab writes the kernel's metadata into the notebook just after it starts
    panel = browser.execute_script(_PANEL)
    assert not any("news" in t.lower() for t in panel["toasts"]), f"JupyterLab asks about news: {panel['toasts']}"
    assert not panel["modified"], f"{LESSON} is marked modified before anyone touched it"

    run_cells(browser, target + 1)
    code = [i for i in range(target + 1) if cells[i].cell_type == "code"]
    panel = wait_for(f"cells 0-{target} of {LESSON} to run", lambda: (
        (p := browser.execute_script(_PANEL)) and all(ran(p["cells"][i]["prompt"]) for i in code) and p), timeout=120)
    failed = [i for i in code if "Traceback" in panel["cells"][i]["text"]]
    browser.execute_script("document.querySelectorAll('#jp-main-dock-panel .jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell')"
                           f"[{target}].scrollIntoView({{block: 'center'}})")
    shot = screenshot(browser, "lab-2-lesson01")
    assert not failed, f"cells {failed} of {LESSON} failed: {panel['cells'][failed[0]]['text'][-600:]} (see {shot})"
    out = panel["cells"][target]["text"]
    if expected:
        assert expected in out, f"cell {target} of {LESSON} should print {expected!r}, shows {out[:300]!r} (see {shot})"
    else:
        assert out.strip(), f"cell {target} of {LESSON} ran `docker run` and shows nothing (see {shot})"
    assert (NBS / LESSON).read_bytes() == before, f"running {LESSON} in the browser changed the file"
    print(f"{LESSON}: cells 0-{target} ran on {panel['kernel']!r}; `docker run` printed {out.strip()[:80]!r}")


@pytest.fixture(scope="module")
def scratch():
    "A notebook with a progress bar and a plot, as the lessons draw them, removed when the tests are done."
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "python3", "language": "python"}})
    nb.cells = [
        nbformat.v4.new_code_cell("import sys\nprint(sys.executable)"),
        nbformat.v4.new_code_cell("import time\nfrom tqdm.auto import tqdm\n\n"
                                  "for _ in tqdm(range(40), desc='progress check'):\n    time.sleep(0.01)"),
        nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\n\n"
                                  "plt.plot([0, 1, 2, 3, 4], [0, 1, 4, 9, 16], marker='o')\n"
                                  "plt.title('plot check')\nplt.show()"),
    ]
    SCRATCH_DIR.mkdir(exist_ok=True)
    nbformat.write(nb, SCRATCH)
    try:
        yield SCRATCH.relative_to(NBS).as_posix()
    finally:
        shutil.rmtree(SCRATCH_DIR, ignore_errors=True)


def test_progress_bar_is_a_widget(browser, lab, scratch, course_kernel):
    "tqdm.auto's bar renders as an ipywidgets progress bar (not as text), on the venv's Python."
    open_notebook(browser, lab, scratch)
    run_cells(browser, 2)
    panel = wait_for("the progress bar to finish", lambda: (
        (p := browser.execute_script(_PANEL)) and ran(p["cells"][1]["prompt"]) and "100%" in p["cells"][1]["text"] and p),
        timeout=60)
    shot = screenshot(browser, "lab-3-progress")
    bar = panel["cells"][1]
    assert bar["widgets"] and bar["progress"], f"no progress widget rendered, the output is {bar['text'][:300]!r} (see {shot})"
    assert "IProgress not found" not in bar["text"], f"tqdm fell back to text: {bar['text'][:300]!r}"
    assert course_kernel.argv[0] in panel["cells"][0]["text"], \
        f"the kernel runs {panel['cells'][0]['text']!r}, not the course's Python {course_kernel.argv[0]}"


def test_plot_renders(browser, lab, scratch):
    "A matplotlib plot renders as an image in the output."
    open_notebook(browser, lab, scratch)
    run_cells(browser, 3)
    panel = wait_for("the plot", lambda: (
        (p := browser.execute_script(_PANEL)) and ran(p["cells"][2]["prompt"]) and p["cells"][2]["images"] and p), timeout=60)
    browser.execute_script("document.querySelector('#jp-main-dock-panel .jp-NotebookPanel:not(.lm-mod-hidden) "
                           ".jp-OutputArea-output img').scrollIntoView({block: 'center'})")
    shot = screenshot(browser, "lab-4-plot")
    assert all(panel["cells"][2]["images"]), f"the plot's image did not load (see {shot})"


def test_notebooks_are_served_complete_and_saved_clean(lab, scratch, course_kernel):
    """The server hands a notebook out with the kernel's display name and language info (what JupyterLab
    would write into it on open) and saves it back without them, as nbdev_clean leaves notebooks."""
    base, token = lab
    url = f"{base}/api/contents/{scratch}?token={token}"
    with urllib.request.urlopen(url, timeout=10) as r:
        model = json.loads(r.read())
    meta = model["content"]["metadata"]
    assert meta["kernelspec"]["display_name"] == course_kernel.display_name and meta["language_info"]["version"], meta
    body = json.dumps({"type": "notebook", "content": model["content"]}).encode()
    urllib.request.urlopen(urllib.request.Request(url, data=body, method="PUT"), timeout=10).close()
    saved = nbformat.read(SCRATCH, as_version=4).metadata
    assert "language_info" not in saved and saved["kernelspec"]["display_name"] == "python3", saved


def test_a_missing_browser_is_named():
    "Without Chromium or its driver, the tests say which is missing and how to install it."
    with pytest.raises(BrowserUnavailable, match=r"Chromium is missing .* apt-get install chromium chromium-driver"):
        find_chromium(browsers=("/nonexistent/chromium",))
    with pytest.raises(BrowserUnavailable, match=r"chromedriver is missing .* apt-get install chromium chromium-driver"):
        find_chromium(drivers=("/nonexistent/chromedriver",))


def test_a_lab_that_does_not_start_is_named(monkeypatch):
    "When JupyterLab cannot start, the error says so, shows its log and the fix, and leaves nothing running."
    start = lab_module.lab_command
    monkeypatch.setattr(lab_module, "lab_command",
                        lambda *extra: start("--ServerApp.root_dir=/nonexistent/notebooks", *extra))
    with pytest.raises(LabDidNotStart, match=r"(?s)JupyterLab exited .*nonexistent.*make setup"):
        with running_lab(timeout=60):
            pass
    assert not pids_mentioning("/nonexistent/notebooks")
