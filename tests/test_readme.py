"""The README's code runs as written (the notebook example and the extension examples)."""

import re
from pathlib import Path

import numpy as np
import pytest

README = (Path(__file__).parents[1] / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_extension_examples_run_and_plug_in():
    block = next(b for b in BLOCKS if "class RK38" in b)
    ns: dict = {}
    exec(compile(block, "README: Extending jaxflow", "exec"), ns)  # noqa: S102
    assert int(ns["out"].nfe) == 64  # 4 stages × 16 steps, counted
    np.testing.assert_allclose(ns["out"].x, ns["x0"] * np.exp(-0.5), rtol=1e-5)
    assert callable(ns["loss"]) and ns["coupling"].base.__class__.__name__ == "GreedyCoupling"


@pytest.mark.slow
def test_notebook_example_runs():
    block = next(b for b in BLOCKS if "make_train_step" in b)
    ns: dict = {}
    exec(compile(block.replace("2000", "100"), "README: notebook example", "exec"), ns)  # noqa: S102
    assert ns["out"].x.shape == (1000, 2)
