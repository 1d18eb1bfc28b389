"""One entry point over diffrax for ODE sampling: `jaxflow.sample(velocity, x0, solver=..., ...)` (PAPERS.md §4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import diffrax
import jax
import jax.numpy as jnp

from jaxflow._checks import check_array, check_choice, is_concrete

# solver name -> (diffrax class, function evaluations per step, adaptive)
SOLVERS: dict[str, tuple[type, int, bool]] = {
    "euler": (diffrax.Euler, 1, False),
    "heun": (diffrax.Heun, 2, False),
    "midpoint": (diffrax.Midpoint, 2, False),
    "tsit5": (diffrax.Tsit5, 6, True),
    "dopri5": (diffrax.Dopri5, 6, True),
}


class SampleOutput(NamedTuple):
    """x: final state [B, ...]; ts: saved times [T] or None; trajectory: [T, B, ...] or None;
    nfe: number of velocity evaluations (for the whole batch, which is one ODE state); num_steps: steps taken
    (accepted and rejected)."""

    x: jax.Array
    ts: jax.Array | None
    trajectory: jax.Array | None
    nfe: jax.Array
    num_steps: jax.Array


def bind(field: Callable, params=None, cond=None) -> Callable:
    """`f(t, x)` from a model boundary `f(params, t, x, cond)`; `field` itself when params is None."""
    if params is None:
        return field
    return lambda t, x: field(params, t, x, cond)


def _nfe(solver: str, num_steps):
    _, per_step, adaptive = SOLVERS[solver]
    if not adaptive:
        return num_steps * per_step
    # FSAL Runge-Kutta: one evaluation at the start, then 6 new stages per attempted (accepted or rejected) step.
    # Checked against a run-time call counter in tests/sampling.
    return 1 + per_step * num_steps


def sample(
    velocity: Callable,
    x0: jax.Array,
    *,
    params=None,
    cond=None,
    solver: str = "euler",
    steps: int = 100,
    t0: float = 0.0,
    t1: float = 1.0,
    grid: jax.Array | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    pcoeff: float = 0.0,
    icoeff: float = 1.0,
    save_trajectory: bool | int | jax.Array = False,
    max_steps: int = 16_384,
) -> SampleOutput:
    """Integrate dx/dt = v(t, x) from t0 to t1 (t1 < t0 runs backwards in time).

    velocity: `v(t, x)` with x [B, ...]; or, when `params` is given, the model boundary `v(params, t, x, cond)`.
    solver: `euler`, `heun`, `midpoint` (fixed `steps`, or the explicit time `grid` [N+1] from t0 to t1) or
    `tsit5`, `dopri5` (adaptive, PID controller with `rtol`, `atol`, `pcoeff`, `icoeff`).
    save_trajectory: False; True (101 uniform times); an int (that many uniform times); or an array of times.
    """
    check_choice(solver, "solver", SOLVERS)
    x0 = check_array(x0, "x0")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if t0 == t1:
        raise ValueError("t0 and t1 must differ")
    velocity = bind(velocity, params, cond)
    term = diffrax.ODETerm(lambda t, y, args: velocity(t, y))
    cls, _, adaptive = SOLVERS[solver]
    if save_trajectory is False or save_trajectory is None:
        saveat = diffrax.SaveAt(t1=True)
        ts = None
    else:
        if save_trajectory is True:
            ts = jnp.linspace(t0, t1, 101)
        elif isinstance(save_trajectory, int):
            ts = jnp.linspace(t0, t1, save_trajectory)
        else:
            ts = jnp.asarray(save_trajectory)
        saveat = diffrax.SaveAt(ts=ts)
    if adaptive:
        controller = diffrax.PIDController(rtol=rtol, atol=atol, pcoeff=pcoeff, icoeff=icoeff)
        dt0 = None
    elif grid is not None:
        grid = jnp.asarray(grid)
        if is_concrete(grid) and (abs(float(grid[0]) - t0) > 1e-12 or abs(float(grid[-1]) - t1) > 1e-12):
            raise ValueError(f"grid must run from t0={t0} to t1={t1}")
        controller = diffrax.StepTo(ts=grid)
        dt0 = None
    else:
        controller = diffrax.ConstantStepSize()
        dt0 = (t1 - t0) / steps
    sol = diffrax.diffeqsolve(
        term, cls(), t0, t1, dt0, x0, saveat=saveat, stepsize_controller=controller, max_steps=max_steps
    )
    num_steps = sol.stats["num_steps"]
    nfe = _nfe(solver, num_steps)
    if ts is None:
        return SampleOutput(sol.ys[-1], None, None, nfe, num_steps)
    return SampleOutput(sol.ys[-1], ts, sol.ys, nfe, num_steps)
