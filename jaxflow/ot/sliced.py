"""Sliced Wasserstein distance by Monte Carlo over directions (PAPERS.md §9)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxflow._checks import check_array


def random_directions(key: jax.Array, n: int, d: int, dtype=jnp.float32) -> jax.Array:
    """n directions [n, d] uniform on the unit sphere S^{d−1}."""
    v = jax.random.normal(key, (n, d), dtype)
    return v / jnp.linalg.norm(v, axis=1, keepdims=True)


def sliced_wasserstein(
    key: jax.Array, x: jax.Array, y: jax.Array, n_projections: int = 256, p: float = 2.0
) -> jax.Array:
    """SW_p(μ, ν) = (E_θ W_p^p(θ#μ, θ#ν))^{1/p} for equal-size uniform point clouds x, y [n, d].

    1-D distances by sorting. Returns SW_p itself (not its p-th power).
    """
    x = check_array(x, "x", ndim=2)
    y = check_array(y, "y", ndim=2)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape [n, d], got {x.shape} and {y.shape}")
    if p < 1:
        raise ValueError(f"p must be >= 1, got {p}")
    theta = random_directions(key, n_projections, x.shape[1], x.dtype)
    px = jnp.sort(x @ theta.T, axis=0)
    py = jnp.sort(y @ theta.T, axis=0)
    return jnp.mean(jnp.abs(px - py) ** p) ** (1.0 / p)
