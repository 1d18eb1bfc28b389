"""Execute every notebook; a cell that raises fails the test."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
# text each notebook prints when it ran to the end
MARKERS = {
    "01_quickstart.ipynb": "OT-CFM final loss",
    "02_sde_likelihood_attention.ipynb": "energy after 200 calls",
    "03_ot_toolbox.ipynb": "objective decreased: True",
    "04_images.ipynb": "VP samplers done",
    "06_populations.ipynb": "MFM beats FM on new populations: True",
    "07_paths.ipynb": "paths notebook done",
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert MARKERS[path.name] in outputs


def test_notebooks_exist():
    assert NOTEBOOKS, "no notebooks found"
