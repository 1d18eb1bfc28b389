"""Shared by the two notebook test files (split so that pytest-xdist's per-file scheduling runs them on both
workers): execute a notebook; a cell that raises fails, and the notebook must print its end marker."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

FOLDER = Path(__file__).parents[1] / "notebooks"
EXECUTED = Path(__file__).parents[1] / "build" / "notebooks"
NOTEBOOKS = sorted(FOLDER.glob("*.ipynb"))
# text each notebook prints when it ran to the end
MARKERS = {
    "01_quickstart.ipynb": "OT-CFM final loss",
    "02_sde_likelihood_attention.ipynb": "energy after 200 calls",
    "03_ot_toolbox.ipynb": "objective decreased: True",
    "04_images.ipynb": "VP samplers done",
    "06_populations.ipynb": "MFM beats FM on new populations: True",
    "07_paths.ipynb": "paths notebook done",
    "03_few_step.ipynb": "few-step notebook done",
    "05_latent_and_inversion.ipynb": "latent notebook done",
    "08_discrete.ipynb": "discrete notebook done",
    "09_manifolds.ipynb": "manifolds notebook done",
}
# which file runs which notebook (about equal time each)
FIRST = (
    "01_quickstart.ipynb",
    "03_ot_toolbox.ipynb",
    "06_populations.ipynb",
    "03_few_step.ipynb",
    "08_discrete.ipynb",
)
SECOND = (
    "02_sde_likelihood_attention.ipynb",
    "04_images.ipynb",
    "07_paths.ipynb",
    "05_latent_and_inversion.ipynb",
    "09_manifolds.ipynb",
)

# the longest notebooks (30-60 s each on 2 cores) run in `make test-all` (CI), the others in the fast suite too
HEAVY = {
    "02_sde_likelihood_attention.ipynb",
    "07_paths.ipynb",
    "03_ot_toolbox.ipynb",
    "03_few_step.ipynb",
    "04_images.ipynb",
    "05_latent_and_inversion.ipynb",
    "06_populations.ipynb",
    "08_discrete.ipynb",
    "09_manifolds.ipynb",
}


def params(names):
    import pytest

    return [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in names]


def run_notebook(name: str, tmp_path) -> None:
    path = FOLDER / name
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert MARKERS[name] in outputs
    # the executed copy is what the documentation site renders (tools/build_docs.py): no second execution
    EXECUTED.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, EXECUTED / name)
