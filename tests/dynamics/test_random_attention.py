"""Random attention on the sphere and its homogenised limits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxflow.dynamics as dy


@pytest.fixture(scope="module")
def setup():
    with jax.enable_x64(True):
        x0 = dy.uniform_sphere(jax.random.key(0), 12, 6, jnp.float64)
        bank = dy.sample_bank(jax.random.key(1), 32, 6, dy.HeadLaw(1.0, 1.0), jnp.float64)
    return x0, bank


def test_tokens_stay_on_sphere(setup):
    x0, _ = setup
    with jax.enable_x64(True):
        out = dy.random_attention(jax.random.key(2), x0, depth=50, eta=0.3, n_heads=4, beta=2.0)
        np.testing.assert_allclose(jnp.linalg.norm(out.x, axis=-1), 1.0, atol=1e-12)


def test_zero_values_move_nothing(setup):
    x0, _ = setup
    law = dy.HeadLaw(value_mean=0.0, value_scale=0.0)
    with jax.enable_x64(True):
        out = dy.random_attention(jax.random.key(3), x0, depth=20, eta=0.5, n_heads=3, beta=4.0, law=law)
    np.testing.assert_allclose(out.x, x0, atol=1e-14)


def test_order_parameters_closed_forms():
    with jax.enable_x64(True):
        u = jnp.array([[1.0, 0.0, 0.0]])
        one_cluster = jnp.repeat(u, 5, axis=0)
        antipodal = jnp.concatenate([u, -u])
        basis = jnp.eye(3)
        # mean pairwise cosine against the direct double sum
        x = dy.uniform_sphere(jax.random.key(4), 7, 3, jnp.float64)
        g = x @ x.T
        direct = (g.sum() - jnp.trace(g)) / (7 * 6)
        np.testing.assert_allclose(dy.mean_pairwise_cosine(x), direct, rtol=1e-12)
        np.testing.assert_allclose(dy.mean_pairwise_cosine(one_cluster), 1.0)
        np.testing.assert_allclose(dy.mean_token_norm2(antipodal), 0.0, atol=1e-15)
        np.testing.assert_allclose(dy.effective_rank(one_cluster), 1.0, rtol=1e-12)
        np.testing.assert_allclose(dy.effective_rank(antipodal), 1.0, rtol=1e-12)
        np.testing.assert_allclose(dy.effective_rank(basis), 3.0, rtol=1e-12)


def test_bank_is_antithetic():
    with jax.enable_x64(True):
        bank = dy.sample_bank(jax.random.key(5), 16, 4, dy.HeadLaw(0.7, 2.0), jnp.float64)
        np.testing.assert_allclose(bank.v.mean(0), 0.7 * jnp.eye(4), atol=1e-13)
        x = dy.uniform_sphere(jax.random.key(6), 5, 4, jnp.float64)
        # with value_mean = 0 the bank's drift is exactly zero
        bank0 = dy.sample_bank(jax.random.key(5), 16, 4, dy.HeadLaw(0.0, 1.0), jnp.float64)
        mu, _ = dy.bank_moments(x, bank0, 2.0)
        np.testing.assert_allclose(mu, 0.0, atol=1e-13)


def test_limit_drift_is_the_mean_layer_increment():
    """With value_mean = 0 the bank drift vanishes and the mean increment of one layer is the normalisation's Itô
    correction, −η² (P Σ x + ½ tr(P Σ P) x) per head: matched to relative O(η)."""
    with jax.enable_x64(True):
        x0 = dy.uniform_sphere(jax.random.key(10), 10, 5, jnp.float64)
        bank = dy.sample_bank(jax.random.key(11), 64, 5, dy.HeadLaw(0.0, 1.0), jnp.float64)
        rel = []
        for eta in (1e-2, 1e-3):
            layers = jax.vmap(
                lambda q, k, v, e=eta: dy.attention_layer(x0, dy.Heads(q[None], k[None], v[None]), e, 3.0)
            )(bank.q, bank.k, bank.v)
            mean_increment = (layers.mean(0) - x0) / eta
            drift = dy.limit_drift(x0, bank, 3.0, temperature=eta)  # per unit t = ηH
            rel.append(float(jnp.linalg.norm(mean_increment - drift) / jnp.linalg.norm(drift)))
    assert rel[0] < 0.05 and rel[1] < 0.2 * rel[0], rel


def test_finite_depth_converges_to_deterministic_limit(setup):
    """L η H = T fixed: the order parameter's error shrinks like L^(-1/2) (noise over depth has variance T²/L)."""
    x0, bank = setup
    with jax.enable_x64(True):
        horizon, beta = 1.5, 3.0
        limit = dy.homogenized_limit(x0, bank, beta=beta, horizon=horizon, n_steps=300).measures["cosine"][-1]
        keys = jax.random.split(jax.random.key(7), 96)
        errs = []
        depths = (16, 64, 256)
        for depth in depths:
            run = jax.jit(
                jax.vmap(
                    lambda k, L=depth: dy.random_attention(
                        k, x0, depth=L, eta=horizon / L, beta=beta, bank=bank
                    ).measures["cosine"][-1]
                )
            )
            errs.append(float(jnp.mean(jnp.abs(run(keys) - limit))))
    slope = np.polyfit(np.log(depths), np.log(errs), 1)[0]
    assert errs[0] > errs[1] > errs[2]
    assert -0.75 < slope < -0.35, (errs, slope)


