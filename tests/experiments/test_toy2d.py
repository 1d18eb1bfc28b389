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
    names = [c["claim"] for c in metrics["claims"]]
    assert any("path energy" in n for n in names) and "## Claims" in table
    assert all(set(c) >= {"claim", "paper", "measured", "holds"} for c in metrics["claims"])
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


@pytest.mark.parametrize(
    ("flag", "value"),
    [("steps", 0), ("seeds", 0), ("batch_size", -4), ("eval_samples", 0), ("lr", -1.0), ("methods", ("rfm",))],
)
def test_bad_flags_fail_before_anything_is_written(tmp_path, flag, value):
    """Every flag is checked before compiling; the error names it; results already on disk stay as they were."""
    (tmp_path / "table.md").write_text("earlier results")
    cfg = Toy2dConfig(out_dir=str(tmp_path), progress=False, **{flag: value})
    with pytest.raises(ValueError, match="--" + flag.replace("_", "-")):
        run(cfg)
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
    assert out.returncode != 0 and "--steps 0" in out.stderr
    assert not (tmp_path / "metrics.json").exists()


def test_results_are_written_atomically(tmp_path, monkeypatch):
    """A failure while writing (here: the figure cannot be saved) leaves the earlier files untouched."""
    from experiments import common

    (tmp_path / "metrics.json").write_text('{"earlier": true}')
    cfg = Toy2dConfig(out_dir=str(tmp_path))

    class Broken:
        def savefig(self, *a, **k):
            raise OSError("disk full")

    with pytest.raises(OSError):
        common.write_results(cfg, {"x": 1}, "table", {"fig": Broken()}, [])
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"earlier": True}
    import jaxflow._io as io

    real = io.os.replace
    calls = []

    def failing_replace(src, dst):
        calls.append(dst)
        raise OSError("killed during rename")

    monkeypatch.setattr(io.os, "replace", failing_replace)
    with pytest.raises(OSError):
        common.write_results(cfg, {"x": 1}, "table", {}, [])
    monkeypatch.setattr(io.os, "replace", real)
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"earlier": True}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left behind
