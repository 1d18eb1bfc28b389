"""Evaluation during training: draw samples with the ODE sampler, sharded over the device mesh, score them.

`make_evaluator(...)` returns `eval_fn(state) -> dict` for `fit(eval_fn=..., eval_every=K)`. The source points are
the same at every evaluation (a fixed key), so successive numbers differ only through the model. The batch of source
points is split over the mesh's 'data' axis: every device integrates its share (the adaptive step size is shared,
because the error norm is taken over the whole batch, so the samples are the same as on one device).
Each evaluation is also appended to `out_dir/eval.jsonl`.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import diffrax
import jax
import numpy as np

import jaxflow.metrics as jm
from jaxflow._deprecation import key_first
from jaxflow._io import atomic_write_text
from jaxflow.sampling import sample
from jaxflow.train.data import _place
from jaxflow.train.loop import read_jsonl
from jaxflow.train.sharding import batch_sharding, check_divisible, replicated
from jaxflow.train.state import TrainState

METRICS: dict[str, Callable] = {
    "w2": lambda x, y: jm.wasserstein(x, y, p=2),
    "mmd": lambda x, y: float(jm.mmd(x, y)),
    "energy": lambda x, y: float(jm.energy_distance(x, y)),
}


@key_first(3)
def make_evaluator(
    key: jax.Array,
    velocity: Callable,
    source: Callable[[jax.Array, int], jax.Array],
    target: jax.Array,
    *,
    num_samples: int,
    mesh: Any = None,
    metrics: tuple[str, ...] = ("w2",),
    use_ema: bool = True,
    solver: diffrax.AbstractSolver | str = "dopri5",
    rtol: float = 1e-4,
    atol: float = 1e-4,
    steps: int | None = None,
    out_dir: str | os.PathLike | None = None,
) -> Callable[[TrainState], dict]:
    """`eval_fn(state)`: sample `num_samples` points from `source(key, n)` through the model (EMA parameters when
    `use_ema`), and compare them with `target` [M, d] by each metric in `metrics` (names from METRICS).
    Returns {'nfe': ..., metric: value, ...}; writes the same record with the step to `out_dir/eval.jsonl`.

    Args:
        key: the JAX key of the evaluation draws (the same every call).
        velocity: the model boundary.
        source: `source(key, n) -> [n, d]`.
        target: reference points [M, d].
        num_samples: points sampled per evaluation.
        mesh: shard the sampling over a device mesh, or None.
        metrics: names of the metrics to compute.
        use_ema: evaluate the EMA parameters.
        solver: the diffrax solver (or its name) of the sampler.
        rtol: the sampler's relative tolerance (adaptive solvers).
        atol: the sampler's absolute tolerance.
        steps: fixed uniform steps instead of adaptive ones.
        out_dir: the folder of `eval.jsonl`, or None to write nothing.

    Returns:
        `eval_fn(state) -> dict` for `fit(eval_fn=...)`.
    """
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown metric(s) {sorted(unknown)}; choose from {sorted(METRICS)}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    x0 = source(key, num_samples)
    if mesh is not None:
        check_divisible(num_samples, mesh)
        x0 = _place(x0[None], mesh)[0] if jax.process_count() > 1 else jax.device_put(x0, batch_sharding(mesh))
    target = np.asarray(target)
    out_path = None if out_dir is None else Path(out_dir) / "eval.jsonl"
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)

    @jax.jit
    def draw(params, x0):
        out = sample(velocity, x0, params=params, solver=solver, rtol=rtol, atol=atol, steps=steps)
        return out.x, out.nfe

    def eval_fn(state: TrainState) -> dict:
        params = state.ema_params if use_ema else state.params
        if mesh is not None:
            params = jax.device_put(params, replicated(mesh)) if jax.process_count() == 1 else params
        x, nfe = draw(params, x0)
        if jax.process_count() > 1:  # gather every process's rows
            from jax.experimental import multihost_utils

            x = multihost_utils.process_allgather(x, tiled=True)
        x = np.asarray(jax.device_get(x))
        record = {"nfe": int(nfe)}
        record.update({name: float(METRICS[name](x, target)) for name in metrics})
        if out_path is not None:
            step = int(np.max(jax.device_get(state.step)))
            old = read_jsonl(out_path) if out_path.exists() else []
            # a resumed run re-evaluates from its checkpoint on: keep each step once
            rows = [r for r in old if r["step"] < step] + [{"step": step, **record}]
            atomic_write_text(out_path, "".join(json.dumps(r) + "\n" for r in rows))
        return record

    eval_fn.draw = draw  # exposed for tests and notebooks
    eval_fn.x0 = x0
    return eval_fn


@functools.partial(jax.jit, static_argnames=("velocity", "solver", "rtol", "atol", "n_saved"))
def _integrate_with_energy(velocity, params, x0, solver, rtol, atol, n_saved):
    out = sample(velocity, x0, params=params, solver=solver, rtol=rtol, atol=atol, save_trajectory=n_saved)
    pe = jm.path_energy(lambda t, x: velocity(params, t, x), out.trajectory, out.ts)
    return out, pe


def flow_quality(
    velocity: Callable,
    params: Any,
    x0: jax.Array,
    target: jax.Array,
    source_reference: jax.Array,
    *,
    solver: Any = "dopri5",
    rtol: float = 1e-4,
    atol: float = 1e-4,
    n_saved: int = 101,
) -> tuple[dict, jax.Array]:
    """The 2-D flow-matching benchmark's evaluation of one model (Tong et al. 2024's protocol).

    Integrates the source points x0 [n, d] through `velocity(params, t, x, cond)` with an adaptive solver, saving
    `n_saved` times; returns ({'w2', 'nfe', 'path_energy', 'w2_source_target', 'npe'}, trajectory [n_saved, n, d]).
    W2 is exact against `target`; NPE = |PE − W2²(p0, p1)| / W2²(p0, p1) with PE the path energy of the
    trajectories and W2(p0, p1) exact between `source_reference` (fresh source points) and `target`.

    Args:
        velocity: the model boundary `v(params, t, x, cond)`.
        params: the model's parameters.
        x0: source points [n, d].
        target: target points [m, d] (W2 reference).
        source_reference: fresh source points [k, d] (for W2(p0, p1) in NPE).
        solver: the adaptive diffrax solver (object or shorthand).
        rtol: relative tolerance.
        atol: absolute tolerance.
        n_saved: saved times of the trajectory.

    Returns:
        (record {'w2', 'nfe', 'path_energy', 'w2_source_target', 'npe'}, trajectory [n_saved, n, d]).
    """
    out, pe = _integrate_with_energy(velocity, params, x0, solver, rtol, atol, n_saved)
    w2 = jm.wasserstein(np.asarray(out.x), np.asarray(target))
    w2_st = jm.wasserstein(np.asarray(source_reference), np.asarray(target))
    record = {
        "w2": w2,
        "nfe": int(out.nfe),
        "path_energy": float(pe),
        "w2_source_target": w2_st,
        "npe": float(jm.npe(pe, w2_st**2)),
    }
    return record, out.trajectory
