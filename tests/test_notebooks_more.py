"""Execute the notebooks (second half; see test_notebooks.py)."""

import pytest

from tests.notebook_runner import SECOND, params, run_notebook


@pytest.mark.parametrize("name", params(SECOND))
def test_notebook_runs(name, tmp_path):
    run_notebook(name, tmp_path)
