"""schedule_transform: a Cond-OT model's velocity re-expressed for another schedule equals that schedule's own
marginal velocity (closed form for a Gaussian mixture, written here independently for any affine schedule), and its
flow map at r = 1 is the original's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxflow as jf
from jaxflow.data import GaussianMixture
from jaxflow.paths import CondOTScheduler, PolynomialConvexScheduler, VPSDEScheduler, VPTrigScheduler
from jaxflow.sampling import ScheduleTransformed, schedule_transform

MEANS = np.array([[2.0, 0.0], [-1.0, 1.5], [0.0, -2.0]])
VARS = np.array([[0.3, 0.5], [0.2, 0.2], [0.6, 0.1]])  # diagonal covariances
WEIGHTS = np.array([0.5, 0.3, 0.2])


def mixture_velocity(sched, t, x):
    """E[α̇ x1 + σ̇ x0 | x_t = x] for x0 ~ N(0, I), x1 ~ Σ π_k N(μ_k, diag v_k): per component the marginal is
    N(α μ_k, α² v_k + σ²) and the conditional mean of α̇ x1 + σ̇ x0 is α̇ μ_k + (α̇ α v_k + σ̇ σ)/C_k (x − α μ_k)."""
    a, s, da, ds = sched.alpha(t), sched.sigma(t), sched.d_alpha(t), sched.d_sigma(t)
    mu, v = jnp.asarray(MEANS), jnp.asarray(VARS)
    c = a**2 * v + s**2  # [K, d]
    diff = x[:, None, :] - a * mu[None]  # [B, K, d]
    logw = jnp.log(jnp.asarray(WEIGHTS)) - 0.5 * jnp.sum(diff**2 / c + jnp.log(c), -1)
    w = jax.nn.softmax(logw, -1)
    comp = da * mu[None] + (da * a * v + ds * s) / c * diff
    return jnp.sum(w[..., None] * comp, 1)


@pytest.fixture(scope="module")
def gmm():
    return GaussianMixture(jnp.asarray(WEIGHTS), jnp.asarray(MEANS), jax.vmap(jnp.diag)(jnp.asarray(VARS)))


def test_the_independent_closed_form_agrees_with_the_library_mixture_under_cond_ot(gmm):
    x = jax.random.normal(jax.random.key(0), (64, 2)) * 2
    for t in (0.0, 0.3, 0.7, 1.0):
        np.testing.assert_allclose(mixture_velocity(CondOTScheduler(), t, x), gmm.velocity(t, x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "new", [VPTrigScheduler(), PolynomialConvexScheduler(2.0), PolynomialConvexScheduler(0.5), VPSDEScheduler()]
)
def test_transformed_cond_ot_velocity_is_the_new_schedules_velocity(gmm, new):
    x = jax.random.normal(jax.random.key(1), (128, 2)) * 2
    moved = schedule_transform(gmm.velocity, CondOTScheduler(), new)
    lo = 0.02 if isinstance(new, PolynomialConvexScheduler) and new.n < 1 else 0.0  # κ̇ = ∞ at 0 for n < 1
    hi = 0.98 if isinstance(new, VPSDEScheduler) else 1.0  # the VP-SDE's σ is not 0 at t = 1 (its end noise)
    for r in np.linspace(lo, hi, 7):
        got = moved(jnp.asarray(r, jnp.float32), x)
        want = mixture_velocity(new, jnp.asarray(r, jnp.float32), x)
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3, err_msg=f"r = {r}")


def test_transform_between_two_non_trivial_schedules_and_back(gmm):
    """Original VP (its velocity from the closed form) to polynomial n = 3; and the round trip is the identity."""
    x = jax.random.normal(jax.random.key(2), (64, 2))
    vp = VPTrigScheduler()
    v_vp = lambda t, y: mixture_velocity(vp, t, y)  # noqa: E731
    moved = schedule_transform(v_vp, vp, PolynomialConvexScheduler(3.0))
    back = schedule_transform(moved, PolynomialConvexScheduler(3.0), vp)
    for r in (0.2, 0.5, 0.9):
        r = jnp.asarray(r)
        np.testing.assert_allclose(moved(r, x), mixture_velocity(PolynomialConvexScheduler(3.0), r, x), atol=2e-3)
        np.testing.assert_allclose(back(r, x), v_vp(r, x), atol=2e-3)


def test_the_flow_map_at_one_is_unchanged(gmm):
    """x̄_1 = s_1 x_{t_1} with s_1 = 1 and t_1 = 1: each source point lands where the original ODE sends it."""
    x0 = jax.random.normal(jax.random.key(3), (256, 2))
    ref = jf.sample(gmm.velocity, x0, solver="tsit5", rtol=1e-6, atol=1e-6).x
    moved = schedule_transform(gmm.velocity, CondOTScheduler(), VPTrigScheduler())
    got = jf.sample(moved, x0, solver="tsit5", rtol=1e-6, atol=1e-6).x
    np.testing.assert_allclose(got, ref, atol=2e-3)


def test_keeps_the_model_boundary_and_batched_times(gmm):
    def model(params, t, x, cond):
        return params * gmm.velocity(t, x)

    moved = schedule_transform(model, CondOTScheduler(), VPTrigScheduler())
    x = jax.random.normal(jax.random.key(4), (8, 2))
    r = jnp.linspace(0.1, 0.9, 8)
    batched = moved(1.0, r, x, None)
    one_by_one = jnp.concatenate([moved(1.0, r[i], x[i : i + 1], None) for i in range(8)])
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-5, atol=1e-6)
    out = jf.sample(moved, x, params=1.0, solver="heun", steps=20)  # the sampler sees a model boundary
    assert out.x.shape == x.shape and bool(jnp.all(jnp.isfinite(out.x)))
    assert isinstance(moved, ScheduleTransformed)
    with pytest.raises(TypeError, match="Scheduler"):
        schedule_transform(model, "cond_ot", VPTrigScheduler())
    with pytest.raises(TypeError, match="arguments"):
        moved(1.0, 0.5, x, None, None)
    np.testing.assert_allclose(jax.jit(moved)(1.0, 0.5, x, None), moved(1.0, 0.5, x, None), rtol=1e-6)
