"""Brownian-bridge path of SB-CFM (Tong et al. 2024, arXiv:2302.00482)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxflow._checks import broadcast_time, check_positive
from jaxflow.paths.base import PathSample, ProbabilityPath, validate_path_inputs


class BrownianBridgePath(ProbabilityPath):
    """x_t = (1 − t) x0 + t x1 + σ √(t(1 − t)) z with target
    u_t = (1 − 2t) / (2 t (1 − t)) · (x_t − ((1 − t) x0 + t x1)) + (x1 − x0).

    Written through z, the first term is σ (1 − 2t) / (2 √(t(1 − t))) z; it is singular at t ∈ {0, 1}, where the
    noise itself vanishes, and is set to 0 there. Pair it with entropic OT at ε = 2σ² (`SchrodingerBridgeCoupling`).

    Attributes:
        sigma: σ ≥ 0, the bridge's noise.
    """

    sigma: float = 0.5

    def __check_init__(self):
        check_positive(self.sigma, "sigma")

    def noise_scale(self, t):
        """The scale of the bridge's noise z at t: σ √(t(1 − t))."""
        return self.sigma * jnp.sqrt(t * (1.0 - t))

    def sample(self, key, x0, x1, t) -> PathSample:
        x0, x1, t = validate_path_inputs(x0, x1, t)
        t = jnp.broadcast_to(jnp.asarray(t, x0.dtype), x0.shape[:1])
        tb = broadcast_time(t, x0)
        z = jax.random.normal(key, x0.shape, x0.dtype)
        var = tb * (1.0 - tb)
        std = jnp.sqrt(var)
        safe = jnp.where(var > 0, std, 1.0)
        coef = jnp.where(var > 0, self.sigma * (1.0 - 2.0 * tb) / (2.0 * safe), 0.0)
        xt = (1.0 - tb) * x0 + tb * x1 + self.sigma * std * z
        ut = coef * z + (x1 - x0)
        return PathSample(t=t, x0=x0, x1=x1, xt=xt, ut=ut, z=z)