def test_stochastic_limit_matches_finite_depth_law(setup):
    """With the temperature τ = η kept, the SDE reproduces the finite-depth spread that the ODE misses."""
    x0, bank = setup
    with jax.enable_x64(True):
        horizon, beta, depth = 1.5, 3.0, 48
        eta = horizon / depth
        keys = jax.random.split(jax.random.key(8), 128)
        finite = jax.jit(
            jax.vmap(
                lambda k: dy.random_attention(k, x0, depth=depth, eta=eta, beta=beta, bank=bank).measures["cosine"][-1]
            )
        )(keys)
        sde = jax.jit(
            jax.vmap(
                lambda k: dy.homogenized_limit(
                    x0, bank, beta=beta, horizon=horizon, temperature=eta, n_steps=150, key=k
                ).measures["cosine"][-1]
            )
        )(jax.random.split(jax.random.key(9), 128))
        ode = dy.homogenized_limit(x0, bank, beta=beta, horizon=horizon, n_steps=150).measures["cosine"][-1]
        assert float(jnp.std(sde)) > 0.5 * float(jnp.std(finite))
        assert float(dy.wasserstein_1d(finite, sde)) < 0.6 * float(jnp.mean(jnp.abs(finite - ode)))


def test_bad_input():
    x = jnp.ones((4, 3))
    with pytest.raises(ValueError, match="unit sphere"):
        dy.random_attention(jax.random.key(0), x, depth=2, eta=0.1)
    xs = dy.normalize(x)
    with pytest.raises(ValueError, match="eta"):
        dy.random_attention(jax.random.key(0), xs, depth=2, eta=-0.1)
    with pytest.raises(ValueError, match="depth"):
        dy.random_attention(jax.random.key(0), xs, depth=0, eta=0.1)
    with pytest.raises(ValueError, match="d >= 2"):
        dy.random_attention(jax.random.key(0), jnp.ones((4, 1)), depth=2, eta=0.1)
    bank = dy.sample_bank(jax.random.key(1), 4, 3)
    with pytest.raises(ValueError, match="needs a key"):
        dy.homogenized_limit(xs, bank, beta=1.0, horizon=1.0, temperature=0.1)
    with pytest.raises(ValueError, match="temperature"):
        dy.homogenized_limit(xs, bank, beta=1.0, horizon=1.0, temperature=-0.1)
    with pytest.raises(ValueError, match="even size"):
        dy.sample_bank(jax.random.key(1), 5, 3)
