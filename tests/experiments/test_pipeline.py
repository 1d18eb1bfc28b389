"""The study pipeline: quick and explicit flags, validation before compute, provenance, `check` and the ledger."""

import json
import os
import subprocess
from dataclasses import dataclass

import jax
import numpy as np
import pytest

from experiments import pipeline
from experiments.__main__ import main as cli
from experiments.claims import Claim, Diff
from experiments.common import ConfigError, StudyConfig, positive_int
from experiments.pipeline import Output, Study, check, check_record, execute, ledger


@dataclass(frozen=True)
class CoinConfig(StudyConfig):
    """A study whose measurements are known: the mean of `n` draws of N(shift, 1) per seed."""

    seeds: int = 4
    n: int = 2000
    shift: float = 0.5
    out_dir: str = "results/coin"


calls = []


def coin_run(cfg, key):
    calls.append(cfg)
    keys = [jax.random.fold_in(key, s) for s in range(cfg.seeds)]
    a = [float(jax.random.normal(k, (cfg.n,)).mean() + cfg.shift) for k in keys]
    b = [float(jax.random.normal(jax.random.fold_in(k, 1), (cfg.n,)).mean()) for k in keys]
    return Output({"a": a, "b": b, "one": 3.0}, table="| a |\n|---|\n| 1 |", data={"note": "x"})


def coin_validate(cfg):
    positive_int(cfg, "n")


COIN = Study(
    "coin",
    CoinConfig,
    coin_run,
    claims=(
        Claim("a_above_b", "a exceeds b", Diff("a", "b"), ">", 0.0, paper="Nobody 2026", paper_value="0.5"),
        Claim("a_small", "a is below 0.1", "a", "<", 0.1),
        Claim("one", "measured once", "one", ">", 2.0),
    ),
    quick={"seeds": 3, "n": 500},
    validate=coin_validate,
)
REGISTRY = {"coin": COIN}


def run_coin(tmp_path, **kw):
    return execute(COIN, COIN.configure(out_dir=str(tmp_path / "coin"), progress=False, **kw))


