"""The annotations of the whole package are checked at run time in the test suite: jaxtyping's pytest hook
instruments every function and class of `jaxflow` at import (`addopts` in pyproject.toml, tests/typechecks.py)."""

import jax.numpy as jnp
import pytest
from jaxtyping import TypeCheckError

import jaxflow as jf
from tests import typechecks


def test_the_whole_package_is_instrumented():
    modules = {f.__module__ for f in typechecks.INSTRUMENTED}
    assert len(typechecks.INSTRUMENTED) > 500
    assert {"jaxflow.sampling.ode", "jaxflow.ot.sliced", "jaxflow.paths.affine", "jaxflow.train.loop"} <= modules


def test_annotations_catch_shape_and_dtype_errors():
    with pytest.raises(TypeCheckError, match="x0"):
        jf.sample(lambda t, x: x, jnp.ones((3, 2), jnp.int32))  # integer state
    with pytest.raises(TypeCheckError):
        jf.metrics.mmd(jnp.ones((5, 2)), jnp.ones((5, 3)))  # [n d] against [m d] with another d
    with pytest.raises(TypeCheckError):
        jf.ot.sliced_wasserstein(jf.sampling.SampleOutput, jnp.ones(5), jnp.ones((5, 2)))  # rank 1 cloud


def test_the_switch_turns_the_checks_off(unchecked):
    with pytest.raises(ValueError, match="same dimension"):  # jaxflow's own error, as a user without checks meets it
        jf.metrics.mmd(jnp.ones((5, 2)), jnp.ones((5, 3)))
