"""What every study shares: the base config, flag validation, training and picture helpers, formatting and fits.

The pipeline (`experiments.pipeline`) owns running, judging claims (`experiments.claims`) and writing results.
Figures are `matplotlib.figure.Figure` objects built without pyplot, so importing or running a study never switches
the user's matplotlib backend (in Colab the figures display inline as usual).
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from jaxflow._io import atomic_write_bytes

PACKAGES = ("jax", "jaxlib", "flax", "optax", "diffrax", "ott-jax", "chex", "pot")


@dataclass(frozen=True)
class StudyConfig:
    """Fields every study has (each is a command-line option through tyro)."""

    seed: int = 0
    out_dir: str = "results/study"
    quick: bool = False
    """`--quick`: the study's short version (minutes on a 2-core CPU; explicit flags win over it), written under
    results/<study>/quick."""
    progress: bool = True
    """Progress bars (they update rarely when the output is not a terminal)."""


# ---- validation of flags (before anything is compiled) ----
class ConfigError(ValueError):
    """A flag's value is refused before any compute; the message names the flag."""


def require(condition: bool, flag: str, value: Any, rule: str) -> None:
    """Raise a ConfigError (a ValueError) naming the command-line flag when `condition` fails."""
    if not condition:
        raise ConfigError(f"--{flag.replace('_', '-')} {value!r}: {rule}")


def positive_int(cfg: Any, *names: str) -> None:
    for name in names:
        v = getattr(cfg, name)
        require(isinstance(v, int) and not isinstance(v, bool) and v >= 1, name, v, "must be a positive integer")


def positive_float(cfg: Any, *names: str) -> None:
    for name in names:
        v = getattr(cfg, name)
        require(isinstance(v, int | float) and math.isfinite(v) and v > 0, name, v, "must be a positive number")


def non_empty(cfg: Any, *names: str) -> None:
    for name in names:
        v = getattr(cfg, name)
        require(len(v) > 0, name, v, "must not be empty")


# ---- training and pictures shared by the studies ----
def train_params(
    loss,
    params,
    cfg: Any,
    steps: int,
    *,
    key,
    data_fn=None,
    source=None,
    unroll=1,
    chunk=None,
    desc="train",
    ema: bool = False,
    checkpoints: tuple[int, ...] = (),
    at_checkpoint=None,
):
    """Adam(cfg.lr) through the library's `make_train_step` and `fit` (chunks of `cfg.steps_per_call`, progress bar
    from `cfg.progress`); `key` is the run's key (it draws `data_fn`'s batches and the loss's noise). Returns (final
    params, or their EMA (decay 0.999) with `ema`; wall seconds of training including compilation).

    One continued run: at each step count in `checkpoints` (below `steps`) `at_checkpoint(step, params)` is called
    with the params as returned (its time is not counted), and training goes on with the same optimiser state."""
    import time

    import jax
    import optax

    from jaxflow.train import TrainState, fit, make_train_step

    optimizer = optax.adam(cfg.lr)
    t0 = time.perf_counter()
    state = TrainState.create(key, params, optimizer)
    step = make_train_step(loss, optimizer, data_fn=data_fn, unroll=unroll)
    pick = (lambda s: s.ema_params) if ema else (lambda s: s.params)  # noqa: E731
    seconds = 0.0
    for budget in (*sorted(c for c in checkpoints if c < steps), steps):  # fit counts to a total step
        state, _ = fit(
            state,
            step,
            budget,
            steps_per_call=chunk or cfg.steps_per_call,
            batches_fn=source,
            progress=cfg.progress,
            desc=desc,
        )
        jax.block_until_ready(state.params)
        seconds += time.perf_counter() - t0
        if budget < steps and at_checkpoint is not None:
            at_checkpoint(budget, pick(state))
        t0 = time.perf_counter()
    return pick(state), seconds


def train_cosine(loss, params, lr: float, steps: int, data_fn, key, cfg: Any, desc: str, checkpoints=()):
    """Adam with a cosine decay from `lr` over `steps`, through the library's `make_train_step` (`data_fn` draws
    each batch on device) and `fit` (chunks of `cfg.steps_per_call`, progress from `cfg.progress`). Returns the final
    params and {step: params} at each of `checkpoints` and at `steps` (one continued run)."""
    import optax

    from jaxflow.train import TrainState, fit, make_train_step

    optimizer = optax.adam(optax.cosine_decay_schedule(lr, steps))
    state = TrainState.create(key, params, optimizer)
    step = make_train_step(loss, optimizer, data_fn=data_fn)
    at = {}
    for budget in (*sorted(checkpoints), steps):  # fit counts to a total step: each call trains on from the last
        state, _ = fit(state, step, budget, steps_per_call=cfg.steps_per_call, progress=cfg.progress, desc=desc)
        at[budget] = state.params
    return state.params, at


def tile(images, rows: int, cols: int) -> np.ndarray:
    """The first rows·cols images [n, h, w(, 1)] as one [rows·h, cols·w] picture, clipped to [−1, 1]."""
    x = np.clip(np.asarray(images)[: rows * cols], -1, 1)
    h, w = x.shape[1], x.shape[2]
    return x.reshape(rows, cols, h, w).transpose(0, 2, 1, 3).reshape(rows * h, cols * w)


# ---- results ----
def versions() -> dict:
    out = {"python": platform.python_version(), "machine": platform.machine()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _jsonable(obj):
    if isinstance(obj, np.ndarray | np.generic):
        return obj.tolist()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if hasattr(obj, "__array__"):
        return np.asarray(obj).tolist()
    return float(obj)


def write_json(path: Path, obj) -> None:
    atomic_write_bytes(Path(path), json.dumps(obj, indent=2, default=_jsonable).encode())


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, Mapping):
        return "; ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    if isinstance(v, list | tuple):
        return ", ".join(_fmt(x) for x in v)
    return str(v)


def figure(**kwargs):
    """A matplotlib Figure that does not touch pyplot (no backend switch, nothing left open)."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


# ---- formatting and fits ----
def mean_std(values, digits: int = 3) -> str:
    """'mean ± sd' over seeds; integer-valued quantities (counts such as NFE) are printed as integers."""
    v = np.asarray(values, float)
    sd = v.std(ddof=1) if v.size > 1 else 0.0
    if np.all(v == np.round(v)):
        return f"{v.mean():.0f} ± {sd:.0f}"
    return f"{v.mean():.{digits}f} ± {sd:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def fit_line(x, y) -> tuple[float, float, float]:
    """Least-squares line y = a + b x: returns (b, half-width of its 95% interval, residual sum of squares)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    a = np.vstack([x, np.ones_like(x)]).T
    coef, res, *_ = np.linalg.lstsq(a, y, rcond=None)
    rss = float(res[0]) if res.size else float(np.sum((a @ coef - y) ** 2))
    dof = max(len(x) - 2, 1)
    se = np.sqrt(rss / dof / np.sum((x - x.mean()) ** 2))
    return float(coef[0]), float(1.96 * se), rss


def loglog_slope(ns, errs) -> tuple[float, float]:
    """Slope of log errs on log ns with its 95% interval half-width."""
    slope, ci, _ = fit_line(np.log(np.asarray(ns, float)), np.log(np.asarray(errs, float)))
    return slope, ci
