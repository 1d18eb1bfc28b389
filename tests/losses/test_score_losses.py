"""Denoising and interpolant objectives: their minimisers are the closed-form conditional expectations.

Data N(0, s² I), source N(0, I), a fixed time t and a model pred = θ x. Each loss is quadratic in θ, so its minimiser
θ* = −L'(0)/L''(0) (autodiff, large batch) must equal the coefficient c(t) of the exact field E[target | x_t = x] = c x.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxflow as jf
from jaxflow.losses import denoising_loss, interpolant_loss
from jaxflow.losses.time_samplers import TimeSampler

S2 = 0.5


class Fixed(TimeSampler):
    t: float

    def __call__(self, key, n):
        return jnp.full((n,), self.t)


def _model(theta, t, x, cond=None):
    return theta * x


def _argmin(loss, n=40_000, d=4, seed=0):
    x1 = jnp.sqrt(S2) * jax.random.normal(jax.random.key(seed), (n, d))
    batch = {"x1": x1}
    f = lambda th: loss(th, batch, jax.random.key(seed + 1))[0]  # noqa: E731
    return float(-jax.grad(f)(0.0) / jax.grad(jax.grad(f))(0.0))


@pytest.mark.parametrize("gamma", ["sqrt", "quadratic", "sin2"])
@pytest.mark.parametrize("antithetic", [False, True])
def test_interpolant_minimisers(gamma, antithetic):
    with jax.enable_x64(True):
        si = jf.paths.StochasticInterpolant("linear", gamma)
        t = 0.35
        g, dg = si.gammas(jnp.asarray(t))
        v = (1 - t) ** 2 + t**2 * S2 + g**2
        expected = {
            "drift": (-(1 - t) + t * S2 + dg * g) / v,
            "score": -1.0 / v,
            "denoiser": g / v,
        }
        for target, c in expected.items():
            loss = interpolant_loss(_model, si, target, antithetic=antithetic, time_sampler=Fixed(t))
            np.testing.assert_allclose(_argmin(loss), float(c), rtol=0.03, atol=0.005, err_msg=target)


@pytest.mark.parametrize("scheduler", ["vp_sde", "ve", "cond_ot", "vp_trig"])
def test_denoising_minimisers(scheduler):
    with jax.enable_x64(True):
        sched = jf.paths.get_scheduler(scheduler, **({"sigma_max": 5.0} if scheduler == "ve" else {}))
        path = jf.paths.AffinePath(sched)
        t = 0.6
        a, sg, da, ds = (float(f(jnp.asarray(t))) for f in (sched.alpha, sched.sigma, sched.d_alpha, sched.d_sigma))
        v = a**2 * S2 + sg**2
        expected = {
            "epsilon": sg / v,
            "x1": a * S2 / v,
            "score": -1.0 / v,
            "velocity": (da * a * S2 + ds * sg) / v,
        }
        for param, c in expected.items():
            loss = denoising_loss(_model, path, param, time_sampler=Fixed(t))
            np.testing.assert_allclose(_argmin(loss), c, rtol=0.03, atol=0.005, err_msg=param)


def test_antithetic_lowers_score_loss_variance():
    """Near t = 0 the γ⁻¹ z·s term dominates; the antithetic pair cancels it."""
    with jax.enable_x64(True):
        si = jf.paths.StochasticInterpolant("linear", "sqrt")
        x1 = jnp.sqrt(S2) * jax.random.normal(jax.random.key(0), (256, 4))

        def spread(anti):
            loss = interpolant_loss(_model, si, "score", antithetic=anti, time_sampler=Fixed(0.01))
            vals = jax.vmap(lambda k: loss(-1.0, {"x1": x1}, k)[0])(jax.random.split(jax.random.key(1), 200))
            return float(jnp.var(vals))

        assert spread(True) < 0.1 * spread(False)


def test_label_dropout_and_errors():
    seen = []

    def model(params, t, x, cond):
        seen.append(cond)
        return x

    loss = jf.losses.cfm_loss(model, conditional=True, label_dropout=0.5, null_label=10)
    batch = {"x0": jnp.zeros((2000, 2)), "x1": jnp.ones((2000, 2)), "labels": jnp.zeros((2000,), jnp.int32)}
    loss(None, batch, jax.random.key(0))
    frac = float(jnp.mean(seen[-1] == 10))
    assert 0.45 < frac < 0.55
    with pytest.raises(ValueError, match="null_label"):
        jf.losses.cfm_loss(model, conditional=True, label_dropout=0.1)
    with pytest.raises(ValueError, match="unknown target 'noise'"):
        denoising_loss(model, jf.paths.cond_ot_path(), "noise")
    with pytest.raises(ValueError, match="unknown target 'velocity'"):
        interpolant_loss(model, jf.paths.StochasticInterpolant(), "velocity")
    with pytest.raises(ValueError, match="γ > 0"):
        interpolant_loss(model, jf.paths.StochasticInterpolant(gamma="zero"), "score")
    with pytest.raises(ValueError, match="labels"):
        denoising_loss(model, jf.paths.cond_ot_path(), conditional=True)(
            None, {"x1": jnp.ones((3, 2))}, jax.random.key(0)
        )


def test_interpolant_converters_on_gaussian_data():
    """For Gaussian endpoints the exact score is −x/V and the exact denoiser γx/V; the converters map one to the
    other, and the affine path's converters agree with the closed forms of the VP path."""
    with jax.enable_x64(True):
        si = jf.paths.StochasticInterpolant("linear", "sin2")
        t = jnp.array([0.2, 0.5, 0.7])
        x = jax.random.normal(jax.random.key(0), (3, 4))
        g = si.gammas(t)[0][:, None]
        v = (1 - t[:, None]) ** 2 + t[:, None] ** 2 * S2 + g**2
        score, eta = -x / v, g * x / v
        np.testing.assert_allclose(si.score_from_denoiser(eta, t), score, rtol=1e-12)
        np.testing.assert_allclose(si.denoiser_from_score(score, t), eta, rtol=1e-12)
        path = jf.paths.AffinePath(jf.paths.VPSDEScheduler())
        sched = path.scheduler
        a, sg = sched.alpha(t)[:, None], sched.sigma(t)[:, None]
        var = a**2 * S2 + sg**2
        exact_score, exact_eps = -x / var, sg * x / var
        np.testing.assert_allclose(
            path.convert(exact_score, t, x, source="score", target="epsilon"), exact_eps, rtol=1e-10
        )


