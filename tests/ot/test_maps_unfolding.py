import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxflow as jf
from jaxflow.ot import gaussian as bw


def test_barycentric_map_exact_on_a_permutation(key):
    x = jax.random.normal(key, (40, 3))
    perm = jax.random.permutation(jax.random.key(1), 40)
    y = x[perm] * 1.0001 + 0.0  # y is a relabelled copy (scaled by a hair so the OT plan is unique)
    tmap = jf.ot.barycentric_map(x, y)
    # the optimal plan between a cloud and a relabelled copy is the relabelling: T̂(x_i) = y_σ⁻¹(i)
    np.testing.assert_allclose(tmap.fitted, x * 1.0001, atol=1e-5)
    # out of sample: nearest fitted point plus the offset
    np.testing.assert_allclose(tmap(x[:5] + 1e-3), x[:5] * 1.0001 + 1e-3, atol=1e-5)


@pytest.mark.slow  # in `make test-all`
def test_entropic_barycentric_map_approaches_gaussian_map():
    with jax.enable_x64(True):
        k1, k2 = jax.random.split(jax.random.key(2))
        n, d = 1500, 2
        cov = jnp.array([[2.0, 0.6], [0.6, 0.5]], jnp.float64)
        x = jax.random.normal(k1, (n, d), jnp.float64)
        y = jax.random.multivariate_normal(k2, jnp.ones(d), cov, (n,), dtype=jnp.float64)
        exact = bw.gaussian_map(jnp.zeros(d), jnp.eye(d), jnp.ones(d), cov)
        probe = jax.random.normal(jax.random.key(3), (200, d), jnp.float64) * 0.7
        errs = {}
        for eps in (None, 0.05):
            tmap = jf.ot.barycentric_map(x, y, epsilon=eps)
            errs[eps] = float(jnp.mean(jnp.sum((tmap(probe) - exact(probe)) ** 2, 1)))
        # both estimators land close to the closed form (relative to E‖T(x) − x‖² ≈ 2.5)
        assert errs[None] < 0.1 and errs[0.05] < 0.05
        # at a fitted point the entropic extension reproduces the plan's row average
        tmap = jf.ot.barycentric_map(x[:200], y[:200], epsilon=0.05)
        np.testing.assert_allclose(tmap(x[:200]), tmap.fitted, atol=1e-6)


def test_richardson_lucy_identity_response_recovers_histogram():
    g = jnp.array([5.0, 20.0, 40.0, 10.0, 1.0])
    hist = jf.ot.richardson_lucy(jnp.eye(5), g, n_iter=3)
    np.testing.assert_allclose(hist[-1], g, rtol=1e-6)
    # a 2-bin smearing: iterating recovers a truth that the response folds into the data
    r = jnp.array([[0.8, 0.3], [0.2, 0.7]])
    truth = jnp.array([100.0, 30.0])
    out = jf.ot.richardson_lucy(r, r @ truth, n_iter=2000)
    np.testing.assert_allclose(out[-1], truth, rtol=1e-3)


def test_wasserstein_unfolding_conserves_mass_decreases_objective_and_deconvolves():
    with jax.enable_x64(True):
        k = jax.random.split(jax.random.key(4), 4)
        sigma = 0.3
        atoms = jnp.linspace(-3, 3, 61)  # truth atoms
        resp = atoms[:, None] + sigma * jax.random.normal(k[0], (61, 50), jnp.float64)  # S = 50 responses each
        truth = jnp.where(jax.random.bernoulli(k[1], 0.5, (4000,)), -1.0, 1.2)  # two spikes
        data = truth + sigma * jax.random.normal(k[2], (4000,), jnp.float64)
        out = jf.ot.wasserstein_unfolding(data, resp, epsilon=0.01, n_iter=300)
        np.testing.assert_allclose(out.weights.sum(1), 1.0, atol=1e-10)
        assert np.all(np.diff(np.asarray(out.objective)) <= 1e-12)
        w = out.weights[-1]
        # the unfolded law is much sharper than the data: most mass within 0.25 of the two spikes
        near = (jnp.abs(atoms + 1.0) < 0.25) | (jnp.abs(atoms - 1.2) < 0.25)
        assert float(w[near].sum()) > 0.85
        data_near = ((jnp.abs(data + 1.0) < 0.25) | (jnp.abs(data - 1.2) < 0.25)).mean()
        assert float(data_near) < 0.65


def test_one_response_per_atom_is_one_em_step_per_iteration():
    # with identical atoms and responses the iteration is EM for a Gaussian-kernel mixture; compare to a numpy EM
    with jax.enable_x64(True):
        atoms = np.linspace(-2, 2, 9)
        data = np.random.default_rng(0).normal(0.5, 0.7, 300)
        eps = 0.2
        out = jf.ot.wasserstein_unfolding(data, atoms, epsilon=eps, n_iter=5)
        kmat = np.exp(-((atoms[:, None] - data[None, :]) ** 2) / eps)
        w = np.full(9, 1 / 9)
        for _ in range(5):
            w = w * (kmat @ (1 / 300 / (w @ kmat)))
        np.testing.assert_allclose(out.weights[-1], w, rtol=1e-8)


def test_bad_inputs():
    with pytest.raises(ValueError, match="epsilon"):
        jf.ot.wasserstein_unfolding(jnp.zeros(4), jnp.zeros(3), epsilon=0.0)
    with pytest.raises(ValueError, match="non-negative"):
        jf.ot.wasserstein_unfolding(jnp.zeros(4), jnp.zeros(3), epsilon=0.1, prior=jnp.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="bins"):
        jf.ot.richardson_lucy(jnp.eye(3), jnp.ones(4))
    with pytest.raises(ValueError, match="epsilon"):
        jf.ot.barycentric_map(jnp.zeros((3, 2)), jnp.ones((3, 2)), epsilon=-1.0)
