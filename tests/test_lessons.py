"""Every lesson (nbs/00-89) has the course's shape: an opening that says what you will learn, what you
need and how long it takes; a Recap of 3-5 bullets; 2-4 exercises, each with a hint and a checking
function; solutions that call every check; a link to the next lesson; no prose about one machine.
Read from the notebooks' source, so it runs in a second and needs no engine."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tools.notebooks import NBS

LESSONS = sorted(p for p in NBS.glob("[0-8][0-9]_*.ipynb"))


def cells(nb: Path) -> list[tuple[str, str]]:
    "(cell type, source) of every cell."
    return [(c["cell_type"], "".join(c["source"])) for c in json.loads(nb.read_text())["cells"]]


def section(markdown: str, heading: str) -> str:
    "The text under a `## heading` up to the next `## ` heading."
    m = re.search(rf"^## {heading}\s*$(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    return m.group(1) if m else ""


def test_there_are_lessons():
    assert [p.name[:2] for p in LESSONS] == [f"{i:02d}" for i in range(len(LESSONS))], \
        f"lessons are numbered from 00 without gaps: {[p.name for p in LESSONS]}"


@pytest.mark.parametrize("nb", LESSONS, ids=lambda p: p.stem)
def test_opening(nb):
    "The first markdown cells after the title say what you will learn, what you need and how long it takes."
    md = [s for t, s in cells(nb) if t == "markdown"]
    opening = "\n".join(md[:3])
    for part in ("**You will learn**", "**You need**", "**Time**"):
        assert part in opening, f"{nb.name}: the opening has no {part}"
    time_line = re.search(r"^\*\*Time\*\*.*$", opening, re.M).group(0)
    assert "quick mode" in time_line, f"{nb.name}: the time says nothing of quick mode: {time_line!r}"


@pytest.mark.parametrize("nb", LESSONS, ids=lambda p: p.stem)
def test_recap(nb):
    md = "\n".join(s for t, s in cells(nb) if t == "markdown")
    bullets = re.findall(r"^- ", section(md, "Recap"), re.M)
    assert 3 <= len(bullets) <= 5, f"{nb.name}: the Recap has {len(bullets)} bullets, not 3-5"


@pytest.mark.parametrize("nb", LESSONS, ids=lambda p: p.stem)
def test_exercises_have_hints_checks_and_solutions(nb):
    cs = cells(nb)
    titles = [i for i, (t, s) in enumerate(cs) if t == "markdown" and re.search(r"^### Exercise \d+", s, re.M)]
    assert 2 <= len(titles) <= 4, f"{nb.name}: {len(titles)} exercises, not 2-4"
    solutions = next((i for i, (t, s) in enumerate(cs) if t == "markdown" and re.search(r"^### Solutions", s, re.M)), None)
    assert solutions is not None and solutions > titles[-1], f"{nb.name}: no '### Solutions' after the exercises"
    solved = "\n".join(s for t, s in cs[solutions:] if t == "code")
    for start, end in zip(titles, titles[1:] + [solutions]):
        title = re.search(r"^### (Exercise \d+.*)$", cs[start][1], re.M).group(1)
        assert "*Hint:*" in cs[start][1], f"{nb.name}, {title}: no hint"
        checks = [m for t, s in cs[start:end] if t == "code" for m in re.findall(r"^def (check_\w+)\(", s, re.M)]
        assert checks, f"{nb.name}, {title}: no checking function (def check_...)"
        for check in checks:
            assert re.search(rf"^#.*\b{check}\(", "\n".join(s for t, s in cs[start:end] if t == "code"), re.M), \
                f"{nb.name}, {title}: no commented-out call of {check} for the learner to fill in"
            assert re.search(rf"\b{check}\(", solved), f"{nb.name}: the solutions never call {check}"


@pytest.mark.parametrize("nb", LESSONS, ids=lambda p: p.stem)
def test_next_link(nb):
    "After the solutions, a markdown cell links the next lesson (the last lesson links the index); an appendix may follow."
    md = [s for t, s in cells(nb) if t == "markdown"]
    solutions = next((i for i, s in enumerate(md) if re.search(r"^### Solutions", s, re.M)), None)
    assert solutions is not None, f"{nb.name}: no '### Solutions'"
    after = md[solutions:]
    links = [m.group(1) for s in after for m in [re.search(r"^\*\*Next:\*\* \[[^]]+\]\(([\w.]+\.ipynb)\)", s, re.M)] if m]
    assert links, f"{nb.name}: no '**Next:** [...](NN_x.ipynb)' link after the solutions"
    i = LESSONS.index(nb)
    expected = LESSONS[i + 1].name if i + 1 < len(LESSONS) else "index.ipynb"
    assert links[0] == expected, f"{nb.name}: next links {links[0]}, expected {expected}"


@pytest.mark.parametrize("nb", LESSONS, ids=lambda p: p.stem)
def test_prose_about_the_subject_not_one_machine(nb):
    md = "\n".join(s for t, s in cells(nb) if t == "markdown")
    found = re.findall(r"[^.\n]*\b(?:this machine|the course machine|on this host)\b[^.\n]*", md, re.I)
    assert not found, f"{nb.name}: prose about one machine: {found}"
