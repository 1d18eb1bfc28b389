"""Reflow (Liu, Gong & Liu 2023, arXiv:2209.03003): pair each source point with its image under a trained flow.

Rectification retrains a flow on the pairs (z0, Φ(z0)), where Φ is the trained model's ODE map from t = 0 to t = 1.
The new coupling is deterministic, its straight interpolations cross less, and every convex transport cost
E c(Φ(z0) − z0) does not increase (docs/few_step.md). Two forms:
- online: `ReflowCoupling(velocity, params, ...)` is a `Coupling` that ignores the data batch and integrates the
  frozen teacher inside the training step (no storage, one sampler solve per step);
- offline: `reflow_pairs(...)` generates a data set of pairs once, with the key that drew it recorded
  (`ReflowPairs.key`), and `save_pairs` / `load_pairs` keep it on disk (written atomically).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from jaxflow._deprecation import key_first
from jaxflow._io import atomic_write_bytes
from jaxflow.couplings.base import Coupling, Pairing, validate_coupling_inputs
from jaxflow.sampling.ode import sample


class ReflowCoupling(Coupling):
    """Online reflow: Pairing(x0, Φ(x0)) with Φ a frozen velocity's ODE map; the data batch x1 is ignored.

    Attributes:
        velocity: the teacher's model boundary `v(params, t, x, cond)`.
        params: its (frozen) parameters.
        solver: passed to `jaxflow.sample` (any diffrax solver object or shorthand).
        steps: passed to `jaxflow.sample`.
        stepsize_controller: passed to `jaxflow.sample`.
        conditional: pass the batch's labels as the teacher's `cond` (and keep them on the pairs).
    """

    velocity: Callable = eqx.field(static=True)
    params: Any
    solver: Any = "dopri5"
    steps: int | None = eqx.field(static=True, default=None)
    stepsize_controller: Any = None
    conditional: bool = eqx.field(static=True, default=False)

    def __call__(self, key, x0, x1, labels=None) -> Pairing:
        x0, x1, labels = validate_coupling_inputs(x0, x1, labels)
        cond = labels if self.conditional else None
        out = sample(
            self.velocity,
            x0,
            params=jax.lax.stop_gradient(self.params),
            cond=cond,
            solver=self.solver,
            steps=self.steps,
            stepsize_controller=self.stepsize_controller,
        )
        return Pairing(x0, jax.lax.stop_gradient(out.x), jnp.ones(x0.shape[0], x0.dtype), labels)


class ReflowPairs(NamedTuple):
    """An offline reflow data set: x0 [N, ...] source draws, x1 [N, ...] = Φ(x0), labels [N] or None, and the key
    data (`jax.random.key_data`) that drew x0, so the set can be regenerated and checked.

    Attributes:
        x0: source draws [N, ...].
        x1: their images Φ(x0) [N, ...].
        labels: labels [N], or None.
        key: the key data that drew x0.
    """

    x0: np.ndarray
    x1: np.ndarray
    labels: np.ndarray | None
    key: np.ndarray

    def batch(self) -> dict:
        """The pairs as a training batch dict {"x0", "x1"(, "labels")}."""
        out = {"x0": self.x0, "x1": self.x1}
        if self.labels is not None:
            out["labels"] = self.labels
        return out


@key_first(2)
def reflow_pairs(
    key: jax.Array,
    velocity: Callable,
    params: Any,
    source: Callable[[jax.Array, int], jax.Array],
    n: int,
    *,
    labels: jax.Array | None = None,
    solver: diffrax.AbstractSolver | str = "dopri5",
    steps: int | None = None,
    chunk: int = 4096,
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> ReflowPairs:
    """Draw n source points with `source(key, n)` and push them through the trained flow: the pairs of a reflow
    round (Liu, Gong & Liu 2023).

    Args:
        key: draws the source points.
        velocity: the model boundary `v(params, t, x, cond)`.
        params: the trained flow's parameters.
        source: `source(key, n) -> [n, ...]`.
        n: the number of pairs.
        labels: class conditions [n] passed to the velocity as `cond` (a conditional teacher), or None.
        solver: a diffrax solver object or shorthand (as `jaxflow.sample`).
        steps: its steps, for a fixed-step solver.
        chunk: points pushed per compiled call.
        rtol: relative tolerance of an adaptive solver.
        atol: absolute tolerance.

    Returns:
        `ReflowPairs` (x0 [n, ...], x1 [n, ...], labels).

    Raises:
        ValueError: n not a positive int, a source that returns the wrong number of points.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    x0 = source(key, n)
    if x0.shape[0] != n:
        raise ValueError(f"source(key, {n}) returned {x0.shape[0]} points")

    @jax.jit
    def push(xb, cb):
        return sample(velocity, xb, params=params, cond=cb, solver=solver, steps=steps, rtol=rtol, atol=atol).x

    outs = []
    for i in range(0, n, chunk):
        cb = None if labels is None else jnp.asarray(labels)[i : i + chunk]
        outs.append(np.asarray(push(x0[i : i + chunk], cb)))
    return ReflowPairs(
        np.asarray(x0), np.concatenate(outs), None if labels is None else np.asarray(labels), _key_data(key)
    )


def _key_data(key) -> np.ndarray:
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(key))
    return np.asarray(key)


def save_pairs(path: str | os.PathLike, pairs: ReflowPairs) -> None:
    """Write the pairs to an .npz file atomically (a killed write leaves no partial file).

    Args:
        path: the .npz file to write.
        pairs: the `ReflowPairs`.
    """
    buf = io.BytesIO()
    arrays = {"x0": pairs.x0, "x1": pairs.x1, "key": pairs.key}
    if pairs.labels is not None:
        arrays["labels"] = pairs.labels
    np.savez(buf, **arrays)
    atomic_write_bytes(Path(path), buf.getvalue())


def load_pairs(path: str | os.PathLike) -> ReflowPairs:
    """Read pairs written by `save_pairs`.

    Args:
        path: the .npz file.

    Returns:
        The `ReflowPairs`.
    """
    with np.load(Path(path)) as f:
        return ReflowPairs(f["x0"], f["x1"], f["labels"] if "labels" in f else None, f["key"])


__all__ = ["ReflowCoupling", "ReflowPairs", "load_pairs", "reflow_pairs", "save_pairs"]
