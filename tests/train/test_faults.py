"""Faults of a training run: damaged checkpoints, torn logs, existing logs, odd checkpoint intervals, config changes.

Each test names the mechanism it guards; removing the mechanism makes it fail (see the issue note's mutation list).
"""

import json
import logging
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxflow as jf
from jaxflow.nn import MLPVelocity, init_mlp, velocity_fn
from jaxflow.train import ConfigMismatchError, TrainState, fit, make_train_step


def _setup(lr=1e-3):
    mod = MLPVelocity(out_dim=2, hidden=(8, 8))
    loss = jf.losses.cfm_loss(velocity_fn(mod))
    opt = optax.adam(lr)

    def data(k):
        k0, k1 = jax.random.split(k)
        return {"x0": jax.random.normal(k0, (16, 2)), "x1": 2.0 + jax.random.normal(k1, (16, 2))}

    state = TrainState.create(jax.random.key(1), init_mlp(jax.random.key(0), mod, 2), opt)
    return state, make_train_step(loss, opt, data_fn=data)


class Counter:
    """Wraps a step function and counts the training steps it executes."""

    def __init__(self, step):
        self.step, self.executed = step, 0

    def __call__(self, state, batches, n):
        self.executed += n
        return self.step(state, batches, n)


def _params_equal(a, b):
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


def _steps(ck):
    return sorted(int(p.name) for p in ck.iterdir() if p.name.isdigit())


@pytest.fixture(scope="module")
def reference():
    state, step = _setup()
    full, _ = fit(state, step, 100, steps_per_call=10, progress=False)
    return full


