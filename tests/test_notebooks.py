"""Every notebook in nbs/, executed by papermill in quick mode (`quick=True`, as `make course QUICK=1`)."""
import pytest

from tools.notebooks import ROOT, execute, notebooks, unexecuted

OUT = ROOT / "build" / "test-notebooks"


@pytest.mark.parametrize("nb", notebooks(), ids=lambda p: p.stem)
def test_notebook(nb):
    out, seconds = execute(nb, OUT, parameters={"quick": True})
    assert not unexecuted(out), f"cells that did not run or failed: {unexecuted(out)}"
