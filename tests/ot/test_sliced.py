import jax
import jax.numpy as jnp
import numpy as np
import ot as pot
import pytest

import jaxflow as jf
from jaxflow.ot import sliced


def _pair(key, n=300, m=300, d=6):
    k1, k2 = jax.random.split(key)
    x = jax.random.normal(k1, (n, d))
    y = jax.random.normal(k2, (m, d)) * jnp.linspace(0.5, 2.0, d) + 0.7
    return x, y


def test_plain_sw_matches_pot_on_same_directions(key):
    x, y = _pair(key)
    k = jax.random.key(5)
    est = jf.ot.sliced_wasserstein(k, x, y, n_projections=50)
    theta = np.asarray(sliced.random_directions(k, 50, x.shape[1]))
    ref = pot.sliced_wasserstein_distance(np.asarray(x), np.asarray(y), projections=theta.T)
    np.testing.assert_allclose(float(est.distance), ref, rtol=1e-5)
    # standard error is the sample std of the per-direction W_2^2 over √L, propagated through the root
    per = np.asarray(sliced.projected_wasserstein(jnp.asarray(theta), x, y))
    np.testing.assert_allclose(float(est.power_stderr), per.std(ddof=1) / np.sqrt(50), rtol=1e-4)


def test_unequal_sizes_and_weights_match_pot_quantiles(key):
    x, y = _pair(key, n=120, m=77, d=3)
    a = jax.random.uniform(jax.random.key(1), (120,)) + 0.1
    b = jax.random.uniform(jax.random.key(2), (77,)) + 0.1
    theta = sliced.random_directions(jax.random.key(3), 20, 3)
    got = sliced.projected_wasserstein(theta, x, y, 2.0, a / a.sum(), b / b.sum())
    for ell in range(20):
        u = np.asarray(x @ theta[ell])
        v = np.asarray(y @ theta[ell])
        ref = pot.wasserstein_1d(u, v, np.asarray(a / a.sum()), np.asarray(b / b.sum()), p=2)
        np.testing.assert_allclose(float(got[ell]), ref, rtol=1e-4, atol=1e-6)
    # duplicating every point (weights 1/2 each) must not change the equal-size sorting answer
    x2 = jnp.concatenate([x[:77], x[:77]])
    np.testing.assert_allclose(
        sliced.projected_wasserstein(theta, x2, y, 2.0, jnp.ones(154) / 154, None),
        sliced.projected_wasserstein(theta, x[:77], y),
        rtol=1e-4,
    )


@pytest.mark.parametrize("cv", ["lower", "upper"])
def test_control_variates_unbiased_and_lower_variance(cv):
    x, y = _pair(jax.random.key(11), n=400, m=400, d=16)
    # reference: plain MC with many directions
    truth = float(jf.ot.sliced_wasserstein(jax.random.key(0), x, y, n_projections=20_000).power)
    keys = jax.random.split(jax.random.key(1), 300)
    plain = jax.vmap(lambda k: jf.ot.sliced_wasserstein(k, x, y, 50).power)(keys)
    with_cv = jax.vmap(lambda k: jf.ot.sliced_wasserstein(k, x, y, 50, control_variate=cv).power)(keys)
    se = float(jnp.std(with_cv)) / np.sqrt(300)
    assert abs(float(jnp.mean(with_cv)) - truth) < 4 * se + 2e-3 * truth
    assert float(jnp.var(with_cv)) < float(jnp.var(plain))


def test_negative_power_estimate_gives_zero_not_nan():
    d, se = sliced._root(jnp.array(-1e-3), jnp.array(1e-3), 2.0)
    assert float(d) == 0.0 and np.isfinite(float(se))


def test_max_sw_matches_best_direction_bruteforce():
    k1, k2 = jax.random.split(jax.random.key(2))
    x = jax.random.normal(k1, (300, 2))
    y = jax.random.normal(k2, (300, 2)) * jnp.array([3.0, 0.5])
    out = jf.ot.max_sliced_wasserstein(jax.random.key(0), x, y, n_steps=200)
    ang = jnp.linspace(0, jnp.pi, 3601)
    theta = jnp.stack([jnp.cos(ang), jnp.sin(ang)], 1)
    brute = float(jnp.sqrt(jnp.max(sliced.projected_wasserstein(theta, x, y))))
    assert abs(float(out.distance) - brute) < 2e-3 * brute
    # never below plain SW
    assert float(out.distance) >= float(jf.ot.sliced_wasserstein(jax.random.key(1), x, y, 500).distance)


def test_vmf_sampler_mean_resultant_and_norm():
    d, kappa = 7, 20.0
    mu = jnp.arange(1.0, d + 1)
    mu = mu / jnp.linalg.norm(mu)
    v = jf.ot.sample_vmf(jax.random.key(0), mu, kappa, 20_000)
    np.testing.assert_allclose(jnp.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    # E⟨θ, μ⟩ = A_d(κ) = I_{d/2}(κ) / I_{d/2−1}(κ)
    from scipy.special import ive

    expected = ive(d / 2, kappa) / ive(d / 2 - 1, kappa)
    np.testing.assert_allclose(float(jnp.mean(v @ mu)), expected, atol=5e-3)
    # κ = 0 is uniform: mean ≈ 0
    u = jf.ot.sample_vmf(jax.random.key(1), mu, 0.0, 20_000)
    assert float(jnp.linalg.norm(u.mean(0))) < 0.03


@pytest.mark.slow  # in `make test-all`
def test_dsw_interpolates_between_sw_and_max_sw(key):
    x, y = _pair(key, d=5)
    sw = float(jf.ot.sliced_wasserstein(key, x, y, 2000).distance)
    msw = float(jf.ot.max_sliced_wasserstein(key, x, y).distance)
    lo = float(jf.ot.distributional_sliced_wasserstein(key, x, y, kappa=0.0, n_projections=2000, n_steps=2).distance)
    hi = float(jf.ot.distributional_sliced_wasserstein(key, x, y, kappa=1000.0, n_steps=200).distance)
    assert abs(lo - sw) < 0.05 * sw
    assert abs(hi - msw) < 0.02 * msw


def test_bad_inputs(key, unchecked):
    x = jnp.ones((5, 2))
    with pytest.raises(ValueError, match="dimension"):
        jf.ot.sliced_wasserstein(key, x, jnp.ones((5, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        jf.ot.sliced_wasserstein(key, x, x, weights=(-jnp.ones(5), None))
    with pytest.raises(ValueError, match="control_variate"):
        jf.ot.sliced_wasserstein(key, x, x, control_variate="middle")
    with pytest.raises(ValueError, match="p must"):
        jf.ot.sliced_wasserstein(key, x, x, p=0.5)
    with pytest.raises(ValueError, match="non-finite"):
        jf.ot.sliced_wasserstein(key, x.at[0, 0].set(jnp.nan), x)
    with pytest.raises(ValueError, match="kappa"):
        jf.ot.sample_vmf(key, jnp.ones(3), -1.0, 4)
