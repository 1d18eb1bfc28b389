"""Transport-map estimation from samples by barycentric projection.

See Pooladian & Niles-Weed (2021), "Entropic estimation of optimal transport maps", arXiv:2109.12004.

Given samples x [n, d] ~ μ, y [m, d] ~ ν and an OT plan π (exact or entropic), T̂(x_i) = Σ_j π_ij y_j / Σ_j π_ij.
Out of sample:
  - entropic plan: the plan's conditional law extends to any x through the dual potential g,
    T̂(x) = Σ_j exp((g_j − ‖x − y_j‖²)/ε) y_j / Σ_j exp((g_j − ‖x − y_j‖²)/ε)  (ott's g already holds ε log b_j;
    at a fitted x_i this is exactly the plan's row average);
  - exact plan: T̂(x) = T̂(x_k) + (x − x_k) for the nearest fitted point x_k (the piecewise-translation extension,
    exact for translations and consistent as n grows).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, Float

from jaxflow._checks import check_array, check_positive, check_weights
from jaxflow.ot.exact import emd_plan_numpy
from jaxflow.ot.sinkhorn import report_convergence, solve_sinkhorn, sqeuclidean_cost


class BarycentricMap(eqx.Module):
    """A fitted barycentric-projection map (a pytree: it passes through jit and vmap); call it on new points [k, d].

    converged: whether the plan's solver met its tolerance (always true for the exact plan).

    Built by `barycentric_map`; out-of-sample points move with the entropic map's softmax over the targets, or
    (exact plan) with the nearest fitted source's displacement.

    Attributes:
        x: the fitted sources [n, d].
        y: the targets [m, d].
        fitted: T̂(x_i) [n, d].
        epsilon: the entropic regularisation, or None for the exact plan.
        g: the target potential [m] (entropic only).
        b: the target weights [m].
        converged: whether the plan's solver met its tolerance (always true for the exact plan).
    """

    x: jax.Array  # fitted sources [n, d]
    y: jax.Array  # targets [m, d]
    fitted: jax.Array  # T̂(x_i) [n, d]
    epsilon: float | None = eqx.field(static=True)  # None for the exact plan
    g: jax.Array | None  # target potential (entropic only)
    b: jax.Array  # target weights [m]
    converged: jax.Array

    def __call__(self, points: jax.Array) -> jax.Array:
        points = check_array(points, "points", ndim=2)
        if points.shape[1] != self.x.shape[1]:
            raise ValueError(f"points must have dimension {self.x.shape[1]}, got {points.shape}")
        if self.epsilon is None:
            nearest = jnp.argmin(sqeuclidean_cost(points, self.x), axis=1)
            return self.fitted[nearest] + (points - self.x[nearest])
        logits = (self.g[None, :] - sqeuclidean_cost(points, self.y)) / self.epsilon
        return jax.nn.softmax(logits, axis=1) @ self.y


def barycentric_map(
    x: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, "m d"],
    a: jax.Array | None = None,
    b: jax.Array | None = None,
    epsilon: float | None = None,
    *,
    on_nonconvergence: str = "warn",
) -> BarycentricMap:
    """Fit T̂ from samples with squared-Euclidean cost.

    epsilon None: exact plan (POT network simplex, float64 on the host); epsilon > 0: ott-jax Sinkhorn with that
    absolute ε (cost units). a, b: sample weights (uniform when None).
    on_nonconvergence: `warn` (default), `raise` or `ignore` when Sinkhorn stops before its tolerance; the flag is
    also kept in `BarycentricMap.converged`.

    Args:
        x: source samples [n, d].
        y: target samples [m, d].
        a: source weights [n] (uniform when None).
        b: target weights [m] (uniform when None).
        epsilon: None for the exact plan; ε > 0 for Sinkhorn with that absolute ε.
        on_nonconvergence: "warn", "raise" or "ignore".

    Returns:
        A `BarycentricMap` (call it on new points [k, d]; its `fitted` values are T̂(x)).

    Raises:
        ValueError: empty or non-finite samples, different dimensions, bad weights or ε.
    """
    x = check_array(x, "x", ndim=2)
    y = check_array(y, "y", ndim=2)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape} and {y.shape}")
    n, m = x.shape[0], y.shape[0]
    if n == 0 or m == 0:
        raise ValueError(f"x and y must hold at least one point, got {x.shape} and {y.shape}")
    a_ = jnp.full(n, 1.0 / n, x.dtype) if a is None else check_weights(a, n, "a")
    b_ = jnp.full(m, 1.0 / m, y.dtype) if b is None else check_weights(b, m, "b")
    cost = sqeuclidean_cost(x, y)
    if epsilon is None:
        plan = jnp.asarray(emd_plan_numpy(np.asarray(cost), np.asarray(a_), np.asarray(b_)), x.dtype)
        g, converged = None, jnp.asarray(True)
    else:
        check_positive(epsilon, "epsilon")
        out = solve_sinkhorn(cost, epsilon, a=a_, b=b_)
        plan, g, converged = out.matrix, out.g, jnp.asarray(out.converged)
        report_convergence(converged, f"barycentric_map: Sinkhorn at epsilon={epsilon}", on_nonconvergence)
    fitted = (plan @ y) / jnp.maximum(plan.sum(1, keepdims=True), jnp.finfo(x.dtype).tiny)
    return BarycentricMap(x, y, fitted, epsilon, g, b_, converged)
