"""The likelihood and interpolant studies on tiny configurations."""

import json

import numpy as np
import pytest

from experiments import interpolants, likelihood


@pytest.mark.slow  # in `make test-all`; the library pieces it composes have fast tests
def test_likelihood_tiny(tmp_path):
    cfg = likelihood.LikelihoodConfig(
        dims=(2,), n_eval=60, train_steps=200, grid=8, out_dir=str(tmp_path), progress=False
    )
    likelihood.STUDY.execute(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    res = metrics["data"]
    assert (tmp_path / "likelihood.png").exists() and (tmp_path / "table.md").exists()
    z = metrics["measurements"]["hutchinson_bias_z/d=2"][0]
    assert np.isclose(z, abs(res["learned"]["2"]["hutchinson_bias"]) / res["learned"]["2"]["hutchinson_bias_se"])
    # the closed-form velocity reproduces the mixture's log-density within 0.02 nats per sample
    assert res["closed_form"]["2"]["max_abs"] < 0.02
    learned = res["learned"]["2"]
    # training moved the model towards the target: its KL estimate is below the source's KL(p ‖ N(0, I))
    assert learned["kl_estimate"] < learned["kl_to_source"] - 0.1  # paired on the same samples
    # Hutchinson's estimator is unbiased: on the same model it agrees with the exact trace within its sampling error
    assert abs(learned["hutchinson_bias"]) < 4 * learned["hutchinson_bias_se"] + 1e-3


@pytest.mark.slow
def test_interpolants_tiny(tmp_path):
    cfg = interpolants.InterpolantsConfig(
        dims=(2,),
        epsilons=(0.0, 1.0),
        steps=(25, 100),
        n_samples=300,
        train_steps=200,
        seeds=1,
        out_dir=str(tmp_path),
        progress=False,
    )
    interpolants.STUDY.execute(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    res = metrics["data"]["per_seed"][0]
    assert metrics["measurements"]["checkerboard_w2/eps=1"] == [res["checkerboard"]["errors"][1][-1]]
    assert (tmp_path / "interpolants.png").exists()
    mix = res["mixture"]["2"]
    errs = np.asarray(mix["errors"])
    # closed-form drift and score: with 100 steps ODE and SDE both reach the target within sampling noise
    assert np.all(errs[:, -1] < 1.5 * mix["floor"] + 0.05), (errs, mix["floor"])
    assert np.all(np.isfinite(np.asarray(res["checkerboard"]["errors"])))
