"""Stochastic interpolants x_t = I(t, x0, x1) + γ(t) z (Albergo, Boffi & Vanden-Eijnden 2023), PAPERS.md §1.

`ut` of the returned `PathSample` is ∂_t I + γ̇ z, the regression target of the drift b; `z` is the latent noise,
whose regression gives the denoiser η = −γ s.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxflow._checks import broadcast_time, check_choice, check_positive
from jaxflow.paths.base import PathSample, ProbabilityPath, validate_path_inputs

INTERPOLANTS = ("linear", "trig")
GAMMAS = ("sqrt", "quadratic", "sin2", "zero")


def interpolant_coefficients(kind: str, t):
    """(a, b, ȧ, ḃ) with I = a x0 + b x1."""
    if kind == "linear":
        return 1.0 - t, t, -jnp.ones_like(t), jnp.ones_like(t)
    c, s = jnp.cos(0.5 * jnp.pi * t), jnp.sin(0.5 * jnp.pi * t)
    return c, s, -0.5 * jnp.pi * s, 0.5 * jnp.pi * c


def gamma_and_derivative(kind: str, t, a: float = 1.0):
    """γ(t) and γ̇(t). `sqrt`: √(a t(1−t)); `quadratic`: t(1−t); `sin2`: sin²(πt); `zero`: 0.

    γ̇ of `sqrt` is singular at the endpoints and is set to 0 there (where γ itself is 0).
    """
    if kind == "sqrt":
        v = a * t * (1.0 - t)
        g = jnp.sqrt(jnp.maximum(v, 0.0))
        dg = jnp.where(v > 0, a * (1.0 - 2.0 * t) / (2.0 * jnp.where(v > 0, g, 1.0)), 0.0)
        return g, dg
    if kind == "quadratic":
        return t * (1.0 - t), 1.0 - 2.0 * t
    if kind == "sin2":
        return jnp.sin(jnp.pi * t) ** 2, 2.0 * jnp.pi * jnp.sin(jnp.pi * t) * jnp.cos(jnp.pi * t)
    return jnp.zeros_like(t), jnp.zeros_like(t)


class StochasticInterpolant(ProbabilityPath):
    """x_t = a(t) x0 + b(t) x1 + γ(t) z with I linear or trigonometric and γ from `GAMMAS`."""

    interpolant: str = "linear"
    gamma: str = "sqrt"
    a: float = 1.0

    def __check_init__(self):
        check_choice(self.interpolant, "interpolant", INTERPOLANTS)
        check_choice(self.gamma, "gamma", GAMMAS)
        check_positive(self.a, "a")

    def gammas(self, t):
        return gamma_and_derivative(self.gamma, t, self.a)

    def score_from_denoiser(self, eta: jax.Array, t: jax.Array) -> jax.Array:
        """s = −η/γ for η = E[z | x_t] (singular where γ = 0); eta [B, ...], t [] or [B]."""
        return -eta / broadcast_time(self.gammas(jnp.asarray(t, eta.dtype))[0], eta)

    def denoiser_from_score(self, score: jax.Array, t: jax.Array) -> jax.Array:
        """η = −γ s."""
        return -broadcast_time(self.gammas(jnp.asarray(t, score.dtype))[0], score) * score

    def sample(self, key, x0, x1, t, antithetic: bool = False) -> PathSample:
        """Draw x_t. With `antithetic=True` return the pair (x_t^+, x_t^-) = I ± γ z stacked on a new leading axis."""
        x0, x1, t = validate_path_inputs(x0, x1, t)
        t = jnp.broadcast_to(jnp.asarray(t, x0.dtype), x0.shape[:1])
        tb = broadcast_time(t, x0)
        z = jax.random.normal(key, x0.shape, x0.dtype)
        a, b, da, db = interpolant_coefficients(self.interpolant, tb)
        g, dg = self.gammas(tb)
        interp = a * x0 + b * x1
        dinterp = da * x0 + db * x1
        if antithetic:
            xt = jnp.stack([interp + g * z, interp - g * z])
            ut = jnp.stack([dinterp + dg * z, dinterp - dg * z])
            zz = jnp.stack([z, -z])
            return PathSample(t=t, x0=x0, x1=x1, xt=xt, ut=ut, z=zz)
        return PathSample(t=t, x0=x0, x1=x1, xt=interp + g * z, ut=dinterp + dg * z, z=z)
