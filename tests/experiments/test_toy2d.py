import json

import pytest

from experiments.pipeline import check_record
from experiments.toy2d import STUDY, Toy2dConfig, build_method, parse_task

SMALL = dict(
    methods=("icfm", "otcfm"),
    tasks=("8gaussians->moons",),
    seeds=3,
    steps=300,
    steps_per_call=150,
    eval_samples=300,
    progress=False,
)


@pytest.mark.slow  # 25 s; the smoke run of every study (test_study_smoke.py) is in make test-all too
def test_toy2d_end_to_end_writes_table_metrics_and_figure(tmp_path):
    folder = STUDY.execute(**SMALL, out_dir=str(tmp_path))
    table = (tmp_path / "table.md").read_text()
    assert "I-CFM" in table and "OT-CFM (exact)" in table
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["config"]["seeds"] == 3
    m = metrics["measurements"]
    assert len(m["npe/8gaussians->moons/otcfm"]) == 3 and "## Claims" in table
    assert (tmp_path / "samples.png").stat().st_size > 10_000
    verdicts = {c["id"]: c["verdict"]["status"] for c in metrics["claims"]}
    # the exact OT coupling straightens the flow even after 300 steps, on every seed
    assert all(o < i for o, i in zip(m["npe/8gaussians->moons/otcfm"], m["npe/8gaussians->moons/icfm"]))
    assert verdicts["npe_otcfm_below_icfm[8gaussians->moons]"] == "holds"
    assert verdicts["npe_otcfm_below_icfm[gaussian->moons]"] == "not measured"  # a task left out of this run
    finding = check_record(folder / "metrics.json", metrics, {"toy2d": STUDY})
    assert finding.errors == []


def test_bad_names():
    with pytest.raises(ValueError, match="unknown method"):
        build_method("rfm", Toy2dConfig())
    with pytest.raises(ValueError, match="unknown data set"):
        parse_task("gaussian->spiral")
    with pytest.raises(ValueError, match="source->target"):
        parse_task("moons")


@pytest.mark.parametrize(
    ("flag", "value"),
    [("steps", 0), ("seeds", 0), ("batch_size", -4), ("eval_samples", 0), ("lr", -1.0), ("methods", ("rfm",))],
)
def test_bad_flags_fail_before_anything_is_written(tmp_path, flag, value):
    """Every flag is checked before compiling; the error names it; results already on disk stay as they were."""
    (tmp_path / "table.md").write_text("earlier results")
    cfg = Toy2dConfig(out_dir=str(tmp_path), progress=False, **{flag: value})
    with pytest.raises(ValueError, match="--" + flag.replace("_", "-")):
        STUDY.execute(cfg)
    assert (tmp_path / "table.md").read_text() == "earlier results"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]


def test_command_line_exits_nonzero_on_a_bad_flag(tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "experiments.toy2d", "--steps", "0", "--out-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0 and "--steps 0" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "metrics.json").exists()


def test_quick_does_not_override_explicit_flags():
    from experiments.pipeline import parse_config

    cfg = parse_config(STUDY, ["--quick", "--steps", "123", "--seeds", "2", "--eval-samples", "50"])
    assert (cfg.steps, cfg.seeds, cfg.eval_samples, cfg.steps_per_call) == (123, 2, 50, 400)
    assert cfg.out_dir == "results/toy2d/quick"
