import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sla
from ott.tools.gaussian_mixture.gaussian import Gaussian

import jaxflow as jf
from jaxflow.ot import gaussian as bw


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def _spd(key, d, cond=10.0):
    q, _ = jnp.linalg.qr(jax.random.normal(key, (d, d), jnp.float64))
    return (q * jnp.geomspace(1.0, cond, d)) @ q.T


def test_bures_closed_form_scipy_and_ott():
    k = jax.random.split(jax.random.key(0), 4)
    m1, m2 = jax.random.normal(k[0], (4,), jnp.float64), jax.random.normal(k[1], (4,), jnp.float64)
    a, b = _spd(k[2], 4), _spd(k[3], 4, 100.0)
    rb = sla.sqrtm(np.asarray(b))
    ref = np.sum((m1 - m2) ** 2) + np.trace(a) + np.trace(b) - 2 * np.trace(sla.sqrtm(rb @ np.asarray(a) @ rb)).real
    got = jf.ot.bures_wasserstein(m1, a, m2, b)
    np.testing.assert_allclose(float(got) ** 2, ref, rtol=1e-10)
    ott_val = Gaussian.from_mean_and_cov(m1, a).w2_dist(Gaussian.from_mean_and_cov(m2, b))
    # ott computes the square root by an iterative scheme with its own tolerance (agrees to ~1e-6)
    np.testing.assert_allclose(float(got) ** 2, float(ott_val), rtol=1e-5)


def test_commuting_case_and_singular_covariances():
    a, b = jnp.diag(jnp.array([1.0, 4.0, 0.0])), jnp.diag(jnp.array([9.0, 0.0, 0.0]))
    z = jnp.zeros(3)
    # diagonal: d² = Σ (√a_i − √b_i)²
    np.testing.assert_allclose(float(jf.ot.bures_wasserstein(z, a, z, b)) ** 2, 4.0 + 4.0 + 0.0, atol=1e-12)
    # ill-conditioned: finite and matches the closed form
    c = jnp.diag(jnp.array([1e-12, 1.0, 1e6]))
    d2 = float(bw.bures_distance_squared(c, c))
    assert np.isfinite(d2) and d2 < 1e-6
    # geodesic from a full-rank to a singular end reaches it
    _, cov1 = bw.geodesic(z, jnp.eye(3), z, b, 1.0)
    np.testing.assert_allclose(cov1, b, atol=1e-10)


def test_map_pushes_gaussian_and_geodesic_formula():
    k = jax.random.split(jax.random.key(1), 4)
    a, b = _spd(k[0], 3), _spd(k[1], 3, 50.0)
    m1, m2 = jnp.ones(3), -jnp.ones(3)
    t_map = jf.ot.gaussian_map(m1, a, m2, b)
    np.testing.assert_allclose(t_map.matrix @ a @ t_map.matrix, b, atol=1e-9)
    np.testing.assert_allclose(t_map(m1[None])[0], m2, atol=1e-12)
    # geodesic: (1−t)²A + t²B + t(1−t)[(AB)^½ + (BA)^½]
    t = 0.3
    ab = sla.sqrtm(np.asarray(a @ b)).real
    ref = (1 - t) ** 2 * a + t**2 * b + t * (1 - t) * (ab + ab.T)
    mt, ct = bw.geodesic(m1, a, m2, b, t)
    np.testing.assert_allclose(ct, ref, atol=1e-9)
    np.testing.assert_allclose(mt, 0.4 * jnp.ones(3), atol=1e-12)
    # constant speed: W(γ0, γt) = t W(γ0, γ1)
    np.testing.assert_allclose(
        jf.ot.bures_wasserstein(m1, a, mt, ct), t * jf.ot.bures_wasserstein(m1, a, m2, b), rtol=1e-9
    )


def test_log_exp_inverse_and_norm_is_distance():
    k = jax.random.split(jax.random.key(2), 2)
    p, x = _spd(k[0], 4), _spd(k[1], 4, 30.0)
    v = bw.log_map(p, x)
    np.testing.assert_allclose(bw.exp_map(p, v), x, atol=1e-9)
    np.testing.assert_allclose(bw.inner(p, v, v), bw.bures_distance_squared(p, x), rtol=1e-9)
    # Lyapunov solution
    lv = bw.lyapunov(p, v)
    np.testing.assert_allclose(lv @ p + p @ lv, v, atol=1e-10)


