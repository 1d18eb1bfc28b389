import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import conservativeness, lipschitz


def test_closed_form_velocity_jacobian_matches_autodiff_of_formula():
    # the docs/gaussian_mixtures.md formula written out independently for one Gaussian component,
    # compared with GaussianMixture.velocity
    with jax.enable_x64(True):
        gmm = lipschitz.profile_target("gaussian", 3, jax.random.key(0))
        mu, cov = gmm.means[0], gmm.covs[0]
        t = 0.6
        eye = jnp.eye(3)

        def formula(x):
            c = (1 - t) ** 2 * eye + t**2 * cov
            return mu + (t * cov - (1 - t) * eye) @ jnp.linalg.solve(c, x - t * mu)

        x = jnp.array([0.3, -0.2, 1.1])
        np.testing.assert_allclose(gmm.velocity(t, x), formula(x), atol=1e-12)
        np.testing.assert_allclose(jax.jacfwd(lambda y: gmm.velocity(t, y))(x), jax.jacfwd(formula)(x), atol=1e-12)


@pytest.mark.slow  # in `make test-all`; the library pieces it composes have fast tests
def test_lipschitz_small(tmp_path):
    cfg = lipschitz.LipschitzConfig(
        n_particles=20,
        n_steps=60,
        separations=(0.5, 1.0, 2.0),
        n_starts=20,
        map_steps=200,
        out_dir=str(tmp_path),
        progress=False,
    )
    import json

    lipschitz.STUDY.execute(cfg)
    out = json.loads((tmp_path / "metrics.json").read_text())["data"]
    # the Gaussian target's Jacobian is symmetric with known eigenvalues a(t) = (tσ² − (1−t)) / ((1−t)² + t²σ²)
    t = np.asarray(out["profiles"]["gaussian"]["t"])
    var = np.geomspace(0.25, 4.0, 2)
    a = (t[:, None] * var - (1 - t[:, None])) / ((1 - t[:, None]) ** 2 + t[:, None] ** 2 * var)
    np.testing.assert_allclose(out["profiles"]["gaussian"]["max"], np.abs(a).max(1), rtol=1e-6)
    assert (tmp_path / "profile.png").exists() and (tmp_path / "flow_map.png").exists()
    assert all(v > 0 for v in out["flow_map"]["lips"])
    np.testing.assert_allclose(out["flow_map"]["at_centre"], out["flow_map"]["closed_form"], rtol=0.02)


def test_score_to_velocity_identity_on_the_mixture():
    gmm = conservativeness.mixture()
    v = conservativeness.score_to_velocity(gmm.score)
    x = jax.random.normal(jax.random.key(0), (16, 4))
    np.testing.assert_allclose(v(0.4, x), gmm.velocity(0.4, x), rtol=2e-4, atol=2e-5)


@pytest.mark.slow  # in `make test-all`; the library pieces it composes have fast tests
def test_conservativeness_small(tmp_path):
    cfg = conservativeness.ConservativenessConfig(
        tasks=("mixture-4d",),
        steps=300,
        n_points=32,
        n_samples=200,
        hidden=(32, 32),
        seeds=1,
        out_dir=str(tmp_path),
        progress=False,
    )
    import json

    conservativeness.STUDY.execute(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    res = metrics["data"]["per_seed"][0]["mixture-4d"]
    assert metrics["measurements"]["asymmetry_min/mixture-4d/score_net"] == [min(res["score network"]["asymmetry"])]
    # closed-form fields are conservative to round-off; the trained networks are not
    assert max(res["closed-form score"]["asymmetry"]) < 1e-3
    assert max(res["closed-form velocity"]["asymmetry"]) < 1e-3
    assert min(res["score network"]["asymmetry"]) > 10 * max(res["closed-form score"]["asymmetry"])
    assert (tmp_path / "asymmetry.png").exists()
