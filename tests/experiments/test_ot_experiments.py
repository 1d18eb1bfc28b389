"""End-to-end runs of the OT-toolbox studies at tiny sizes: files written, and one property of each checked."""

import json

import numpy as np
import pytest

from experiments import ot_map_estimation, sinkhorn_newton, sw_control_variates, unfolding


@pytest.mark.slow  # in `make test-all`; the library pieces it composes have fast tests
def test_sw_control_variates_small(tmp_path):
    cfg = sw_control_variates.SWConfig(
        pairs=("gaussian",),
        dims=(16,),
        projections=(20, 80),
        n_points=200,
        repeats=30,
        reference_projections=5000,
        flow_dim=4,
        flow_points=100,
        flow_steps=5,
        seeds=1,
        out_dir=str(tmp_path),
        progress=False,
    )
    sw_control_variates.STUDY.execute(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    out = metrics["data"]
    assert (tmp_path / "variance.png").exists() and (tmp_path / "flow.png").exists()
    rows = {(r["L"], r["estimator"]): r for r in out["variance"]}
    for L in (20, 80):
        assert rows[(L, "CV lower")]["variance"] < rows[(L, "plain MC")]["variance"]
    # plain MC variance falls like 1/L (within sampling noise of 30 repeats)
    ratio = rows[(20, "plain MC")]["variance"] / rows[(80, "plain MC")]["variance"]
    assert 1.5 < ratio < 10
    # the flow moves particles towards the target
    w = out["flows"]["plain MC"]["w2"][0]
    assert w[-1] < w[0]
    ratios = [rows[(L, "plain MC")]["variance"] / rows[(L, "CV upper")]["variance"] for L in (20, 80)]
    assert np.isclose(metrics["measurements"]["min_variance_ratio/gaussian/upper"][0], min(ratios))


@pytest.mark.slow  # in `make test-all`; the library pieces it composes have fast tests
def test_sinkhorn_newton_small(tmp_path):
    cfg = sinkhorn_newton.SNSConfig(
        n=60, eta=100.0, digit_side=8, digit_eta=50.0, repeats=1, threshold=1e-10, out_dir=str(tmp_path), progress=False
    )
    sinkhorn_newton.STUDY.execute(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert (tmp_path / "convergence.png").exists() and "Sinkhorn" in (tmp_path / "table.md").read_text()
    by = {(r["problem"], r["method"]): r for r in metrics["data"]["results"]}
    sk = by[("random assignment", "Sinkhorn (ott)")]
    sns = by[("random assignment", "SNS (λ = 10/n)")]
    assert sk["converged"] and sns["converged"]
    assert sns["iterations"] < sk["iterations"]
    assert sns["plan_l1_gap_to_sinkhorn"] < 1e-8
    assert len(metrics["data"]["results"]) == 3 * 5
    m = metrics["measurements"]
    assert m["iterations/random assignment/sns"] == [sns["iterations"]]
    assert m["iterations/random assignment/sinkhorn"] == [sk["iterations"]]


@pytest.mark.slow  # in `make test-all`; the library pieces it composes have fast tests
def test_ot_map_estimation_small(tmp_path):
    cfg = ot_map_estimation.MapConfig(
        dims=(2,), sizes=(50, 200, 800), seeds=3, test_points=300, out_dir=str(tmp_path), progress=False
    )
    ot_map_estimation.STUDY.execute(cfg)
    assert (tmp_path / "rates.png").exists()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    s = metrics["data"]["summary"]["d=2 exact"]
    # each seed's slope is fitted on its own errors; their mean is near the slope of the mean errors
    per_seed = metrics["measurements"]["rate/d=2/exact"]
    assert len(per_seed) == 3 and abs(np.mean(per_seed) - s["slope"]) < 0.2
    assert np.allclose(metrics["measurements"]["rate_gap/d=2/exact"], np.abs(np.array(per_seed) + 1.0))
    # the error falls with n
    assert s["slope"] < -0.3
    # the rate fit recovers a known slope
    slope, _ = ot_map_estimation.fit_rate(np.array([10.0, 100, 1000]), np.array([1.0, 0.1, 0.01]))
    np.testing.assert_allclose(slope, -1.0, atol=1e-9)


def test_unfolding_small(tmp_path):
    cfg = unfolding.UnfoldingConfig(
        cases=("bimodal-1d",),
        n_data=800,
        n_atoms=200,
        responses=5,
        n_iter=30,
        truth_samples=5000,
        seeds=1,
        out_dir=str(tmp_path),
        progress=False,
    )
    unfolding.STUDY.execute(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    (r,) = metrics["data"]["bimodal-1d"]
    m = metrics["measurements"]
    assert m["mass_error"][0] == max(abs(r["mass_min"] - 1), abs(r["mass_max"] - 1))
    assert m["error_best/bimodal-1d/wasserstein"] == [min(r["curves"]["Wasserstein unfolding"])]
    assert abs(r["mass_min"] - 1.0) < 1e-10 and abs(r["mass_max"] - 1.0) < 1e-10
    for curve in r["curves"].values():
        assert curve[-1] < 0.5 * curve[0]  # every method improves on the prior
    assert (tmp_path / "error.png").exists()
    # the 1-D W1 helper against scipy
    from scipy.stats import wasserstein_distance

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=300), np.sort(rng.normal(0.5, 1.2, size=400))
    grid = np.linspace(-8, 8, 200_001)
    got = unfolding.w1_1d_atoms(a, np.full(300, 1 / 300), b, grid)
    np.testing.assert_allclose(got, wasserstein_distance(a, b), rtol=1e-3)
