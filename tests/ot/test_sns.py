import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ott.geometry import geometry

import jaxflow as jf


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def test_sns_reaches_the_long_sinkhorn_plan(x64):
    n, eps = 120, 1.0 / 300
    cost = jax.random.uniform(jax.random.key(0), (n, n), jnp.float64)
    out = jf.ot.sinkhorn_newton_sparse(geometry.Geometry(cost_matrix=cost, epsilon=eps), n_sinkhorn=20, threshold=1e-11)
    assert out.converged and out.errors[-1] <= 1e-11
    ref, iters = jf.ot.sinkhorn_to_precision(cost, eps, threshold=1e-11, max_iterations=200_000)
    assert float(jnp.abs(out.matrix - ref.matrix).sum()) < 1e-8
    # potentials agree up to the (f + c, g − c) gauge
    shift = float(jnp.mean(out.f - ref.f))
    np.testing.assert_allclose(out.f - shift, ref.f, atol=1e-8)
    np.testing.assert_allclose(out.g + shift, ref.g, atol=1e-8)
    assert out.iterations * 20 < iters  # far fewer iterations than plain Sinkhorn
    # Newton phase converges superlinearly: the last error ratio is tiny
    assert out.errors[-1] / out.errors[-2] < 1e-2


def test_sns_with_unequal_marginals_matches_ott(x64):
    k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
    x, y = jax.random.normal(k1, (60, 2), jnp.float64), jax.random.normal(k2, (80, 2), jnp.float64)
    a = jax.random.uniform(k3, (60,), jnp.float64) + 0.2
    a = a / a.sum()
    b = jnp.full(80, 1 / 80, jnp.float64)
    cost = jf.ot.sqeuclidean_cost(x, y)
    out = jf.ot.sinkhorn_newton_sparse(cost, a, b, epsilon=0.05, threshold=1e-12)
    np.testing.assert_allclose(out.matrix.sum(1), a, atol=1e-11)
    np.testing.assert_allclose(out.matrix.sum(0), b, atol=1e-11)
    ref, _ = jf.ot.sinkhorn_to_precision(cost, 0.05, a, b, threshold=1e-12)
    np.testing.assert_allclose(out.matrix, ref.matrix, atol=1e-10)


def test_sns_bad_inputs():
    cost = jnp.ones((4, 4))
    with pytest.raises(ValueError, match="epsilon"):
        jf.ot.sinkhorn_newton_sparse(cost, epsilon=0.0)
    with pytest.raises(ValueError, match="epsilon is required"):
        jf.ot.sinkhorn_newton_sparse(cost)
    with pytest.raises(ValueError, match="same mass"):
        jf.ot.sinkhorn_newton_sparse(cost, jnp.ones(4), jnp.ones(4) / 4, epsilon=0.1)
    with pytest.raises(ValueError, match="sparsity"):
        jf.ot.sinkhorn_newton_sparse(cost, epsilon=0.1, sparsity=2.0)
