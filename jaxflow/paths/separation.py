"""Data separation λ(s) and the kinetic energy of a Gaussian path on a data set (Shaul et al. 2023,
"On kinetic optimal probability paths for generative models", arXiv:2306.06626; derivation in docs/paths.md).

For x = α x1 + σ ε the posterior over the data depends on the signal-to-noise ratio s = α/σ only. With the data
normalised to E‖x1‖²/d = 1,
    λ(s) = (1/d) E ‖E[x1 | s x1 + ε]‖²  ∈ [0, 1],
λ(0) = ‖E x1‖²/d and λ → 1 as s → ∞ (the posterior concentrates on one point). For x1 ~ N(0, I), λ(s) = s²/(1 + s²).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxflow._checks import check_array, check_count
from jaxflow._deprecation import key_first
from jaxflow.paths.affine import AffinePath, cond_ot_path
from jaxflow.paths.empirical import EmpiricalDistribution


def normalise(data: jax.Array) -> jax.Array:
    """Scale the data set so that E‖x1‖²/d = 1 (the normalisation λ assumes).

    Args:
        data: the data set [n, ...].

    Returns:
        The scaled data set.
    """
    flat = data.reshape(data.shape[0], -1)
    return data * jnp.sqrt(flat.shape[1] / jnp.mean(jnp.sum(flat * flat, axis=1)))


@key_first(2)
def data_separation(
    key: jax.Array, data: jax.Array, snr: float | jax.Array, *, num_samples: int = 1024, normalize: bool = True
) -> jax.Array:
    """λ(s) at every signal-to-noise ratio in `snr` ([S] or scalar), by Monte Carlo over `num_samples` draws of
    (x1, ε) (x1 from the data, the same draws at every s): E‖E[x1 | s x1 + ε]‖² divided by the draws' E‖x1‖² (which
    is d for normalised data). The data are normalised first (`normalize=True`).

    Args:
        key: the JAX key of the Monte Carlo draws.
        data: the data set [n, ...].
        snr: signal-to-noise ratios s, [S] or a scalar.
        num_samples: Monte Carlo draws per ratio.
        normalize: normalise the data first.

    Returns:
        λ(s), [S] (or a scalar), in [0, 1].
    """

    data = check_array(data, "data")
    if data.ndim < 2 or data.shape[0] == 0:
        raise ValueError(f"data must be a non-empty set of points [n, ...], got shape {data.shape}")
    check_count(num_samples, "num_samples")
    data = normalise(data) if normalize else data
    dist = EmpiricalDistribution(data)
    snr = jnp.atleast_1d(jnp.asarray(snr, data.dtype))
    if bool(jnp.any(snr < 0)):
        raise ValueError("signal-to-noise ratios must be >= 0")
    k_x, k_e = jax.random.split(key)
    x1 = dist.sample(k_x, num_samples)
    eps = jax.random.normal(k_e, x1.shape, x1.dtype)
    # ratio estimator: E‖E[x1 | x]‖² over the drawn x1's own second moment (λ = 1 exactly where the posterior has
    # collapsed onto x1, and the draws' sampling error in E‖x1‖² cancels)
    second = jnp.mean(jnp.sum(x1.reshape(num_samples, -1) ** 2, axis=1))

    def one(s):
        m = dist.posterior_mean_at(s * x1 + eps, s, 1.0)
        return jnp.mean(jnp.sum(m.reshape(num_samples, -1) ** 2, axis=1)) / second

    return jax.lax.map(one, snr)


@key_first(2)
def kinetic_energy(
    key: jax.Array,
    data: jax.Array,
    path: AffinePath | None = None,
    *,
    num_times: int = 64,
    num_samples: int = 1024,
    t_range: tuple[float, float] = (0.0, 1.0),
) -> jax.Array:
    """E ∫ ‖u_t(X_t)‖² dt / d of the path's marginal velocity on the data set (x0 ~ N(0, I)), by Gauss–Legendre
    quadrature in t (`num_times` nodes on `t_range`) and Monte Carlo in X_t (the same draws at every t).

    Args:
        key: the JAX key of the draws.
        data: the data set [n, ...].
        path: the affine path (default Cond-OT).
        num_times: Gauss–Legendre nodes in t.
        num_samples: Monte Carlo draws of X_t.
        t_range: the time interval.

    Returns:
        The kinetic energy per dimension, a scalar array.
    """

    path = cond_ot_path() if path is None else path
    dist = EmpiricalDistribution(data)
    nodes, weights = _gauss_legendre(num_times, *t_range)
    k_x, k_e = jax.random.split(key)
    x1 = dist.sample(k_x, num_samples)
    x0 = jax.random.normal(k_e, x1.shape, x1.dtype)
    s = path.scheduler

    def at(t):
        xt = s.alpha(t) * x1 + s.sigma(t) * x0
        u = dist.velocity(t, xt, path)
        return jnp.mean(jnp.sum(u.reshape(num_samples, -1) ** 2, axis=1))

    values = jax.lax.map(at, jnp.asarray(nodes, data.dtype))
    return jnp.sum(jnp.asarray(weights, data.dtype) * values) / dist.dim


def _gauss_legendre(n: int, a: float, b: float):
    import numpy as np

    x, w = np.polynomial.legendre.leggauss(n)
    return 0.5 * (b - a) * x + 0.5 * (b + a), 0.5 * (b - a) * w
