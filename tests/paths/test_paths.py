import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxflow.data import GaussianMixture
from jaxflow.paths import (
    SCHEDULERS,
    AffinePath,
    BrownianBridgePath,
    CondOTScheduler,
    LipmanScheduler,
    StochasticInterpolant,
    VPTrigScheduler,
    get_scheduler,
)

EXACT_ENDPOINT_PATHS = [
    AffinePath(CondOTScheduler()),
    AffinePath(LipmanScheduler(sigma_min=0.0)),
    AffinePath(VPTrigScheduler()),
    BrownianBridgePath(0.7),
    StochasticInterpolant("linear", "sqrt"),
    StochasticInterpolant("trig", "quadratic"),
    StochasticInterpolant("linear", "sin2"),
]


def _xs(key, shape=(16, 3)):
    k0, k1 = jax.random.split(key)
    return jax.random.normal(k0, shape), 2.0 + jax.random.normal(k1, shape)


@pytest.mark.parametrize("path", EXACT_ENDPOINT_PATHS, ids=lambda p: type(p).__name__)
def test_endpoints(path, key):
    x0, x1 = _xs(key)
    np.testing.assert_allclose(path.sample(key, x0, x1, 0.0).xt, x0, atol=1e-6)
    np.testing.assert_allclose(path.sample(key, x0, x1, 1.0).xt, x1, atol=1e-5)


@pytest.mark.parametrize("path", EXACT_ENDPOINT_PATHS, ids=lambda p: type(p).__name__)
def test_target_is_time_derivative(path, key):
    """u_t equals the finite-difference derivative of x_t in t with the noise z held fixed."""
    x0, x1 = _xs(key)
    t = jnp.linspace(0.1, 0.9, x0.shape[0])
    h = 1e-5
    with jax.enable_x64(True):
        x0, x1, t = (jnp.asarray(a, jnp.float64) for a in (x0, x1, t))
        s = path.sample(key, x0, x1, t)
        plus = path.sample(key, x0, x1, t + h).xt
        minus = path.sample(key, x0, x1, t - h).xt
        np.testing.assert_allclose(s.ut, (plus - minus) / (2 * h), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_scheduler_derivatives_match_autodiff(name):
    s = get_scheduler(name)
    t = jnp.linspace(0.05, 0.95, 7)
    np.testing.assert_allclose(s.d_alpha(t), jax.vmap(jax.grad(s.alpha))(t), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(s.d_sigma(t), jax.vmap(jax.grad(s.sigma))(t), rtol=1e-4, atol=1e-5)


def test_vp_sde_is_variance_preserving_and_approximate_at_source():
    s = get_scheduler("vp_sde")
    t = jnp.linspace(0, 1, 11)
    np.testing.assert_allclose(s.alpha(t) ** 2 + s.sigma(t) ** 2, 1.0, atol=1e-6)
    np.testing.assert_allclose(s.alpha(0.0), np.exp(-(20.0 + 0.1) / 4), rtol=1e-5)


@pytest.mark.parametrize("scheduler", [CondOTScheduler(), VPTrigScheduler(), get_scheduler("vp_sde")])
def test_converter_round_trips(scheduler, key):
    path = AffinePath(scheduler)
    x = jax.random.normal(key, (8, 2))
    pred = jax.random.normal(jax.random.fold_in(key, 1), (8, 2))
    t = jnp.linspace(0.2, 0.8, 8)
    kinds = ["velocity", "score", "epsilon", "x1"]
    for a in kinds:
        for b in kinds:
            back = path.convert(path.convert(pred, t, x, source=a, target=b), t, x, source=b, target=a)
            np.testing.assert_allclose(back, pred, rtol=1e-4, atol=1e-4)


def test_converters_against_gaussian_mixture_closed_form(key):
    """The score of the linear path, converted to a velocity, is the closed-form marginal velocity (PAPERS.md §5)."""
    gmm = GaussianMixture(
        jnp.array([0.4, 0.6]), jnp.array([[2.0, 0.0], [-1.0, 1.5]]), jnp.stack([0.3 * jnp.eye(2)] * 2)
    )
    path = AffinePath(CondOTScheduler())
    x = 1.5 * jax.random.normal(key, (32, 2))
    for t in (0.2, 0.5, 0.8):
        v = path.convert(gmm.score(t, x), jnp.full((32,), t), x, source="score", target="velocity")
        np.testing.assert_allclose(v, gmm.velocity(t, x), rtol=1e-4, atol=1e-4)


def test_antithetic_pair(key):
    x0, x1 = _xs(key)
    s = StochasticInterpolant("linear", "sqrt").sample(key, x0, x1, 0.3, antithetic=True)
    np.testing.assert_allclose(0.5 * (s.xt[0] + s.xt[1]), 0.7 * x0 + 0.3 * x1, atol=1e-6)


def test_bad_inputs(key):
    x0, x1 = _xs(key)
    path = AffinePath()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        path.sample(key, x0, x1, 1.5)
    with pytest.raises(ValueError, match="same shape"):
        path.sample(key, x0, x1[:5], 0.5)
    with pytest.raises(ValueError, match="non-finite"):
        path.sample(key, x0.at[0, 0].set(jnp.nan), x1, 0.5)
    with pytest.raises(ValueError, match="sigma"):
        BrownianBridgePath(0.0)
    with pytest.raises(ValueError, match="unknown scheduler"):
        get_scheduler("cosine-ish")
    with pytest.raises(ValueError, match="unknown gamma"):
        StochasticInterpolant(gamma="cube")
    with pytest.raises(ValueError, match="unknown target"):
        path.convert(x0, 0.5, x0, source="score", target="noise")
