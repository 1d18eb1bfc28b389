"""Procedural data on manifolds: mixtures of von Mises–Fisher laws on spheres, and of wrapped normals on the
flat torus T² (as dihedral-angle data are modelled). Every draw takes an explicit key."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxflow._checks import check_array, check_count
from jaxflow.ot.sliced import sample_vmf


def sample_vmf_mixture(key: jax.Array, n: int, means: jax.Array, kappas, weights=None) -> jax.Array:
    """n draws [n, d] of Σ_k w_k vMF(μ_k, κ_k) on S^{d−1} (means [K, d]; kappas: numbers, one or K; weights [K],
    default equal), each component drawn by `jaxflow.ot.sample_vmf` (Wood's sampler)."""
    n = check_count(n, "n")
    means = check_array(means, "means", ndim=2)
    kappas = np.broadcast_to(np.asarray(kappas, float), means.shape[:1])
    weights = jnp.ones(means.shape[0]) if weights is None else check_array(weights, "weights", ndim=1)
    k_c, k_x = jax.random.split(key)
    comp = jax.random.choice(k_c, means.shape[0], (n,), p=weights / weights.sum())
    keys = [jax.random.fold_in(k_x, i) for i in range(len(means))]
    draws = jnp.stack([sample_vmf(k, m, float(c), n) for k, m, c in zip(keys, means, kappas)])
    return draws[comp, jnp.arange(n)]


def sample_wrapped_normal_mixture(key: jax.Array, n: int, means: jax.Array, stds, weights=None) -> jax.Array:
    """n draws [n, d] on the flat torus [0, 2π)^d of Σ_k w_k WrappedNormal(μ_k, diag σ_k²) (means [K, d]; stds [K]
    or [K, d]; weights [K], default equal): a normal draw taken mod 2π."""
    n = check_count(n, "n")
    means = check_array(means, "means", ndim=2)
    stds = jnp.asarray(stds, means.dtype)
    stds = jnp.broadcast_to(stds if stds.ndim != 1 else stds[:, None], means.shape)  # scalar, [K] or [K, d]
    weights = jnp.ones(means.shape[0]) if weights is None else check_array(weights, "weights", ndim=1)
    k_c, k_x = jax.random.split(key)
    comp = jax.random.choice(k_c, means.shape[0], (n,), p=weights / weights.sum())
    x = means[comp] + stds[comp] * jax.random.normal(k_x, (n, means.shape[1]))
    return jnp.mod(x, 2.0 * jnp.pi)
