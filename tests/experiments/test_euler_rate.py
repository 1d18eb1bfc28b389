import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import euler_rate


def test_exact_gaussian_euler_formula_matches_simulation():
    with jax.enable_x64(True):
        gmm = euler_rate.make_target("gaussian", 4, jax.random.key(0))
        ts = euler_rate.time_grid("uniform", 8, 1e-3)
        x0 = jax.random.normal(jax.random.key(1), (200_000, 4), jnp.float64)
        xs = euler_rate.euler(gmm, x0, ts)
        # the Euler law is Gaussian with diagonal covariance: compare moments-based W2 with the formula
        m, v = xs.mean(0), xs.var(0)
        mean, var = gmm.means[0], jnp.diagonal(gmm.covs[0])
        sim = jnp.sqrt(jnp.sum((m - mean) ** 2 + (jnp.sqrt(v) - jnp.sqrt(var)) ** 2))
        exact = euler_rate.gaussian_euler_w2(mean, var, ts)
        np.testing.assert_allclose(float(sim), float(exact), rtol=0.02)
        # and the formula vanishes as N grows (consistency)
        fine = euler_rate.gaussian_euler_w2(mean, var, euler_rate.time_grid("uniform", 4096, 1e-3))
        assert float(fine) < float(exact) / 200


@pytest.mark.slow  # in `make test-all`; the library pieces it composes have fast tests
def test_small_study_has_first_order_slope(tmp_path):
    cfg = euler_rate.EulerConfig(
        targets=("weakly log-concave",),
        dims=(2, 8),
        steps=(8, 16, 32, 64),
        grids=("uniform",),
        n_samples=200,
        reference_steps=512,
        fit_from=8,
        out_dir=str(tmp_path),
        progress=False,
    )
    import json

    euler_rate.STUDY.execute(cfg)
    out = json.loads((tmp_path / "metrics.json").read_text())["data"]
    slopes = [out["summary"]["weakly log-concave / uniform"]["slopes"][str(d)][0] for d in (2, 8)]
    for slope in slopes:
        assert -1.15 < slope < -0.85
    m = json.loads((tmp_path / "metrics.json").read_text())["measurements"]
    assert np.isclose(m["slope_gap_worst/weakly log-concave/uniform"][0], max(abs(s + 1) for s in slopes))
    assert (tmp_path / "rate.png").exists()
