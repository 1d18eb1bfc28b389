"""The exact fields of a finite data set: posterior mean, marginal velocity and score of any affine Gaussian path,
and the posterior mean under the PFGM++ kernel.

For data p1 = (1/n) Σ_i δ_{y_i} and x_t = α_t x1 + σ_t x0 with x0 ~ N(0, I), the posterior over the data points is
w_i(x) ∝ exp(−‖x − α_t y_i‖² / (2σ_t²)) (a softmax), and every field follows from m(x) = E[x1 | x_t = x] = Σ_i w_i y_i:
    score ∇ log p_t(x) = (α_t m − x) / σ_t²,   velocity u_t(x) = α̇_t m + σ̇_t (x − α_t m) / σ_t.
These are the minimisers of the corresponding regression losses on the data set itself (the "memorising" optimum),
and the ground truth the checks compare against (docs/paths.md).

PFGM++ (Xu et al. 2023, arXiv:2302.04265) perturbs y with the kernel p_r(x | y) ∝ (‖x − y‖² + r²)^{−(N+D)/2} (N the
data dimension, r = σ√D), so the posterior weights are w_i ∝ (‖x − y_i‖² + r²)^{−(N+D)/2}.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxflow._checks import check_array, check_time
from jaxflow.ot.sinkhorn import sqeuclidean_cost
from jaxflow.paths.affine import AffinePath, cond_ot_path


class EmpiricalDistribution(eqx.Module):
    """A finite data set `points` [n, ...] as a distribution, with its exact fields (batched, jit-able).

    Args:
        points: the data set [n, ...].
    """

    points: jax.Array

    def __init__(self, points: ArrayLike):
        points = check_array(jnp.asarray(points), "points")
        if points.ndim < 2 or points.shape[0] < 1:
            raise ValueError(f"points must be [n, ...] with n >= 1, got shape {points.shape}")
        self.points = points

    @property
    def dim(self) -> int:
        return int(jnp.size(self.points[0]))

    def _flat(self):
        return self.points.reshape(self.points.shape[0], -1)

    def _check_x(self, x):
        if x.shape[1:] != self.points.shape[1:]:
            raise ValueError(f"x must be [B, {', '.join(map(str, self.points.shape[1:]))}], got shape {x.shape}")
        return x.reshape(x.shape[0], -1)

    def log_weights(self, x: jax.Array, alpha, sigma) -> jax.Array:
        """log posterior weights [B, n] of the data points given x_t = x, for x_t = α y + σ ε."""
        xf, y = self._check_x(x), self._flat()
        alpha = jnp.reshape(jnp.asarray(alpha, xf.dtype), (-1, 1))
        sigma = jnp.reshape(jnp.asarray(sigma, xf.dtype), (-1, 1))
        # ‖x − α y‖² = ‖x‖² − 2α x·y + α²‖y‖²; the ‖x‖² term cancels in the softmax
        logits = (2 * alpha * (xf @ y.T) - alpha**2 * jnp.sum(y * y, axis=1)[None, :]) / (2 * sigma**2)
        return jax.nn.log_softmax(logits, axis=1)

    def posterior_mean_at(self, x: jax.Array, alpha, sigma) -> jax.Array:
        """E[x1 | α x1 + σ ε = x], [B, ...]; α and σ scalars or [B]."""
        w = jnp.exp(self.log_weights(x, alpha, sigma))
        return (w @ self._flat()).reshape(x.shape)

    def posterior_mean(self, t, x, path: AffinePath | None = None) -> jax.Array:
        s = _scheduler(path)
        t = _time(t, x)
        return self.posterior_mean_at(x, s.alpha(t), s.sigma(t))

    def score(self, t, x, path: AffinePath | None = None) -> jax.Array:
        """∇ log p_t(x) of the path's marginal, [B, ...] (needs σ_t > 0)."""
        s = _scheduler(path)
        t = _time(t, x)
        m = self.posterior_mean_at(x, s.alpha(t), s.sigma(t))
        a, sg = _b(s.alpha(t), x), _b(s.sigma(t), x)
        return (a * m - x) / sg**2

    def velocity(self, t, x, path: AffinePath | None = None) -> jax.Array:
        """The marginal velocity u_t(x) = α̇ m + σ̇ (x − α m)/σ of the path (default Cond-OT), [B, ...]."""
        s = _scheduler(path)
        t = _time(t, x)
        m = self.posterior_mean_at(x, s.alpha(t), s.sigma(t))
        a, sg, da, ds = (_b(f(t), x) for f in (s.alpha, s.sigma, s.d_alpha, s.d_sigma))
        return da * m + ds * (x - a * m) / sg

    def pfgmpp_log_weights(self, x: jax.Array, sigma, D: float | None) -> jax.Array:
        """log posterior weights [B, n] under the PFGM++ kernel with r = σ√D (D=None: the Gaussian limit)."""
        xf, y = self._check_x(x), self._flat()
        sigma = jnp.reshape(jnp.asarray(sigma, xf.dtype), (-1, 1))
        d2 = sqeuclidean_cost(xf, y)
        if D is None:
            return jax.nn.log_softmax(-d2 / (2 * sigma**2), axis=1)
        _check_D(D)
        n = xf.shape[1]
        # log(d² + r²) = log r² + log1p(d²/r²); the first term is common to all i (and would swamp float32 at large D)
        return jax.nn.log_softmax(-0.5 * (n + D) * jnp.log1p(d2 / (sigma**2 * D)), axis=1)

    def pfgmpp_denoiser(self, x: jax.Array, sigma, D: float | None) -> jax.Array:
        """The optimal PFGM++ denoiser E[y | x] = Σ_i w_i y_i on the data set, [B, ...]."""
        w = jnp.exp(self.pfgmpp_log_weights(x, sigma, D))
        return (w @ self._flat()).reshape(x.shape)

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        return self.points[jax.random.randint(key, (n,), 0, self.points.shape[0])]


def _check_D(D) -> None:
    if not (isinstance(D, int | float) and D > 0):
        raise ValueError(f"D must be a positive number (or None for D = ∞), got {D!r}")


def _scheduler(path):
    path = cond_ot_path() if path is None else path
    if not isinstance(path, AffinePath):
        raise TypeError(f"the exact fields need an AffinePath (x_t = α x1 + σ x0), got {type(path).__name__}")
    return path.scheduler


def _time(t, x):
    t = check_time(t)
    return jnp.broadcast_to(jnp.asarray(t, x.dtype), x.shape[:1])


def _b(v, x):
    return jnp.reshape(v, (-1,) + (1,) * (x.ndim - 1))