class ShiftedNoisePath(jf.paths.ProbabilityPath):
    """A user's path, written without touching the losses: x_t = x1 + (2 − t) x0 (noise scale 2 − t)."""

    def sample(self, key, x0, x1, t):
        t = jnp.broadcast_to(jnp.asarray(t, x0.dtype), x0.shape[:1])
        tb = t[:, None]
        return jf.paths.PathSample(t=t, x0=x0, x1=x1, xt=x1 + (2 - tb) * x0, ut=-x0, z=None)

    def noise_scale(self, t):
        return 2.0 - t


class SourceTarget(jf.losses.Target):
    """A user's target: predict the source point x0."""

    def __call__(self, path, ps):
        return ps.x0, None


def test_new_path_and_target_plug_into_every_loss():
    """Closed forms for Gaussian data x1 ~ N(0, S2): with s = 2 − t, E[x0 | x_t] = s x / (S2 + s²)."""
    with jax.enable_x64(True):
        t = 0.5
        s = 2 - t
        v = S2 + s**2
        path = ShiftedNoisePath()
        cases = {
            "epsilon": (denoising_loss(_model, path, "epsilon", time_sampler=Fixed(t)), s / v),
            "score": (denoising_loss(_model, path, "score", time_sampler=Fixed(t)), -1.0 / v),
            "velocity": (jf.losses.cfm_loss(_model, path, time_sampler=Fixed(t)), -s / v),
            "source": (jf.losses.cfm_loss(_model, path, time_sampler=Fixed(t), target=SourceTarget()), s / v),
            "denoiser": (interpolant_loss(_model, path, "denoiser", time_sampler=Fixed(t)), s / v),
        }
        for name, (loss, c) in cases.items():
            np.testing.assert_allclose(_argmin(loss), c, rtol=0.03, atol=0.005, err_msg=name)
