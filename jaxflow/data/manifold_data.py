"""Procedural data on manifolds: mixtures of von Mises–Fisher laws on the sphere S², and of wrapped normals on the
flat torus T² (as dihedral-angle data are modelled). Every draw takes an explicit key."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxflow._checks import check_array, check_count, is_concrete


def sample_vmf(key: jax.Array, mean: jax.Array, kappa: float, n: int) -> jax.Array:
    """n draws [n, 3] of the von Mises–Fisher law on S² with unit mean direction `mean` [3] and concentration kappa.

    On S² the cosine w = ⟨x, μ⟩ has the closed-form inverse CDF w = 1 + log(u + (1 − u) e^{−2κ})/κ (Wood 1994), and
    the remaining direction is uniform on the circle orthogonal to μ."""
    n = check_count(n, "n")
    mean = check_array(mean, "mean", ndim=1)
    if mean.shape != (3,):
        raise ValueError(f"mean must be a direction in R³, shape [3], got {mean.shape}")
    if is_concrete(kappa) and not float(kappa) > 0:
        raise ValueError(f"kappa must be > 0, got {kappa}")
    mu = mean / jnp.linalg.norm(mean)
    k_w, k_phi = jax.random.split(key)
    u = jax.random.uniform(k_w, (n,), minval=1e-12)
    w = 1.0 + jnp.log(u + (1.0 - u) * jnp.exp(-2.0 * kappa)) / kappa
    # an orthonormal frame (e1, e2) of the plane orthogonal to mu
    helper = jnp.where(jnp.abs(mu[0]) < 0.9, jnp.array([1.0, 0.0, 0.0]), jnp.array([0.0, 1.0, 0.0]))
    e1 = helper - jnp.dot(helper, mu) * mu
    e1 = e1 / jnp.linalg.norm(e1)
    e2 = jnp.cross(mu, e1)
    phi = jax.random.uniform(k_phi, (n,), maxval=2.0 * jnp.pi)
    r = jnp.sqrt(jnp.clip(1.0 - w**2, 0.0, 1.0))
    return w[:, None] * mu + r[:, None] * (jnp.cos(phi)[:, None] * e1 + jnp.sin(phi)[:, None] * e2)


def sample_vmf_mixture(key: jax.Array, n: int, means: jax.Array, kappas, weights=None) -> jax.Array:
    """n draws [n, 3] of Σ_k w_k vMF(μ_k, κ_k) on S² (means [K, 3], kappas [K], weights [K], default equal)."""
    n = check_count(n, "n")
    means = check_array(means, "means", ndim=2)
    kappas = jnp.broadcast_to(jnp.asarray(kappas, means.dtype), means.shape[:1])
    weights = jnp.ones(means.shape[0]) if weights is None else check_array(weights, "weights", ndim=1)
    k_c, k_x = jax.random.split(key)
    comp = jax.random.choice(k_c, means.shape[0], (n,), p=weights / weights.sum())
    draws = jnp.stack([sample_vmf(jax.random.fold_in(k_x, i), means[i], kappas[i], n) for i in range(len(means))])
    return draws[comp, jnp.arange(n)]


def sample_wrapped_normal_mixture(key: jax.Array, n: int, means: jax.Array, stds, weights=None) -> jax.Array:
    """n draws [n, d] on the flat torus [0, 2π)^d of Σ_k w_k WrappedNormal(μ_k, diag σ_k²) (means [K, d]; stds [K]
    or [K, d]; weights [K], default equal): a normal draw taken mod 2π."""
    n = check_count(n, "n")
    means = check_array(means, "means", ndim=2)
    stds = jnp.broadcast_to(jnp.asarray(stds, means.dtype).reshape(means.shape[0], -1), means.shape)
    weights = jnp.ones(means.shape[0]) if weights is None else check_array(weights, "weights", ndim=1)
    k_c, k_x = jax.random.split(key)
    comp = jax.random.choice(k_c, means.shape[0], (n,), p=weights / weights.sum())
    x = means[comp] + stds[comp] * jax.random.normal(k_x, (n, means.shape[1]))
    return jnp.mod(x, 2.0 * jnp.pi)
