import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxflow as jf


def _gmm(d=3):
    means = jnp.array([[1.0] * d, [-1.0] * d]) * jnp.linspace(0.5, 1.5, d)
    covs = jnp.stack([jnp.eye(d) * 0.3, jnp.diag(jnp.linspace(0.2, 0.8, d))])
    return jf.data.GaussianMixture(jnp.array([0.4, 0.6]), means, covs)


def test_gradient_field_is_conservative(key):
    gmm = _gmm()
    x = jax.random.normal(key, (20, 3))
    score = lambda y: gmm.score(0.7, y)  # noqa: E731  (a gradient of log p_t)
    # jitted: the metrics are traceable, and compiled they take a fraction of their op-by-op time
    asym = jax.jit(lambda y: jf.metrics.jacobian_asymmetry(jax.random.key(1), score, y))(x)
    assert float(asym.max()) < 1e-5
    loops = jax.jit(lambda y: jf.metrics.loop_integrals(jax.random.key(2), score, y))(x)
    assert float(jnp.abs(loops).max()) < 1e-5


def test_rotation_field_known_values(key):
    a = jnp.array([[0.0, -1.0], [1.0, 0.0]])
    rot = lambda y: y @ a.T  # noqa: E731
    x = jax.random.normal(key, (10, 2))
    # J − Jᵀ = 2A: ‖2A‖_F / ‖A‖_F = 2 exactly (every probe gives the same ratio... up to the Hutchinson average)
    asym = jf.metrics.jacobian_asymmetry(jax.random.key(1), rot, x, n_probes=64)
    np.testing.assert_allclose(asym, 2.0, rtol=1e-5)
    # circles centred at the origin: |∮ f·dl| / ∮|f||dl| = 1
    loops = jf.metrics.loop_integrals(jax.random.key(2), rot, jnp.zeros((10, 2)), radius=0.7)
    np.testing.assert_allclose(jnp.abs(loops), 1.0, rtol=1e-5)
    # off-centre circles: ∮ Ax·dl = 2πr² (Stokes, curl 2), ∮|f||dl| computed by quadrature independently
    c = jnp.array([[1.5, -0.5]])
    loop = jf.metrics.loop_integrals(jax.random.key(3), rot, c, radius=0.4, n_points=256)
    phi = np.linspace(0, 2 * np.pi, 200_001)
    pts = np.asarray(c[0])[None] + 0.4 * np.stack([np.cos(phi), np.sin(phi)], 1)
    denom = np.trapezoid(np.linalg.norm(pts, axis=1) * 0.4, phi)
    np.testing.assert_allclose(abs(float(loop[0])), 2 * np.pi * 0.4**2 / denom, rtol=1e-4)


def test_asymmetry_matches_dense_jacobian(key):
    w = jax.random.normal(key, (4, 4))
    field = lambda y: jnp.tanh(y @ w.T)  # noqa: E731
    x = jax.random.normal(jax.random.key(1), (5, 4))
    est = jf.metrics.jacobian_asymmetry(jax.random.key(2), field, x, n_probes=4000)
    jac = jax.vmap(jax.jacfwd(lambda y: field(y[None])[0]))(x)
    exact = jnp.linalg.norm(jac - jnp.swapaxes(jac, 1, 2), axis=(1, 2)) / jnp.linalg.norm(jac, axis=(1, 2))
    np.testing.assert_allclose(est, exact, rtol=0.08)


def test_bad_inputs(key):
    with pytest.raises(ValueError, match="dimension >= 2"):
        jf.metrics.loop_integrals(key, lambda y: y, jnp.zeros((3, 1)))
    with pytest.raises(ValueError, match="radius"):
        jf.metrics.loop_integrals(key, lambda y: y, jnp.zeros((3, 2)), radius=0.0)
