"""Regression targets: what a model is trained to predict, read from the path's `PathSample`.

A target is a small object `target(path, ps) -> (y, weight)`: `y` [B, ...] is the regression target and `weight`
[B] (or None) a per-sample weight of the squared error. The losses (`cfm_loss`, `denoising_loss`,
`interpolant_loss`) take any target, so a new path works with all of them as long as it fills the `PathSample` and,
for noise-based targets, implements `noise_scale(t)` (the scale of its Gaussian noise at t). Write a new target by
subclassing `Target` and implementing `__call__`.

On an affine path with a standard Gaussian source the same objects are the parametrisations a model output can be
converted between (`AffinePath.convert(pred, t, x, source=ScoreTarget(), target=VelocityTarget())`): each target
says how to map its prediction to the noise prediction ε and back (`to_noise`, `from_noise`; ε is the hub).

The path's noise is `ps.z` when the path has latent noise (stochastic interpolants, Brownian bridges) and the source
sample `ps.x0` otherwise (affine paths with a standard Gaussian source, where x_t = α x1 + σ x0).
"""

from __future__ import annotations

import abc
from collections.abc import Collection

import equinox as eqx
import jax
import jax.numpy as jnp

from jaxflow._checks import broadcast_time
from jaxflow.paths.base import PathSample


def path_noise(ps: PathSample) -> jax.Array:
    """The Gaussian noise of a draw: its latent z, or the source sample x0 for affine paths."""
    return ps.x0 if ps.z is None else ps.z


def noise_scale(path, ps: PathSample) -> jax.Array:
    """σ(t) of the path's noise, broadcast against x: [B, 1, ..., 1]."""
    if not hasattr(path, "noise_scale"):
        raise TypeError(f"{type(path).__name__} has no noise_scale(t); noise-based targets need one")
    return broadcast_time(path.noise_scale(ps.t), ps.xt)


class Target(eqx.Module):
    """Abstract regression target. `needs_noise`: the target is defined through the path's noise scale.

    `to_noise(coef, pred, x)` / `from_noise(coef, eps, x)`: the map between this prediction and the noise prediction
    ε at x_t = α x1 + σ ε, with `coef = (α, σ, α̇, σ̇)` broadcast against x (affine paths, Gaussian source). A target
    without them cannot be converted.
    """

    needs_noise = False

    @abc.abstractmethod
    def __call__(self, path, ps: PathSample) -> tuple[jax.Array, jax.Array | None]: ...

    def to_noise(self, coef, pred, x):
        raise NotImplementedError(f"{type(self).__name__} defines no conversion to the noise prediction")

    def from_noise(self, coef, eps, x):
        raise NotImplementedError(f"{type(self).__name__} defines no conversion from the noise prediction")


class VelocityTarget(Target):
    """u_t = d/dt x_t (the conditional velocity; the drift b of an interpolant)."""

    def __call__(self, path, ps):
        return ps.ut, None

    def to_noise(self, coef, pred, x):
        # v = α̇ x1 + σ̇ ε and x = α x1 + σ ε give α v − α̇ x = (α σ̇ − α̇ σ) ε: no division by α, so the map is exact
        # at α = 0 (t = 0 of Cond-OT) where the ratio form (v − (α̇/α) x) / (σ̇ − α̇σ/α) is 0/0
        a, sg, da, ds = coef
        return (a * pred - da * x) / (a * ds - da * sg)

    def from_noise(self, coef, eps, x):
        a, sg, da, ds = coef
        return da * (x - sg * eps) / a + ds * eps


class NoiseTarget(Target):
    """The path's noise: ε (= x0 for affine paths) or the interpolant's z (the denoiser η)."""

    needs_noise = True

    def __call__(self, path, ps):
        return path_noise(ps), None

    def to_noise(self, coef, pred, x):
        return pred

    def from_noise(self, coef, eps, x):
        return eps


class ScoreTarget(Target):
    """∇ log p_t(x_t | x0, x1) = −noise/σ_t. `weighted=True` multiplies the squared error by σ_t² (the usual
    denoising-score-matching weighting, which keeps the loss finite as σ_t → 0).

    Attributes:
        weighted: multiply the squared error by σ_t².
    """

    needs_noise = True
    weighted: bool = eqx.field(default=True, static=True)

    def __call__(self, path, ps):
        sigma = noise_scale(path, ps)
        y = -path_noise(ps) / sigma
        if not self.weighted:
            return y, None
        return y, jnp.reshape(sigma**2, (sigma.shape[0],))

    def to_noise(self, coef, pred, x):  # E[ε | x_t] = −σ ∇ log p_t
        return -coef[1] * pred

    def from_noise(self, coef, eps, x):
        return -eps / coef[1]


class DataTarget(Target):
    """The data endpoint x1 (x1-prediction)."""

    def __call__(self, path, ps):
        return ps.x1, None

    def to_noise(self, coef, pred, x):
        a, sg = coef[0], coef[1]
        return (x - a * pred) / sg

    def from_noise(self, coef, eps, x):
        a, sg = coef[0], coef[1]
        return (x - sg * eps) / a


_TARGETS = {
    "velocity": VelocityTarget,
    "drift": VelocityTarget,
    "epsilon": NoiseTarget,
    "denoiser": NoiseTarget,
    "score": ScoreTarget,
    "x1": DataTarget,
}


def resolve_target(target: Target | str, allowed: Collection[str] | None = None) -> Target:
    """A target object, or the target a shorthand name stands for (`_TARGETS`; `allowed` narrows the names).

    Args:
        target: a `Target` or one of "velocity" (or "drift"), "epsilon" (or "denoiser"), "score", "x1".
        allowed: the names allowed here (default all).

    Returns:
        The `Target` object.

    Raises:
        ValueError: an unknown or disallowed name.
    """
    if isinstance(target, Target):
        return target
    names = _TARGETS if allowed is None else allowed
    if not isinstance(target, str) or target not in names:
        raise ValueError(f"unknown target {target!r}; pass a jaxflow.losses.Target or one of {sorted(names)}")
    return _TARGETS[target]()