def test_a_run_records_measurements_verdicts_and_provenance(tmp_path):
    folder = run_coin(tmp_path)
    rec = json.loads((folder / "metrics.json").read_text())
    assert rec["schema"] == pipeline.SCHEMA and rec["study"] == "coin"
    p = rec["provenance"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert p["commit"] == (head or None) and isinstance(p["dirty"], bool | None)
    assert p["seeds"] == 4 and p["seed"] == 0 and p["quick"] is False
    assert p["versions"]["jax"] == jax.__version__ and p["wall_s"] >= 0 and p["start"] <= p["end"]
    assert rec["config"]["n"] == 2000 and len(rec["measurements"]["a"]) == 4
    status = {c["id"]: c["verdict"]["status"] for c in rec["claims"]}
    assert status == {"a_above_b": "holds", "a_small": "does not hold", "one": "holds"}
    table = (folder / "table.md").read_text()
    assert "## Claims" in table and "**does not hold**" in table and "a − b > 0" in table


def test_the_same_seed_gives_the_same_measurements(tmp_path):
    r1 = json.loads((run_coin(tmp_path / "1") / "metrics.json").read_text())
    r2 = json.loads((run_coin(tmp_path / "2") / "metrics.json").read_text())
    r3 = json.loads((run_coin(tmp_path / "3", seed=1) / "metrics.json").read_text())
    assert r1["measurements"] == r2["measurements"] != r3["measurements"]


def test_quick_and_explicit_flags(tmp_path):
    cfg = pipeline.parse_config(COIN, ["--quick"])
    assert (cfg.seeds, cfg.n, cfg.quick) == (3, 500, True) and cfg.out_dir.endswith("coin/quick")
    cfg = pipeline.parse_config(COIN, ["--quick", "--n", "77", "--out-dir", str(tmp_path)])
    assert (cfg.seeds, cfg.n, cfg.out_dir) == (3, 77, str(tmp_path))  # explicit flags win over --quick
    cfg = pipeline.parse_config(COIN, ["--n", "77", "--quick"])
    assert cfg.n == 77
    assert COIN.configure(quick=True, seeds=5).seeds == 5


@pytest.mark.parametrize(("kw", "flag"), [({"n": 0}, "--n"), ({"seeds": 0}, "--seeds"), ({"seed": -1}, "--seed")])
def test_bad_flags_are_refused_before_the_run(tmp_path, kw, flag):
    calls.clear()
    with pytest.raises(ConfigError, match=flag):
        run_coin(tmp_path, **kw)
    assert not calls and not (tmp_path / "coin").exists()


def test_an_out_dir_under_a_file_is_refused_before_the_run(tmp_path):
    (tmp_path / "file").write_text("x")
    calls.clear()
    with pytest.raises(ConfigError, match="--out-dir"):
        execute(COIN, COIN.configure(out_dir=str(tmp_path / "file" / "sub")))
    assert not calls


def test_check_passes_a_fresh_result_and_fails_a_hand_edited_verdict(tmp_path):
    folder = run_coin(tmp_path)
    path = folder / "metrics.json"
    (f,) = check(tmp_path, registry=REGISTRY)
    assert f.errors == []
    rec = json.loads(path.read_text())
    for mutate in (
        lambda c: c["verdict"].update(status="holds"),  # a verdict flipped by hand
        lambda c: c["verdict"].update(estimate=c["verdict"]["estimate"] - 0.5),  # a number edited
        lambda c: c.update(threshold=1.0),  # the threshold moved after the run
    ):
        edited = json.loads(json.dumps(rec))
        mutate(edited["claims"][1])
        finding = check_record(path, edited, REGISTRY)
        assert any("a_small" in e for e in finding.errors), finding
    # measurements edited by hand: their verdict no longer follows
    edited = json.loads(json.dumps(rec))
    edited["measurements"]["a"] = [-1.0, -1.0, -1.0, -1.0]
    assert check_record(path, edited, REGISTRY).errors


def test_check_flags_a_result_from_a_commit_that_is_not_an_ancestor(tmp_path):
    path = run_coin(tmp_path) / "metrics.json"
    rec = json.loads(path.read_text())
    assert not any("ancestor" in s for s in check_record(path, rec, REGISTRY).stale)
    tree = subprocess.run(["git", "rev-parse", "HEAD^{tree}"], capture_output=True, text=True).stdout.strip()
    orphan = subprocess.run(
        ["git", "commit-tree", tree, "-m", "a commit that is not on this branch"],
        capture_output=True,
        text=True,
        env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t"}
        | {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"},
    ).stdout.strip()
    assert len(orphan) == 40
    rec["provenance"]["commit"] = orphan
    finding = check_record(path, rec, REGISTRY)
    assert not finding.errors and any("not an ancestor" in s for s in finding.stale)


def test_check_flags_a_config_and_claims_that_changed_since_the_run(tmp_path):
    path = run_coin(tmp_path, n=1000) / "metrics.json"
    rec = json.loads(path.read_text())
    assert any("config differs" in s and "n" in s for s in check_record(path, rec, REGISTRY).stale)
    path = run_coin(tmp_path / "b") / "metrics.json"
    rec = json.loads(path.read_text())
    moved = Study("coin", CoinConfig, coin_run, claims=(Claim("a_small", "a is below 0.2", "a", "<", 0.2),))
    stale = check_record(path, rec, {"coin": moved}).stale
    assert any("declared differently" in s and "a_small" in s for s in stale)


def test_the_cli_check_exits_nonzero_on_an_edited_verdict(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "studies", lambda: REGISTRY)
    folder = run_coin(tmp_path)
    assert cli(["check", str(tmp_path)]) == 0
    rec = json.loads((folder / "metrics.json").read_text())
    rec["claims"][1]["verdict"]["status"] = "holds"
    (folder / "metrics.json").write_text(json.dumps(rec))
    assert cli(["check", str(tmp_path)]) == 1


def test_the_cli_run_help_lists_the_studies_and_an_unknown_study_is_refused(monkeypatch, capsys):
    monkeypatch.setattr(pipeline, "studies", lambda: REGISTRY)
    assert cli(["run", "--help"]) == 0
    assert "coin" in capsys.readouterr().out
    assert cli(["run", "no_such_study"]) == 2
    assert "unknown study 'no_such_study'" in capsys.readouterr().err


def test_the_ledger_lists_every_declared_claim_with_its_verdict(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "legacy_studies", lambda: [])
    clean = {**pipeline.git_state(), "dirty": False}  # as from a committed tree, whatever this checkout's state
    monkeypatch.setattr(pipeline, "git_state", lambda: clean)
    text = ledger(tmp_path, registry=REGISTRY)
    assert "not run" in text and "a_above_b" in text
    run_coin(tmp_path)
    text = ledger(tmp_path, registry=REGISTRY)
    assert "0.5 (Nobody 2026)" in text and "[table](results/coin/table.md)" in text
    rows = [line for line in text.splitlines() if line.startswith("| a ")]
    assert len(rows) == 2 and "does not hold" in rows[1]
    summary = next(line for line in text.splitlines() if line.startswith("| [coin](#coin)"))
    assert summary.split("|")[3:7] == [" 3 ", " 2 ", " 1 ", " 0 "]  # claims, hold, do not hold, not run


def test_a_failing_run_writes_nothing(tmp_path):
    def broken(cfg, key):
        return Output({"a": [1.0, 2.0]})  # two values for four seeds

    study = Study("coin", CoinConfig, broken, claims=())
    with pytest.raises(ValueError, match="one per seed"):
        execute(study, study.configure(out_dir=str(tmp_path / "x")))
    assert not (tmp_path / "x").exists()


def test_measurements_are_stored_as_plain_lists(tmp_path):
    rec = json.loads((run_coin(tmp_path) / "metrics.json").read_text())
    assert rec["measurements"]["one"] == [3.0]
    assert np.allclose(np.asarray(rec["measurements"]["a"]).mean(), 0.5, atol=0.1)


def test_results_are_written_atomically(tmp_path, monkeypatch):
    """A failure while writing (a figure that can't be saved, a rename that fails) leaves earlier files as they were."""
    out = tmp_path / "coin"
    out.mkdir()
    (out / "metrics.json").write_text('{"earlier": true}')

    class Broken:
        def savefig(self, *a, **k):
            raise OSError("disk full")

    def with_figure(fig):
        def run(cfg, key):
            o = coin_run(cfg, key)
            o.figures["fig"] = fig
            return o

        return Study("coin", CoinConfig, run, claims=COIN.claims)

    study = with_figure(Broken())
    with pytest.raises(OSError, match="disk full"):
        execute(study, study.configure(out_dir=str(out)))
    assert json.loads((out / "metrics.json").read_text()) == {"earlier": True}
    import jaxflow._io as io

    def failing_replace(src, dst):
        raise OSError("killed during rename")

    monkeypatch.setattr(io.os, "replace", failing_replace)
    with pytest.raises(OSError, match="killed"):
        execute(COIN, COIN.configure(out_dir=str(out)))
    monkeypatch.undo()
    assert json.loads((out / "metrics.json").read_text()) == {"earlier": True}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left behind


# ---- resumable units: a killed run resumes without losing or repeating work ----
unit_calls: list[str] = []
kill = {"after": None}  # stop the run (as a kill would) once this many units have been computed in this process


@dataclass(frozen=True)
class PiecesConfig(StudyConfig):
    seeds: int = 3
    n: int = 500
    out_dir: str = "results/pieces"


def pieces_run(cfg, key):
    values = []
    for s in range(cfg.seeds):

        def piece(s=s):
            if kill["after"] is not None and len(unit_calls) >= kill["after"]:
                raise KeyboardInterrupt("killed")
            unit_calls.append(f"seed {s}")
            x = jax.random.normal(jax.random.fold_in(key, s), (cfg.n,))
            return {"mean": x.mean(), "first": x[:3]}  # a device array comes back as numpy

        values.append(pipeline.unit(f"seed {s}", piece))
    assert all(isinstance(v["first"], np.ndarray) for v in values)
    return Output({"mean": [float(v["mean"]) for v in values]})


PIECES = Study("pieces", PiecesConfig, pieces_run, claims=(Claim("small", "the mean is small", "mean", "<", 1.0),))


def killed_run(out, **kw):
    unit_calls.clear()
    kill["after"] = 2
    try:
        with pytest.raises(KeyboardInterrupt):
            execute(PIECES, PIECES.configure(out_dir=str(out), **kw))
    finally:
        kill["after"] = None


def test_a_killed_run_resumes_from_its_finished_units(tmp_path):
    out = tmp_path / "pieces"
    killed_run(out)
    assert unit_calls == ["seed 0", "seed 1"] and not (out / "metrics.json").exists()
    assert len(list((out / ".units").glob("*/*.pkl"))) == 2
    unit_calls.clear()
    rec = json.loads((execute(PIECES, PIECES.configure(out_dir=str(out))) / "metrics.json").read_text())
    assert unit_calls == ["seed 2"]  # nothing lost, nothing repeated
    assert rec["provenance"]["resumed_units"] == ["seed 0", "seed 1"] and rec["provenance"]["resumed_seconds"] >= 0
    assert not (out / ".units").exists()  # the run's units go once its results are written
    unit_calls.clear()
    whole = execute(PIECES, PIECES.configure(out_dir=str(tmp_path / "whole")))
    whole = json.loads((whole / "metrics.json").read_text())
    assert unit_calls == ["seed 0", "seed 1", "seed 2"]
    assert whole["measurements"] == rec["measurements"]  # resuming gives what an uninterrupted run gives


def test_a_run_never_takes_units_of_another_run(tmp_path):
    out = tmp_path / "pieces"
    killed_run(out)
    unit_calls.clear()
    execute(PIECES, PIECES.configure(out_dir=str(out), n=400))  # another config: another run
    assert unit_calls == ["seed 0", "seed 1", "seed 2"]
    assert len(list((out / ".units").iterdir())) == 1  # the killed run's units are left alone


def test_a_unit_outside_a_run_is_a_plain_call_and_names_are_unique(tmp_path):
    assert pipeline.unit("x", lambda: 3) == 3

    def twice(cfg, key):
        pipeline.unit("same", lambda: 1)
        pipeline.unit("same", lambda: 2)
        return Output({"mean": [0.0] * cfg.seeds})

    study = Study("pieces", PiecesConfig, twice, claims=())
    with pytest.raises(ValueError, match="unique"):
        execute(study, study.configure(out_dir=str(tmp_path / "p")))


def test_train_params_checkpoints_continue_one_run():
    """Checkpoints along `train_params` do not restart anything: the final params equal those of one uninterrupted
    run (same optimiser state, same batches), and the callback sees the params at each checkpoint."""
    from dataclasses import dataclass as dc

    import jax.numpy as jnp

    from experiments.common import train_params

    @dc(frozen=True)
    class C:
        lr: float = 0.05
        steps_per_call: int = 7
        progress: bool = False

    target = jnp.array([1.0, -2.0, 0.5])

    def loss(p, batch, key):
        value = jnp.mean((p["w"] - target - 0.1 * batch["x1"]) ** 2)
        return value, {"loss": value}

    data_fn = lambda k: {"x1": jax.random.normal(k, (3,))}  # noqa: E731
    p0 = {"w": jnp.zeros(3)}
    seen = []
    whole, _ = train_params(loss, p0, C(), 40, key=jax.random.key(0), data_fn=data_fn, ema=True)
    parts, _ = train_params(
        loss,
        p0,
        C(),
        40,
        key=jax.random.key(0),
        data_fn=data_fn,
        ema=True,
        checkpoints=(10, 25),
        at_checkpoint=lambda step, p: seen.append((step, np.asarray(p["w"]))),
    )
    np.testing.assert_allclose(parts["w"], whole["w"], rtol=1e-6)
    assert [s for s, _ in seen] == [10, 25] and not np.allclose(seen[0][1], seen[1][1])
    raw, _ = train_params(loss, p0, C(), 40, key=jax.random.key(0), data_fn=data_fn)
    assert not np.allclose(raw["w"], whole["w"])  # the EMA is what `ema` returns
