"""The attention studies run end to end on tiny configurations and reproduce their checks."""

import json

import numpy as np
import pytest

from experiments import accelerated_attention, homogenized_attention


@pytest.mark.slow  # in `make test-all`; the library pieces it composes have fast tests
def test_homogenized_attention_small(tmp_path):
    cfg = homogenized_attention.HomogenizedConfig(
        dims=(4,),
        ns=(8,),
        betas=(2.0,),
        depth=20,
        runs=4,
        scalings=((0.1, 1), (0.025, 4)),
        limit_dim=4,
        limit_n=8,
        limit_depths=(8, 32, 128),
        limit_runs=48,
        bank_size=16,
        limit_steps=100,
        noise_depths=(16,),
        value_means=(1.0, -0.5),
        value_scales=(1.0,),
        regime_betas=(1.0,),
        out_dir=str(tmp_path),
        progress=False,
    )
    homogenized_attention.STUDY.execute(cfg)
    for name in ("table.md", "metrics.json", "clustering.png", "limit.png"):
        assert (tmp_path / name).exists()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    res = metrics["data"]
    assert np.isclose(metrics["measurements"]["slope_gap_ode"][0], abs(res["deterministic_limit"]["slope_ode"] + 0.5))
    assert "cluster_min_final_cosine_d_ge_8" not in metrics["measurements"]  # d = 4 only: not measured
    det = res["deterministic_limit"]
    assert det["w1_ode"][0] > det["w1_ode"][-1]  # finite depth approaches the limit
    # more heads at the same L η H: smaller spread across runs
    spreads = [v["std"][-1] for v in res["scalings"].values()]
    assert spreads[1] < spreads[0]
    # attractive values cluster, repulsive values keep tokens apart
    by_mean = {r["value_mean"]: r["cosine"] for r in res["regimes"]}
    assert by_mean[1.0] > 0.5 > by_mean[-0.5]


@pytest.mark.slow
def test_accelerated_attention_small(tmp_path):
    cfg = accelerated_attention.AcceleratedConfig(
        linear_tokens=16,
        softmax_tokens=8,
        flow_steps=150,
        step_grid=(0.1, 0.4, 1.2),
        elliptical_tokens=200,
        elliptical_steps=10,
        corpus_chars=60_000,
        seq_len=16,
        batch_size=8,
        lm_steps=10,
        eval_every=5,
        eval_batches=2,
        seeds=2,
        out_dir=str(tmp_path),
        progress=False,
    )
    accelerated_attention.STUDY.execute(cfg)
    for name in ("table.md", "metrics.json", "flows.png", "elliptical.png", "lm.png"):
        assert (tmp_path / name).exists()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    res = metrics["data"]
    assert metrics["measurements"]["lm_final_val_loss/classical"] == [
        v[-1] for v in res["lm"]["curves"]["classical"]["val_loss"]
    ]
    el = res["elliptical"]
    assert max(el["linear"]["residual"]) < 1e-10 and max(el["softmax"]["residual"]) > 1e-3
    lm = res["lm"]["curves"]
    for c in lm.values():
        v = np.asarray(c["val_loss"])
        assert v.shape == (2, 3) and np.all(v[:, -1] < v[:, 0])  # training lowers the validation loss
    # initial validation loss is near log(vocab) for both models (untrained predictions)
    assert abs(np.mean(lm["classical"]["val_loss"][0][0]) - np.log(res["lm"]["vocab"])) < 1.0
