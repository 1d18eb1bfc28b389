"""The training loop as a library function: checkpoints (orbax), resume, non-finite guard, evaluation, logging.

Reliability contract (each part has a test that fails without it, tests/train/test_train.py and test_faults.py):
- resume: a run restarted on the same `checkpoint_dir` continues from the newest readable checkpoint and executes
  only the steps after it;
- damage: a checkpoint that cannot be read, or whose content does not match the checksum stored beside it, is moved
  aside to `<step>.damaged` (never deleted) with a warning naming it, and the next older kept checkpoint is used; the
  resumed run saves at that step again;
- mismatch: a checkpoint of another model or optimizer (its tree structure, shapes or dtypes differ from the state
  given to `fit`) is not damage: `CheckpointMismatchError` names what differs, and nothing on disk is touched;
- past the end: resuming a directory whose checkpoint is already past `num_steps` warns and trains nothing;
- configuration: the `config` passed to `fit` is stored with every checkpoint; resuming with a different one raises
  `ConfigMismatchError` (naming the differing keys) unless `allow_config_change=True`;
- log: `metrics.jsonl` is appended one whole line per write (a single `write` of the line and its newline, flushed
  and fsynced); a line torn by a kill is dropped and the file repaired on resume; an existing log of an earlier run
  is never deleted (a fresh run moves it aside to `metrics.<n>.jsonl`);
- non-finite loss: `NonFiniteLossError` names the step; the newest checkpoint stays the last good one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from tqdm.auto import tqdm

from jaxflow._checks import check_count
from jaxflow._io import atomic_write_text
from jaxflow.train.data import Prefetch
from jaxflow.train.state import TrainState
from jaxflow.train.step import NonFiniteLossError, first_non_finite

logger = logging.getLogger("jaxflow.train")


class ConfigMismatchError(ValueError):
    """Raised when a run resumes a checkpoint written under a different configuration."""


class CheckpointMismatchError(ValueError):
    """Raised when a checkpoint belongs to another model or optimizer: its tree structure, shapes or dtypes differ
    from the state the run starts from. Nothing is deleted or overwritten."""


class MetricsLog:
    """Metrics as JSON lines, one record per logged step.

    `resume_step > 0`: records past the restored step are dropped (they are about to be redone) so that every step
    appears once; a torn last line is dropped. `resume_step == 0` on an existing non-empty log: the old file is kept
    under the first free name `metrics.<n>.jsonl` and a new one is started.

    Args:
        path: the JSON-lines file, or None to keep the records in memory only.
        resume_step: the restored step of a resumed run (0 for a new run).
    """

    def __init__(self, path: str | os.PathLike | None, resume_step: int = 0):
        self.path = None if path is None else Path(path)
        self.records: list[dict] = []
        self.moved_to: Path | None = None
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            return
        old = read_jsonl(self.path)
        if resume_step > 0:
            self.records = [r for r in old if r.get("step", 0) <= resume_step]
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in self.records))
        elif self.path.stat().st_size > 0:
            self.moved_to = _free_name(self.path)
            os.replace(self.path, self.moved_to)
            logger.warning("a log of an earlier run exists; kept as %s, starting %s", self.moved_to, self.path)

    def write(self, record: dict) -> None:
        self.records.append(record)
        if self.path is None:
            return
        data = (json.dumps(record) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)  # one write: a kill leaves either nothing or a prefix of this line
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> list[dict]:
        """Every record of this run, the resumed part included."""
        return list(self.records)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Records of a JSON-lines file; a torn (unterminated or unparsable) last line is dropped with a warning.

    Args:
        path: the .jsonl file.

    Returns:
        The records, one dict per line.
    """
    text = Path(path).read_text()
    lines = text.split("\n")
    complete, tail = lines[:-1], lines[-1]  # tail is "" when the file ends with a newline
    records = []
    for i, line in enumerate(complete):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == len(complete) - 1 and not tail:
                logger.warning("dropping a torn last line of %s", path)
                break
            raise ValueError(f"{path}: line {i + 1} is not valid JSON ({e}); the log is damaged before its end") from e
    if tail.strip():
        logger.warning("dropping a torn last line of %s (%d bytes without a newline)", path, len(tail))
    return records


