"""Solvers are diffrax objects; names are shorthands resolved here, in one place.

Every sampler (`sample`, `sample_sde`, `log_likelihood`) takes `solver=` as a `diffrax.AbstractSolver` instance (any
built-in one, or a user subclass such as an `AbstractERK` with its own Butcher tableau) or as one of the names in
`_SOLVER_NAMES`; a name resolves to the object and nothing else. The step-size control is derived from the solver, the
same for a name and its object: an explicit `stepsize_controller` wins; then an explicit time `grid`; then explicit
`steps` (that many uniform steps); otherwise a solver with an embedded error estimate (a
`diffrax.AbstractAdaptiveSolver`: Heun, Midpoint, Ralston, RK4, Tsit5, Dopri5, ...) gets a PID controller with the
sampler's `rtol`/`atol`, and one without (Euler) runs `DEFAULT_STEPS` uniform steps.

The number of function evaluations (NFE) is counted, not looked up: `evaluation_counts` runs a tiny probe problem
through `diffrax.diffeqsolve` with the same solver, counting vector-field calls with a host callback, and fits
NFE = a + b · steps over two runs. The fit is exact for explicit solvers (a fixed number of calls per step, and a
fixed start-up cost such as FSAL's first evaluation or the PID controller's initial step-size selection); implicit
solvers call the field a variable number of times per step, and their count is that of the probe.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import lineax
import numpy as np


class RK4(diffrax.AbstractERK):
    """The classical four-stage, fourth-order Runge–Kutta method (Kutta 1901), which diffrax does not ship.

    A solver is a Butcher tableau here: the embedded error estimate is RK4 against Euler (first order), so the
    method also runs under an adaptive controller, though Tsit5 or Dopri5 are better choices there.

    Attributes:
        scan_kind: diffrax's choice of loop for the stages (None: its default).
    """

    tableau: ClassVar[diffrax.ButcherTableau] = diffrax.ButcherTableau(
        c=np.array([0.5, 0.5, 1.0]),
        b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
        b_error=np.array([1 / 6 - 1.0, 1 / 3, 1 / 3, 1 / 6]),
        a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
    )
    interpolation_cls: ClassVar[Callable] = diffrax.ThirdOrderHermitePolynomialInterpolation.from_k

    def order(self, terms):
        return 4


# shorthand -> factory of the solver object
_SOLVER_NAMES: dict[str, Callable[[], diffrax.AbstractSolver]] = {
    "euler": diffrax.Euler,
    "heun": diffrax.Heun,
    "midpoint": diffrax.Midpoint,
    "ralston": diffrax.Ralston,
    "rk4": RK4,
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    "dopri8": diffrax.Dopri8,
}
DEFAULT_STEPS = 100  # uniform steps of a solver without an error estimate when no steps, grid or controller is given
_SDE_SOLVER_NAMES: dict[str, Callable[[], diffrax.AbstractSolver]] = {"euler": diffrax.Euler, "heun": diffrax.Heun}


def has_error_estimate(solver: diffrax.AbstractSolver) -> bool:
    """Whether the solver carries an embedded error estimate (so an adaptive controller can drive it)."""
    return isinstance(solver, diffrax.AbstractAdaptiveSolver)


def resolve_solver(
    solver: diffrax.AbstractSolver | str,
    names: Mapping[str, Callable[[], diffrax.AbstractSolver]] | None = None,
) -> tuple[diffrax.AbstractSolver, bool]:
    """(solver object, whether it has an embedded error estimate) from a diffrax solver or a shorthand name; a name
    and its object give the same pair.

    Args:
        solver: a diffrax solver instance or a shorthand ("euler", "heun", "midpoint", "rk4", "tsit5", "dopri5", ...).
        names: the shorthand table to use (default: the ODE solvers').

    Returns:
        (solver, has_error_estimate).

    Raises:
        TypeError: a solver class instead of an instance.
        ValueError: an unknown name.
    """
    if isinstance(solver, type) and issubclass(solver, diffrax.AbstractSolver):
        raise TypeError(f"pass a solver instance, e.g. solver={solver.__name__}(), not the class")
    if not isinstance(solver, diffrax.AbstractSolver):
        table = _SOLVER_NAMES if names is None else names
        if not (isinstance(solver, str) and solver in table):
            raise ValueError(
                f"unknown solver {solver!r}; pass a diffrax.AbstractSolver instance or one of {sorted(table)}"
            )
        solver = table[solver]()
    return solver, has_error_estimate(solver)


def resolve_controller(
    solver_adaptive: bool,
    stepsize_controller,
    *,
    steps: int | None,
    grid,
    t0: float | jax.Array,
    t1: float | jax.Array,
    rtol: float,
    atol: float,
    pcoeff: float = 0.0,
    icoeff: float = 1.0,
):
    """(controller, dt0) for diffeqsolve: an explicit controller wins; then a time grid; then explicit `steps`; then
    a PID controller for a solver with an error estimate, or `DEFAULT_STEPS` uniform steps for one without."""
    if stepsize_controller is not None:
        if not isinstance(stepsize_controller, diffrax.AbstractStepSizeController):
            raise TypeError(
                f"stepsize_controller must be a diffrax.AbstractStepSizeController, got {type(stepsize_controller)}"
            )
        if isinstance(stepsize_controller, diffrax.ConstantStepSize):
            return stepsize_controller, (t1 - t0) / (DEFAULT_STEPS if steps is None else steps)
        if isinstance(stepsize_controller, diffrax.StepTo):
            return stepsize_controller, None
        return stepsize_controller, None
    if grid is not None:
        grid = jnp.asarray(grid)
        if grid.ndim != 1 or grid.shape[0] < 2:
            raise ValueError(f"grid must be a 1-D array of at least 2 times, got shape {grid.shape}")
        if not isinstance(grid, jax.core.Tracer):
            g = np.asarray(grid)
            if abs(float(g[0]) - t0) > 1e-12 or abs(float(g[-1]) - t1) > 1e-12:
                raise ValueError(f"grid must run from t0={t0} to t1={t1}")
            d = np.diff(g) * np.sign(t1 - t0)
            if np.any(d <= 0):
                raise ValueError("grid must be strictly monotone from t0 to t1")
        return diffrax.StepTo(ts=grid), None
    if steps is None and solver_adaptive:
        for name, v in (("rtol", rtol), ("atol", atol)):
            if not isinstance(v, jax.core.Tracer) and not (np.isfinite(float(v)) and float(v) > 0):
                raise ValueError(f"{name} must be a positive finite number, got {v!r}")
        return diffrax.PIDController(rtol=rtol, atol=atol, pcoeff=pcoeff, icoeff=icoeff), None
    return diffrax.ConstantStepSize(), (t1 - t0) / (DEFAULT_STEPS if steps is None else steps)


def check_interval(t0, t1) -> None:
    for name, v in (("t0", t0), ("t1", t1)):
        if not isinstance(v, jax.core.Tracer) and not np.isfinite(float(v)):
            raise ValueError(f"{name} must be finite, got {v}")
    if not isinstance(t0, jax.core.Tracer) and not isinstance(t1, jax.core.Tracer) and float(t0) == float(t1):
        raise ValueError("t0 and t1 must differ")


def check_field_output(fn: Callable, t, x, name: str) -> None:
    """The field's output must have x's shape and dtype: checked once, at trace time (no computation)."""
    try:
        out = jax.eval_shape(fn, jnp.asarray(t, x.dtype), x)
    except Exception as err:  # noqa: BLE001 - any failure of the model on this state (flax, shape, dtype errors)
        if "params=" in str(err):  # the binding's own message (a boundary without params, or the reverse)
            raise
        raise ValueError(
            f"{name} cannot be evaluated on a state of shape {tuple(x.shape)} and dtype {x.dtype} (does the model "
            f"take this shape?): {type(err).__name__}: {str(err).splitlines()[0]}"
        ) from err
    if not hasattr(out, "shape"):
        raise ValueError(f"{name} must return an array, got {type(out).__name__}")
    if out.shape != x.shape:
        raise ValueError(f"{name} returned shape {tuple(out.shape)} for a state of shape {tuple(x.shape)}")
    if out.dtype != x.dtype:
        raise ValueError(f"{name} returned dtype {out.dtype} for a state of dtype {x.dtype}")


def finite_or_raise(value, what: str):
    """`value`, with a run-time error (also under jit) when any entry is NaN or inf."""
    bad = jnp.logical_not(jnp.all(jnp.isfinite(value)))
    return eqx.error_if(value, bad, f"{what} is not finite (NaN or inf)")


@functools.lru_cache(maxsize=64)
def _cached_counts(solver, kind: str, adaptive: bool) -> tuple[int, int]:
    return _probe_outside_traces(solver, kind, adaptive)


def evaluation_counts(solver: diffrax.AbstractSolver, *, kind: str = "ode", adaptive: bool = False) -> tuple[int, int]:
    """(a, b) with NFE = a + b · num_steps for this solver (`kind` 'ode' or 'sde'; adaptive or fixed steps).

    Args:
        solver: a diffrax solver.
        kind: "ode" or "sde".
        adaptive: whether the steps are adaptive (then a rejected step costs as much as an accepted one).

    Returns:
        (a, b), so that NFE = a + b · num_steps.
    """
    try:
        return _cached_counts(solver, kind, adaptive)
    except TypeError:  # an unhashable solver: probe every time
        return _probe_outside_traces(solver, kind, adaptive)


def _probe_outside_traces(solver, kind: str, adaptive: bool) -> tuple[int, int]:
    """Run the probe on a fresh thread: JAX's trace state is per thread, so the probe runs concretely even when the
    sampler is being traced by the caller's jit/vmap/grad."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(_probe, solver, kind, adaptive).result()


def _probe(solver, kind: str, adaptive: bool) -> tuple[int, int]:
    calls = [0]

    def tick():
        calls[0] += 1

    def field(t, y, args):
        jax.debug.callback(tick)
        return -y * (1.0 + t)

    y0 = jnp.ones((1,), jnp.float32)

    @functools.partial(jax.jit, static_argnums=(1,))
    def solve(length, steps):
        if kind == "sde":
            bm = diffrax.VirtualBrownianTree(0.0, 8.0, tol=1e-2, shape=(1,), key=jax.random.key(0))
            g = lambda t, y, args: lineax.DiagonalLinearOperator(0.1 * jnp.ones_like(y))  # noqa: E731
            terms = diffrax.MultiTerm(diffrax.ODETerm(field), diffrax.ControlTerm(g, bm))
        else:
            terms = diffrax.ODETerm(field)
        if adaptive:
            ctrl, dt0 = diffrax.PIDController(rtol=1e-3, atol=1e-6), None
        else:
            ctrl, dt0 = diffrax.ConstantStepSize(), length / steps
        sol = diffrax.diffeqsolve(terms, solver, 0.0, length, dt0, y0, stepsize_controller=ctrl, max_steps=4096)
        return sol.stats["num_steps"]

    points = []
    for length, steps in ((1.0, 1), (6.0, 3), (6.0, 7)):
        calls[0] = 0
        n = int(solve(length, steps))
        jax.effects_barrier()
        points.append((n, calls[0]))
        if len({p[0] for p in points}) >= 2:
            break
    (n1, c1), (n2, c2) = points[0], next(p for p in points[1:] if p[0] != points[0][0])
    b, rem = divmod(c2 - c1, n2 - n1)
    a = c1 - b * n1
    if rem or a < 0:
        raise RuntimeError(f"could not count the evaluations of {type(solver).__name__}: {points}")
    return int(a), int(b)


class SolverError(FloatingPointError):
    """A sampler met a non-finite value or a failed solve (raised with `throw=True`)."""


class clean_solver_errors:
    """Context manager: re-raise equinox's run-time errors (diffrax failures, non-finite checks) as `SolverError`
    with the one line that says what happened. Inside a user's own `jit` the original error surfaces at that jit's
    boundary instead; its text holds the same line."""

    def __init__(self, where: str):
        self.where = where

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or not isinstance(exc, eqx.EquinoxRuntimeError):
            return False
        text = str(exc)
        marker = "EquinoxRuntimeError: "
        i = text.rfind(marker)
        line = text[i + len(marker) :].split("\n", 1)[0] if i >= 0 else text.strip().splitlines()[-1]
        raise SolverError(f"{self.where}: {line.strip()}") from None
