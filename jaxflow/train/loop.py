"""The training loop as a library function: checkpoints (orbax), resume, non-finite guard, evaluation, logging."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
from tqdm.auto import tqdm

from jaxflow.train.data import Prefetch
from jaxflow.train.state import TrainState
from jaxflow.train.step import NonFiniteLossError, first_non_finite


class MetricsLog:
    """Metrics as JSON lines, one record per logged step. On resume, records past the restored step are dropped so
    that every step appears once."""

    def __init__(self, path: str | os.PathLike | None, resume_step: int = 0):
        self.path = None if path is None else Path(path)
        self.records: list[dict] = []
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and resume_step > 0:
            self.records = [r for r in self._read_file() if r.get("step", 0) <= resume_step]
        with open(self.path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in self.records)

    def write(self, record: dict) -> None:
        self.records.append(record)
        if self.path is None:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()

    def read(self) -> list[dict]:
        """Every record of this run, the resumed part included."""
        return list(self.records)

    def _read_file(self) -> list[dict]:
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


def checkpoint_manager(directory: str | os.PathLike, keep: int = 3) -> ocp.CheckpointManager:
    """Orbax manager that keeps the newest `keep` checkpoints; saves are atomic (written aside, then renamed)."""
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
    return ocp.CheckpointManager(Path(directory).absolute(), options=options)


def restore_latest(manager: ocp.CheckpointManager, template: TrainState) -> TrainState | None:
    step = manager.latest_step()
    if step is None:
        return None
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    return manager.restore(step, args=ocp.args.StandardRestore(abstract))


def plot_loss_curve(records: list[dict], path: str | os.PathLike) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in records if "loss" in r]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows])
    ax.set(xlabel="step", ylabel="loss", yscale="log", title="training loss")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def fit(
    state: TrainState,
    step_fn: Callable,
    num_steps: int,
    *,
    steps_per_call: int = 100,
    batches_fn: Callable[[int, int], object] | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    keep_checkpoints: int = 3,
    eval_fn: Callable[[TrainState], dict] | None = None,
    eval_every: int | None = None,
    log_dir: str | os.PathLike | None = None,
    progress: bool = True,
    desc: str = "train",
) -> tuple[TrainState, list[dict]]:
    """Train `state` to `num_steps` total steps with `step_fn` from `make_train_step`.

    Resumes from the newest checkpoint in `checkpoint_dir` when there is one. `batches_fn(step, n)` supplies stacked
    batches [n, B, ...] when the step does not draw its own. Writes `metrics.jsonl` and `loss.png` under `log_dir`.
    A non-finite loss raises `NonFiniteLossError` naming the step; the newest checkpoint stays the last good one.
    """
    if steps_per_call < 1 or num_steps < 0:
        raise ValueError("steps_per_call must be >= 1 and num_steps >= 0")
    checkpoint_every = checkpoint_every or steps_per_call * 10
    manager = None if checkpoint_dir is None else checkpoint_manager(checkpoint_dir, keep_checkpoints)
    if manager is not None:
        restored = restore_latest(manager, state)
        state = restored if restored is not None else state
    start = int(np.max(jax.device_get(state.step)))
    if isinstance(batches_fn, Prefetch) and batches_fn.total is None:
        batches_fn.total = num_steps
    log = MetricsLog(None if log_dir is None else Path(log_dir) / "metrics.jsonl", resume_step=start)
    bar = tqdm(total=num_steps, initial=start, desc=desc, disable=not progress, dynamic_ncols=True)
    step = start
    t_last = time.perf_counter()
    try:
        while step < num_steps:
            n = min(steps_per_call, num_steps - step)
            batches = None if batches_fn is None else batches_fn(step, n)
            state, metrics = step_fn(state, batches, n)
            bad = first_non_finite(metrics, step)
            if bad is not None:
                raise NonFiniteLossError(*bad)
            step += n
            now = time.perf_counter()
            loss = float(np.mean(jax.device_get(metrics["loss"])))
            rate = n / max(now - t_last, 1e-9)
            t_last = now
            record = {"step": step, "loss": loss, "steps_per_s": rate}
            if eval_fn is not None and eval_every and (step % eval_every == 0 or step == num_steps):
                record.update({f"eval/{k}": v for k, v in eval_fn(state).items()})
            log.write(record)
            bar.update(n)
            bar.set_postfix(loss=f"{loss:.4f}", steps_s=f"{rate:.0f}")
            if manager is not None and (step % checkpoint_every == 0 or step == num_steps):
                manager.save(step, args=ocp.args.StandardSave(state))
    finally:
        bar.close()
        if manager is not None:
            manager.wait_until_finished()
            manager.close()
    records = log.read()
    if log_dir is not None:
        plot_loss_curve(records, Path(log_dir) / "loss.png")
    return state, records