def test_frechet_mean_fixed_point_and_commuting_case():
    diag = jnp.array([[1.0, 4.0], [9.0, 16.0], [4.0, 1.0]])
    covs = jax.vmap(jnp.diag)(diag)
    # commuting: barycentre = (mean of square roots)²
    np.testing.assert_allclose(bw.frechet_mean(covs), jnp.diag(jnp.mean(jnp.sqrt(diag), 0) ** 2), atol=1e-10)
    covs = jnp.stack([_spd(k, 3, 20.0) for k in jax.random.split(jax.random.key(3), 5)])
    s = bw.frechet_mean(covs, n_iter=100)
    # optimality: the OT maps from the barycentre average to the identity
    maps = jax.vmap(lambda c: bw.ot_map_matrix(s, c))(covs)
    np.testing.assert_allclose(maps.mean(0), jnp.eye(3), atol=1e-8)


def test_parallel_transport_of_geodesic_velocity():
    k = jax.random.split(jax.random.key(4), 3)
    p, q = _spd(k[0], 3, 4.0), _spd(k[1], 3, 4.0)
    v = bw.log_map(p, q)
    moved = bw.parallel_transport(p, q, v, n_steps=32)
    np.testing.assert_allclose(moved, -bw.log_map(q, p), atol=1e-3 * float(jnp.abs(v).max()))
    w = jax.random.normal(k[2], (3, 3), jnp.float64)
    w = w + w.T
    moved_w = bw.parallel_transport(p, q, w, n_steps=32)
    np.testing.assert_allclose(bw.inner(q, moved_w, moved_w), bw.inner(p, w, w), rtol=1e-2)
    # the ladder converges as it is refined
    w4, w16 = (bw.parallel_transport(p, q, w, n_steps=n) for n in (4, 16))
    w64 = bw.parallel_transport(p, q, w, n_steps=64)
    assert float(jnp.abs(w64 - w16).max()) < float(jnp.abs(w16 - w4).max())


def test_bw_batchnorm_commuting_inputs():
    key = jax.random.key(5)
    diag = jnp.exp(2.0 * jax.random.normal(key, (16, 3), jnp.float64))  # dispersion > 1: the scaling contracts
    x = jax.vmap(jnp.diag)(diag)
    layer = jf.nn.BuresWassersteinBatchNorm(momentum=0.5)
    variables = layer.init(jax.random.key(0), x)
    y, updates = layer.apply(variables, x, mutable=["batch_stats"])
    # identity bias and unit scale: batch mean I, dispersion 1 (diagonal inputs commute)
    np.testing.assert_allclose(bw.frechet_mean(y), jnp.eye(3), atol=1e-6)
    disp = jnp.mean(jax.vmap(lambda c: bw.bures_distance_squared(c, jnp.eye(3)))(y))
    np.testing.assert_allclose(disp, 1.0, rtol=1e-3)
    assert np.all(np.linalg.eigvalsh(np.asarray(y)) > 0)
    # running mean moved half-way (geodesically) towards the batch mean
    m = bw.frechet_mean(x)
    half = bw.geodesic(jnp.zeros(3), jnp.eye(3), jnp.zeros(3), m, 0.5)[1]
    np.testing.assert_allclose(updates["batch_stats"]["mean"], half, atol=1e-8)
    with pytest.raises(ValueError, match="SPD inputs"):
        layer.apply(variables, jnp.ones((2, 3)), mutable=["batch_stats"])


def test_bad_inputs():
    z = jnp.zeros(2)
    with pytest.raises(ValueError, match="symmetric"):
        jf.ot.bures_wasserstein(z, jnp.array([[1.0, 2.0], [0.0, 1.0]]), z, jnp.eye(2))
    with pytest.raises(ValueError, match="positive semi-definite"):
        jf.ot.bures_wasserstein(z, jnp.diag(jnp.array([1.0, -1.0])), z, jnp.eye(2))
    with pytest.raises(ValueError, match="match"):
        jf.ot.bures_wasserstein(jnp.zeros(3), jnp.eye(2), z, jnp.eye(2))
    with pytest.raises(ValueError, match="positive definite"):
        bw.log_map(jnp.diag(jnp.array([1.0, 0.0])), jnp.eye(2))
