"""Inversion on the closed-form Gaussian-mixture flow: ODE reversal, FlowOpt below/above its step bound, gradients."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxflow as jf

GMM = jf.data.GaussianMixture(
    jnp.ones(3), jnp.array([[3.0, 0.0], [-2.0, 2.0], [-1.0, -3.0]]), jnp.tile(0.3 * jnp.eye(2), (3, 1, 1))
)


def v(t, x):
    return GMM.velocity(t, x)


def f(z):
    return jf.sample(v, z, solver="rk4", steps=20, adjoint=diffrax.DirectAdjoint()).x


@pytest.fixture(scope="module")
def problem():
    z = jax.random.normal(jax.random.key(0), (48, 2))
    return z, f(z)


@pytest.fixture(scope="module")
def bound(problem):
    return jf.sampling.step_size_bound(jax.random.key(1), f, problem[0], iterations=40)


def test_ode_reversal_returns_the_noise(problem):
    z, y = problem
    back = jf.sampling.invert_ode(v, y, solver="tsit5", rtol=1e-7, atol=1e-7).x
    np.testing.assert_allclose(back, z, atol=2e-4)
    # the same fixed-step solver both ways is not exactly invertible: error at the solver's order, not zero
    fixed = jf.sampling.invert_ode(v, y, solver="rk4", steps=20).x
    assert 1e-7 < float(jnp.max(jnp.abs(fixed - z))) < 1e-3


def test_step_size_bound_matches_the_explicit_jacobian(problem, bound):
    z, _ = problem
    b = bound
    jac = jax.vmap(jax.jacfwd(lambda zi: f(zi[None])[0]))(z)  # [B, 2, 2], independent of the JVP/VJP estimates
    eig = np.linalg.eigvals(np.asarray(jac))
    sym = np.linalg.eigvalsh(0.5 * (np.asarray(jac) + np.asarray(jac).transpose(0, 2, 1)))
    np.testing.assert_allclose(b.L, np.linalg.norm(np.asarray(jac), ord=2, axis=(1, 2)), rtol=1e-3)
    np.testing.assert_allclose(b.mu, sym[:, 0], rtol=1e-2, atol=1e-3)
    np.testing.assert_allclose(b.lam, np.max(eig.real, axis=1), rtol=1e-2)
    assert np.all(np.abs(eig.imag) < 1e-4) and np.all(eig.real > 0)  # real positive spectrum: 2/λ_max is sharp


def test_flowopt_converges_below_the_bound_and_diverges_above(problem, bound):
    z, y = problem
    b = bound
    z0 = jnp.zeros_like(z)
    seen = []
    below = jf.sampling.flowopt(
        f, y, z0, step_size=0.5 * b.spectral, iterations=300, tol=1e-5, monitor=lambda k, zz, x: seen.append(k)
    )
    assert below.stopped == "tolerance"
    np.testing.assert_allclose(below.z, z, atol=2e-3)
    assert seen == list(range(below.iterations))  # every iterate was shown to the monitor
    above = jf.sampling.flowopt(f, y, z0, step_size=1.5 * b.spectral, iterations=300, patience=3)
    assert above.stopped == "diverging" and float(above.residuals[-1]) > float(above.residuals[0])
    # the best iterate is kept, not the diverged last one
    assert float(jnp.mean(jnp.abs(f(above.z) - y))) <= float(above.residuals.min()) * 2


def test_gradient_inversion_agrees(problem):
    z, y = problem
    fwd = lambda zz: jf.sample(v, zz, solver="rk4", steps=20).x  # noqa: E731  (reverse mode: default adjoint)
    g = jf.sampling.invert_gradient(
        fwd, y, jnp.zeros_like(z), optimizer=optax.adam(optax.exponential_decay(0.1, 100, 0.7)), iterations=600
    )
    err = np.abs(np.asarray(g.z - z)).max(axis=1)
    # a few points near the boundary between modes converge slowly; most agree with the true noise
    assert np.median(err) < 1e-4 and np.percentile(err, 90) < 1e-2


def test_flowopt_proximity_keeps_the_last_iterate(problem):
    z, y = problem
    r = jf.sampling.flowopt(f, y, jnp.zeros_like(z), step_size=0.3, iterations=50, proximity=2)
    assert r.stopped == "proximity" and r.iterations == 2
    np.testing.assert_allclose(
        r.z, -0.3 * (f(-0.3 * (f(jnp.zeros_like(z)) - y)) - y) - 0.3 * (f(jnp.zeros_like(z)) - y), rtol=1e-5, atol=1e-6
    )


def test_bad_inputs():
    z = jnp.zeros((4, 2))
    with pytest.raises(ValueError, match="step_size"):
        jf.sampling.flowopt(f, z, z, step_size=-1.0)
    with pytest.raises(ValueError, match="per-sample step_size"):
        jf.sampling.flowopt(f, z, z, step_size=jnp.ones(3))
    with pytest.raises(ValueError, match="non-finite|NaN"):
        jf.sampling.flowopt(f, z.at[0, 0].set(jnp.nan), z)
