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


def test_zero_mass_atoms_are_solved_on_the_support():
    """Marginals with zero-mass atoms: the plan equals ott-jax's Sinkhorn (run to 1e-12) on the same problem, the
    zero-mass rows and columns are exactly zero, and Newton converges (it used to stop after 0 steps, error 1e-2)."""
    from ott.solvers.linear import sinkhorn

    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.key(0), (12, 2))
        y = jax.random.normal(jax.random.key(1), (10, 2))
        cost = jf.ot.sqeuclidean_cost(x, y)
        a = jnp.ones(12).at[3].set(0.0).at[7].set(0.0)
        b = jnp.ones(10).at[0].set(0.0)
        a, b = a / a.sum(), b / b.sum()
        out = jf.ot.sinkhorn_newton_sparse(cost, a, b, epsilon=0.5)
        assert bool(out.converged) and int(out.newton_iterations) >= 1
        ref = jf.ot.solve_sinkhorn(cost, 0.5, a=a, b=b, solver=sinkhorn.Sinkhorn(threshold=1e-12, max_iterations=10**5))
        np.testing.assert_allclose(out.matrix, ref.matrix, atol=1e-12)
        assert (
            float(jnp.abs(out.matrix[jnp.array([3, 7])]).max()) == 0.0 and float(jnp.abs(out.matrix[:, 0]).max()) == 0.0
        )
        assert bool(jnp.all(jnp.isneginf(out.f[jnp.array([3, 7])])))


def test_stopping_short_of_the_threshold_is_reported():
    with jax.enable_x64(True):
        cost = jf.ot.sqeuclidean_cost(
            jax.random.normal(jax.random.key(0), (12, 2)), jax.random.normal(jax.random.key(1), (10, 2))
        )
        with pytest.warns(jf.ot.NotConvergedWarning, match="sinkhorn_newton_sparse"):
            out = jf.ot.sinkhorn_newton_sparse(cost, epsilon=0.05, max_newton=0)
        assert not bool(out.converged) and int(out.newton_iterations) == 0
        with pytest.raises(jf.ot.NotConvergedError):
            jf.ot.sinkhorn_newton_sparse(cost, epsilon=0.05, max_newton=0, on_nonconvergence="raise")
