"""Non-conservativeness of vector fields (the tests are described in docs/conservativeness.md).

A score is a gradient, so its Jacobian is symmetric and its loop integrals vanish; a trained network need not be.

- `jacobian_asymmetry`: ‖J − Jᵀ‖_F / ‖J‖_F at each point, by Hutchinson probes: for v ~ N(0, I),
  E‖(J − Jᵀ)v‖² = ‖J − Jᵀ‖_F² and E‖Jv‖² = ‖J‖_F², with Jv from `jvp` and Jᵀv from `vjp` (no Jacobian is formed).
  0 for a gradient field; 2 for a rotation x ↦ Ax with Aᵀ = −A.
- `loop_integrals`: ∮ f·dl / ∮ |f| |dl| over circles of radius r in random 2-planes through given centres (the
  trapezoid rule on a uniform angle grid, spectrally accurate for smooth periodic integrands). In [−1, 1];
  0 for a gradient field, ±1 for a planar rotation about the circle's centre.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxflow._checks import check_array, check_positive
from jaxflow._deprecation import key_first


def _pointwise(field: Callable, x: jax.Array) -> Callable:
    """field maps [B, d] → [B, d]; return the per-point map [d] → [d]."""
    return lambda xi: field(xi[None])[0]


@key_first(2)
def jacobian_asymmetry(key: jax.Array, field: Callable, x: jax.Array, n_probes: int = 16) -> jax.Array:
    """Relative Jacobian asymmetry ‖J − Jᵀ‖_F / ‖J‖_F of `field` ([B, d] → [B, d]) at each point of x [B, d]: [B].

    Estimated with `n_probes` Gaussian probes per point (the ratio of two Hutchinson estimates).

    Args:
        key: the JAX key of the probes.
        field: `f(x [B, d]) -> [B, d]`.
        x: points [B, d].
        n_probes: probes per point.

    Returns:
        The asymmetry per point [B] (0 for a gradient field).
    """
    x = check_array(x, "x", ndim=2)
    if n_probes < 1:
        raise ValueError(f"n_probes must be >= 1, got {n_probes}")
    f = _pointwise(field, x)
    probes = jax.random.normal(key, (x.shape[0], n_probes, x.shape[1]), x.dtype)

    def one(xi, vs):
        _, vjp = jax.vjp(f, xi)

        def per(v):
            jv = jax.jvp(f, (xi,), (v,))[1]
            jtv = vjp(v)[0]
            return jnp.sum((jv - jtv) ** 2), jnp.sum(jv**2)

        asym, norm = jax.vmap(per)(vs)
        return jnp.sqrt(jnp.mean(asym) / jnp.maximum(jnp.mean(norm), jnp.finfo(x.dtype).tiny))

    return jax.vmap(one)(x, probes)


@key_first(2)
def loop_integrals(
    key: jax.Array, field: Callable, centers: jax.Array, radius: float = 0.5, n_points: int = 64
) -> jax.Array:
    """Normalised loop integrals ∮ f·dl / ∮ |f||dl| of `field` ([B, d] → [B, d]) over one circle of `radius` in a
    uniformly random 2-plane through each centre [B, d] (d ≥ 2): returns [B].

    Args:
        key: the JAX key of the random planes.
        field: `f(x [B, d]) -> [B, d]`.
        centers: the loops' centres [B, d].
        radius: the circles' radius.
        n_points: points per circle.

    Returns:
        The normalised circulation per loop [B] (0 for a gradient field).
    """
    centers = check_array(centers, "centers", ndim=2)
    b, d = centers.shape
    if d < 2:
        raise ValueError(f"loop integrals need dimension >= 2, got {d}")
    check_positive(radius, "radius")
    if n_points < 8:
        raise ValueError(f"n_points must be >= 8, got {n_points}")
    g = jax.random.normal(key, (b, d, 2), centers.dtype)
    frames, _ = jnp.linalg.qr(g)  # [B, d, 2] orthonormal columns: a uniformly random plane
    phi = jnp.arange(n_points, dtype=centers.dtype) * (2 * jnp.pi / n_points)
    cos, sin = jnp.cos(phi), jnp.sin(phi)
    u, v = frames[..., 0], frames[..., 1]  # [B, d]
    pts = centers[:, None, :] + radius * (cos[None, :, None] * u[:, None, :] + sin[None, :, None] * v[:, None, :])
    tangent = radius * (-sin[None, :, None] * u[:, None, :] + cos[None, :, None] * v[:, None, :])  # dγ/dφ
    vals = field(pts.reshape(b * n_points, d)).reshape(b, n_points, d)
    work = jnp.sum(vals * tangent, axis=-1).sum(1)
    total = (jnp.linalg.norm(vals, axis=-1) * jnp.linalg.norm(tangent, axis=-1)).sum(1)
    return work / jnp.maximum(total, jnp.finfo(centers.dtype).tiny)
