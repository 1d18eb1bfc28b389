import jax
import jax.numpy as jnp
import numpy as np
import ot as pot
import pytest

import jaxflow as jf
from jaxflow.metrics import energy_distance, mmd, normalized_path_energy, path_energy, straightness, wasserstein


def test_wasserstein_1d_equals_sorted_matching(key):
    x = jax.random.normal(key, (300, 1))
    y = 2.0 + 0.5 * jax.random.normal(jax.random.fold_in(key, 1), (300, 1))
    ref = np.sqrt(np.mean((np.sort(np.asarray(x[:, 0])) - np.sort(np.asarray(y[:, 0]))) ** 2))
    assert wasserstein(x, y) == pytest.approx(ref, rel=1e-6)


def test_wasserstein_gaussian_closed_form(key):
    """W2(N(0, I), N(m, s² I)) = sqrt(|m|² + d (1 − s)²); empirical estimate at n = 2000 within 5%."""
    n, m, s = 2000, jnp.array([3.0, -1.0]), 1.5
    x = jax.random.normal(key, (n, 2))
    y = m + s * jax.random.normal(jax.random.fold_in(key, 1), (n, 2))
    exact = float(jnp.sqrt(jnp.sum(m**2) + 2 * (1 - s) ** 2))
    assert wasserstein(x, y) == pytest.approx(exact, rel=0.05)


def test_wasserstein_unequal_sizes_and_p1(key):
    """Against an independent solver: with 50 and 70 points of equal weight, replicating every x 7 times and every y 5
    times makes OT an assignment problem (Birkhoff), solved by SciPy's Hungarian algorithm."""
    from scipy.optimize import linear_sum_assignment

    x = np.asarray(jax.random.normal(key, (50, 3)), np.float64)
    y = np.asarray(jax.random.normal(jax.random.fold_in(key, 1), (70, 3)), np.float64)
    xr, yr = np.repeat(x, 7, axis=0), np.repeat(y, 5, axis=0)
    for p in (1, 2):
        cost = np.linalg.norm(xr[:, None] - yr[None], axis=-1) ** p
        rows, cols = linear_sum_assignment(cost)
        ref = cost[rows, cols].mean() ** (1 / p)
        assert wasserstein(x, y, p=p) == pytest.approx(ref, rel=1e-6)


def test_sliced_wasserstein_against_pot_on_same_directions(key):
    x = jax.random.normal(key, (200, 4))
    y = 1.0 + jax.random.normal(jax.random.fold_in(key, 1), (200, 4))
    k = jax.random.key(7)
    sw = float(jf.metrics.sliced_wasserstein(k, x, y, n_projections=64))
    theta = np.asarray(jf.ot.sliced.random_directions(k, 64, 4))
    ref = pot.sliced_wasserstein_distance(np.asarray(x), np.asarray(y), projections=theta.T)
    assert sw == pytest.approx(ref, rel=1e-4)


def test_mmd_and_energy_distance(key):
    x = jax.random.normal(key, (400, 2))
    x2 = jax.random.normal(jax.random.fold_in(key, 2), (400, 2))
    y = 1.0 + jax.random.normal(jax.random.fold_in(key, 1), (400, 2))
    assert abs(float(mmd(x, x2))) < 0.02 < float(mmd(x, y))
    assert float(mmd(x, x, unbiased=False)) == pytest.approx(0.0, abs=1e-6)
    assert abs(float(energy_distance(x, x2))) < 0.05 < float(energy_distance(x, y))
    # energy distance against its definition computed with scipy
    from scipy.spatial.distance import cdist

    a, b = np.asarray(x[:100], np.float64), np.asarray(y[:100], np.float64)
    ref = 2 * cdist(a, b).mean() - cdist(a, a).mean() - cdist(b, b).mean()
    assert float(energy_distance(a, b)) == pytest.approx(ref, rel=1e-4)


def test_path_metrics_on_straight_constant_flow():
    c = jnp.array([3.0, 4.0])

    def v(t, x):
        return jnp.broadcast_to(c, x.shape)

    x0 = jnp.zeros((10, 2))
    out = jf.sample(v, x0, solver="euler", steps=10, save_trajectory=21)
    pe = path_energy(v, out.trajectory, out.ts)
    assert float(pe) == pytest.approx(25.0, rel=1e-5)
    assert float(straightness(v, out.trajectory, out.ts)) == pytest.approx(0.0, abs=1e-6)
    assert float(normalized_path_energy(pe, 25.0)) == pytest.approx(0.0, abs=1e-6)


def test_bad_inputs(key, unchecked):
    x = jax.random.normal(key, (10, 2))
    with pytest.raises(ValueError, match="same dimension"):
        jf.metrics.wasserstein(x, jnp.zeros((10, 3)))
    with pytest.raises(ValueError, match="at most"):
        jf.metrics.wasserstein(jnp.zeros((5001, 1)), jnp.zeros((3, 1)))
    with pytest.raises(ValueError, match="non-finite"):
        jf.metrics.wasserstein(x.at[0, 0].set(jnp.nan), x)
    with pytest.raises(ValueError, match="bandwidths"):
        jf.metrics.mmd(x, x, bandwidths=(0.0,))
