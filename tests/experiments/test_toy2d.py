import json

import pytest

from experiments.toy2d import Toy2dConfig, build_method, parse_task, run


def test_toy2d_end_to_end_writes_table_metrics_and_figure(tmp_path):
    cfg = Toy2dConfig(
        methods=("icfm", "otcfm"),
        tasks=("8gaussians->moons",),
        seeds=2,
        steps=300,
        steps_per_call=150,
        eval_samples=300,
        out_dir=str(tmp_path),
        progress=False,
    )
    results = run(cfg)
    table = (tmp_path / "table.md").read_text()
    assert "I-CFM" in table and "OT-CFM (exact)" in table
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["config"]["seeds"] == 2
    assert (tmp_path / "samples.png").stat().st_size > 10_000
    r = results["8gaussians->moons"]
    # the exact OT coupling straightens the flow even after 300 steps: lower path energy excess and fewer NFE
    assert r["otcfm"]["npe_mean"] < r["icfm"]["npe_mean"]
    assert r["otcfm"]["nfe_mean"] <= r["icfm"]["nfe_mean"]


def test_bad_names():
    with pytest.raises(ValueError, match="unknown method"):
        build_method("rfm", Toy2dConfig())
    with pytest.raises(ValueError, match="unknown data set"):
        parse_task("gaussian->spiral")
    with pytest.raises(ValueError, match="source->target"):
        parse_task("moons")
