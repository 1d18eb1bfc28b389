"""Inverting a sampler: find the noise z whose generated sample f(z) is a given image y.

Three methods (docs/inversion.md):
- `invert_ode`: integrate the flow backwards from t = 1 to t = 0 (exact up to the solver's error for an ODE sampler).
- `invert_gradient`: minimise ‖f(z) − y‖² by an optax optimiser, differentiating through the whole sampler (diffrax's
  adjoint).
- `flowopt`: FlowOpt (Ronai, Kulikov & Michaeli 2025): the zero-order iteration z ← z − η (f(z) − y) on the whole
  sampler, no gradient; it records the residual of every iterate, keeps the best iterate, stops early at a tolerance
  and when the residual grows for `patience` iterations. `proximity` stops after a fixed number of iterations
  (editing: a few steps towards y under another condition keep the result close to the source).

Step size. Near a solution z*, e_{k+1} = (I − ηJ) e_k with J = ∂f/∂z(z*). If the symmetric part of J satisfies
(J + Jᵀ)/2 ⪰ μI with μ > 0 and ‖J‖₂ ≤ L, then ‖I − ηJ‖₂² ≤ 1 − 2ημ + η²L² < 1 for 0 < η < 2μ/L²: a sufficient
condition for local linear convergence. When J is symmetric positive definite (μ = λ_min, L = λ_max) the exact
condition is η < 2/λ_max, and η > 2/λ_max diverges along the top eigenvector. `step_size_bound` estimates μ, L
(per sample, since the sampler acts row by row) with JVP/VJP power iterations.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import optax

from jaxflow._checks import check_array, check_count, check_positive
from jaxflow._deprecation import key_first
from jaxflow.sampling.ode import SampleOutput, sample


class InversionResult(NamedTuple):
    """What the inversion routines return.

    Attributes:
        z: the best iterate [B, ...].
        residuals: the RMS residual ‖f(z_k) − y‖ per iteration [K] (mean over the batch).
        iterations: iterations run.
        stopped: why it stopped ("iterations", "tolerance", "diverging", "non-finite residual", "proximity").
    """

    z: jax.Array
    residuals: jax.Array
    iterations: int
    stopped: str


def invert_ode(
    velocity: Callable,
    x1: jax.Array,
    *,
    params: Any = None,
    cond: Any = None,
    solver: diffrax.AbstractSolver | str = "dopri5",
    steps: int | None = None,
    t0: float = 0.0,
    t1: float = 1.0,
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> SampleOutput:
    """Integrate dx/dt = v(t, x) backwards from t1 to t0, starting at x1: the noise of x1 under the flow (ODE
    reversal).

    Args:
        velocity: the model boundary `v(params, t, x, cond) -> [B, ...]`.
        x1: the data points [B, ...] to invert.
        params: the model's parameters.
        cond: the condition passed to the model, or None.
        solver: a diffrax solver or its shorthand name (as in `jaxflow.sample`).
        steps: fixed uniform steps, or None for an adaptive solve.
        t0: the noise end.
        t1: the data end (the integration starts here).
        rtol: relative tolerance of the adaptive controller.
        atol: absolute tolerance of the adaptive controller.

    Returns:
        `SampleOutput` whose `x` is the noise [B, ...] at t0.
    """
    return sample(
        velocity, x1, params=params, cond=cond, solver=solver, steps=steps, t0=t1, t1=t0, rtol=rtol, atol=atol
    )


def _rms(r):
    return jnp.sqrt(jnp.mean(r.reshape(r.shape[0], -1) ** 2, axis=1))


def invert_gradient(
    sampler: Callable[[jax.Array], jax.Array],
    y: jax.Array,
    z_init: jax.Array,
    *,
    optimizer: optax.GradientTransformation | None = None,
    iterations: int = 100,
    tol: float = 0.0,
) -> InversionResult:
    """Minimise mean ‖f(z) − y‖² over z by `optimizer` (default Adam 0.05), gradients through the sampler.

    `sampler(z) -> x` must be differentiable (`jaxflow.sample` is, through diffrax's adjoint). Stops when the mean
    RMS residual falls below `tol`.

    Args:
        sampler: f, `z [B, ...] -> x [B, ...]`, differentiable.
        y: the target images [B, ...].
        z_init: the starting noise [B, ...].
        optimizer: an optax transformation (default Adam 0.05).
        iterations: the most iterations.
        tol: stop once the mean RMS residual is below it.

    Returns:
        `InversionResult`.
    """
    y = check_array(y, "y")
    check_count(iterations, "iterations")
    optimizer = optax.adam(0.05) if optimizer is None else optimizer

    def objective(z):
        r = sampler(z) - y
        return jnp.mean(r**2), r

    @jax.jit
    def step(z, opt_state):
        (_, r), g = jax.value_and_grad(objective, has_aux=True)(z)
        upd, opt_state = optimizer.update(g, opt_state, z)
        return optax.apply_updates(z, upd), opt_state, _rms(r)

    z, opt_state = z_init, optimizer.init(z_init)
    history, best, best_res = [], z_init, jnp.inf
    stopped = "iterations"
    for _ in range(iterations):
        z_new, opt_state, res = step(z, opt_state)
        m = float(jnp.mean(res))
        history.append(m)
        if m < best_res:
            best, best_res = z, m
        z = z_new
        if m < tol:
            stopped = "tolerance"
            break
    return InversionResult(best, jnp.asarray(history), len(history), stopped)


def flowopt(
    sampler: Callable[[jax.Array], jax.Array],
    y: jax.Array,
    z_init: jax.Array,
    *,
    step_size: float | jax.Array = 1.0,
    iterations: int = 30,
    tol: float = 0.0,
    patience: int = 3,
    proximity: int | None = None,
    monitor: Callable[[int, jax.Array, jax.Array], None] | None = None,
) -> InversionResult:
    """FlowOpt (Ronai, Kulikov & Michaeli 2025): z ← z − η (f(z) − y) with the whole sampler f as a black box (no
    backpropagation).

    Every iterate's output f(z_k) is computed anyway, so its residual is monitored for free. Stops at `iterations`;
    when the mean RMS residual is below `tol`; when it has grown for `patience` consecutive iterations (divergence:
    η above the bound); or, with `proximity=n`, after n iterations (editing).

    Args:
        sampler: f, `z [B, ...] -> x [B, ...]` (the whole sampler from noise, jitted here).
        y: the target images [B, ...] (inversion: the image; editing: the source under the target condition).
        z_init: the starting noise [B, ...].
        step_size: η, a scalar or one per sample [B] (the sampler acts row by row, so each sample has its own
            bound; see `step_size_bound`).
        iterations: the most iterations.
        tol: stop once the mean RMS residual is below it.
        patience: stop after this many consecutive growing residuals.
        proximity: stop after n iterations (editing keeps close to the source).
        monitor: `monitor(k, z_k, f(z_k))`, called on every iterate (e.g. to save intermediate images).

    Returns:
        `InversionResult`: the iterate with the smallest residual, its output, the residual history and why it
        stopped.

    Raises:
        ValueError: η ≤ 0 or of the wrong shape, bad counts, non-finite y.
    """
    y = check_array(y, "y")
    check_positive(step_size, "step_size")
    check_count(iterations, "iterations")
    check_count(patience, "patience")
    if proximity is not None:
        check_count(proximity, "proximity")
    eta = jnp.asarray(step_size, y.dtype)
    if eta.ndim == 1:  # one step size per sample (e.g. from `step_size_bound`)
        if eta.shape[0] != y.shape[0]:
            raise ValueError(f"a per-sample step_size must have shape [{y.shape[0]}], got {eta.shape}")
        eta = eta.reshape(-1, *([1] * (y.ndim - 1)))
    elif eta.ndim != 0:
        raise ValueError(f"step_size must be a scalar or [B], got shape {eta.shape}")
    f = jax.jit(sampler)
    z = z_init
    history, best, best_res = [], z_init, jnp.inf
    stopped, grew = "iterations", 0
    limit = iterations if proximity is None else min(iterations, proximity)
    for k in range(limit):
        x = f(z)
        r = x - y
        m = float(jnp.mean(_rms(r)))
        if monitor is not None:
            monitor(k, z, x)
        if not jnp.isfinite(m):
            stopped = "non-finite residual"
            break
        grew = grew + 1 if history and m > history[-1] else 0
        history.append(m)
        if m < best_res:
            best, best_res = z, m
        if m < tol:
            stopped = "tolerance"
            break
        if grew >= patience:
            stopped = "diverging"
            break
        z = z - eta * r
    if proximity is not None and stopped == "iterations":
        stopped = "proximity"
        best = z  # editing keeps the last iterate (the one n steps from the source), not the closest to y
    return InversionResult(best, jnp.asarray(history), len(history), stopped)


class StepSizeBound(NamedTuple):
    """Per-sample estimates [B]: L = ‖J‖₂, mu = λ_min((J + Jᵀ)/2), lam = the dominant eigenvalue of J (power
    iteration; meaningful when it is real); sufficient = 2μ/L² (0 where μ ≤ 0); spectral = 2/lam.

    Attributes:
        L: ‖J‖₂ [B].
        mu: λ_min((J + Jᵀ)/2) [B].
        lam: the dominant eigenvalue of J [B].
        sufficient: 2μ/L² [B].
        spectral: 2/lam [B].
    """

    L: jax.Array
    mu: jax.Array
    lam: jax.Array
    sufficient: jax.Array
    spectral: jax.Array


@key_first(2)
def step_size_bound(
    key: jax.Array, sampler: Callable[[jax.Array], jax.Array], z: jax.Array, *, iterations: int = 30
) -> StepSizeBound:
    """Estimate the FlowOpt step-size bounds at z (see the module docstring) with JVP/VJP power iterations.

    The sampler must act on each row independently (true for an ODE sampler with fixed steps), so that J is
    block-diagonal and every sample gets its own estimate, and it must support both forward- and reverse-mode
    differentiation: with `jaxflow.sample` pass `adjoint=diffrax.DirectAdjoint()` (the default adjoint is
    reverse-only).

    Args:
        key: the JAX key of the power iterations' start vectors.
        sampler: f, acting on each row independently, forward- and reverse-differentiable.
        z: the noise [B, ...] at which to estimate.
        iterations: power iterations.

    Returns:
        `StepSizeBound` per sample: the Lipschitz estimate L, the strong-monotonicity estimate μ, λ, the sufficient step
        size and the spectral one.
    """
    z = check_array(z, "z")
    check_count(iterations, "iterations")
    return _bound(sampler, iterations, z, key)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _bound(sampler, iterations, z, key):
    _, vjp = jax.vjp(sampler, z)

    def jvp(v):
        return jax.jvp(sampler, (z,), (v,))[1]

    def jt(v):
        return vjp(v)[0]

    def norm(v):
        return jnp.sqrt(jnp.sum(v.reshape(v.shape[0], -1) ** 2, axis=1))

    def unit(v):
        return v / norm(v).reshape(-1, *([1] * (v.ndim - 1)))

    def dot(a, b):
        return jnp.sum((a * b).reshape(a.shape[0], -1), axis=1)

    def power(op, key):
        v0 = unit(jax.random.normal(key, z.shape, z.dtype))
        return jax.lax.fori_loop(0, iterations, lambda _, v: unit(op(v)), v0)

    k1, k2, k3 = jax.random.split(key, 3)
    big = norm(jvp(power(lambda v: jt(jvp(v)), k1)))  # ‖J‖ from JᵀJ
    w = power(jvp, k2)  # dominant eigenvector of J; its Rayleigh quotient is the eigenvalue
    lam = dot(w, jvp(w))

    def s(v):
        return 0.5 * (jvp(v) + jt(v))

    # smallest eigenvalue of S = (J + Jᵀ)/2: power iteration on L·I − S (whose top eigenvalue is L − μ)
    shift = big.reshape(-1, *([1] * (z.ndim - 1)))
    u = power(lambda v: shift * v - s(v), k3)
    mu = dot(u, s(u))
    sufficient = jnp.where(mu > 0, 2 * mu / big**2, 0.0)
    return StepSizeBound(big, mu, lam, sufficient, 2.0 / lam)


__all__ = ["InversionResult", "StepSizeBound", "flowopt", "invert_gradient", "invert_ode", "step_size_bound"]
