"""Few-step sampling with a flow-map model `u`: x_{k+1} = x_k + (t_{k+1} − t_k)·u(x_k, t_k, t_{k+1}).

With the exact average velocity this is exact for any grid (the flow map composes: Ψ(Ψ(x, s, r), r, t) = Ψ(x, s, t)),
so 1, 2, 4, ... steps differ only by the model's error. MeanFlow and shortcut models are sampled this way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxflow._checks import check_array, check_count, is_concrete, traced_check
from jaxflow.sampling.ode import SampleOutput, bind
from jaxflow.sampling.solvers import check_interval, finite_or_raise


def sample_flow_map(
    u: Callable,
    x0: jax.Array,
    *,
    params: Any = None,
    cond: Any = None,
    steps: int = 1,
    t0: float = 0.0,
    t1: float = 1.0,
    grid: jax.Array | None = None,
    save_trajectory: bool = False,
) -> SampleOutput:
    """Sample with a flow map: jump x ← x + (t − s)·u(x, s, t) along a uniform grid of `steps` steps (or the
    explicit `grid`) from t0 to t1 (MeanFlow, shortcut models).

    Args:
        u: `u(s, t, x)` or, with `params`, the boundary `u(params, s, t, x, cond)` (the average velocity from s to t).
        x0: the start points [B, ...].
        params: the model's parameters.
        cond: the condition passed to the boundary.
        steps: the number of jumps.
        t0: start time.
        t1: end time.
        grid: explicit times [N + 1] from t0 to t1 (wins over `steps`).
        save_trajectory: keep the states at the grid times.

    Returns:
        `SampleOutput` with `nfe` = the number of jumps.
    """
    x0 = check_array(x0, "x0")
    if x0.ndim < 2:
        raise ValueError(f"x0 must be a batch [B, ...], got shape {x0.shape}")
    if grid is None:
        check_count(steps, "steps")
        check_interval(t0, t1)
        grid = jnp.linspace(t0, t1, steps + 1, dtype=x0.dtype)
    else:
        grid = jnp.asarray(grid, x0.dtype)
        if grid.ndim != 1 or grid.shape[0] < 2:
            raise ValueError(f"grid must be 1-D with at least two times, got shape {grid.shape}")
    # one direction, no repeated time: a grid that turns back would jump back over ground already covered
    d = jnp.diff(grid) * jnp.sign(grid[-1] - grid[0])
    bad = jnp.any(d <= 0) | jnp.any(~jnp.isfinite(grid))
    if is_concrete(bad):
        if bool(bad):
            raise ValueError(f"grid must be finite and strictly monotone, got {np.asarray(grid)}")
    else:
        grid = traced_check(grid, bad, "grid must be finite and strictly monotone")

    field = bind(u, params, cond, plain=3, name="the flow map u")

    b = x0.shape[0]
    out = jax.eval_shape(field, jnp.zeros((b,), x0.dtype), jnp.ones((b,), x0.dtype), x0)
    if not hasattr(out, "shape") or out.shape != x0.shape:
        got = tuple(out.shape) if hasattr(out, "shape") else type(out).__name__
        raise ValueError(f"the flow map u returned {got} for a state of shape {tuple(x0.shape)}; it must match")

    def jump(x, st):
        s, t = st
        b = x.shape[0]
        x = x + (t - s) * field(jnp.full((b,), s, x.dtype), jnp.full((b,), t, x.dtype), x)
        return x, x

    x, traj = jax.lax.scan(jump, x0, (grid[:-1], grid[1:]))
    x = finite_or_raise(x, "the final state")
    n = jnp.asarray(grid.shape[0] - 1)
    if save_trajectory:
        return SampleOutput(x, grid, jnp.concatenate([x0[None], traj]), n, n)
    return SampleOutput(x, None, None, n, n)


__all__ = ["sample_flow_map"]
