"""Denoising score matching and stochastic-interpolant objectives.

Both follow the loss contract `loss(params, batch, key) -> (scalar, aux)` with batch {"x1": data [B, ...],
"x0": source [B, ...] (optional: drawn N(0, I) when absent), "labels": [B] (optional)} and a model boundary
`model(params, t, x, cond)`. The regression target is a `Target` object read from the path's `PathSample`
(`jaxflow.paths.targets`); names are shorthands.

`denoising_loss(model, path, target)`: the squared error to the target, averaged over the event dimensions (and
weighted by σ_t² for the score, the usual denoising-score-matching weighting), for any path with a `noise_scale`:
  epsilon: ‖ε̂ − ε‖²   x1: ‖x̂1 − x1‖²   velocity: ‖v̂ − u_t‖²   score: σ_t²‖ŝ + ε/σ_t‖² = ‖σ_t ŝ + ε‖²
  (Ho et al. 2020; Song et al. 2021; Vincent 2011).
`interpolant_loss(model, interpolant, target)` for x_t = α x1 + σ x0 + γ z (Albergo, Boffi & Vanden-Eijnden 2023,
arXiv:2303.08797), in the paper's form ½|p̂|² − y·p̂ summed over the event dimensions, with y the target:
  drift: y = ∂_t I + γ̇ z     score: y = −z/γ     denoiser: y = z
  minimised by b = E[∂_t I + γ̇ z | x_t], s = −E[z | x_t]/γ and η = E[z | x_t] = −γ s (docs/conventions.md).
  `antithetic=True` evaluates the pair x_t^± = I ± γ z (a PathSample of batch 2B), which cancels the leading
  variance of the γ⁻¹ z·s term near the endpoints.
Conditional training: `conditional=True` passes labels as `cond`; `label_dropout=p` replaces a label by
`null_label` with probability p (classifier-free guidance).
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp

from jaxflow.couplings.base import Coupling
from jaxflow.losses.cfm import regression_loss
from jaxflow.losses.time_samplers import TimeSampler, TruncatedUniformTime
from jaxflow.paths.base import ProbabilityPath
from jaxflow.paths.interpolant import ZeroGamma
from jaxflow.paths.targets import Target, resolve_target

_DENOISING_TARGETS = ("epsilon", "score", "x1", "velocity")
_INTERPOLANT_TARGETS = ("drift", "score", "denoiser")


def denoising_loss(
    model: Callable,
    path: ProbabilityPath,
    parametrisation: Target | str = "epsilon",
    *,
    time_sampler: TimeSampler | None = None,
    coupling: Coupling | None = None,
    conditional: bool = False,
    label_dropout: float = 0.0,
    null_label: int | None = None,
) -> Callable:
    """Denoising objective: the model regresses one parametrisation of the path's noise or data (Ho et al. 2020;
    Song et al. 2021), mean squared error over the event dimensions, then over the batch.

    Args:
        model: the model boundary `f(params, t, x, cond) -> [B, ...]`.
        path: the probability path (its `noise_scale(t)` is needed by the noise and score targets).
        parametrisation: a `Target` object, or "epsilon", "score", "x1" or "velocity".
        time_sampler: draws t; default `TruncatedUniformTime()` (keeps away from the singular end).
        coupling: the pairing of x0 and x1 (default independent).
        conditional: pass batch["labels"] to the model as `cond`.
        label_dropout: probability of dropping a label (classifier-free guidance).
        null_label: the label meaning "no condition".

    Returns:
        A `RegressionLoss`, called as `loss(params, batch, key) -> (scalar, aux)`.

    Raises:
        ValueError: an unknown parametrisation, a noise target on a path without `noise_scale`.
    """
    target = resolve_target(parametrisation, {k: None for k in _DENOISING_TARGETS})
    if target.needs_noise and not hasattr(path, "noise_scale"):
        raise ValueError(f"the {type(target).__name__} needs a path with noise_scale(t), got {type(path).__name__}")
    return regression_loss(
        model,
        path,
        target,
        coupling=coupling,
        time_sampler=TruncatedUniformTime() if time_sampler is None else time_sampler,
        conditional=conditional,
        label_dropout=label_dropout,
        null_label=null_label,
    )


def _interpolant_form(pred, y, weight):
    del weight  # the paper's objective carries no time weighting
    return jnp.sum((0.5 * pred**2 - y * pred).reshape(pred.shape[0], -1), axis=1)


def interpolant_loss(
    model: Callable,
    interpolant: ProbabilityPath,
    target: Target | str = "drift",
    *,
    antithetic: bool = False,
    time_sampler: TimeSampler | None = None,
    coupling: Coupling | None = None,
    conditional: bool = False,
    label_dropout: float = 0.0,
    null_label: int | None = None,
) -> Callable:
    """The stochastic-interpolant objective (Albergo, Boffi & Vanden-Eijnden 2023) E[½|f|² − f·y] for the drift,
    score or denoiser, summed over the event dimensions and averaged over the batch.

    Args:
        model: the model boundary `f(params, t, x, cond) -> [B, ...]`.
        interpolant: the path to sample x_t from (a `StochasticInterpolant`, or any `ProbabilityPath` that carries
            the latent z the target reads).
        target: a `Target` object, or "drift", "score" or "denoiser". The score loss divides by γ: use a truncated
            time sampler (the default).
        antithetic: evaluate ±z and average (the paper's variance reduction).
        time_sampler: draws t; default truncated uniform.
        coupling: the pairing of x0 and x1 (default independent).
        conditional: pass batch["labels"] to the model as `cond`.
        label_dropout: probability of dropping a label.
        null_label: the label meaning "no condition".

    Returns:
        A loss `loss(params, batch, key) -> (scalar, aux)`.

    Raises:
        ValueError: an unknown target, an interpolant without `sample`.
    """
    target = resolve_target(target, {k: None for k in _INTERPOLANT_TARGETS})
    if not hasattr(interpolant, "sample"):
        raise ValueError(f"interpolant_loss needs a probability path, got {type(interpolant).__name__}")
    if target.needs_noise and isinstance(getattr(interpolant, "gamma", None), ZeroGamma):
        raise ValueError(f"the {type(target).__name__} needs γ > 0; the interpolant has γ = 0")
    return regression_loss(
        model,
        interpolant,
        target,
        coupling=coupling,
        time_sampler=TruncatedUniformTime() if time_sampler is None else time_sampler,
        conditional=conditional,
        label_dropout=label_dropout,
        null_label=null_label,
        per_sample=_interpolant_form,
        path_kwargs={"antithetic": True} if antithetic else None,
    )
