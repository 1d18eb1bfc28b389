"""Bad input gets a clear error naming the argument, never a silent wrong answer (issue: faults and bad input)."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxflow as jf

K = jax.random.key(0)
E = jnp.zeros((0, 2))
X = jnp.ones((5, 2))
Y3 = jnp.ones((5, 3))
GMM = jf.data.GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), jnp.eye(2)[None])

CASES = {
    "independent coupling, empty": (lambda: jf.couplings.IndependentCoupling()(K, E, E), "empty"),
    "sinkhorn coupling, empty": (lambda: jf.couplings.SinkhornCoupling()(K, E, E), "empty"),
    "exact coupling, empty": (lambda: jf.couplings.ExactOTCoupling()(K, E, E), "empty"),
    "W-CFM coupling, empty": (lambda: jf.couplings.GibbsWeightedCoupling()(K, E, E), "empty"),
    "cfm loss, empty batch": (lambda: jf.losses.cfm_loss(lambda p, t, x, c: x)(None, {"x1": E}, K), "empty"),
    "sliced wasserstein, empty": (lambda: jf.ot.sliced_wasserstein(K, E, X), "x is empty"),
    "wasserstein, empty": (lambda: jf.metrics.wasserstein(E, X), "x is empty"),
    "barycentric map, empty": (lambda: jf.ot.barycentric_map(E, X), "at least one point"),
    "toy sampler, n = -3": (lambda: jf.data.sample_toy(K, "moons", -3), "n must be a positive int"),
    "toy sampler, n = 0": (lambda: jf.data.get_sampler("moons")(K, 0), "n must be a positive int"),
    "GaussianMixture.sample(-3)": (lambda: GMM.sample(K, -3), "n must be a positive int"),
    "mmd, different dimensions": (lambda: jf.metrics.mmd(X, Y3), "same dimension"),
    "energy distance, different dimensions": (lambda: jf.metrics.energy_distance(X, Y3), "same dimension"),
    "convert at t = 1.5": (
        lambda: jf.paths.cond_ot_path().convert(X, 1.5, X, source="velocity", target="x1"),
        r"t must lie in \[0, 1\]",
    ),
    "conditional OT, NaN labels": (
        lambda: jf.couplings.ConditionalOTCoupling()(K, X, X, jnp.array([0.0, 1.0, jnp.nan, 0.0, 1.0])),
        "labels contain non-finite",
    ),
    "sample, velocity of the wrong shape": (lambda: jf.sample(lambda t, x: x[:, :1], X), "velocity returned shape"),
    "sample, unknown solver": (lambda: jf.sample(lambda t, x: x, X, solver="rk45"), "unknown solver"),
    "interpolant, unknown gamma": (lambda: jf.paths.StochasticInterpolant(gamma="cube"), "unknown gamma"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_clear_error(name, unchecked):
    fn, message = CASES[name]
    with pytest.raises(ValueError, match=message):
        fn()


@pytest.mark.parametrize(("n", "eps"), [(16, 0.5), (64, 0.1), (64, 1.0), (5, 0.5)])
def test_sinkhorn_newton_in_float32(n, eps):
    """float32 (JAX's default) reaches the documented 1e-5 marginal error with a finite plan on ordinary problems, and
    agrees with the float64 solve; n < 10 works with the defaults."""
    k0, k1 = jax.random.split(jax.random.key(n))
    x, y = jax.random.normal(k0, (n, 2)), jax.random.normal(k1, (n, 2)) + 1.0
    cost = jf.ot.sqeuclidean_cost(x, y)
    out = jf.ot.sinkhorn_newton_sparse(cost, epsilon=eps)
    assert out.matrix.dtype == jnp.float32 and bool(out.converged)
    assert bool(jnp.all(jnp.isfinite(out.matrix)))
    a = jnp.full(n, 1.0 / n)
    assert float(jf.ot.sinkhorn_newton.marginal_error(out.matrix, a, a)) <= 1e-5
    with jax.enable_x64(True):
        ref = jf.ot.sinkhorn_newton_sparse(jnp.asarray(cost, jnp.float64), epsilon=eps)
        assert bool(ref.converged)
        np.testing.assert_allclose(out.matrix, ref.matrix, atol=2e-5)  # entries ~1/n; L1 marginal error 1e-5


def test_sinkhorn_newton_below_float32_precision_stops_cleanly():
    """Asked for a tolerance float32 cannot reach, with the float64 safeguards (the settings that used to return an
    all-NaN plan), SNS keeps its last good iterate (finite plan, error at the dtype's floor) and reports
    converged=False."""
    k0, k1 = jax.random.split(jax.random.key(16))
    x, y = jax.random.normal(k0, (16, 2)), jax.random.normal(k1, (16, 2)) + 1.0
    cost = jf.ot.sqeuclidean_cost(x, y)
    with pytest.warns(jf.ot.NotConvergedWarning, match="sinkhorn_newton_sparse"):
        out = jf.ot.sinkhorn_newton_sparse(cost, epsilon=0.5, threshold=1e-12, ridge=1e-12, cg_tol=1e-12)
    assert bool(jnp.all(jnp.isfinite(out.matrix))) and not bool(out.converged)
    a = jnp.full(16, 1.0 / 16)
    assert float(jf.ot.sinkhorn_newton.marginal_error(out.matrix, a, a)) <= 1e-5


def test_non_convergence_is_reported():
    k0, k1 = jax.random.split(jax.random.key(0))
    x, y = jax.random.normal(k0, (64, 2)), jax.random.normal(k1, (64, 2)) + 1.0
    with pytest.warns(jf.ot.NotConvergedWarning, match="barycentric_map"):
        m = jf.ot.barycentric_map(x, y, epsilon=1e-3)
    assert not bool(m.converged)
    with pytest.raises(jf.ot.NotConvergedError):
        jf.ot.barycentric_map(x, y, epsilon=1e-3, on_nonconvergence="raise")
    with pytest.warns(jf.ot.NotConvergedWarning, match="SinkhornCoupling"):
        jf.couplings.SinkhornCoupling(epsilon=1e-6)(K, x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert bool(jf.ot.barycentric_map(x, y, epsilon=1.0).converged)
        jf.couplings.SinkhornCoupling(epsilon=1e-6, on_nonconvergence="ignore")(K, x, y)


def test_results_are_pytrees():
    k0, k1 = jax.random.split(jax.random.key(0))
    x, y = jax.random.normal(k0, (32, 2)), jax.random.normal(k1, (32, 2)) + 1.0
    m = jf.ot.barycentric_map(x, y, epsilon=1.0)
    np.testing.assert_allclose(jax.jit(lambda mm, p: mm(p))(m, x[:4]), m(x[:4]), rtol=1e-5)
    stacked = jax.tree.map(lambda a: jnp.stack([a, 2 * a]), m)
    np.testing.assert_allclose(
        jax.vmap(lambda mm: jnp.sum(mm.fitted))(stacked), [m.fitted.sum(), 2 * m.fitted.sum()], rtol=1e-5
    )
    out = jf.ot.sinkhorn_newton_sparse(jf.ot.sqeuclidean_cost(x, y), epsilon=0.5)
    assert int(jax.jit(lambda o: o.iterations)(out)) == int(out.sinkhorn_iterations + out.newton_iterations)