def _damage(folder, how):
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.stat().st_size > 0)
    if how == "emptied":
        for p in folder.iterdir():
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    elif how == "truncated":
        for p in files:
            p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    elif how == "swapped":
        # a well-formed checkpoint with the wrong content (a copy gone wrong): orbax reads it without complaint,
        # only the checksum stored beside it tells
        shutil.rmtree(folder / "state")
        shutil.copytree(folder.parent / "20" / "state", folder / "state")
    elif how == "bitflip":
        # flip one bit in every stored array chunk (not the metadata, which orbax might simply re-read)
        chunks = [p for p in files if "/d/" in p.as_posix() or p.parent.name == "d"] or files
        for p in chunks:
            raw = bytearray(p.read_bytes())
            raw[len(raw) // 2] ^= 0x10
            p.write_bytes(bytes(raw))


@pytest.mark.parametrize("how", ["emptied", "truncated", "bitflip", "swapped"])
def test_damaged_newest_checkpoint_falls_back_to_an_older_one(tmp_path, reference, how, caplog):
    state, step = _setup()
    ck = tmp_path / "ck"
    fit(state, step, 60, steps_per_call=10, checkpoint_dir=ck, checkpoint_every=20, progress=False)
    assert _steps(ck) == [20, 40, 60]
    _damage(ck / "60", how)
    counter = Counter(step)
    with caplog.at_level(logging.WARNING, logger="jaxflow.train"):
        resumed, _ = fit(state, counter, 100, steps_per_call=10, checkpoint_dir=ck, checkpoint_every=20, progress=False)
    assert counter.executed == 60  # resumed from 40: steps 41..100
    assert "checkpoint 60" in caplog.text and "resuming from checkpoint 40" in caplog.text
    _params_equal(resumed, reference)


def test_torn_log_line_is_repaired_on_resume(tmp_path, reference):
    state, step = _setup()
    ck, logs = tmp_path / "ck", tmp_path / "logs"
    fit(state, step, 40, steps_per_call=10, checkpoint_dir=ck, checkpoint_every=20, log_dir=logs, progress=False)
    with open(logs / "metrics.jsonl", "a") as f:
        f.write('{"step": 50, "loss": 0.3')  # what a kill in the middle of a write leaves
    counter = Counter(step)
    resumed, records = fit(
        state, counter, 100, steps_per_call=10, checkpoint_dir=ck, checkpoint_every=20, log_dir=logs, progress=False
    )
    assert counter.executed == 60
    lines = (logs / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(10, 101, 10))
    assert [r["step"] for r in records] == list(range(10, 101, 10))
    _params_equal(resumed, reference)


def test_log_lines_are_written_whole(tmp_path):
    log = jf.train.MetricsLog(tmp_path / "m.jsonl")
    for i in range(3):
        log.write({"step": i, "loss": 0.5})
    text = (tmp_path / "m.jsonl").read_text()
    assert text.endswith("\n") and len(text.splitlines()) == 3


def test_existing_log_is_kept_when_a_fresh_run_starts(tmp_path):
    state, step = _setup()
    logs = tmp_path / "logs"
    fit(state, step, 40, steps_per_call=10, log_dir=logs, progress=False)
    before = (logs / "metrics.jsonl").read_text()
    assert len(before.splitlines()) == 4
    fit(state, step, 10, steps_per_call=10, log_dir=logs, progress=False)
    assert (logs / "metrics.1.jsonl").read_text() == before  # nothing of the earlier run is lost
    assert len((logs / "metrics.jsonl").read_text().splitlines()) == 1


@pytest.mark.parametrize(("every", "expected"), [(30, [40, 60, 100]), (40, [40, 80, 100]), (50, [60, 100])])
def test_checkpoint_every_not_a_multiple_of_the_chunk(tmp_path, every, expected):
    state, step = _setup()
    ck = tmp_path / "ck"
    fit(
        state,
        step,
        100,
        steps_per_call=20,
        checkpoint_dir=ck,
        checkpoint_every=every,
        keep_checkpoints=10,
        progress=False,
    )
    # the first chunk boundary at or past each multiple of `every`, and the end
    assert _steps(ck) == expected


def test_resume_with_a_changed_config_is_refused(tmp_path, reference):
    state, step = _setup()
    ck = tmp_path / "ck"
    fit(state, step, 40, steps_per_call=10, checkpoint_dir=ck, config={"lr": 1e-3, "data": "moons"}, progress=False)
    fast_state, fast_step = _setup(lr=1.0)
    with pytest.raises(ConfigMismatchError, match=r"lr: 0.001 -> 1.0"):
        fit(
            fast_state,
            fast_step,
            100,
            steps_per_call=10,
            checkpoint_dir=ck,
            config={"lr": 1.0, "data": "moons"},
            progress=False,
        )
    with pytest.raises(ConfigMismatchError, match="data"):
        fit(
            state,
            step,
            100,
            steps_per_call=10,
            checkpoint_dir=ck,
            config={"lr": 1e-3, "data": "scurve"},
            progress=False,
        )
    # the same config resumes; an explicit override is accepted
    counter = Counter(step)
    resumed, _ = fit(
        state, counter, 100, steps_per_call=10, checkpoint_dir=ck, config={"lr": 1e-3, "data": "moons"}, progress=False
    )
    assert counter.executed == 60
    _params_equal(resumed, reference)
    fit(
        fast_state,
        fast_step,
        110,
        steps_per_call=10,
        checkpoint_dir=ck,
        config={"lr": 1.0, "data": "moons"},
        allow_config_change=True,
        progress=False,
    )


def test_fit_rejects_bad_arguments(tmp_path):
    state, step = _setup()
    for kwargs, name in [
        ({"steps_per_call": 0}, "steps_per_call"),
        ({"checkpoint_every": 0}, "checkpoint_every"),
        ({"eval_every": -1}, "eval_every"),
        ({"keep_checkpoints": 0, "checkpoint_dir": tmp_path}, "keep"),
    ]:
        with pytest.raises(ValueError, match=name):
            fit(state, step, 10, progress=False, **kwargs)
    with pytest.raises(ValueError, match="num_steps"):
        fit(state, step, -1, progress=False)
    with pytest.raises(TypeError, match="config"):
        fit(state, step, 10, config=3, progress=False)


def test_only_unreadable_checkpoints_start_from_scratch(tmp_path, caplog):
    state, step = _setup()
    ck = tmp_path / "ck"
    fit(state, step, 20, steps_per_call=10, checkpoint_dir=ck, checkpoint_every=10, progress=False)
    for s in _steps(ck):
        _damage(ck / str(s), "emptied")
    counter = Counter(step)
    with caplog.at_level(logging.WARNING, logger="jaxflow.train"):
        fit(state, counter, 20, steps_per_call=10, checkpoint_dir=ck, progress=False)
    assert counter.executed == 20 and "no readable checkpoint" in caplog.text
    assert bool(jnp.isfinite(state.step))


def _setup_other(hidden=(8, 8), optimizer=None):
    mod = MLPVelocity(out_dim=2, hidden=hidden)
    loss = jf.losses.cfm_loss(velocity_fn(mod))
    opt = optimizer or optax.adam(1e-3)

    def data(k):
        k0, k1 = jax.random.split(k)
        return {"x0": jax.random.normal(k0, (16, 2)), "x1": 2.0 + jax.random.normal(k1, (16, 2))}

    state = TrainState.create(jax.random.key(1), init_mlp(jax.random.key(0), mod, 2), opt)
    return state, make_train_step(loss, opt, data_fn=data)


def _snapshot(ck):
    return {p.relative_to(ck).as_posix(): p.read_bytes() for p in sorted(ck.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("other", "named"),
    [({"hidden": (16, 8)}, "Dense_0"), ({"optimizer": optax.sgd(1e-3)}, "opt_state")],
)
def test_a_checkpoint_of_another_model_or_optimizer_is_refused_and_kept(tmp_path, other, named):
    """Resuming with another width or another optimizer is a mismatch, not damage: it raises, naming what differs,
    and every checkpoint stays as it was (none deleted, none replaced)."""
    from jaxflow.train import CheckpointMismatchError

    state, step = _setup()
    ck = tmp_path / "ck"
    fit(state, step, 40, steps_per_call=10, checkpoint_dir=ck, checkpoint_every=10, progress=False)
    before = _snapshot(ck)
    assert _steps(ck) == [20, 30, 40]
    state2, step2 = _setup_other(**other)
    counter = Counter(step2)
    with pytest.raises(CheckpointMismatchError, match=named):
        fit(state2, counter, 100, steps_per_call=10, checkpoint_dir=ck, checkpoint_every=10, progress=False)
    assert counter.executed == 0 and _snapshot(ck) == before


def test_a_damaged_checkpoint_is_moved_aside_and_its_step_saved_again(tmp_path, reference):
    state, step = _setup()
    ck = tmp_path / "ck"
    fit(state, step, 60, steps_per_call=10, checkpoint_dir=ck, checkpoint_every=20, progress=False)
    _damage(ck / "60", "truncated")
    damaged = _snapshot(ck / "60")
    resumed, _ = fit(state, step, 60, steps_per_call=10, checkpoint_dir=ck, checkpoint_every=20, progress=False)
    assert (ck / "60.damaged").is_dir() and _snapshot(ck / "60.damaged") == damaged  # kept, not deleted
    assert _steps(ck) == [20, 40, 60]  # step 60 saved again, readable
    again, _ = fit(state, Counter(step), 60, steps_per_call=10, checkpoint_dir=ck, progress=False)
    _params_equal(again, resumed)


def test_resuming_past_the_end_warns_and_trains_nothing(tmp_path):
    state, step = _setup()
    ck = tmp_path / "ck"
    fit(state, step, 40, steps_per_call=10, checkpoint_dir=ck, checkpoint_every=10, progress=False)
    counter = Counter(step)
    with pytest.warns(UserWarning, match="step 40, past num_steps=20"):
        out, _ = fit(state, counter, 20, steps_per_call=10, checkpoint_dir=ck, progress=False)
    assert counter.executed == 0 and int(out.step) == 40
