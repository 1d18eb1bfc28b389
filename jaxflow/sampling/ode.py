"""One entry point over diffrax for ODE sampling: `jaxflow.sample(velocity, x0, solver=..., ...)`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import diffrax
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from jaxflow._checks import check_array, check_count, is_concrete
from jaxflow.manifolds import Manifold, TangentField
from jaxflow.sampling.manifold import ProjectedSolver
from jaxflow.sampling.solvers import (
    _SOLVER_NAMES,
    check_field_output,
    check_interval,
    clean_solver_errors,
    evaluation_counts,
    finite_or_raise,
    resolve_controller,
    resolve_solver,
)

# kept for one release: the shorthand names (use _SOLVER_NAMES, or pass a diffrax solver object)
_SOLVERS = _SOLVER_NAMES


class SampleOutput(NamedTuple):
    """What `jaxflow.sample` (and the other samplers) return.

    Attributes:
        x: the final state [B, ...].
        ts: the saved times [T], or None.
        trajectory: the saved states [T, B, ...], or None.
        nfe: velocity evaluations (for the whole batch, which is one ODE state).
        num_steps: steps taken (accepted and rejected).
        result: diffrax's result code (`diffrax.RESULTS.successful` unless the solve failed with `throw=False`).
    """

    x: jax.Array
    ts: jax.Array | None
    trajectory: jax.Array | None
    nfe: jax.Array
    num_steps: jax.Array
    result: diffrax.RESULTS | None = None


def bind(field: Callable, params=None, cond=None, *, plain: int = 2, name: str = "the field") -> Callable:
    """`f(t, x)` from a model boundary `f(params, t, x, cond)`; `field` itself when params is None.

    The field's signature is read to catch the two mix-ups early, with a message that says what to pass: a model
    boundary without `params=` (it needs more than the `plain` = 2 arguments (t, x)), or `params=` with a plain
    field that takes only (t, x). Fields whose signature cannot be read are bound as asked.
    """
    required, most = positional_arity(field)
    if params is None:
        if required is not None and required > plain:
            raise TypeError(
                f"{name} takes {required} positional arguments, like a model boundary (params, ...); pass params= "
                f"(or pass a plain field of {plain} arguments)"
            )
        return field
    if most is not None and most <= plain:
        raise TypeError(
            f"params= was given but {name} takes only {most} positional arguments; pass the model boundary "
            "(params, ..., cond=None) or drop params="
        )
    return lambda *args: field(params, *args, cond)


def positional_arity(fn: Callable) -> tuple[int | None, int | None]:
    """(required, at most) positional arguments of `fn`; None where its signature cannot be read or is open."""
    import inspect

    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None, None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ps = list(sig.parameters.values())
    required = sum(p.kind in kinds and p.default is inspect.Parameter.empty for p in ps)
    most = None if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in ps) else sum(p.kind in kinds for p in ps)
    return required, most


def sample(
    velocity: Callable,
    x0: Float[Array, "B ..."],
    *,
    params: Any = None,
    cond: Any = None,
    solver: diffrax.AbstractSolver | str = "euler",
    steps: int | None = None,
    t0: float | jax.Array = 0.0,
    t1: float | jax.Array = 1.0,
    grid: jax.Array | None = None,
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    pcoeff: float = 0.0,
    icoeff: float = 1.0,
    adjoint: diffrax.AbstractAdjoint | None = None,
    throw: bool = True,
    save_trajectory: bool | int | jax.Array = False,
    max_steps: int = 16_384,
    manifold: Manifold | None = None,
) -> SampleOutput:
    """Integrate dx/dt = v(t, x) from t0 to t1 (t1 < t0 runs backwards in time) with diffrax.

    Args:
        velocity: `v(t, x) -> [B, ...]` with x of shape [B, ...]; or, when `params` is given, the model boundary
            `v(params, t, x, cond)`. Its output must have x's shape and dtype (checked once at trace time).
        x0: the start points, float [B, ...] (B is the batch axis; any trailing shape).
        params: the model's parameters (a pytree), passed as diffrax's `args` so that every adjoint reaches them.
        cond: the condition passed to the model boundary (labels [B], or any pytree), or None.
        solver: any `diffrax.AbstractSolver` instance (`diffrax.Ralston()`, `diffrax.Tsit5()`, a user subclass of
            `diffrax.AbstractERK`, ...) or a shorthand name ("euler", "heun", "midpoint", "rk4", "tsit5",
            "dopri5", ...) that behaves exactly as its object.
        steps: uniform steps from t0 to t1 (fixed-step integration).
        t0: start time (a number or a scalar array).
        t1: end time.
        grid: a time grid [N + 1] from t0 to t1 (non-uniform fixed steps); wins over `steps`.
        stepsize_controller: any `diffrax.AbstractStepSizeController`; wins over `grid` and `steps`. Without all
            three, a solver with an embedded error estimate (Heun, Tsit5, Dopri5, ...) runs under a PID controller
            with `rtol`, `atol`, `pcoeff`, `icoeff`, and one without (Euler) takes 100 uniform steps.
        rtol: relative tolerance of the adaptive controller.
        atol: absolute tolerance of the adaptive controller.
        pcoeff: proportional coefficient of the PID controller.
        icoeff: integral coefficient of the PID controller.
        adjoint: passed to `diffeqsolve` (default: diffrax's recursive checkpointing). `diffrax.BacksolveAdjoint()`
            differentiates `params` but not values a `v(t, x)` closure captures (a diffrax limitation).
        throw: raise on solver failure (diffrax's `throw`) and on a non-finite velocity or final state (an error
            that also works under jit). With False, failures are left to the caller (`SampleOutput.result`).
        save_trajectory: False; True (101 uniform times); an int (that many uniform times); or an array of times.
        max_steps: the most solver steps before failing.
        manifold: a `jaxflow.manifolds.Manifold`: x0 must lie on it; the velocity is evaluated at `projx` of each
            stage's point and made tangent there (`proju`), and each step ends with `projx` (`ProjectedSolver`), so
            samples stay on the manifold to round-off (docs/manifolds.md).

    Returns:
        `SampleOutput`: `x` [B, ...] at t1, `nfe` (velocity evaluations of the whole batch, for any solver),
        `trajectory` [T, B, ...] and `ts` [T] when saved, and diffrax's `result`.

    Raises:
        ValueError: x0 without a batch axis, an unknown solver name, bad `steps`/`max_steps`/times, a velocity of
            the wrong shape or dtype, x0 off the manifold.

    Example:
        >>> import jax.numpy as jnp, jaxflow as jf
        >>> out = jf.sample(lambda t, x: -x, jnp.ones((4, 2)), solver="tsit5")  # x(1) = e⁻¹ x(0)
        >>> print([round(float(v), 4) for v in out.x[0]])
        [0.3679, 0.3679]
    """
    solver, adaptive = resolve_solver(solver)
    x0 = check_array(x0, "x0")
    if x0.ndim < 1:
        raise ValueError(f"x0 must have a batch axis, shape [B, ...], got shape {x0.shape}")
    if steps is not None:
        check_count(steps, "steps")
    check_interval(t0, t1)
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive int, got {max_steps!r}")
    if manifold is not None:
        velocity, x0 = _on_manifold(velocity, x0, manifold)
        inner = solver
        solver = ProjectedSolver(solver, manifold)
    check_field_output(bind(velocity, params, cond), t0, x0, "velocity")
    # params and cond travel as diffrax's `args` (not closed over), so every adjoint (BacksolveAdjoint too) sees them
    args = None if params is None else (params, cond)

    def field(t, y, args):
        v = velocity(t, y) if args is None else velocity(args[0], t, y, args[1])
        return finite_or_raise(v, "the velocity") if throw else v

    term = diffrax.ODETerm(field)
    if save_trajectory is False or save_trajectory is None:
        saveat = diffrax.SaveAt(t1=True)
        ts = None
    else:
        if save_trajectory is True:
            ts = jnp.linspace(t0, t1, 101)
        elif isinstance(save_trajectory, int):
            if save_trajectory < 2:
                raise ValueError(f"save_trajectory as an int must be >= 2 (times), got {save_trajectory}")
            ts = jnp.linspace(t0, t1, save_trajectory)
        else:
            ts = jnp.asarray(save_trajectory)
        saveat = diffrax.SaveAt(ts=ts)
    controller, dt0 = resolve_controller(
        adaptive,
        stepsize_controller,
        steps=steps,
        grid=grid,
        t0=t0,
        t1=t1,
        rtol=rtol,
        atol=atol,
        pcoeff=pcoeff,
        icoeff=icoeff,
    )
    is_adaptive = isinstance(controller, diffrax.AbstractAdaptiveStepSizeController)
    kwargs = {} if adjoint is None else {"adjoint": adjoint}
    with clean_solver_errors("jaxflow.sample"):
        sol = diffrax.diffeqsolve(
            term,
            solver,
            t0,
            t1,
            dt0,
            x0,
            args=args,
            saveat=saveat,
            stepsize_controller=controller,
            max_steps=max_steps,
            throw=throw,
            **kwargs,
        )
    num_steps = sol.stats["num_steps"]
    a, b = evaluation_counts(solver if manifold is None else inner, kind="ode", adaptive=is_adaptive)
    nfe = a + b * num_steps
    ys = sol.ys if manifold is None else manifold.projx(sol.ys)  # saved times are dense-output interpolants
    x = ys[-1]
    if throw:
        x = _final(x)
    if ts is None:
        return SampleOutput(x, None, None, nfe, num_steps, sol.result)
    return SampleOutput(x, ts, ys, nfe, num_steps, sol.result)


def _on_manifold(velocity, x0, manifold):
    """The tangent field and the checked start of a sample on `manifold`."""
    if not isinstance(manifold, Manifold):
        raise TypeError(f"manifold must be a jaxflow.manifolds.Manifold, got {type(manifold).__name__}")
    if is_concrete(x0):
        off = float(jnp.max(manifold.check(x0))) if x0.size else 0.0
        if not off <= 1e-4 * max(1.0, float(jnp.max(jnp.abs(x0)))):
            raise ValueError(f"x0 does not lie on the manifold {type(manifold).__name__}: up to {off:.3g} away")
    return TangentField(velocity, manifold), x0


def _final(value, what: str = "the final state"):
    with clean_solver_errors("jaxflow.sample"):
        return finite_or_raise(value, what)
