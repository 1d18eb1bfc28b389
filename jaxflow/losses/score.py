"""Denoising score matching and stochastic-interpolant objectives (PAPERS.md §1, §3).

Both follow the loss contract `loss(params, batch, key) -> (scalar, aux)` with batch {"x1": data [B, ...],
"x0": source [B, ...] (optional: drawn N(0, I) when absent), "labels": [B] (optional)} and a model boundary
`model(params, t, x, cond)`.

`denoising_loss(model, path, parametrisation)` for an affine path x_t = α x1 + σ x0 (VP, VE, Cond-OT, ...):
  epsilon:  ‖ε̂ − x0‖²                  x1: ‖x̂1 − x1‖²                velocity: ‖v̂ − (α̇ x1 + σ̇ x0)‖²
  score:    ‖σ ŝ + x0‖²  (denoising score matching with the usual σ² weighting; the target −x0/σ is ∇ log p(x_t|x1))
`interpolant_loss(model, interpolant, target)` for x_t = I(t, x0, x1) + γ(t) z:
  drift:    ½|b̂|² − (∂_t I + γ̇ z)·b̂        score: ½|ŝ|² + γ⁻¹ z·ŝ        denoiser: ½|η̂|² − z·η̂
  minimised by b = E[∂_t I + γ̇ z | x_t], s = −E[z | x_t]/γ and η = E[z | x_t] = −γ s. (PAPERS.md §1 writes the
  denoiser loss with + z·η next to η = −γ s; both cannot hold: we keep η = −γ s, so the sign is −).
  `antithetic=True` averages the loss over x_t^± = I ± γ z, which cancels the γ⁻¹ z·s term's leading variance
  near the endpoints.
Conditional training: `conditional=True` passes labels as `cond`; `label_dropout=p` replaces a label by
`null_label` with probability p (classifier-free guidance).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxflow._checks import broadcast_time, check_choice
from jaxflow.couplings.base import Coupling, IndependentCoupling
from jaxflow.losses.time_samplers import TimeSampler, TruncatedUniformTime
from jaxflow.paths.affine import AffinePath
from jaxflow.paths.interpolant import StochasticInterpolant
from jaxflow.sampling.guidance import drop_labels

DENOISING_TARGETS = ("epsilon", "score", "x1", "velocity")
INTERPOLANT_TARGETS = ("drift", "score", "denoiser")


def _per_sample(a):
    return jnp.sum(a.reshape(a.shape[0], -1), axis=1)


def _prepare(batch, key, coupling, conditional, label_dropout, null_label):
    if "x1" not in batch:
        raise ValueError(f"batch must hold 'x1', got keys {sorted(batch)}")
    k_noise, k_pair, k_drop = jax.random.split(key, 3)
    x1 = batch["x1"]
    x0 = batch["x0"] if "x0" in batch else jax.random.normal(k_noise, x1.shape, x1.dtype)
    pairing = coupling(k_pair, x0, x1, batch.get("labels"))
    cond = None
    if conditional:
        if pairing.labels is None:
            raise ValueError("conditional training needs 'labels' in the batch")
        cond = pairing.labels
        if label_dropout > 0:
            if null_label is None:
                raise ValueError("label_dropout > 0 needs the null_label index")
            cond = drop_labels(k_drop, cond, label_dropout, null_label)
    return pairing, cond


def denoising_loss(
    model: Callable,
    path: AffinePath,
    parametrisation: str = "epsilon",
    *,
    time_sampler: TimeSampler | None = None,
    coupling: Coupling | None = None,
    conditional: bool = False,
    label_dropout: float = 0.0,
    null_label: int | None = None,
) -> Callable:
    """Denoising objective of an affine path in one of `DENOISING_TARGETS` (mean over event dims and batch)."""
    check_choice(parametrisation, "parametrisation", DENOISING_TARGETS)
    if not isinstance(path, AffinePath):
        raise ValueError(f"denoising_loss needs an AffinePath, got {type(path).__name__}")
    time_sampler = TruncatedUniformTime() if time_sampler is None else time_sampler
    coupling = IndependentCoupling() if coupling is None else coupling
    s = path.scheduler

    def loss(params, batch, key):
        k_prep, k_t = jax.random.split(key)
        pairing, cond = _prepare(batch, k_prep, coupling, conditional, label_dropout, null_label)
        x0, x1 = pairing.x0, pairing.x1
        n = x1.shape[0]
        t = time_sampler(k_t, n).astype(x1.dtype)
        tb = broadcast_time(t, x1)
        xt = s.alpha(tb) * x1 + s.sigma(tb) * x0
        pred = model(params, t, xt, cond)
        if pred.shape != x1.shape:
            raise ValueError(f"model returned shape {pred.shape}, expected {x1.shape}")
        if parametrisation == "epsilon":
            err = pred - x0
        elif parametrisation == "x1":
            err = pred - x1
        elif parametrisation == "velocity":
            err = pred - (s.d_alpha(tb) * x1 + s.d_sigma(tb) * x0)
        else:
            err = s.sigma(tb) * pred + x0
        per = _per_sample(err**2) / (err.size // n)
        value = jnp.mean(pairing.weights * per)
        return value, {"loss": value}

    return loss


def interpolant_loss(
    model: Callable,
    interpolant: StochasticInterpolant,
    target: str = "drift",
    *,
    antithetic: bool = False,
    time_sampler: TimeSampler | None = None,
    coupling: Coupling | None = None,
    conditional: bool = False,
    label_dropout: float = 0.0,
    null_label: int | None = None,
) -> Callable:
    """The stochastic-interpolant objective for `target` in `INTERPOLANT_TARGETS` (sum over event dims, mean over
    the batch). The score loss divides by γ: use a truncated time sampler (the default for every target)."""
    check_choice(target, "interpolant target", INTERPOLANT_TARGETS)
    if not isinstance(interpolant, StochasticInterpolant):
        raise ValueError(f"interpolant_loss needs a StochasticInterpolant, got {type(interpolant).__name__}")
    if target != "drift" and interpolant.gamma == "zero":
        raise ValueError(f"the {target} loss needs γ > 0; the interpolant has gamma='zero'")
    time_sampler = TruncatedUniformTime() if time_sampler is None else time_sampler
    coupling = IndependentCoupling() if coupling is None else coupling

    def one_side(params, t, xt, ut, z, gamma, cond):
        pred = model(params, t, xt, cond)
        if pred.shape != xt.shape:
            raise ValueError(f"model returned shape {pred.shape}, expected {xt.shape}")
        if target == "drift":
            return _per_sample(0.5 * pred**2 - ut * pred)
        if target == "score":
            return _per_sample(0.5 * pred**2 + z * pred / gamma)
        return _per_sample(0.5 * pred**2 - z * pred)

    def loss(params, batch, key):
        k_prep, k_t, k_path = jax.random.split(key, 3)
        pairing, cond = _prepare(batch, k_prep, coupling, conditional, label_dropout, null_label)
        n = pairing.x1.shape[0]
        t = time_sampler(k_t, n).astype(pairing.x1.dtype)
        ps = interpolant.sample(k_path, pairing.x0, pairing.x1, t, antithetic=antithetic)
        gamma = broadcast_time(interpolant.gammas(t)[0], pairing.x1)
        if antithetic:
            per = 0.5 * sum(one_side(params, t, ps.xt[i], ps.ut[i], ps.z[i], gamma, cond) for i in (0, 1))
        else:
            per = one_side(params, t, ps.xt, ps.ut, ps.z, gamma, cond)
        value = jnp.mean(pairing.weights * per)
        return value, {"loss": value}

    return loss
