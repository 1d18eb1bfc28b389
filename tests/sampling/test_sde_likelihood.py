"""SDE sampling, likelihood and guidance against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxflow as jf
from jaxflow.metrics import wasserstein
from jaxflow.sampling import (
    DivergenceEstimator,
    ExactDivergence,
    HutchinsonDivergence,
    diffusion_epsilon,
    exact_divergence,
    guided,
    hutchinson_divergence,
    log_likelihood,
    sample_sde,
    score_to_drift,
)


def _mixture():
    means = jnp.array([[2.0, 0.0], [-1.0, 1.5], [-1.0, -1.5]])
    covs = jnp.stack([0.3 * jnp.eye(2), jnp.diag(jnp.array([0.2, 0.5])), jnp.array([[0.4, 0.1], [0.1, 0.3]])])
    return jf.data.GaussianMixture(jnp.array([0.5, 0.3, 0.2]), means, covs)


def test_exact_likelihood_of_closed_form_velocity_matches_mixture_density():
    with jax.enable_x64(True):
        gmm = _mixture()
        x = gmm.sample(jax.random.key(0), 64)
        out = log_likelihood(gmm.velocity, x, solver="tsit5", rtol=1e-8, atol=1e-8)
        err = np.abs(np.asarray(out.log_prob - gmm.log_prob(x)))
        assert err.max() < 0.02, err.max()
        np.testing.assert_allclose(out.bits_per_dim, -out.log_prob / (2 * np.log(2)))


@pytest.mark.slow  # in `make test-all`
def test_hutchinson_is_unbiased_for_the_trace():
    with jax.enable_x64(True):
        gmm = _mixture()
        x = gmm.sample(jax.random.key(1), 8)
        exact = exact_divergence(gmm.velocity, 0.7, x)
        # against the Jacobian trace computed independently with jacrev
        jac = jax.vmap(jax.jacrev(lambda y: gmm.velocity(0.7, y[None])[0]))(x)
        np.testing.assert_allclose(exact, jnp.trace(jac, axis1=1, axis2=2), rtol=1e-10)
        for kind in ("rademacher", "gaussian"):
            k = 1000
            probes = (jax.random.rademacher if kind == "rademacher" else jax.random.normal)(
                jax.random.key(2), (k, *x.shape), jnp.float64
            )
            single = jax.vmap(lambda p: hutchinson_divergence(gmm.velocity, 0.7, x, p[None]))(probes)  # [K, B]
            mean, se = single.mean(0), single.std(0) / np.sqrt(k)
            assert np.all(np.abs(mean - exact) < 4 * se + 1e-12)
        est = log_likelihood(
            gmm.velocity, x, divergence=HutchinsonDivergence(256), key=jax.random.key(3), rtol=1e-7, atol=1e-7
        ).log_prob
        ref = gmm.log_prob(x)
        assert float(jnp.mean(jnp.abs(est - ref))) < 0.1


def test_likelihood_is_differentiable_with_the_closed_form_gradient():
    """v(t, x) = a x: x_1 = e^a x_0, so log p_1(x) = log N(x e^{-a}) − a d and d/da = |x|² e^{-2a} − d."""
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.key(4), (5, 3))

        def mean_logp(a):
            return log_likelihood(lambda t, y: a * y, x, solver="tsit5", rtol=1e-9, atol=1e-9).log_prob.mean()

        a = 0.4
        closed = jnp.mean(jf.sampling.standard_normal_log_prob(x * jnp.exp(-a)) - 3 * a)
        np.testing.assert_allclose(mean_logp(a), closed, rtol=1e-6)
        grad = jax.grad(mean_logp)(a)
        np.testing.assert_allclose(grad, jnp.mean(jnp.sum(x**2, 1) * jnp.exp(-2 * a) - 3), rtol=1e-5)


def test_sde_with_closed_form_score_reaches_the_target():
    """Forward SDEs (b + ε s, √(2ε)) at several ε, vmapped over ε, land on the mixture: W2 within sampling noise."""
    with jax.enable_x64(True):
        gmm = _mixture()
        n = 600
        x0 = jax.random.normal(jax.random.key(5), (n, 2))
        eps = jnp.array([0.0, 0.5, 2.0])
        run = jax.jit(
            jax.vmap(
                lambda e: (
                    sample_sde(gmm.velocity, gmm.score, x0, jax.random.key(6), epsilon=e, solver="heun", steps=400).x
                )
            )
        )
        xs = run(eps)
        target = gmm.sample(jax.random.key(7), n)
        noise = wasserstein(gmm.sample(jax.random.key(8), n), target)
        for x in xs:
            assert wasserstein(x, target) < 1.5 * noise + 0.02


def test_backward_sde_returns_to_the_source():
    with jax.enable_x64(True):
        gmm = _mixture()
        x1 = gmm.sample(jax.random.key(9), 2000)
        z = sample_sde(gmm.velocity, gmm.score, x1, jax.random.key(10), epsilon=1.0, t0=1.0, t1=0.0, steps=200).x
        np.testing.assert_allclose(z.mean(0), 0.0, atol=0.08)
        np.testing.assert_allclose(jnp.cov(z.T), jnp.eye(2), atol=0.1)


def test_reverse_time_vp_sampler_on_gaussian_data():
    """VP-SDE path, Gaussian data N(m, s² I): closed-form score, ε = β/2 (the reverse-time VP sampler)."""
    with jax.enable_x64(True):
        sched = jf.paths.VPSDEScheduler()
        path = jf.paths.AffinePath(sched)
        m, s2 = 1.5, 0.25

        def score(t, x):
            a, sg = sched.alpha(t), sched.sigma(t)
            return -(x - a * m) / (a**2 * s2 + sg**2)

        eps = diffusion_epsilon(sched)
        t = jnp.linspace(0.0, 0.99, 5)
        np.testing.assert_allclose(eps(t), 0.5 * (0.1 + (1 - t) * (20.0 - 0.1)), rtol=1e-10)
        x0 = jax.random.normal(jax.random.key(11), (4000, 3))
        x = sample_sde(
            score_to_drift(path, score), score, x0, jax.random.key(12), epsilon=eps, t1=1.0 - 1e-3, steps=1000
        ).x
        np.testing.assert_allclose(x.mean(), m, atol=0.03)
        np.testing.assert_allclose(x.var(), s2, rtol=0.08)


def test_ve_epsilon_closed_form():
    sched = jf.paths.VEScheduler(sigma_min=0.01, sigma_max=10.0)
    t = jnp.linspace(0.0, 1.0, 7)
    np.testing.assert_allclose(diffusion_epsilon(sched)(t), sched.sigma(t) ** 2 * np.log(1000.0), rtol=1e-5)


def test_guidance_scales():
    model = jf.nn.MLPVelocity(out_dim=2, hidden=(16,), num_classes=3)
    params = jf.nn.init_mlp(jax.random.key(0), model, 2, jnp.zeros((1,), jnp.int32))
    v = jf.nn.velocity_fn(model)
    x = jax.random.normal(jax.random.key(1), (5, 2))
    labels = jnp.array([0, 1, 2, 1, 0])
    cond, uncond = v(params, 0.3, x, labels), v(params, 0.3, x, jnp.full((5,), 3))
    np.testing.assert_allclose(guided(v, 1.0, 3)(params, 0.3, x, labels), cond, atol=1e-6)
    np.testing.assert_allclose(guided(v, 0.0, 3)(params, 0.3, x, labels), uncond, atol=1e-6)
    np.testing.assert_allclose(guided(v, 2.5, 3)(params, 0.3, x, labels), uncond + 2.5 * (cond - uncond), atol=1e-5)


def test_bad_input():
    gmm = _mixture()
    x = jnp.ones((4, 2))
    with pytest.raises(ValueError, match="epsilon"):
        sample_sde(gmm.velocity, gmm.score, x, jax.random.key(0), epsilon=-0.1)
    with pytest.raises(ValueError, match="solver"):
        sample_sde(gmm.velocity, gmm.score, x, jax.random.key(0), solver="milstein")
    with pytest.raises(ValueError, match="unknown divergence estimator"):
        log_likelihood(gmm.velocity, x, divergence="skilling")
    with pytest.raises(ValueError, match="pass key="):
        log_likelihood(gmm.velocity, x, divergence="hutchinson")
    with pytest.raises(ValueError, match="unknown probe"):
        HutchinsonDivergence(4, "cauchy")
    with pytest.raises(ValueError, match="n_probes"):
        HutchinsonDivergence(0)
    with pytest.raises(ValueError, match="non-finite"):
        log_likelihood(gmm.velocity, x.at[0, 0].set(jnp.inf))
    with pytest.raises(ValueError, match="labels must lie"):
        jf.sampling.check_labels(jnp.array([0, 5]), 3)
    with pytest.raises(ValueError, match="unknown scheduler"):
        jf.paths.get_scheduler("cosine-ish")


def _vp_mixture_score(path, means, covs, weights):
    """∇ log p_t of a Gaussian mixture under x_t = α x1 + σ x0 (closed form, written out here): component k is
    N(α μ_k, α² Σ_k + σ² I)."""

    def score(t, x):
        a, s = path.scheduler.alpha(t), path.scheduler.sigma(t)
        cs = a**2 * covs + s**2 * jnp.eye(means.shape[1])
        diff = x[:, None, :] - a * means[None]
        sol = jnp.linalg.solve(cs[None], diff[..., None])[..., 0]
        logn = -0.5 * jnp.sum(diff * sol, -1) - 0.5 * jnp.linalg.slogdet(cs)[1]
        w = jax.nn.softmax(jnp.log(weights) + logn, axis=1)
        return -jnp.sum(w[..., None] * sol, axis=1)

    return score


@pytest.mark.parametrize("solver", ["heun", "tsit5"])
def test_vp_probability_flow_ode_with_the_exact_score_reaches_the_mixture(solver):
    """The VP probability-flow ODE (the exact mixture score converted to a velocity by the path) from N(0, I) at
    t = 0 to t = 1 − δ reproduces the mixture: its moments and mode weights, and, point by point in distribution, the
    output of the library's closed-form linear-path flow started from the same noise (a second, independent field)."""
    path = jf.paths.AffinePath(jf.paths.VPSDEScheduler())
    means = jnp.array([[2.0, 0.0], [-1.0, 1.5]])
    covs = jnp.stack([0.3 * jnp.eye(2), jnp.array([[0.2, 0.05], [0.05, 0.1]])])
    weights = jnp.array([0.4, 0.6])
    gmm = jf.data.GaussianMixture(weights, means, covs)
    drift = jf.sampling.score_to_drift(path, _vp_mixture_score(path, means, covs, weights))
    x0 = jax.random.normal(jax.random.key(0), (4000, 2))
    x = np.asarray(jf.sample(drift, x0, solver=solver, steps=50, t1=1.0 - 1e-3, rtol=1e-5, atol=1e-5).x)
    mean = np.asarray(weights @ means)
    cov = np.asarray(sum(w * (c + np.outer(m, m)) for w, m, c in zip(weights, means, covs))) - np.outer(mean, mean)
    np.testing.assert_allclose(x.mean(0), mean, atol=0.06)
    np.testing.assert_allclose(np.cov(x.T), cov, atol=0.08)
    nearest = ((x[:, None] - np.asarray(means)[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_allclose(np.bincount(nearest) / len(x), weights, atol=0.02)
    linear = jf.sample(gmm.velocity, x0[:1500], solver="tsit5", rtol=1e-6, atol=1e-6).x
    assert jf.metrics.wasserstein(x[:1500], linear) < 0.05  # two-sample floor at n = 1500 is 0.10-0.20


def test_divergence_estimators_are_objects_names_are_shorthands():
    """A name and its object give the same numbers; a subclass (a fork's estimator) plugs in; the former keyword
    spelling still works for one release, with a warning, and gives the same numbers."""
    with jax.enable_x64(True):
        gmm = _mixture()
        x = gmm.sample(jax.random.key(1), 6)
        by_name = log_likelihood(gmm.velocity, x, divergence="exact", rtol=1e-8, atol=1e-8)
        by_object = log_likelihood(gmm.velocity, x, divergence=ExactDivergence(), rtol=1e-8, atol=1e-8)
        np.testing.assert_array_equal(by_name.log_prob, by_object.log_prob)
        assert int(by_name.nfe) == int(by_object.nfe)

        class Rademacher64(DivergenceEstimator):
            """a fork's estimator: Hutchinson with many Rademacher probes written from scratch"""

            needs_key = True

            def prepare(self, key, x):
                return jax.random.rademacher(key, (64, *x.shape), x.dtype)

            def __call__(self, velocity, t, x, probes):
                jv = jax.vmap(lambda e: jax.jvp(lambda y: velocity(t, y), (x,), (e,))[1])(probes)
                return jnp.mean(jnp.sum(probes * jv, axis=-1), axis=0)

        key = jax.random.key(5)
        mine = log_likelihood(gmm.velocity, x, divergence=Rademacher64(), key=key, rtol=1e-8, atol=1e-8).log_prob
        lib = log_likelihood(gmm.velocity, x, divergence=HutchinsonDivergence(64), key=key, rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(mine, lib.log_prob, rtol=1e-10)
        assert float(jnp.mean(jnp.abs(mine - gmm.log_prob(x)))) < 0.3
        with pytest.warns(FutureWarning, match="divergence="):
            old = log_likelihood(gmm.velocity, x, method="hutchinson", n_probes=64, key=key, rtol=1e-8, atol=1e-8)
        np.testing.assert_array_equal(old.log_prob, lib.log_prob)
