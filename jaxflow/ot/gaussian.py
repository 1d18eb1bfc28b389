"""Gaussians and SPD matrices under the Bures–Wasserstein geometry.

Bhatia, Jain & Lim (2019), "On the Bures–Wasserstein distance between positive definite matrices",
Expositiones Mathematicae 37(2).

For N(m₁, A) and N(m₂, B):  W₂² = ‖m₁ − m₂‖² + tr A + tr B − 2 tr (B^½ A B^½)^½, the OT map is
T(x) = m₂ + A_T (x − m₁) with A_T = A^{-½}(A^½ B A^½)^½ A^{-½}, and the covariance geodesic is
Σ_t = ((1−t)I + t A_T) A ((1−t)I + t A_T) = (1−t)²A + t²B + t(1−t)[(AB)^½ + (BA)^½].

On the SPD cone with this metric (a tangent vector V at P is a symmetric matrix; L_P(V) solves L P + P L = V):
  ⟨U, V⟩_P = ½ tr(L_P(U) V),  Log_P X = (PX)^½ + (XP)^½ − 2P = (T − I)P + P(T − I),  Exp_P V = (I + L)P(I + L).

Matrix functions go through a symmetric eigendecomposition with eigenvalues clipped at 0 (square roots) or
pseudo-inverted below a relative cutoff (inverse square roots), so singular and ill-conditioned covariances give finite
answers. Inputs are checked (symmetric, positive semi-definite) when concrete.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxflow._checks import check_array, check_positive, check_weights, is_concrete, traced_check

# ---------------------------------------------------------------------------------------------------------------------
# matrix functions


def _sym(a: jax.Array) -> jax.Array:
    return 0.5 * (a + jnp.swapaxes(a, -1, -2))


def _eig_apply(a: jax.Array, fn) -> jax.Array:
    w, u = jnp.linalg.eigh(_sym(a))
    return (u * fn(w)[..., None, :]) @ jnp.swapaxes(u, -1, -2)


def sqrtm_psd(a: jax.Array) -> jax.Array:
    """Symmetric square root of a PSD matrix (negative round-off eigenvalues clipped to 0)."""
    return _eig_apply(a, lambda w: jnp.sqrt(jnp.clip(w, 0.0)))


def _rcond(w):
    return jnp.finfo(w.dtype).eps * w.shape[-1] * 10.0


def inv_sqrtm_psd(a: jax.Array) -> jax.Array:
    """Pseudo-inverse square root: eigenvalues below 10·d·eps·λ_max are treated as zero."""

    def fn(w):
        cut = _rcond(w) * jnp.max(w, axis=-1, keepdims=True)
        return jnp.where(w > cut, 1.0 / jnp.sqrt(jnp.where(w > cut, w, 1.0)), 0.0)

    return _eig_apply(a, fn)


def powm_psd(a: jax.Array, power: float) -> jax.Array:
    """A^power for PSD A (power > 0)."""
    return _eig_apply(a, lambda w: jnp.clip(w, 0.0) ** power)


def check_spd(c, name: str, *, strict: bool = False) -> jax.Array:
    """Check a (batch of) covariance matrices [..., d, d]: square, symmetric and PSD (PD when `strict`)."""
    c = check_array(c, name)
    if c.ndim < 2 or c.shape[-1] != c.shape[-2]:
        raise ValueError(f"{name} must be a square matrix [..., d, d], got shape {c.shape}")
    if is_concrete(c):
        cv = np.asarray(c, np.float64)
        scale = max(np.abs(cv).max(), 1e-300)
        if np.abs(cv - np.swapaxes(cv, -1, -2)).max() > 1e-4 * scale:
            raise ValueError(f"{name} must be symmetric")
        w = np.linalg.eigvalsh(0.5 * (cv + np.swapaxes(cv, -1, -2)))
        tol = 1e-5 * scale
        if w.min() < -tol:
            raise ValueError(f"{name} must be positive semi-definite, smallest eigenvalue {w.min():.3g}")
        if strict and w.min() <= 0:
            raise ValueError(f"{name} must be positive definite, smallest eigenvalue {w.min():.3g}")
    return c


def _check_mean_cov(m, c, tag):
    m = check_array(m, f"m{tag}", ndim=1)
    c = check_spd(c, f"c{tag}")
    if not is_concrete(c):  # compiled: the same test as check_spd's, run with the program (one d×d eigvalsh)
        scale = jnp.maximum(jnp.max(jnp.abs(c)), jnp.finfo(c.dtype).tiny)
        asym = jnp.max(jnp.abs(c - jnp.swapaxes(c, -1, -2))) > 1e-4 * scale
        neg = jnp.min(jnp.linalg.eigvalsh(_sym(c))) < -1e-5 * scale
        c = traced_check(c, asym | neg, f"c{tag} must be a symmetric positive semi-definite matrix")
    if c.shape != (m.shape[0], m.shape[0]):
        raise ValueError(f"c{tag} must be [{m.shape[0]}, {m.shape[0]}] to match m{tag}, got {c.shape}")
    return m, c


# ---------------------------------------------------------------------------------------------------------------------
# distances and maps


def bures_distance_squared(a: jax.Array, b: jax.Array) -> jax.Array:
    """Squared Bures distance tr A + tr B − 2 tr (B^½ A B^½)^½ between PSD matrices (clipped at 0)."""
    rb = sqrtm_psd(b)
    w = jnp.linalg.eigvalsh(_sym(rb @ a @ rb))
    cross = jnp.sum(jnp.sqrt(jnp.clip(w, 0.0)), axis=-1)
    return jnp.maximum(jnp.trace(a, axis1=-2, axis2=-1) + jnp.trace(b, axis1=-2, axis2=-1) - 2.0 * cross, 0.0)


def bures_wasserstein(m1: jax.Array, c1: jax.Array, m2: jax.Array, c2: jax.Array) -> jax.Array:
    """W₂(N(m₁, c₁), N(m₂, c₂)), the distance (not squared): ‖m₁ − m₂‖² + tr(c₁ + c₂ − 2(c₁^½ c₂ c₁^½)^½) under
    the root. Covariances may be singular.

    Args:
        m1: mean [d].
        c1: covariance [d, d], symmetric positive semi-definite.
        m2: mean [d].
        c2: covariance [d, d].

    Returns:
        W₂ as a scalar array.

    Raises:
        ValueError: shapes that do not match, a non-symmetric or non-finite covariance.

    Example:
        >>> import jax.numpy as jnp, jaxflow as jf
        >>> d = jf.ot.bures_wasserstein(jnp.zeros(2), jnp.eye(2), jnp.array([3.0, 4.0]), jnp.eye(2))
        >>> print(round(float(d), 4))  # equal covariances: the distance of the means
        5.0
    """
    m1, c1 = _check_mean_cov(m1, c1, "1")
    m2, c2 = _check_mean_cov(m2, c2, "2")
    if m1.shape != m2.shape:
        raise ValueError(f"the two Gaussians must have the same dimension, got {m1.shape[0]} and {m2.shape[0]}")
    return jnp.sqrt(jnp.sum((m1 - m2) ** 2) + bures_distance_squared(c1, c2))


def ot_map_matrix(a: jax.Array, b: jax.Array) -> jax.Array:
    """A_T = A^{-½}(A^½ B A^½)^½ A^{-½}, the linear part of the OT map N(·, A) → N(·, B) (pseudo-inverse when A is
    singular: then A_T maps the range of A and is 0 on its kernel)."""
    ra, ira = sqrtm_psd(a), inv_sqrtm_psd(a)
    return _sym(ira @ sqrtm_psd(ra @ b @ ra) @ ira)


class GaussianMap(NamedTuple):
    """T(x) = m₂ + matrix (x − m₁); call it on points [..., d]."""

    matrix: jax.Array
    m1: jax.Array
    m2: jax.Array

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.m2 + (x - self.m1) @ self.matrix.T


def gaussian_map(m1: jax.Array, c1: jax.Array, m2: jax.Array, c2: jax.Array) -> GaussianMap:
    """The Monge map between N(m₁, c₁) and N(m₂, c₂): T(x) = m₂ + A(x − m₁) with
    A = c₁^{-½}(c₁^½ c₂ c₁^½)^½ c₁^{-½} (c₁ should be non-singular for it to push c₁ onto c₂).

    Args:
        m1: source mean [d].
        c1: source covariance [d, d].
        m2: target mean [d].
        c2: target covariance [d, d].

    Returns:
        A `GaussianMap` (call it on points [..., d]).
    """
    m1, c1 = _check_mean_cov(m1, c1, "1")
    m2, c2 = _check_mean_cov(m2, c2, "2")
    return GaussianMap(ot_map_matrix(c1, c2), m1, m2)


def geodesic(m1, c1, m2, c2, t) -> tuple[jax.Array, jax.Array]:
    """Point at time t ∈ [0, 1] on the W₂ geodesic between two Gaussians: (mean, covariance).

    Computed with the OT map from the better-conditioned end, so a singular end point is reached exactly.
    """
    m1, c1 = _check_mean_cov(m1, c1, "1")
    m2, c2 = _check_mean_cov(m2, c2, "2")
    return _geodesic(m1, c1, m2, c2, t)


def _geodesic(m1, c1, m2, c2, t):
    """`geodesic` without the input checks: for callers whose covariances are their own (a layer's running mean),
    where the compiled SPD check would add two eigendecompositions to every training step."""
    t = jnp.asarray(t, c1.dtype)
    eye = jnp.eye(c1.shape[-1], dtype=c1.dtype)

    def from_side(a, b, s):
        m = (1.0 - s) * eye + s * ot_map_matrix(a, b)
        return _sym(m @ a @ m)

    def cond(c):
        w = jnp.linalg.eigvalsh(c)
        return w[0] / jnp.maximum(w[-1], jnp.finfo(c.dtype).tiny)

    cov = jnp.where(cond(c1) >= cond(c2), from_side(c1, c2, t), from_side(c2, c1, 1.0 - t))
    return (1.0 - t) * m1 + t * m2, cov


# ---------------------------------------------------------------------------------------------------------------------
# Riemannian operations on the SPD cone


def lyapunov(p: jax.Array, v: jax.Array) -> jax.Array:
    """L_P(V): the symmetric solution of L P + P L = V for SPD P."""
    w, u = jnp.linalg.eigh(_sym(p))
    vt = u.T @ _sym(v) @ u
    return u @ (vt / (w[:, None] + w[None, :])) @ u.T


def inner(p: jax.Array, u: jax.Array, v: jax.Array) -> jax.Array:
    """Bures–Wasserstein metric ⟨U, V⟩_P = ½ tr(L_P(U) V)."""
    return 0.5 * jnp.trace(lyapunov(p, u) @ v)


def log_map(p: jax.Array, x: jax.Array) -> jax.Array:
    """Log_P X = (PX)^½ + (XP)^½ − 2P (P positive definite); ‖Log_P X‖_P equals the Bures distance."""
    p = check_spd(p, "p", strict=True)
    x = check_spd(x, "x")
    t = ot_map_matrix(p, x) - jnp.eye(p.shape[-1], dtype=p.dtype)
    return _sym(t @ p + p @ t)


def exp_map(p: jax.Array, v: jax.Array) -> jax.Array:
    """Exp_P V = (I + L)P(I + L) with L = L_P(V) (a geodesic only while I + L stays PSD)."""
    p = check_spd(p, "p", strict=True)
    m = jnp.eye(p.shape[-1], dtype=p.dtype) + lyapunov(p, v)
    return _sym(m @ p @ m)


def frechet_mean(covs: jax.Array, weights: jax.Array | None = None, n_iter: int = 50) -> jax.Array:
    """Bures–Wasserstein barycentre of covariances [K, d, d] by the fixed point
    S ← S^{-½}(Σ_k w_k (S^½ C_k S^½)^½)² S^{-½} (started at the weighted arithmetic mean)."""
    covs = check_spd(covs, "covs")
    if covs.ndim != 3:
        raise ValueError(f"covs must be [K, d, d], got {covs.shape}")
    k = covs.shape[0]
    w = jnp.full(k, 1.0 / k, covs.dtype) if weights is None else check_weights(weights, k, "weights")

    def step(s, _):
        rs, irs = sqrtm_psd(s), inv_sqrtm_psd(s)
        inner_ = jnp.einsum("k,kij->ij", w, jax.vmap(lambda c: sqrtm_psd(rs @ c @ rs))(covs))
        return _sym(irs @ inner_ @ inner_ @ irs), None

    s, _ = jax.lax.scan(step, jnp.einsum("k,kij->ij", w, covs), None, length=n_iter)
    return s


def gaussian_barycenter(means, covs, weights=None, n_iter: int = 50) -> tuple[jax.Array, jax.Array]:
    """W₂ barycentre of Gaussians (means [K, d], covs [K, d, d]): (Σ w_k m_k, Fréchet mean of the covariances)."""
    means = check_array(means, "means", ndim=2)
    k = means.shape[0]
    w = jnp.full(k, 1.0 / k, means.dtype) if weights is None else check_weights(weights, k, "weights")
    return w @ means, frechet_mean(covs, w, n_iter)


def parallel_transport(p: jax.Array, q: jax.Array, v: jax.Array, n_steps: int = 16, scale: float = 1e-2) -> jax.Array:
    """Transport the tangent vector V at P to Q along the geodesic P → Q by the pole ladder.

    The geodesic is cut into `n_steps` pieces; on each, V (scaled by `scale` to stay inside the region where Exp is a
    geodesic) is carried by a geodesic symmetry through the piece's midpoint. The BW cone is not a symmetric space, so
    the ladder is an approximation whose error falls as the pieces shrink (check: transporting Log_P Q to Q gives
    −Log_Q P; the transported vector keeps its norm).
    """
    p = check_spd(p, "p", strict=True)
    q = check_spd(q, "q", strict=True)
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    check_positive(scale, "scale")
    zero = jnp.zeros(p.shape[-1], p.dtype)

    def point(s):
        return geodesic(zero, p, zero, q, s)[1]

    def rung(vec, i):
        a, b = point(i / n_steps), point((i + 1) / n_steps)
        mid = point((i + 0.5) / n_steps)
        x = exp_map(a, scale * vec)
        y = exp_map(mid, -log_map(mid, x))
        return -log_map(b, y) / scale, None

    out, _ = jax.lax.scan(rung, _sym(v), jnp.arange(n_steps, dtype=p.dtype))
    return out


__all__ = [
    "GaussianMap",
    "bures_distance_squared",
    "bures_wasserstein",
    "check_spd",
    "exp_map",
    "frechet_mean",
    "gaussian_barycenter",
    "gaussian_map",
    "geodesic",
    "inner",
    "inv_sqrtm_psd",
    "log_map",
    "lyapunov",
    "ot_map_matrix",
    "parallel_transport",
    "powm_psd",
    "sqrtm_psd",
]
