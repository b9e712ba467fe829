"""Every notebook in nbs/, executed by papermill with the CI parameters (`ci=True`)."""
import pytest

from tests.notebooks import ROOT, execute, notebooks, unexecuted

OUT = ROOT / "build" / "test-notebooks"


@pytest.mark.parametrize("nb", notebooks(), ids=lambda p: p.stem)
def test_notebook(nb):
    out, seconds = execute(nb, OUT, parameters={"ci": True})
    assert not unexecuted(out), f"cells that did not run or failed: {unexecuted(out)}"
