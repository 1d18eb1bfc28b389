"""The examples in the docstrings of the most used entry points run and print what they say (as on the site)."""

import doctest
import importlib

import pytest

MODULES = [
    "jaxflow.sampling.ode",
    "jaxflow.sampling.schedule",
    "jaxflow.losses.cfm",
    "jaxflow.paths.discrete",
    "jaxflow.manifolds.sphere",
    "jaxflow.metrics.distances",
    "jaxflow.paths.affine",
    "jaxflow.ot.gaussian",
    "jaxflow.data.toy",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, unchecked):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0, f"{name} has no example"
    assert result.failed == 0
