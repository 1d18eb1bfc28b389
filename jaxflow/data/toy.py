"""2-D toy distributions, jit-able samplers `sampler(key, n) -> [n, 2]`.

`8gaussians` and `moons` follow the published 2-D flow-matching benchmark (TorchCFM utilities), so numbers compare:
8gaussians has centres 5·(unit vectors at multiples of 45°) and per-mode covariance √0.1·I; moons is scikit-learn's
two moons with noise 0.2, mapped x ↦ 3x − 1 (our angles are drawn uniformly rather than on a grid). `checkerboard`,
`swissroll` and `circles` follow the FFJORD toy set.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxflow._checks import check_count
from jaxflow._deprecation import deprecated_alias


def gaussian(key, n):
    """Standard normal N(0, I₂)."""
    return jax.random.normal(key, (n, 2))


def eight_gaussians(key, n, scale: float = 5.0, var: float = 0.1):
    k1, k2 = jax.random.split(key)
    angles = jnp.arange(8) * (jnp.pi / 4)
    centers = scale * jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=1)
    idx = jax.random.randint(k1, (n,), 0, 8)
    # the reference passes sqrt(var)·I as the covariance matrix, so the per-coordinate std is var**0.25
    return centers[idx] + var**0.25 * jax.random.normal(k2, (n, 2))


def moons(key, n, noise: float = 0.2):
    k1, k2, k3 = jax.random.split(key, 3)
    theta = jax.random.uniform(k1, (n,), maxval=jnp.pi)
    upper = jax.random.bernoulli(k2, 0.5, (n,))
    outer = jnp.stack([jnp.cos(theta), jnp.sin(theta)], axis=1)
    inner = jnp.stack([1.0 - jnp.cos(theta), 0.5 - jnp.sin(theta)], axis=1)
    x = jnp.where(upper[:, None], outer, inner) + noise * jax.random.normal(k3, (n, 2))
    return 3.0 * x - 1.0


def scurve(key, n, noise: float = 0.1, scale: float = 2.0):
    """The S-curve of scikit-learn's `make_s_curve` seen in its (x, z) plane, scaled by 2."""
    k1, k2 = jax.random.split(key)
    t = 3.0 * jnp.pi * (jax.random.uniform(k1, (n,)) - 0.5)
    x = jnp.stack([jnp.sin(t), jnp.sign(t) * (jnp.cos(t) - 1.0)], axis=1)
    return scale * (x + noise * jax.random.normal(k2, (n, 2)))


def checkerboard(key, n):
    k1, k2, k3 = jax.random.split(key, 3)
    x1 = jax.random.uniform(k1, (n,)) * 4.0 - 2.0
    x2 = jax.random.uniform(k2, (n,)) - 2.0 * jax.random.randint(k3, (n,), 0, 2)
    x2 = x2 + jnp.floor(x1) % 2
    return 2.0 * jnp.stack([x1, x2], axis=1)


def swissroll(key, n, noise: float = 1.0):
    k1, k2 = jax.random.split(key)
    t = 1.5 * jnp.pi * (1.0 + 2.0 * jax.random.uniform(k1, (n,)))
    x = jnp.stack([t * jnp.cos(t), t * jnp.sin(t)], axis=1)
    return (x + noise * jax.random.normal(k2, (n, 2))) / 5.0


def circles(key, n, factor: float = 0.5, noise: float = 0.08):
    k1, k2, k3 = jax.random.split(key, 3)
    theta = jax.random.uniform(k1, (n,), maxval=2.0 * math.pi)
    r = jnp.where(jax.random.bernoulli(k2, 0.5, (n,)), 1.0, factor)
    x = r[:, None] * jnp.stack([jnp.cos(theta), jnp.sin(theta)], axis=1)
    return 3.0 * (x + noise * jax.random.normal(k3, (n, 2)))


_TOY_2D = {
    "gaussian": gaussian,
    "8gaussians": eight_gaussians,
    "moons": moons,
    "scurve": scurve,
    "checkerboard": checkerboard,
    "swissroll": swissroll,
    "circles": circles,
}


def get_sampler(name: str) -> Callable:
    """The sampler of a 2-D toy data set by name.

    Args:
        name: one of the 2-D sets ("gaussian", "8gaussians", "moons", "scurve", "checkerboard", ...; an unknown
            name lists them all).

    Returns:
        `sampler(key, n) -> [n, 2]` (n is checked: a positive int).

    Raises:
        ValueError: an unknown name.
    """
    if name not in _TOY_2D:
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(_TOY_2D)}")
    fn = _TOY_2D[name]

    @functools.wraps(fn)
    def sampler(key, n, **kwargs):
        return fn(key, check_count(n), **kwargs)

    return sampler


def sample_toy(key: jax.Array, name: str, n: int) -> jax.Array:
    """Points of a 2-D toy data set.

    Args:
        key: the JAX key of the draw.
        name: the data set (see `get_sampler`).
        n: the number of points, a positive int.

    Returns:
        [n, 2] points.

    Raises:
        ValueError: an unknown name, n not a positive int.

    Example:
        >>> import jax, jaxflow as jf
        >>> jf.data.sample_toy(jax.random.key(0), "moons", 5).shape
        (5, 2)
    """
    return get_sampler(name)(key, n)


sample = deprecated_alias(sample_toy, "jaxflow.data.sample", adapt=lambda name, key, n: ((key, name, n), {}))