def _free_name(path: Path) -> Path:
    n = 1
    while (candidate := path.with_name(f"{path.stem}.{n}{path.suffix}")).exists():
        n += 1
    return candidate


def checkpoint_manager(directory: str | os.PathLike, keep: int = 3) -> ocp.CheckpointManager:
    """Orbax manager that keeps the newest `keep` checkpoints; saves are atomic (written aside, then renamed).

    Args:
        directory: the checkpoint folder (created when missing).
        keep: how many checkpoints to keep.

    Returns:
        The orbax `CheckpointManager`.
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
    return ocp.CheckpointManager(Path(directory).absolute(), options=options)


def state_checksum(state) -> str | None:
    """sha256 over the bytes, shapes and dtypes of every leaf (None when a leaf is not addressable here)."""
    h = hashlib.sha256()
    try:
        for leaf in jax.tree.leaves(state):
            a = np.asarray(jax.device_get(leaf))
            h.update(f"{a.shape}{a.dtype}".encode())
            h.update(np.ascontiguousarray(a).tobytes())
    except (RuntimeError, ValueError):  # arrays spread over other hosts: no local checksum
        return None
    return h.hexdigest()


def canonical_config(config) -> dict | None:
    """A JSON-able dict of a config (dataclass, dict or None) for storage and comparison."""
    if config is None:
        return None
    import dataclasses

    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict or a dataclass instance, got {type(config).__name__}")
    return json.loads(json.dumps(config, sort_keys=True, default=str))


def tree_signature(state) -> list[list[str]]:
    """[path, shape, dtype] of every leaf: what a checkpoint must share with the state that resumes it."""
    out = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        shape = getattr(leaf, "shape", ())
        dtype = getattr(leaf, "dtype", type(leaf).__name__)
        out.append([jax.tree_util.keystr(path), str(tuple(int(d) for d in shape)), str(dtype)])
    return out


def _signature_diff(stored: list, given: list, limit: int = 4) -> list[str]:
    s, g = {p: (sh, dt) for p, sh, dt in stored}, {p: (sh, dt) for p, sh, dt in given}
    out = [f"{p}: only in the checkpoint" for p in s if p not in g]
    out += [f"{p}: only in the new state" for p in g if p not in s]
    out += [
        f"{p}: {s[p][0]} {s[p][1]} in the checkpoint, {g[p][0]} {g[p][1]} now" for p in s if p in g and s[p] != g[p]
    ]
    return out[:limit] + ([f"... {len(out) - limit} more"] if len(out) > limit else [])


def save_checkpoint(manager: ocp.CheckpointManager, step: int, state: Any, config: Any = None) -> None:
    """Save `state` at `step` with its checksum and `config` (atomic: written aside, then renamed).

    Args:
        manager: the orbax manager (`checkpoint_manager`).
        step: the step number.
        state: the `TrainState`.
        config: the run's configuration (a dict or dataclass), stored for the check on resume.
    """
    meta = {
        "step": int(step),
        "checksum": state_checksum(state),
        "config": canonical_config(config),
        "tree": tree_signature(state),
    }
    manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))


def _read_meta(manager, step) -> dict | None:
    """The JSON metadata written beside a checkpoint (None when it cannot be read)."""
    try:
        return json.loads((Path(manager.directory) / str(step) / "meta" / "metadata").read_text())
    except (OSError, ValueError):
        return None


def _move_aside(manager, step) -> Path:
    """Rename a damaged checkpoint folder to `<step>.damaged` (`.damaged.<n>` if taken); returns the new path."""
    src = Path(manager.directory) / str(step)
    dst = src.with_name(f"{step}.damaged")
    n = 1
    while dst.exists():
        dst = src.with_name(f"{step}.damaged.{n}")
        n += 1
    os.replace(src, dst)
    manager.reload()
    return dst


def _restore_one(manager, step, template):
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    out = manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
    )
    state, meta = out["state"], out["meta"]
    stored = meta.get("checksum")
    if stored is not None:
        actual = state_checksum(state)
        if actual is not None and actual != stored:
            raise ValueError("content does not match the checksum written with it")
    return state, meta


def _config_diff(stored: dict | None, given: dict | None) -> list[str]:
    if stored is None or given is None:
        return []
    keys = sorted(set(stored) | set(given))
    return [f"{k}: {stored.get(k)!r} -> {given.get(k)!r}" for k in keys if stored.get(k) != given.get(k)]


def restore_latest(
    manager: ocp.CheckpointManager, template: TrainState, *, config: Any = None, allow_config_change: bool = False
) -> TrainState | None:
    """The newest readable checkpoint, or None when there is none.

    Checkpoints are tried newest first. One whose stored tree (paths, shapes, dtypes) differs from `template` belongs
    to another model or optimizer: `CheckpointMismatchError`, nothing touched. One that fails to load or whose checksum
    does not match is moved aside to `<step>.damaged` with a warning. A stored configuration that differs from
    `config` raises `ConfigMismatchError` unless `allow_config_change`.

    Args:
        manager: the orbax manager (`checkpoint_manager`).
        template: a `TrainState` with the expected structure (the state the run starts from).
        config: the run's configuration, compared with the stored one.
        allow_config_change: restore even when the configurations differ.

    Returns:
        The restored `TrainState`, or None when there is no readable checkpoint.

    Raises:
        CheckpointMismatchError: a checkpoint of another model or optimiser.
        ConfigMismatchError: a different configuration without `allow_config_change`.
    """
    steps = sorted(manager.all_steps(), reverse=True)
    given = canonical_config(config)
    signature = tree_signature(template)
    for step in steps:
        stored_meta = _read_meta(manager, step)
        if stored_meta is not None and stored_meta.get("tree") is not None:
            diff = _signature_diff(stored_meta["tree"], signature)
            if diff:
                raise CheckpointMismatchError(
                    f"checkpoint {step} in {manager.directory} holds another model or optimizer state: "
                    + "; ".join(diff)
                    + ". Nothing was changed on disk: resume with the same model and optimizer, or use another "
                    "checkpoint_dir."
                )
        try:
            state, meta = _restore_one(manager, step, template)
        except Exception as e:  # noqa: BLE001 - any failure to read means: damaged, try the next older one
            moved = _move_aside(manager, step)
            logger.warning(
                "checkpoint %d in %s is unreadable (%s: %s); moved aside to %s, trying an older one",
                step,
                manager.directory,
                type(e).__name__,
                str(e).splitlines()[0][:200] if str(e) else "",
                moved.name,
            )
            continue
        diff = _config_diff(meta.get("config"), given)
        if diff and not allow_config_change:
            raise ConfigMismatchError(
                f"checkpoint {step} in {manager.directory} was written with a different configuration: "
                + "; ".join(diff)
                + ". Resume with the same configuration, use another checkpoint_dir, or pass allow_config_change=True."
            )
        if step != steps[0]:
            logger.warning("resuming from checkpoint %d (newer ones were unreadable)", step)
        else:
            logger.info("resuming from checkpoint %d", step)
        return state
    if steps:
        logger.warning("no readable checkpoint in %s (tried %s); starting from scratch", manager.directory, steps)
    return None


def plot_loss_curve(records: list[dict], path: str | os.PathLike) -> None:
    """Draw the loss (log scale) against the step from logged records and save it as a PNG at `path`.

    Args:
        records: the logged records (dicts with "step" and "loss"; others are skipped).
        path: the PNG to write.
    """
    from matplotlib.figure import Figure  # no pyplot: the user's backend is left alone

    rows = [r for r in records if "loss" in r]
    if not rows:
        return
    fig = Figure(figsize=(5, 3.2))
    ax = fig.subplots()
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows])
    losses = np.asarray([r["loss"] for r in rows])
    ax.set(xlabel="step", ylabel="loss", yscale="log" if np.all(losses > 0) else "linear", title="training loss")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


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
    config: Any = None,
    allow_config_change: bool = False,
    eval_fn: Callable[[TrainState], dict] | None = None,
    eval_every: int | None = None,
    log_dir: str | os.PathLike | None = None,
    progress: bool = True,
    desc: str = "train",
) -> tuple[TrainState, list[dict]]:
    """Train `state` to `num_steps` total steps with `step_fn` from `make_train_step`.

    Resumes from the newest readable checkpoint in `checkpoint_dir` when there is one (see the module docstring), so
    a killed run started again loses and repeats no step. A non-finite loss stops training with `NonFiniteLossError`
    naming the step; the newest checkpoint stays the last good one.

    Args:
        state: the `TrainState` to train (its `step` counts from where it is: a state at step k trains k → num_steps).
        step_fn: `step_fn(state, batches, n) -> (state, metrics)` from `make_train_step` (n steps per call).
        num_steps: the total step count to reach (not the number of steps to add).
        steps_per_call: steps per compiled call (one `lax.scan`); also the granularity of logs and checkpoints.
        batches_fn: `batches_fn(step, n)` returning stacked batches [n, B, ...] when the step does not draw its
            own (`make_train_step(data_fn=...)`); e.g. an `ArraySource` or a `Prefetch`.
        checkpoint_dir: a folder for orbax checkpoints (created; resumed from), or None for none.
        checkpoint_every: steps between checkpoints (written at the first chunk boundary at or past each multiple,
            and at the end); default 10 calls.
        keep_checkpoints: how many checkpoints to keep.
        config: a dict or dataclass (e.g. the study's config) stored with every checkpoint and checked on resume.
        allow_config_change: resume even when `config` differs from the checkpoint's.
        eval_fn: `eval_fn(state) -> dict` of numbers, logged every `eval_every` steps.
        eval_every: steps between evaluations.
        log_dir: a folder for `metrics.jsonl` and `loss.png`, or None.
        progress: show a tqdm progress bar.
        desc: the progress bar's label.

    Returns:
        (the trained state, the list of logged records: one dict per call with step, loss, steps/s and any metric).

    Raises:
        NonFiniteLossError: a non-finite loss (or metric), with the step it appeared at.
        ConfigMismatchError: `config` differs from the checkpoint's and `allow_config_change` is False.
        ValueError: a bad `num_steps`, `steps_per_call`, `checkpoint_every` or `eval_every`.
    """
    check_count(steps_per_call, "steps_per_call")
    if not isinstance(num_steps, int | np.integer) or num_steps < 0:
        raise ValueError(f"num_steps must be a non-negative int, got {num_steps!r}")
    if checkpoint_every is not None and checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    if eval_every is not None and eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every}")
    checkpoint_every = checkpoint_every or steps_per_call * 10
    canonical_config(config)  # a bad config fails before any work
    manager = None if checkpoint_dir is None else checkpoint_manager(checkpoint_dir, keep_checkpoints)
    try:
        if manager is not None:
            restored = restore_latest(manager, state, config=config, allow_config_change=allow_config_change)
            state = restored if restored is not None else state
        start = int(np.max(jax.device_get(state.step)))
        if start > num_steps:
            warnings.warn(
                f"fit: the state is at step {start}, past num_steps={num_steps} (from checkpoint_dir="
                f"{checkpoint_dir}): nothing is trained and the step-{start} state is returned",
                stacklevel=2,
            )
        if isinstance(batches_fn, Prefetch) and batches_fn.total is None:
            batches_fn.total = num_steps
        if hasattr(step_fn, "total"):  # an overlapped step: draw no chunk past the end
            step_fn.total = num_steps
        log = MetricsLog(None if log_dir is None else Path(log_dir) / "metrics.jsonl", resume_step=start)
        bar = tqdm(
            total=num_steps,
            initial=start,
            desc=desc,
            disable=not progress,
            dynamic_ncols=True,
            mininterval=0.5 if _is_terminal() else 30.0,
        )
        step = start
        next_save = (start // checkpoint_every + 1) * checkpoint_every
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
                if eval_fn is not None and eval_every and (step % eval_every < n or step == num_steps):
                    record.update({f"eval/{k}": v for k, v in eval_fn(state).items()})
                log.write(record)
                bar.update(n)
                bar.set_postfix(loss=f"{loss:.4f}", steps_s=f"{rate:.0f}", refresh=False)
                if manager is not None and (step >= next_save or step == num_steps):
                    save_checkpoint(manager, step, state, config)
                    next_save = (step // checkpoint_every + 1) * checkpoint_every
        finally:
            bar.close()
    finally:
        if manager is not None:
            manager.wait_until_finished()
            manager.close()
    records = log.read()
    if log_dir is not None:
        plot_loss_curve(records, Path(log_dir) / "loss.png")
    return state, records


def _is_terminal() -> bool:
    import sys

    return hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
