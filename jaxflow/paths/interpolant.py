"""Stochastic interpolants x_t = α(t) x1 + σ(t) x0 + γ(t) z.

Albergo, Boffi & Vanden-Eijnden (2023), "Stochastic interpolants: a unifying framework for flows and diffusions",
arXiv:2303.08797. The deterministic part I = α x1 + σ x0 is any `Scheduler` (the linear interpolant is Cond-OT,
the trigonometric one the VP-cosine schedule); the noise coefficient γ is a `Gamma` object. `ut` of the returned
`PathSample` is ∂_t I + γ̇ z, the regression target of the drift b; `z` is the latent noise, whose regression gives
the denoiser η = E[z | x_t] = −γ s (docs/conventions.md states the signs).
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp

from jaxflow._checks import broadcast_time, check_positive
from jaxflow.paths.base import PathSample, ProbabilityPath, validate_path_inputs
from jaxflow.paths.schedulers import CondOTScheduler, Scheduler, VPTrigScheduler


class Gamma(eqx.Module):
    """The noise coefficient γ(t) ≥ 0 of an interpolant, with γ(0) = γ(1) = 0 for exact endpoints.

    Subclass and implement `__call__`; `derivative` defaults to autodiff (override it with a closed form, or where
    autodiff is singular).
    """

    @abc.abstractmethod
    def __call__(self, t: jax.Array) -> jax.Array: ...

    def derivative(self, t: jax.Array) -> jax.Array:
        return jnp.vectorize(jax.grad(self.__call__))(t)

    def with_derivative(self, t):
        return self(t), self.derivative(t)


class SqrtGamma(Gamma):
    """γ = √(a t(1 − t)) (the Brownian-bridge profile); γ̇ is singular at the ends and set to 0 there.

    Attributes:
        a: the scale a > 0.
    """

    a: float = 1.0

    def __check_init__(self):
        check_positive(self.a, "a")

    def __call__(self, t):
        return jnp.sqrt(jnp.maximum(self.a * t * (1.0 - t), 0.0))

    def derivative(self, t):
        v = self.a * t * (1.0 - t)
        safe = jnp.where(v > 0, jnp.sqrt(jnp.where(v > 0, v, 1.0)), 1.0)
        return jnp.where(v > 0, self.a * (1.0 - 2.0 * t) / (2.0 * safe), 0.0)


class QuadraticGamma(Gamma):
    """γ = t(1 − t)."""

    def __call__(self, t):
        return t * (1.0 - t)

    def derivative(self, t):
        return 1.0 - 2.0 * t


class Sin2Gamma(Gamma):
    """γ = sin²(πt)."""

    def __call__(self, t):
        return jnp.sin(jnp.pi * t) ** 2

    def derivative(self, t):
        return jnp.pi * jnp.sin(2.0 * jnp.pi * t)


class ZeroGamma(Gamma):
    """γ = 0: a deterministic interpolant (no score or denoiser can be learnt from it)."""

    def __call__(self, t):
        return jnp.zeros_like(t)

    def derivative(self, t):
        return jnp.zeros_like(t)


_GAMMAS = {"sqrt": SqrtGamma, "quadratic": QuadraticGamma, "sin2": Sin2Gamma, "zero": ZeroGamma}
_INTERPOLANTS = {"linear": CondOTScheduler, "trig": VPTrigScheduler}


def resolve_gamma(gamma: Gamma | str, a: float | None = None) -> Gamma:
    """A `Gamma` from an object or a shorthand in `_GAMMAS` (`a` scales `sqrt`).

    Args:
        gamma: a `Gamma` or one of "sqrt", "sin2", "quadratic", "zero".
        a: the scale of "sqrt" (only with that name).

    Returns:
        The `Gamma` object.

    Raises:
        ValueError: an unknown name, or `a` given with an object or another name.
    """
    if isinstance(gamma, Gamma):
        if a is not None:
            raise ValueError("`a` only applies to the 'sqrt' shorthand; set it on the Gamma object instead")
        return gamma
    if not isinstance(gamma, str) or gamma not in _GAMMAS:
        raise ValueError(f"unknown gamma {gamma!r}; pass a jaxflow.paths.Gamma or one of {sorted(_GAMMAS)}")
    if gamma == "sqrt":
        return SqrtGamma(1.0 if a is None else a)
    if a is not None:
        raise ValueError(f"`a` only applies to the 'sqrt' shorthand, got gamma={gamma!r}")
    return _GAMMAS[gamma]()


def resolve_interpolant(interpolant: Scheduler | str) -> Scheduler:
    if isinstance(interpolant, Scheduler):
        return interpolant
    if not isinstance(interpolant, str) or interpolant not in _INTERPOLANTS:
        raise ValueError(
            f"unknown interpolant {interpolant!r}; pass a jaxflow.paths.Scheduler or one of {sorted(_INTERPOLANTS)}"
        )
    return _INTERPOLANTS[interpolant]()


def gamma_and_derivative(kind: Gamma | str, t: float | jax.Array, a: float = 1.0) -> tuple[jax.Array, jax.Array]:
    """γ(t) and γ̇(t) of a `Gamma` or a shorthand (unknown names raise).

    Args:
        kind: a `Gamma` or one of "sqrt", "sin2", "quadratic", "zero".
        t: times in [0, 1], any shape.
        a: the scale of the "sqrt" shorthand (ignored otherwise).

    Returns:
        (γ(t), γ̇(t)), each shaped like t.

    Raises:
        ValueError: an unknown name.
    """
    return resolve_gamma(kind, a if kind == "sqrt" else None).with_derivative(t)


class StochasticInterpolant(ProbabilityPath):
    """The stochastic interpolant x_t = α(t) x1 + σ(t) x0 + γ(t) z, z ~ N(0, I) (Albergo, Boffi & Vanden-Eijnden
    2023, arXiv:2303.08797). `sample(key, x0, x1, t)` draws z with `key`; the path sample carries it for the
    drift, score and denoiser targets of `interpolant_loss`.

    Args:
        interpolant: a `Scheduler` for (α, σ), or "linear" / "trig".
        gamma: a `Gamma` object (`SqrtGamma(a)`, `Sin2Gamma()`, `QuadraticGamma()`, `ZeroGamma()`, your own) or its
            name ("sqrt", "sin2", "quadratic", "zero").
        a: the scale of the "sqrt" shorthand (γ = √(a t(1 − t))).

    Raises:
        ValueError: an unknown interpolant or gamma name.
    """

    interpolant: Scheduler
    gamma: Gamma

    def __init__(self, interpolant: Scheduler | str = "linear", gamma: Gamma | str = "sqrt", a: float | None = None):
        self.interpolant = resolve_interpolant(interpolant)
        self.gamma = resolve_gamma(gamma, a)

    def gammas(self, t):
        """(γ(t), γ̇(t))."""
        return self.gamma.with_derivative(t)

    def noise_scale(self, t):
        """The scale of the path's Gaussian noise at t: γ(t)."""
        return self.gamma(t)

    def score_from_denoiser(self, eta: jax.Array, t: jax.Array) -> jax.Array:
        """s = −η/γ for η = E[z | x_t] (singular where γ = 0); eta [B, ...], t [] or [B]."""
        return -eta / broadcast_time(self.gamma(jnp.asarray(t, eta.dtype)), eta)

    def denoiser_from_score(self, score: jax.Array, t: jax.Array) -> jax.Array:
        """η = −γ s."""
        return -broadcast_time(self.gamma(jnp.asarray(t, score.dtype)), score) * score

    def sample(self, key, x0, x1, t, antithetic: bool = False) -> PathSample:
        """Draw x_t. With `antithetic=True` the batch is doubled: rows [0, B) use +z, rows [B, 2B) use −z (with x0,
        x1 and t repeated), an ordinary `PathSample` of batch 2B whose mean over rows is the antithetic average."""
        x0, x1, t = validate_path_inputs(x0, x1, t)
        t = jnp.broadcast_to(jnp.asarray(t, x0.dtype), x0.shape[:1])
        z = jax.random.normal(key, x0.shape, x0.dtype)
        if antithetic:
            x0, x1, t = (jnp.concatenate([a, a]) for a in (x0, x1, t))
            z = jnp.concatenate([z, -z])
        tb = broadcast_time(t, x0)
        s = self.interpolant
        g, dg = self.gammas(tb)
        xt = s.alpha(tb) * x1 + s.sigma(tb) * x0 + g * z
        ut = s.d_alpha(tb) * x1 + s.d_sigma(tb) * x0 + dg * z
        return PathSample(t=t, x0=x0, x1=x1, xt=xt, ut=ut, z=z)
