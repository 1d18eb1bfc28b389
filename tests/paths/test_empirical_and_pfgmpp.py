"""Exact fields of a finite data set, data separation, kinetic energy and the PFGM++ kernel, against brute force and
closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxflow as jf
from jaxflow.data import EmpiricalDistribution
from jaxflow.paths import data_separation, kinetic_energy, pfgmpp_perturb


def _brute_posterior(points, x, a, s):
    d2 = ((x[:, None, :] - a * points[None]) ** 2).sum(-1)
    logw = -d2 / (2 * s**2)
    w = np.exp(logw - logw.max(1, keepdims=True))
    return w / w.sum(1, keepdims=True)


@pytest.mark.parametrize("path", [jf.paths.cond_ot_path(), jf.paths.AffinePath(jf.paths.VPTrigScheduler())])
def test_empirical_fields_against_numpy(path):
    pts = np.asarray(jax.random.normal(jax.random.key(0), (40, 3)), np.float64)
    x = np.asarray(jax.random.normal(jax.random.key(1), (7, 3)), np.float64)
    t = 0.37
    s = path.scheduler
    a, sg = float(s.alpha(t)), float(s.sigma(t))
    da, ds = float(s.d_alpha(t)), float(s.d_sigma(t))
    w = _brute_posterior(pts, x, a, sg)
    m = w @ pts
    dist = EmpiricalDistribution(jnp.asarray(pts, jnp.float32))
    np.testing.assert_allclose(dist.posterior_mean(t, jnp.asarray(x, jnp.float32), path), m, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        dist.score(t, jnp.asarray(x, jnp.float32), path), (a * m - x) / sg**2, rtol=1e-4, atol=1e-4
    )
    u = da * m + ds * (x - a * m) / sg
    np.testing.assert_allclose(dist.velocity(t, jnp.asarray(x, jnp.float32), path), u, rtol=1e-4, atol=1e-4)

    # the score is the gradient of the log density of the mixture (1/n) Σ N(α y_i, σ² I)
    def logp(xx):
        d2 = jnp.sum((xx[None] - a * jnp.asarray(pts, jnp.float32)) ** 2, -1)
        return jax.nn.logsumexp(-d2 / (2 * sg**2))

    grad = jax.vmap(jax.grad(logp))(jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(dist.score(t, jnp.asarray(x, jnp.float32), path), grad, rtol=1e-3, atol=1e-4)


def test_empirical_velocity_transports_onto_the_data_points():
    pts = jax.random.normal(jax.random.key(2), (6, 2)) * 2.0
    dist = EmpiricalDistribution(pts)
    x0 = jax.random.normal(jax.random.key(3), (200, 2))
    out = jf.sample(lambda t, x: dist.velocity(t, x), x0, solver="dopri5", t1=1.0 - 1e-4, rtol=1e-6, atol=1e-6)
    d = np.sqrt(((np.asarray(out.x)[:, None] - np.asarray(pts)[None]) ** 2).sum(-1)).min(1)
    assert d.max() < 1e-2
    with pytest.raises(ValueError, match="x must be"):
        dist.velocity(0.5, jnp.zeros((3, 5)))


def test_data_separation_of_gaussian_data_is_s2_over_1_plus_s2():
    data = jax.random.normal(jax.random.key(4), (40_000, 2))
    snr = jnp.array([0.0, 0.3, 0.7, 1.0, 1.5])
    lam = np.asarray(data_separation(jax.random.key(5), data, snr, num_samples=2000))
    expected = np.asarray(snr) ** 2 / (1 + np.asarray(snr) ** 2)
    np.testing.assert_allclose(lam, expected, atol=0.03)
    # a small data set memorises: λ grows with s towards E‖x1‖²/d = 1 (the posterior picks one point)
    few = np.asarray(data_separation(jax.random.key(6), data[:20], jnp.array([0.0, 1.0, 10.0, 100.0])))
    assert np.all(few >= 0) and np.all(np.diff(few) > 0) and 0.8 < few[-1] < 1.2


def test_kinetic_energy_of_cond_ot_on_gaussian_data_matches_its_closed_form():
    """x0, x1 ~ N(0, I): u_t(x) = (2t − 1) x / (t² + (1 − t)²), so KE/d = ∫ (2t − 1)² / (t² + (1 − t)²) dt
    = 2 − π/2."""
    data = jax.random.normal(jax.random.key(7), (20_000, 1))
    ke = float(kinetic_energy(jax.random.key(8), data, num_times=16, num_samples=2000, t_range=(0.0, 0.9)))
    from scipy.integrate import quad

    expected = quad(lambda t: (2 * t - 1) ** 2 / (t**2 + (1 - t) ** 2), 0.0, 0.9)[0]
    assert abs(ke - expected) < 0.03 * expected, (ke, expected)
    assert abs(quad(lambda t: (2 * t - 1) ** 2 / (t**2 + (1 - t) ** 2), 0, 1)[0] - (2 - np.pi / 2)) < 1e-9


@pytest.mark.parametrize("D", [1, 4, 64])
def test_pfgmpp_radius_follows_beta_prime(D):
    y = jnp.zeros((4000, 3, 2))  # N = 6
    sigma = 0.7
    x = pfgmpp_perturb(jax.random.key(9), y, sigma, D)
    r2 = np.asarray(jnp.sum(x.reshape(4000, -1) ** 2, axis=1)) / (sigma**2 * D)
    assert stats.kstest(r2, stats.betaprime(3.0, D / 2.0).cdf).pvalue > 1e-3
    # directions are uniform: the mean direction vanishes
    u = np.asarray(x.reshape(4000, -1)) / np.sqrt(r2 * sigma**2 * D)[:, None]
    assert np.abs(u.mean(0)).max() < 0.06


def test_pfgmpp_large_D_is_gaussian_and_none_is_exactly_gaussian():
    y = jnp.ones((20_000, 2))
    x = np.asarray(pfgmpp_perturb(jax.random.key(10), y, 0.5, 1e6)) - 1.0
    assert stats.kstest(x[:, 0] / 0.5, "norm").pvalue > 1e-3
    np.testing.assert_allclose(np.cov(x.T), 0.25 * np.eye(2), atol=0.01)
    g = np.asarray(pfgmpp_perturb(jax.random.key(10), y, 0.5, None)) - 1.0
    assert stats.kstest(g[:, 1] / 0.5, "norm").pvalue > 1e-3
    with pytest.raises(ValueError, match="D must be"):
        pfgmpp_perturb(jax.random.key(0), y, 0.5, -1)


def test_empirical_pfgmpp_denoiser_against_numpy_weights():
    pts = np.asarray(jax.random.normal(jax.random.key(11), (30, 4)), np.float64)
    x = np.asarray(jax.random.normal(jax.random.key(12), (5, 4)), np.float64) * 2
    sigma, D = 0.8, 16
    d2 = ((x[:, None] - pts[None]) ** 2).sum(-1)
    logw = -0.5 * (4 + D) * np.log(d2 + sigma**2 * D)
    w = np.exp(logw - logw.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    dist = EmpiricalDistribution(jnp.asarray(pts, jnp.float32))
    got = dist.pfgmpp_denoiser(jnp.asarray(x, jnp.float32), sigma, D)
    np.testing.assert_allclose(got, w @ pts, rtol=1e-4, atol=1e-5)
    # D → ∞ with r = σ√D: the weights tend to the Gaussian posterior at noise σ
    far = dist.pfgmpp_denoiser(jnp.asarray(x, jnp.float32), sigma, 1e7)
    np.testing.assert_allclose(far, dist.pfgmpp_denoiser(jnp.asarray(x, jnp.float32), sigma, None), atol=2e-3)


def test_ko_with_lambda_one_is_cond_ot():
    ko = jf.paths.KineticOptimalScheduler.from_lambda(lambda s: np.ones_like(s))
    t = jnp.linspace(0.0, 1.0, 41)
    assert abs(ko.b - 2.0) < 1e-9
    np.testing.assert_allclose(ko.alpha(t), t, atol=1e-6)
    np.testing.assert_allclose(ko.sigma(t), 1 - t, atol=1e-6)
    np.testing.assert_allclose(ko.d_alpha(t[1:-1]), 1.0, atol=1e-4)
    np.testing.assert_allclose(ko.d_sigma(t[1:-1]), -1.0, atol=1e-4)


def test_ko_path_solves_its_ode_and_beats_other_schedules():
    """θ(t) of the closed form against diffrax on θ̇ = √(c/γ(θ))/r²; the end conditions hold; and its kinetic energy
    (from λ) is below Cond-OT's and VP's on the same λ."""
    import diffrax

    lam = lambda s: (s**2 + 0.05) / (0.3 + s**2 + 0.05)  # noqa: E731 - a data-like separation, λ(0) > 0
    ko = jf.paths.KineticOptimalScheduler.from_lambda(lam)
    assert abs(float(ko.alpha(jnp.asarray(0.0)))) < 1e-9 and abs(float(ko.sigma(jnp.asarray(1.0)))) < 1e-6
    c = ko.b - ko.b**2 / 4

    def rhs(t, th, args):
        gamma = jnp.maximum(1 - (1 - lam(jnp.tan(th))) / jnp.cos(th) ** 2, 1e-6)
        return jnp.sqrt(c / gamma) / (1 - ko.b * t + ko.b * t * t)

    ts = jnp.linspace(0.1, 0.9, 9)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(rhs),
        diffrax.Tsit5(),
        0.1,
        0.9,
        0.01,
        ko.theta(jnp.asarray(0.1)),
        stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-8),
        saveat=diffrax.SaveAt(ts=ts),
    )
    np.testing.assert_allclose(sol.ys, ko.theta(ts), atol=2e-4)
    ke = {
        name: jf.paths.kinetic_energy_of(s, lam)
        for name, s in (("ko", ko), ("cond_ot", jf.paths.CondOTScheduler()), ("vp", jf.paths.VPTrigScheduler()))
    }
    assert ke["ko"] < ke["cond_ot"] and ke["ko"] < ke["vp"], ke


def test_kinetic_energy_from_lambda_matches_the_monte_carlo_energy_on_data():
    """The λ formula of the kinetic energy against the direct Monte Carlo energy of the exact empirical velocity."""
    data = jf.paths.normalise(jf.data.sample_toy(jax.random.key(0), "moons", 3000))
    snr = jnp.concatenate([jnp.array([0.0]), jnp.geomspace(0.05, 200.0, 40)])
    lam = np.asarray(data_separation(jax.random.key(1), data, snr, num_samples=3000, normalize=False))
    lam_fn = lambda s: np.interp(np.arctan(s), np.arctan(np.asarray(snr)), lam)  # noqa: E731
    formula = jf.paths.kinetic_energy_of(jf.paths.CondOTScheduler(), lam_fn, t_range=(0.0, 0.8))
    mc = float(kinetic_energy(jax.random.key(2), data, num_times=24, num_samples=3000, t_range=(0.0, 0.8)))
    assert abs(formula - mc) < 0.05 * mc, (formula, mc)


@pytest.mark.parametrize("D", [16, None])
def test_pfgmpp_sampler_with_the_exact_denoiser_lands_on_the_data(D):
    """The empirical data set's exact PFGM++ denoiser, integrated by the EDM ODE in σ from the PFGM++ prior at σ_max,
    carries the prior onto the data points (the alignment r = σ√D makes prior, kernel and ODE consistent)."""
    pts = jnp.array([[1.0, 1.0], [-1.0, 0.5], [0.3, -1.2]])
    dist = EmpiricalDistribution(pts)

    def denoiser(params, sigma, x, cond=None):
        return dist.pfgmpp_denoiser(x, jnp.broadcast_to(sigma, x.shape[:1]), D)

    sigmas = jf.sampling.karras_sigmas(200, 0.01, 20.0)
    assert float(sigmas[0]) == pytest.approx(20.0) and float(sigmas[-1]) == pytest.approx(0.01)
    x = jf.sampling.pfgmpp_prior(jax.random.key(0), 300, (2,), 20.0, D)
    out = np.asarray(jf.sampling.sample_pfgmpp(denoiser, x, sigmas, solver="heun", final_denoise=False))
    d = np.sqrt(((out[:, None] - np.asarray(pts)[None]) ** 2).sum(-1)).min(1)
    assert np.quantile(d, 0.95) < 0.05, np.quantile(d, [0.5, 0.95, 1.0])
    # every data point receives samples
    assert len(set(np.argmin(((out[:, None] - np.asarray(pts)[None]) ** 2).sum(-1), 1))) == 3


def test_quantize_rounds_to_the_stated_grid():
    params = {"w": jax.random.normal(jax.random.key(0), (50, 20)), "step": jnp.arange(3)}
    for bits in (5, 8):
        q = jf.nn.quantize(params, bits)
        scale = float(jnp.abs(params["w"]).max()) / (2 ** (bits - 1) - 1)
        assert len(np.unique(np.asarray(q["w"]))) <= 2**bits - 1
        assert float(jnp.abs(q["w"] - params["w"]).max()) <= scale / 2 + 1e-6
        np.testing.assert_array_equal(q["step"], params["step"])
    with pytest.raises(ValueError, match="bits"):
        jf.nn.quantize(params, 1)
