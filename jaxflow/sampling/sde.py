"""SDE sampling through diffrax: dX = (b ± ε s) dt + √(2ε) dW.

Albergo, Boffi & Vanden-Eijnden (2023), arXiv:2303.08797; Song et al. (2021), arXiv:2011.13456.

Given a drift b(t, x) whose ODE transports the marginals p_t (a velocity, or an interpolant's drift) and the score
s = ∇ log p_t, every ε ≥ 0 gives an SDE with the same marginals:

    forward  (t0 < t1):  dX = (b + ε s) dt + √(2ε) dW
    backward (t0 > t1):  dX = (b − ε s) dt + √(2ε) dW   (integrated with decreasing t)

ε = 0 is the probability-flow ODE. ε may be a float (traced: the sampler can be vmapped over it) or a function
ε(t). For an affine path `diffusion_epsilon(scheduler)` gives ε(t) = σ²(α̇/α − σ̇/σ) = g²/2, the diffusion of the
forward noising SDE: with it the forward sampler is the reverse-time VP / VE sampler of score-based diffusion
(for the VP-SDE ε(t) = ½ β(1 − t); for VE ε(t) = σ(t)² log(σ_max/σ_min)).

Solvers: any diffrax solver object that handles an additive-noise SDE (`diffrax.Euler()` is Euler–Maruyama,
`diffrax.Heun()` stochastic Heun, which converges to the Stratonovich solution, equal to the Itô one here because the
noise is additive; `diffrax.SEA()`, `diffrax.ShARK()`, ...), or the shorthands in `_SDE_SOLVER_NAMES`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import diffrax
import jax
import jax.numpy as jnp
import lineax
from jaxtyping import Array, Float

from jaxflow._checks import check_array, check_count, is_concrete
from jaxflow.paths.schedulers import Scheduler
from jaxflow.sampling.ode import SampleOutput, bind
from jaxflow.sampling.solvers import (
    _SDE_SOLVER_NAMES,
    check_field_output,
    check_interval,
    clean_solver_errors,
    evaluation_counts,
    finite_or_raise,
    resolve_solver,
)

_SDE_SOLVERS = _SDE_SOLVER_NAMES  # kept for one release


def diffusion_epsilon(scheduler: Scheduler) -> Callable:
    """ε(t) = σ²(α̇/α − σ̇/σ): half the squared diffusion of the forward noising SDE of an affine path.

    Args:
        scheduler: the affine path's `Scheduler`.

    Returns:
        ε(t) as a function of t (for `sample_sde(epsilon=...)`).
    """

    def eps(t):
        a, s = scheduler.alpha(t), scheduler.sigma(t)
        return s**2 * scheduler.d_alpha(t) / a - s * scheduler.d_sigma(t)

    return eps


def _check_epsilon(epsilon) -> None:
    if callable(epsilon):
        return
    if is_concrete(epsilon):
        e = jnp.asarray(epsilon)
        if not bool(jnp.all(jnp.isfinite(e))) or bool(jnp.any(e < 0)):
            raise ValueError(f"epsilon must be finite and >= 0, got {epsilon}")


def sample_sde(
    drift: Callable,
    score: Callable,
    x0: Float[Array, "B ..."],
    key: jax.Array,
    *,
    epsilon: float | jax.Array | Callable = 1.0,
    solver: diffrax.AbstractSolver | str = "euler",
    steps: int = 100,
    t0: float | jax.Array = 0.0,
    t1: float | jax.Array = 1.0,
    params: Any = None,
    cond: Any = None,
    adjoint: diffrax.AbstractAdjoint | None = None,
    throw: bool = True,
    save_trajectory: bool | int = False,
) -> SampleOutput:
    """Integrate dX = (b ± ε s) dt + √(2ε) dW from x0 at t0 to t1 with `steps` fixed steps (module docstring).

    Args:
        drift: b as `f(t, x) -> [B, ...]` with x [B, ...]; or, when `params` is given, the model boundary
            `f(params, t, x, cond)`.
        score: s = ∇ log p_t, in the same form as `drift`.
        x0: the start points, float [B, ...].
        key: the JAX key of the Brownian motion.
        epsilon: ε ≥ 0: a float (traced, so the sampler can be vmapped over it) or a function ε(t).
        solver: a diffrax solver object for additive-noise SDEs (`diffrax.Euler()`, `diffrax.Heun()`,
            `diffrax.SEA()`, ...) or a shorthand ("euler", "heun").
        steps: the number of uniform steps.
        t0: start time.
        t1: end time (t1 < t0 integrates backwards: the drift's sign flips, not ε's).
        params: the models' parameters, passed as diffrax's `args`.
        cond: the condition passed to the model boundaries.
        adjoint: as in `jaxflow.sample`.
        throw: as in `jaxflow.sample`.
        save_trajectory: False; True (101 times); or an int (that many uniform times).

    Returns:
        `SampleOutput` (`nfe` counts drift-and-score evaluations of the whole batch).

    Raises:
        ValueError: ε < 0 or non-finite, a bad `steps` or times, fields of the wrong shape, an unknown solver name.
    """
    solver, _ = resolve_solver(solver, _SDE_SOLVER_NAMES)
    x0 = check_array(x0, "x0")
    _check_epsilon(epsilon)
    check_count(steps, "steps")
    check_interval(t0, t1)
    drift, score = bind(drift, params, cond), bind(score, params, cond)
    check_field_output(drift, t0, x0, "drift")
    check_field_output(score, t0, x0, "score")

    sign = 1.0 if t1 > t0 else -1.0
    length = abs(t1 - t0)
    eps_fn = epsilon if callable(epsilon) else (lambda t: epsilon)

    def time(u):
        return t0 + sign * u

    def f(u, x, args):
        t = time(u)
        out = sign * drift(t, x) + eps_fn(t) * score(t, x)
        return finite_or_raise(out, "the drift or score") if throw else out

    def g(u, x, args):
        return lineax.DiagonalLinearOperator(jnp.sqrt(2.0 * eps_fn(time(u))) * jnp.ones_like(x))

    # a virtual Brownian tree resolved at the step grid (differentiable, unlike diffrax's unsafe path)
    bm = diffrax.VirtualBrownianTree(0.0, length, tol=0.5 * length / steps, shape=x0.shape, key=key)
    terms = diffrax.MultiTerm(diffrax.ODETerm(f), diffrax.ControlTerm(g, bm))
    if save_trajectory is False or save_trajectory is None:
        us, saveat = None, diffrax.SaveAt(t1=True)
    else:
        n = 101 if save_trajectory is True else int(save_trajectory)
        us = jnp.linspace(0.0, length, n)
        saveat = diffrax.SaveAt(ts=us)
    kwargs = {} if adjoint is None else {"adjoint": adjoint}
    with clean_solver_errors("jaxflow.sampling.sample_sde"):
        sol = diffrax.diffeqsolve(
            terms,
            solver,
            0.0,
            length,
            length / steps,
            x0,
            saveat=saveat,
            stepsize_controller=diffrax.ConstantStepSize(),
            max_steps=steps + 1,
            throw=throw,
            **kwargs,
        )
    num_steps = sol.stats["num_steps"]
    a, b = evaluation_counts(solver, kind="sde")
    nfe = a + b * num_steps
    x = _final(sol.ys[-1]) if throw else sol.ys[-1]
    if us is None:
        return SampleOutput(x, None, None, nfe, num_steps, sol.result)
    return SampleOutput(x, time(us), sol.ys, nfe, num_steps, sol.result)


def score_to_drift(path: Any, score: Callable) -> Callable:
    """The probability-flow velocity of an affine path from its score: v = (α̇/α) x + (α̇σ²/α − σσ̇) s.

    Args:
        path: the affine path (an `AffinePath`: its scheduler gives α, σ and their derivatives).
        score: `s(t, x)`.

    Returns:
        The velocity `v(t, x)`.
    """

    def drift(t, x):
        return path.convert(score(t, x), t, x, source="score", target="velocity")

    return drift


def _final(value, what: str = "the final state"):
    with clean_solver_errors("jaxflow.sampling.sample_sde"):
        return finite_or_raise(value, what)
