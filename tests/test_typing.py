"""The shape annotations of the public API are checked at run time in the test suite (tests/conftest.py)."""

import jax.numpy as jnp
import pytest
from jaxtyping import TypeCheckError

import jaxflow as jf
from tests.conftest import CHECKED_FUNCTIONS


def test_runtime_checks_are_installed():
    assert len(CHECKED_FUNCTIONS) >= 8
    assert jf.sample in CHECKED_FUNCTIONS and jf.metrics.wasserstein in CHECKED_FUNCTIONS


def test_annotations_catch_shape_and_dtype_errors():
    with pytest.raises(TypeCheckError, match="x0"):
        jf.sample(lambda t, x: x, jnp.ones((3, 2), jnp.int32))  # integer state
    with pytest.raises(TypeCheckError):
        jf.metrics.mmd(jnp.ones((5, 2)), jnp.ones((5, 3)))  # [n d] against [m d] with another d
    with pytest.raises(TypeCheckError):
        jf.ot.sliced_wasserstein(jf.sampling.SampleOutput, jnp.ones(5), jnp.ones((5, 2)))  # rank 1 cloud
