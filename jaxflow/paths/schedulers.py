"""Schedulers (α_t, σ_t) of affine paths x_t = α_t x1 + σ_t x0, in flow-matching time (t = 0 source, t = 1 data).

Each scheduler is a small immutable object with `alpha`, `sigma` and their time derivatives `d_alpha`, `d_sigma`.
Subclass `Scheduler` and implement `alpha` and `sigma`; the derivatives default to autodiff (override them with closed
forms where you have one). See docs/conventions.md.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp

from jaxflow._checks import check_positive


class Scheduler(eqx.Module):
    """Abstract scheduler: α_t and σ_t as functions of t (any shape, elementwise)."""

    @abc.abstractmethod
    def alpha(self, t: jax.Array) -> jax.Array: ...

    @abc.abstractmethod
    def sigma(self, t: jax.Array) -> jax.Array: ...

    def d_alpha(self, t: jax.Array) -> jax.Array:
        return jnp.vectorize(jax.grad(self.alpha))(t)

    def d_sigma(self, t: jax.Array) -> jax.Array:
        return jnp.vectorize(jax.grad(self.sigma))(t)


class CondOTScheduler(Scheduler):
    """Cond-OT / rectified flow: α = t, σ = 1 − t."""

    def alpha(self, t):
        return t

    def sigma(self, t):
        return 1.0 - t

    def d_alpha(self, t):
        return jnp.ones_like(t)

    def d_sigma(self, t):
        return -jnp.ones_like(t)


class LipmanScheduler(Scheduler):
    """Lipman et al. (2023) OT path: α = t, σ = 1 − (1 − σ_min) t."""

    sigma_min: float = 1e-4

    def __check_init__(self):
        check_positive(self.sigma_min, "sigma_min", allow_zero=True)

    def alpha(self, t):
        return t

    def sigma(self, t):
        return 1.0 - (1.0 - self.sigma_min) * t

    def d_alpha(self, t):
        return jnp.ones_like(t)

    def d_sigma(self, t):
        return -(1.0 - self.sigma_min) * jnp.ones_like(t)


class VPTrigScheduler(Scheduler):
    """Variance-preserving trigonometric (cosine) schedule: α = sin(πt/2), σ = cos(πt/2)."""

    def alpha(self, t):
        return jnp.sin(0.5 * jnp.pi * t)

    def sigma(self, t):
        return jnp.cos(0.5 * jnp.pi * t)

    def d_alpha(self, t):
        return 0.5 * jnp.pi * jnp.cos(0.5 * jnp.pi * t)

    def d_sigma(self, t):
        return -0.5 * jnp.pi * jnp.sin(0.5 * jnp.pi * t)


class VPSDEScheduler(Scheduler):
    """VP-SDE (Song et al. 2021) in flow-matching time: with s = 1 − t,
    α = exp(−¼ s² (β_max − β_min) − ½ s β_min), σ = √(1 − α²).

    The source end is reached only approximately: α_0 = exp(−(β_max + β_min)/4) (≈ 0.0066 for the defaults).
    """

    beta_min: float = 0.1
    beta_max: float = 20.0

    def __check_init__(self):
        check_positive(self.beta_min, "beta_min", allow_zero=True)
        check_positive(self.beta_max, "beta_max")

    def _log_alpha(self, t):
        s = 1.0 - t
        return -0.25 * s**2 * (self.beta_max - self.beta_min) - 0.5 * s * self.beta_min

    def alpha(self, t):
        return jnp.exp(self._log_alpha(t))

    def sigma(self, t):
        return jnp.sqrt(-jnp.expm1(2.0 * self._log_alpha(t)))

    def d_alpha(self, t):
        s = 1.0 - t
        return self.alpha(t) * (0.5 * s * (self.beta_max - self.beta_min) + 0.5 * self.beta_min)

    def d_sigma(self, t):
        a = self.alpha(t)
        return -a * self.d_alpha(t) / self.sigma(t)


class VEScheduler(Scheduler):
    """Variance-exploding (Song et al. 2021): α = 1, σ = σ_min (σ_max / σ_min)^(1 − t).

    At t = 0 the path is x1 + σ_max x0, which is dominated by the source only when σ_max ≫ the data scale.
    """

    sigma_min: float = 0.01
    sigma_max: float = 50.0

    def __check_init__(self):
        check_positive(self.sigma_min, "sigma_min")
        check_positive(self.sigma_max, "sigma_max")

    def alpha(self, t):
        return jnp.ones_like(t)

    def sigma(self, t):
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** (1.0 - t)

    def d_alpha(self, t):
        return jnp.zeros_like(t)

    def d_sigma(self, t):
        return -jnp.log(self.sigma_max / self.sigma_min) * self.sigma(t)


_SCHEDULERS = {
    "cond_ot": CondOTScheduler,
    "lipman": LipmanScheduler,
    "vp_trig": VPTrigScheduler,
    "vp_sde": VPSDEScheduler,
    "ve": VEScheduler,
}


def get_scheduler(name: str, **kwargs) -> Scheduler:
    """Build a scheduler by name (`cond_ot`, `lipman`, `vp_trig`, `vp_sde`, `ve`)."""
    if name not in _SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {sorted(_SCHEDULERS)}")
    return _SCHEDULERS[name](**kwargs)
