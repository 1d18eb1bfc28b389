import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxflow.couplings import GibbsWeightedCoupling
from jaxflow.losses import LogitNormalTime, TruncatedUniformTime, UniformTime, cfm_loss, get_time_sampler


def test_cfm_loss_vanishes_for_the_exact_marginal_velocity(key):
    """Point-mass target c: the marginal velocity (c − x)/(1 − t) equals every conditional target c − x0."""
    c = jnp.array([2.0, -1.0])

    def velocity(params, t, x, cond=None):
        return (c - x) / (1.0 - t)[:, None]

    loss = cfm_loss(velocity, time_sampler=TruncatedUniformTime(0.01))
    batch = {"x0": jax.random.normal(key, (128, 2)), "x1": jnp.tile(c, (128, 1))}
    value, aux = jax.jit(loss)(None, batch, key)
    assert float(value) < 1e-8


def test_cfm_loss_equals_manual_computation(key):
    def velocity(params, t, x, cond=None):
        return params * x

    batch = {"x0": jax.random.normal(key, (64, 3)), "x1": jax.random.normal(jax.random.fold_in(key, 1), (64, 3))}
    loss = cfm_loss(velocity)
    value, _ = loss(0.5, batch, key)
    _, k_t, _ = jax.random.split(key, 3)
    t = jax.random.uniform(k_t, (64,))[:, None]
    xt = t * batch["x1"] + (1 - t) * batch["x0"]
    manual = jnp.mean((0.5 * xt - (batch["x1"] - batch["x0"])) ** 2)
    np.testing.assert_allclose(value, manual, rtol=1e-5)


def test_weighted_loss_uses_the_coupling_weights(key):
    def velocity(params, t, x, cond=None):
        return jnp.zeros_like(x)

    batch = {"x0": jax.random.normal(key, (64, 2)), "x1": 2 + jax.random.normal(jax.random.fold_in(key, 1), (64, 2))}
    coupling = GibbsWeightedCoupling(epsilon=1.0)
    value, aux = cfm_loss(velocity, coupling=coupling)(None, batch, key)
    k_pair = jax.random.split(key, 3)[0]
    w = coupling(k_pair, batch["x0"], batch["x1"]).weights
    manual = jnp.mean(w * jnp.mean((batch["x1"] - batch["x0"]) ** 2, axis=1))
    np.testing.assert_allclose(value, manual, rtol=1e-5)
    assert float(value) != pytest.approx(float(aux["unweighted_loss"]))


def test_loss_is_differentiable_and_vmappable(key):
    def velocity(params, t, x, cond=None):
        return params * x

    batch = {"x0": jax.random.normal(key, (32, 2)), "x1": jax.random.normal(jax.random.fold_in(key, 1), (32, 2))}
    loss = cfm_loss(velocity)
    g = jax.grad(lambda p: loss(p, batch, key)[0])(0.3)
    eps = 1e-3
    fd = (loss(0.3 + eps, batch, key)[0] - loss(0.3 - eps, batch, key)[0]) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=1e-2)
    vals = jax.vmap(lambda p: loss(p, batch, key)[0])(jnp.array([0.1, 0.2]))
    assert vals.shape == (2,)


@pytest.mark.parametrize("sampler", [UniformTime(), LogitNormalTime(0.5, 0.8), TruncatedUniformTime(0.05)])
def test_time_samplers_range_and_law(sampler, key):
    t = sampler(key, 100_000)
    assert float(t.min()) >= 0 and float(t.max()) <= 1
    if isinstance(sampler, LogitNormalTime):
        logit = jnp.log(t / (1 - t))
        np.testing.assert_allclose([logit.mean(), logit.std()], [0.5, 0.8], atol=0.01)
    if isinstance(sampler, TruncatedUniformTime):
        assert float(t.min()) >= 0.05 and float(t.max()) <= 0.95
        np.testing.assert_allclose(t.mean(), 0.5, atol=0.005)


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown time sampler"):
        get_time_sampler("beta")
    with pytest.raises(ValueError, match="eps"):
        TruncatedUniformTime(0.7)
    with pytest.raises(ValueError, match="std"):
        LogitNormalTime(std=0.0)

    def velocity(params, t, x, cond=None):
        return x[:, :1]

    with pytest.raises(ValueError, match="model returned shape"):
        cfm_loss(velocity)(None, {"x0": jnp.zeros((4, 2)), "x1": jnp.ones((4, 2))}, jax.random.key(0))
    with pytest.raises(ValueError, match="batch must be a dict holding"):
        cfm_loss(velocity)(None, {"x": jnp.zeros((4, 2))}, jax.random.key(0))
