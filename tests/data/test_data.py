import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxflow as jf
from jaxflow.data import GaussianMixture
from jaxflow.data.toy import _TOY_2D


def _gmm():
    covs = jnp.stack([jnp.array([[0.5, 0.2], [0.2, 0.3]]), 0.2 * jnp.eye(2), jnp.array([[1.0, -0.3], [-0.3, 0.6]])])
    return GaussianMixture(jnp.array([0.2, 0.5, 0.3]), jnp.array([[3.0, 0.0], [-2.0, 1.0], [0.0, -2.5]]), covs)


@pytest.mark.parametrize("t", [0.25, 0.6, 0.85])
def test_velocity_matches_monte_carlo(t):
    """E[x1 − x0 | x_t = x] by self-normalised importance sampling: over x1 ~ p1 with x0 = (x − t x1)/(1 − t)
    (weights N(x0; 0, I)) for small t, over x0 ~ N(0, I) with x1 = (x − (1 − t) x0)/t (weights p1(x1)) for large t."""
    gmm = _gmm()
    x = jnp.array([[0.5, -0.3], [1.2, 0.4], [-1.0, 0.8]])
    n = 400_000
    for xi, vi in zip(x, gmm.velocity(t, x)):
        if t < 0.5:
            x1 = gmm.sample(jax.random.key(1), n)
            x0 = (xi[None] - t * x1) / (1 - t)
            logw = -0.5 * jnp.sum(x0**2, axis=1)
        else:
            x0 = jax.random.normal(jax.random.key(1), (n, 2))
            x1 = (xi[None] - (1 - t) * x0) / t
            logw = gmm.log_prob(x1)
        w = jax.nn.softmax(logw)
        mc = jnp.sum(w[:, None] * (x1 - x0), axis=0)
        np.testing.assert_allclose(vi, mc, atol=0.05)


@pytest.mark.parametrize("t", [0.0, 0.4, 1.0])
def test_score_matches_autodiff_of_log_density(t):
    gmm = _gmm()
    x = jax.random.normal(jax.random.key(2), (10, 2))
    auto = jax.vmap(jax.grad(lambda xi: gmm.log_prob(xi, t)))(x)
    np.testing.assert_allclose(gmm.score(t, x), auto, rtol=1e-4, atol=1e-5)


def test_log_prob_at_t0_is_standard_normal():
    x = jax.random.normal(jax.random.key(3), (5, 2))
    ref = -0.5 * jnp.sum(x**2, 1) - jnp.log(2 * jnp.pi)
    np.testing.assert_allclose(_gmm().log_prob(x, 0.0), ref, rtol=1e-5)


def test_sample_moments():
    gmm = _gmm()
    x = gmm.sample(jax.random.key(4), 200_000)
    mean = jnp.einsum("k,kd->d", gmm.weights, gmm.means)
    np.testing.assert_allclose(x.mean(0), mean, atol=0.02)


def test_gmm_bad_input():
    with pytest.raises(ValueError, match="positive definite"):
        GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), jnp.array([[[1.0, 0.0], [0.0, -1.0]]]))
    with pytest.raises(ValueError, match="non-negative"):
        GaussianMixture(jnp.array([1.0, -0.5]), jnp.zeros((2, 2)), jnp.stack([jnp.eye(2)] * 2))
    with pytest.raises(ValueError, match="covs must have shape"):
        GaussianMixture(jnp.ones(2), jnp.zeros((2, 2)), jnp.stack([jnp.eye(3)] * 2))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        _gmm().velocity(1.2, jnp.zeros(2))


@pytest.mark.parametrize("name", sorted(_TOY_2D))
def test_toy_samplers(name):
    x = jf.data.sample_toy(jax.random.key(0), name, 5000)
    assert x.shape == (5000, 2) and bool(jnp.all(jnp.isfinite(x)))
    again = jf.data.sample_toy(jax.random.key(0), name, 5000)
    np.testing.assert_array_equal(x, again)  # same key, same draw


def _sklearn_reference(name, n, seed):
    """The same distributions drawn by scikit-learn (an independent implementation), mapped as jaxflow documents."""
    from sklearn import datasets

    if name == "moons":
        return 3.0 * datasets.make_moons(n, noise=0.2, random_state=seed)[0] - 1.0
    if name == "scurve":
        x = datasets.make_s_curve(n, noise=0.0, random_state=seed)[0][:, [0, 2]]
        return 2.0 * (x + 0.1 * np.random.default_rng(seed).normal(size=(n, 2)))
    if name == "circles":
        return 3.0 * datasets.make_circles(n, factor=0.5, noise=0.08, random_state=seed)[0]
    if name == "swissroll":
        return datasets.make_swiss_roll(n, noise=1.0, random_state=seed)[0][:, [0, 2]] / 5.0
    raise KeyError(name)


@pytest.mark.parametrize("name", ["moons", "scurve", "circles", "swissroll"])
def test_toy_samplers_match_scikit_learn(name):
    """W2 (POT's exact solver) between our draw and scikit-learn's is at the level of two scikit-learn draws."""
    import ot as pot

    n = 1500
    ours = np.asarray(jf.data.sample_toy(jax.random.key(3), name, n), np.float64)
    ref, ref2 = _sklearn_reference(name, n, 0), _sklearn_reference(name, n, 1)
    w = np.full(n, 1.0 / n)
    w2 = np.sqrt(pot.emd2(w, w, pot.dist(ours, ref)))
    floor = np.sqrt(pot.emd2(w, w, pot.dist(ref2, ref)))
    assert w2 < 1.5 * floor + 0.02, (w2, floor)


def test_eight_gaussians_modes_and_checkerboard_cells():
    x = np.asarray(jf.data.sample_toy(jax.random.key(0), "8gaussians", 40_000))
    angles = np.arange(8) * np.pi / 4
    centres = 5.0 * np.stack([np.cos(angles), np.sin(angles)], 1)
    nearest = np.argmin(((x[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_allclose(np.bincount(nearest, minlength=8) / len(x), 1 / 8, atol=0.01)
    resid = x - centres[nearest]
    np.testing.assert_allclose(resid.var(0), np.sqrt(0.1), rtol=0.05)  # per-coordinate variance sqrt(0.1)
    np.testing.assert_allclose(resid.mean(0), 0.0, atol=0.02)
    c = np.asarray(jf.data.sample_toy(jax.random.key(1), "checkerboard", 40_000)) / 2.0
    cells = np.floor(c).astype(int)
    assert np.all((cells.sum(1) % 2) == 0)  # only the "black" squares of a 4×4 board
    assert np.all((cells >= -2) & (cells <= 1))
    _, counts = np.unique(cells, axis=0, return_counts=True)
    assert len(counts) == 8
    np.testing.assert_allclose(counts / len(c), 1 / 8, atol=0.01)
    g = np.asarray(jf.data.sample_toy(jax.random.key(2), "gaussian", 40_000))
    np.testing.assert_allclose(np.cov(g.T), np.eye(2), atol=0.03)


def test_reference_scalings():
    x = jf.data.sample_toy(jax.random.key(0), "8gaussians", 50_000)
    # centres on the circle of radius 5, per-coordinate variance sqrt(0.1)
    r = jnp.linalg.norm(x, axis=1)
    assert abs(float(jnp.median(r)) - 5.0) < 0.1
    m = jf.data.sample_toy(jax.random.key(0), "moons", 50_000)
    # sklearn moons have mean (0.5, 0.25); mapped by 3x − 1
    np.testing.assert_allclose(m.mean(0), [0.5, -0.25], atol=0.05)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown data set"):
        jf.data.sample_toy(jax.random.key(0), "spirals", 10)
