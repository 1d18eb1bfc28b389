"""Gaussian mixtures with the closed-form marginal velocity and score of the linear path (docs/gaussian_mixtures.md).

For x0 ~ N(0, I) and x_t = (1 − t) x0 + t x1 with x1 ~ Σ_k π_k N(μ_k, Σ_k), the marginal at time t is the mixture
Σ_k π_k N(m_k, C_k) with m_k = t μ_k, C_k = (1 − t)² I + t² Σ_k, and

    v(t, x) = Σ_k w_k(x) [ μ_k + (t Σ_k − (1 − t) I) C_k⁻¹ (x − t μ_k) ],
    ∇ log p_t(x) = −Σ_k w_k(x) C_k⁻¹ (x − t μ_k),

with posterior weights w_k(x) ∝ π_k N(x; m_k, C_k).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxflow._checks import check_array, check_count, check_time, is_concrete


class GaussianMixture(eqx.Module):
    """Mixture Σ_k π_k N(μ_k, Σ_k). weights [K] (normalised here), means [K, d], covs [K, d, d] (SPD).

    Sampling, log-density, score and the marginals of an affine path are exact (the mixture stays a mixture).

    Args:
        weights: the mixture weights π [K], non-negative with a positive sum.
        means: the means μ [K, d].
        covs: the covariances Σ [K, d, d], symmetric positive definite.

    Raises:
        ValueError: shapes that disagree, negative weights, non-symmetric or non-positive-definite covariances.
    """

    weights: jax.Array
    means: jax.Array
    covs: jax.Array
    eigvals: jax.Array  # [K, d] of Σ_k
    eigvecs: jax.Array  # [K, d, d]

    def __init__(self, weights: ArrayLike, means: ArrayLike, covs: ArrayLike):
        weights = check_array(weights, "weights", ndim=1)
        means = check_array(means, "means", ndim=2)
        covs = check_array(covs, "covs", ndim=3)
        k, d = means.shape
        if weights.shape != (k,):
            raise ValueError(f"weights must have shape [K]={(k,)}, got {weights.shape}")
        if covs.shape != (k, d, d):
            raise ValueError(f"covs must have shape [K, d, d]={(k, d, d)}, got {covs.shape}")
        if is_concrete(weights):
            w = np.asarray(weights)
            if np.any(w < 0) or w.sum() <= 0:
                raise ValueError("weights must be non-negative with a positive sum")
        if is_concrete(covs):
            c = np.asarray(covs, np.float64)
            if not np.allclose(c, np.swapaxes(c, 1, 2), atol=1e-6 * max(1.0, np.abs(c).max())):
                raise ValueError("covs must be symmetric")
            if np.any(np.linalg.eigvalsh(c) <= 0):
                raise ValueError("covs must be positive definite")
        self.weights = weights / jnp.sum(weights)
        self.means = means
        self.covs = covs
        # C_k(t) = (1 − t)² I + t² Σ_k shares Σ_k's eigenvectors: one eigendecomposition here makes every later
        # solve and log-determinant a pair of matrix products (no LAPACK call inside samplers' loops; jax 0.10.2
        # on CPU was seen to hang on Cholesky solves at d = 128 inside while loops with several evaluations).
        self.eigvals, self.eigvecs = jnp.linalg.eigh(covs)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        """n samples [n, d]."""
        n = check_count(n)
        k1, k2 = jax.random.split(key)
        comp = jax.random.choice(k1, self.weights.shape[0], (n,), p=self.weights)
        chol = jnp.linalg.cholesky(self.covs)
        z = jax.random.normal(k2, (n, self.dim), self.means.dtype)
        return self.means[comp] + jnp.einsum("nij,nj->ni", chol[comp], z)

    # ---- marginal of the linear path at time t: m_k = t μ_k, C_k = U_k diag((1 − t)² + t² λ_k) U_kᵀ ----
    def _spectrum(self, t):
        return (1.0 - t) ** 2 + t**2 * self.eigvals  # [K, d]

    def _posterior(self, t, x):
        """Posterior weights w_k(x) [K], C_k⁻¹(x − m_k) [K, d] and log p_t(x) at one point x [d]."""
        w, prec_diff, logp = self._posterior_batch(t, x[None])
        return w[:, 0], prec_diff[:, 0], logp[0]

    def _posterior_batch(self, t, x):
        """As `_posterior` for a batch x [n, d] at one time: weights [K, n], C_k⁻¹(x − m_k) [K, n, d], log p [n]."""
        spec = self._spectrum(t)
        diff = x[None, :, :] - t * self.means[:, None, :]
        z = jnp.einsum("kdj,knd->knj", self.eigvecs, diff)
        prec_diff = jnp.einsum("kij,knj->kni", self.eigvecs, z / spec[:, None, :])
        quad = jnp.sum(z * z / spec[:, None, :], axis=2)
        logdet = jnp.sum(jnp.log(spec), axis=1)
        logn = -0.5 * (quad + logdet[:, None] + self.dim * jnp.log(2.0 * jnp.pi))
        logits = jnp.log(self.weights)[:, None] + logn
        logp = jax.scipy.special.logsumexp(logits, axis=0)
        return jnp.exp(logits - logp[None]), prec_diff, logp

    def _velocity_batch(self, t, x):
        w, prec_diff, _ = self._posterior_batch(t, x)
        eye = jnp.eye(self.dim, dtype=x.dtype)
        a = t * self.covs - (1.0 - t) * eye
        per = self.means[:, None, :] + jnp.einsum("kij,knj->kni", a, prec_diff)
        return jnp.einsum("kn,knd->nd", w, per)

    def _pointwise(self, fn, t, x, batch_fn=None):
        x = jnp.asarray(x)
        t = check_time(jnp.asarray(t, x.dtype))
        if x.shape[-1] != self.dim:
            raise ValueError(f"x must have last dimension {self.dim}, got shape {x.shape}")
        if x.ndim == 1:
            return fn(t, x)
        if x.ndim != 2:
            raise ValueError(f"x must be [d] or [n, d], got shape {x.shape}")
        if t.ndim == 0 and batch_fn is not None:  # one time for the whole batch: matrix products
            return batch_fn(t, x)
        tt = jnp.broadcast_to(t, x.shape[:1])
        return jax.vmap(fn)(tt, x)

    def log_prob(self, x: jax.Array, t: float | jax.Array = 1.0) -> jax.Array:
        """log p_t(x) of the path marginal (t = 1: the mixture itself). x [d] or [n, d]."""
        return self._pointwise(
            lambda tt, xx: self._posterior(tt, xx)[2], t, x, lambda tt, xx: self._posterior_batch(tt, xx)[2]
        )

    def score(self, t, x) -> jax.Array:
        """∇ log p_t(x), x [d] or [n, d]."""

        def batch(tt, xx):
            w, prec_diff, _ = self._posterior_batch(tt, xx)
            return -jnp.einsum("kn,knd->nd", w, prec_diff)

        return self._pointwise(lambda tt, xx: -jnp.einsum("k,kd->d", *self._posterior(tt, xx)[:2]), t, x, batch)

    def velocity(self, t, x) -> jax.Array:
        """Marginal velocity E[x1 − x0 | x_t = x], x [d] or [n, d]."""

        return self._pointwise(lambda tt, xx: self._velocity_batch(tt, xx[None])[0], t, x, self._velocity_batch)
