"""Schedulers (α_t, σ_t) of affine paths x_t = α_t x1 + σ_t x0, in flow-matching time (t = 0 source, t = 1 data).

Each scheduler is a small immutable object with `alpha`, `sigma` and their time derivatives `d_alpha`, `d_sigma`.
Subclass `Scheduler` and implement `alpha` and `sigma`; the derivatives default to autodiff (override them with closed
forms where you have one). See docs/conventions.md.
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from jaxflow._checks import check_positive


class Scheduler(eqx.Module):
    """Abstract scheduler of an affine path x_t = α_t x1 + σ_t x0: α_t and σ_t as functions of t (any shape,
    elementwise). A subclass implements `alpha` and `sigma`; the derivatives come from `jax.grad` unless it gives them
    in closed form, and `snr_inverse` from bisection unless it overrides it.

    Its methods: `alpha(t)`, `sigma(t)` (the schedule), `d_alpha(t)`, `d_sigma(t)` (their time derivatives),
    `snr(t)` = α_t / σ_t and `snr_inverse(snr)` (the t at which α_t / σ_t = snr).
    """

    @abc.abstractmethod
    def alpha(self, t: jax.Array) -> jax.Array: ...

    @abc.abstractmethod
    def sigma(self, t: jax.Array) -> jax.Array: ...

    def d_alpha(self, t: jax.Array) -> jax.Array:
        return jnp.vectorize(jax.grad(self.alpha))(t)

    def d_sigma(self, t: jax.Array) -> jax.Array:
        return jnp.vectorize(jax.grad(self.sigma))(t)

    def snr(self, t: jax.Array) -> jax.Array:
        """The signal-to-noise ratio α_t / σ_t."""
        return self.alpha(t) / self.sigma(t)

    def snr_inverse(self, snr: jax.Array) -> jax.Array:
        """The time t in [0, 1] at which α_t / σ_t = snr (elementwise; jit-able).

        Generic: bisection on [0, 1] to the dtype's resolution, assuming α/σ increases with t (true of every
        scheduler here); a value outside the scheduler's range comes back clipped to 0 or 1. Subclasses with a closed
        form override it.
        """
        snr = jnp.asarray(snr, jnp.result_type(float, snr))
        lo, hi = jnp.zeros_like(snr), jnp.ones_like(snr)

        def body(_, bounds):
            lo, hi = bounds
            mid = 0.5 * (lo + hi)
            below = self.snr(mid) < snr
            return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

        lo, hi = jax.lax.fori_loop(0, 64, body, (lo, hi))
        return 0.5 * (lo + hi)


class CondOTScheduler(Scheduler):
    """Cond-OT / rectified flow: α = t, σ = 1 − t (Lipman et al. 2023 with σ_min = 0; Liu et al. 2023). No
    arguments."""

    def alpha(self, t):
        return t

    def sigma(self, t):
        return 1.0 - t

    def d_alpha(self, t):
        return jnp.ones_like(t)

    def d_sigma(self, t):
        return -jnp.ones_like(t)

    def snr_inverse(self, snr):  # t / (1 − t) = s
        snr = jnp.asarray(snr, jnp.result_type(float, snr))
        return snr / (1.0 + snr)


class PolynomialConvexScheduler(Scheduler):
    """The convex schedule κ_t = tⁿ as an affine scheduler: α = tⁿ, σ = 1 − tⁿ (Gat et al. 2024, "Discrete flow
    matching", arXiv:2407.15595: the mixture paths' κ). `kappa`, `d_kappa` and `kappa_inverse` name the same maps for
    mixture (discrete) paths; n = 1 is Cond-OT.

    Attributes:
        n: the exponent, > 0.
    """

    n: float = 1.0

    def __check_init__(self):
        check_positive(self.n, "n")

    def kappa(self, t):
        return jnp.asarray(t) ** self.n

    def d_kappa(self, t):
        t = jnp.asarray(t)
        return self.n * t ** (self.n - 1.0)

    def kappa_inverse(self, kappa):
        """t with κ_t = kappa, for kappa in [0, 1]."""
        return jnp.asarray(kappa) ** (1.0 / self.n)

    def alpha(self, t):
        return self.kappa(t)

    def sigma(self, t):
        return 1.0 - self.kappa(t)

    def d_alpha(self, t):
        return self.d_kappa(t)

    def d_sigma(self, t):
        return -self.d_kappa(t)

    def snr_inverse(self, snr):  # κ / (1 − κ) = s
        snr = jnp.asarray(snr, jnp.result_type(float, snr))
        return self.kappa_inverse(snr / (1.0 + snr))


class LipmanScheduler(Scheduler):
    """Lipman et al. (2023) OT path: α = t, σ = 1 − (1 − σ_min) t.

    Attributes:
        sigma_min: the data end's noise, in [0, 1).
    """

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
    """Variance-preserving trigonometric (cosine) schedule: α = sin(πt/2), σ = cos(πt/2). No arguments."""

    def alpha(self, t):
        return jnp.sin(0.5 * jnp.pi * t)

    def sigma(self, t):
        return jnp.cos(0.5 * jnp.pi * t)

    def snr_inverse(self, snr):  # tan(πt/2) = s
        snr = jnp.asarray(snr, jnp.result_type(float, snr))
        return 2.0 / jnp.pi * jnp.arctan(snr)

    def d_alpha(self, t):
        return 0.5 * jnp.pi * jnp.cos(0.5 * jnp.pi * t)

    def d_sigma(self, t):
        return -0.5 * jnp.pi * jnp.sin(0.5 * jnp.pi * t)


class VPSDEScheduler(Scheduler):
    """VP-SDE (Song et al. 2021) in flow-matching time: with s = 1 − t,
    α = exp(−¼ s² (β_max − β_min) − ½ s β_min), σ = √(1 − α²).

    The source end is reached only approximately: α_0 = exp(−(β_max + β_min)/4) (≈ 0.0066 for the defaults).

    Attributes:
        beta_min: β at the data end.
        beta_max: β at the noise end.
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

    Attributes:
        sigma_min: the noise at the data end (t = 1).
        sigma_max: the noise at the source end (t = 0).
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
    "polynomial": PolynomialConvexScheduler,
    "lipman": LipmanScheduler,
    "vp_trig": VPTrigScheduler,
    "vp_sde": VPSDEScheduler,
    "ve": VEScheduler,
}


def get_scheduler(name: str, **kwargs: Any) -> Scheduler:
    """Build a scheduler by name (a shorthand: every scheduler is an object you can construct or subclass).

    Args:
        name: "cond_ot", "lipman", "polynomial", "vp_trig", "vp_sde" or "ve".
        **kwargs: the scheduler's arguments.

    Returns:
        The `Scheduler`.

    Raises:
        ValueError: an unknown name.
    """
    if name not in _SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {sorted(_SCHEDULERS)}")
    return _SCHEDULERS[name](**kwargs)
