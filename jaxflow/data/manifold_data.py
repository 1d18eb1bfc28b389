"""Procedural data on manifolds: mixtures of von Mises–Fisher laws on spheres, and of wrapped normals on the
flat torus T² (as dihedral-angle data are modelled). Every draw takes an explicit key."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxflow._checks import check_array, check_count
from jaxflow.ot.sliced import sample_vmf


def sample_vmf_mixture(
    key: jax.Array, n: int, means: jax.Array, kappas: float | Sequence[float], weights: jax.Array | None = None
) -> jax.Array:
    """Draws of a mixture of von Mises–Fisher laws Σ_k w_k vMF(μ_k, κ_k) on the sphere S^{d−1}.

    Args:
        key: a `jax.random` key.
        n: the number of draws.
        means: [K, d] mean directions (normalised here).
        kappas: concentrations, one number or K numbers (concrete, > 0).
        weights: [K] mixture weights (normalised here); default equal.

    Returns:
        [n, d] unit vectors; each component is drawn by `jaxflow.ot.sample_vmf` (Wood's sampler).
    """
    n = check_count(n, "n")
    means = check_array(means, "means", ndim=2)
    kappas = np.broadcast_to(np.asarray(kappas, float), means.shape[:1])
    weights = jnp.ones(means.shape[0]) if weights is None else check_array(weights, "weights", ndim=1)
    k_c, k_x = jax.random.split(key)
    comp = jax.random.choice(k_c, means.shape[0], (n,), p=weights / weights.sum())
    keys = [jax.random.fold_in(k_x, i) for i in range(len(means))]
    draws = jnp.stack([sample_vmf(k, m, float(c), n) for k, m, c in zip(keys, means, kappas)])
    return draws[comp, jnp.arange(n)]


def sample_wrapped_normal_mixture(
    key: jax.Array, n: int, means: jax.Array, stds: float | jax.Array, weights: jax.Array | None = None
) -> jax.Array:
    """Draws of a mixture of wrapped normals Σ_k w_k WrappedNormal(μ_k, diag σ_k²) on the flat torus [0, 2π)^d.

    Args:
        key: a `jax.random` key.
        n: the number of draws.
        means: [K, d] component means (angles).
        stds: standard deviations: a number, [K] or [K, d].
        weights: [K] mixture weights (normalised here); default equal.

    Returns:
        [n, d] angles in [0, 2π): a normal draw taken mod 2π.
    """
    n = check_count(n, "n")
    means = check_array(means, "means", ndim=2)
    stds = jnp.asarray(stds, means.dtype)
    stds = jnp.broadcast_to(stds if stds.ndim != 1 else stds[:, None], means.shape)  # scalar, [K] or [K, d]
    weights = jnp.ones(means.shape[0]) if weights is None else check_array(weights, "weights", ndim=1)
    k_c, k_x = jax.random.split(key)
    comp = jax.random.choice(k_c, means.shape[0], (n,), p=weights / weights.sum())
    x = means[comp] + stds[comp] * jax.random.normal(k_x, (n, means.shape[1]))
    return jnp.mod(x, 2.0 * jnp.pi)
