"""The examples in the docstrings of the most used entry points run and print what they say (as on the site)."""

import doctest
import importlib
import inspect

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
    "jaxflow.dynamics.accelerated",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    """The module's own functions and classes, unwrapped (the test-time type checker wraps every function, and
    doctest's finder skips a wrapper whose globals are another module's)."""
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS, verbose=False)
    tests = []
    for attr, obj in vars(module).items():
        obj = inspect.unwrap(obj) if callable(obj) else obj
        if getattr(obj, "__module__", None) == name and (inspect.isfunction(obj) or inspect.isclass(obj)):
            tests += finder.find(obj, f"{name}.{attr}", module=False, globs={})
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0, f"{name} has no example"
    assert result.failed == 0
