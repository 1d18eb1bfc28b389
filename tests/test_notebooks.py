"""Execute the notebooks (first half; the second half is in test_notebooks_more.py)."""

import pytest

from tests.notebook_runner import FIRST, MARKERS, NOTEBOOKS, SECOND, params, run_notebook


@pytest.mark.parametrize("name", params(FIRST))
def test_notebook_runs(name, tmp_path):
    run_notebook(name, tmp_path)


def test_every_notebook_is_executed_by_one_of_the_two_files():
    names = {p.name for p in NOTEBOOKS}
    assert names, "no notebooks found"
    assert names == set(FIRST) | set(SECOND) == set(MARKERS)
    assert not set(FIRST) & set(SECOND)
