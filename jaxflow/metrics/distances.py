"""Distances between samples: exact W_p (POT network simplex), sliced W, MMD, energy distance."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import ot as pot
from jaxtyping import ArrayLike, Float

from jaxflow._checks import check_point_clouds
from jaxflow.ot import sliced as _sliced
from jaxflow.ot.exact import _NUM_ITER_MAX
from jaxflow.ot.sinkhorn import sqeuclidean_cost

MAX_EXACT_POINTS = 5_000


def wasserstein(x: Float[ArrayLike, "n d"], y: Float[ArrayLike, "m d"], p: float = 2.0) -> float:
    """Exact W_p between the uniform empirical measures on two point clouds (W_p itself, not its p-th power).

    Solved on the host by POT's network simplex in float64.

    Args:
        x: points [n, d], n ≤ 5,000.
        y: points [m, d], m ≤ 5,000, the same d.
        p: the order, ≥ 1 (the ground cost is ‖x − y‖^p).

    Returns:
        W_p as a Python float.

    Raises:
        ValueError: empty or non-finite clouds, different dimensions, more than 5,000 points, p < 1.

    Example:
        >>> import numpy as np, jaxflow as jf
        >>> x = np.zeros((3, 2)); y = x + np.array([3.0, 4.0])  # every point moves by (3, 4)
        >>> round(jf.metrics.wasserstein(x, y), 6)
        5.0
    """
    x, y = (np.asarray(a, np.float64) for a in check_point_clouds(x, y))
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    if max(len(x), len(y)) > MAX_EXACT_POINTS:
        raise ValueError(f"exact wasserstein supports at most {MAX_EXACT_POINTS} points, got {len(x)} and {len(y)}")
    if p < 1:
        raise ValueError(f"p must be >= 1, got {p}")
    cost = pot.dist(x, y, metric="euclidean") ** p
    a = np.full(len(x), 1.0 / len(x))
    b = np.full(len(y), 1.0 / len(y))
    value = pot.emd2(a, b, cost, numItermax=_NUM_ITER_MAX)
    return float(max(value, 0.0) ** (1.0 / p))


def mmd(
    x: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, "m d"],
    bandwidths: Sequence[float] = (0.1, 0.5, 1.0, 2.0, 5.0),
    unbiased: bool = True,
) -> jax.Array:
    """Squared maximum mean discrepancy with a sum of RBF kernels exp(−‖a − b‖² / (2h²)) over `bandwidths` h.

    Args:
        x: points [n, d].
        y: points [m, d], the same d.
        bandwidths: the kernel widths h (positive).
        unbiased: the U-statistic (diagonals left out; can be slightly negative) or the V-statistic.

    Returns:
        MMD² as a scalar array.

    Raises:
        ValueError: empty or non-finite clouds, different dimensions, a bandwidth ≤ 0.
    """
    x, y = check_point_clouds(x, y)
    if any(h <= 0 for h in bandwidths):
        raise ValueError(f"bandwidths must be positive, got {bandwidths}")
    n, m = x.shape[0], y.shape[0]

    def k(a, b):
        d2 = sqeuclidean_cost(a, b)
        return sum(jnp.exp(-d2 / (2.0 * h**2)) for h in bandwidths)

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    if unbiased:
        sxx = (jnp.sum(kxx) - jnp.trace(kxx)) / (n * (n - 1))
        syy = (jnp.sum(kyy) - jnp.trace(kyy)) / (m * (m - 1))
    else:
        sxx, syy = jnp.mean(kxx), jnp.mean(kyy)
    return sxx + syy - 2.0 * jnp.mean(kxy)


def sliced_wasserstein(
    key: jax.Array, x: Float[ArrayLike, "n d"], y: Float[ArrayLike, "m d"], n_projections: int = 256, p: float = 2.0
) -> jax.Array:
    """Monte Carlo SW_p between point clouds (the distance only; `jaxflow.ot.sliced_wasserstein` also returns the
    standard error and offers control variates and weights).

    Args:
        key: a JAX PRNG key for the projections.
        x: points [n, d].
        y: points [m, d], the same d.
        n_projections: the number of random directions.
        p: the order p ≥ 1.

    Returns:
        SW_p(x, y), a scalar array.
    """
    return _sliced.sliced_wasserstein(key, x, y, n_projections=n_projections, p=p).distance


def energy_distance(x: Float[ArrayLike, "n d"], y: Float[ArrayLike, "m d"]) -> jax.Array:
    """Energy distance 2E‖X − Y‖ − E‖X − X'‖ − E‖Y − Y'‖ (V-statistic).

    Args:
        x: points [n, d].
        y: points [m, d], the same d.

    Returns:
        The energy distance as a scalar array (≥ 0).
    """
    x, y = check_point_clouds(x, y)

    def mean_dist(a, b):
        return jnp.mean(jnp.sqrt(sqeuclidean_cost(a, b) + 1e-30))

    return 2.0 * mean_dist(x, y) - mean_dist(x, x) - mean_dist(y, y)


__all__ = ["MAX_EXACT_POINTS", "energy_distance", "mmd", "sliced_wasserstein", "wasserstein"]


def chamfer(x: Float[ArrayLike, "n d"], y: Float[ArrayLike, "m d"]) -> jax.Array:
    """Chamfer pseudo-distance: mean squared distance from each point of x to its nearest point of y, plus the same
    from y to x (a dense [n, m] distance matrix; differentiable).

    Args:
        x: points [n, d].
        y: points [m, d], the same d.

    Returns:
        The Chamfer distance as a scalar array.
    """
    x, y = check_point_clouds(jnp.asarray(x), jnp.asarray(y))
    d = sqeuclidean_cost(x, y)
    return jnp.mean(jnp.min(d, axis=1)) + jnp.mean(jnp.min(d, axis=0))
