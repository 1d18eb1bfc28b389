"""Conditional flow matching, plain and weighted, and the regression loss every objective shares.

Lipman et al. (2023), "Flow matching for generative modeling", arXiv:2210.02747; Tong et al. (2024), "Improving and
generalizing flow-based generative models with minibatch optimal transport", arXiv:2302.00482.

A loss is a module (`jaxflow.losses.base.Objective`) built from a model, a path, a coupling, a time sampler and a
regression `Target`, with the contract `loss(params, batch, key) -> (scalar, aux)` with batch = {"x1": [B, ...],
"x0": [B, ...] (optional: N(0, I) when absent), "labels": [B] (optional)}.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from jaxflow.couplings.base import Coupling, IndependentCoupling
from jaxflow.data.labels import drop_labels
from jaxflow.losses.base import Objective
from jaxflow.losses.time_samplers import TimeSampler, UniformTime
from jaxflow.paths.affine import cond_ot_path
from jaxflow.paths.base import ProbabilityPath
from jaxflow.paths.targets import Target, VelocityTarget, resolve_target

Velocity = Callable[..., jax.Array]


def squared_error(pred: jax.Array, y: jax.Array, weight: jax.Array | None) -> jax.Array:
    """Per-sample ‖pred − y‖² averaged over the event dimensions, times `weight` [B] when given: [B].

    Args:
        pred: the model's output [B, ...].
        y: the regression target [B, ...].
        weight: per-sample weights [B], or None.

    Returns:
        The per-sample error [B] (mean over the event dimensions, times the weight).
    """
    err = jnp.mean(((pred - y) ** 2).reshape(pred.shape[0], -1), axis=1)
    return err if weight is None else weight * err


def _check_batch(batch) -> None:
    if not isinstance(batch, dict) or "x1" not in batch:
        got = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(f"batch must be a dict holding 'x1' (and optionally 'x0', 'labels'), got {got}")
    if batch["x1"].shape[0] == 0:
        raise ValueError("batch['x1'] is empty (batch size 0)")
    for name in ("x0", "x1"):
        if name in batch and not jnp.issubdtype(jnp.asarray(batch[name]).dtype, jnp.floating):
            raise ValueError(
                f"batch['{name}'] must be floating point (the path interpolates it), got dtype {batch[name].dtype}"
            )


def _repeat(a, k):
    return a if a is None or k == 1 else jnp.concatenate([a] * k)


class RegressionLoss(Objective):
    """E_t Σ_i w_i ℓ(model(t, x_t^i), y^i) / B with (x_t, y) from `path.sample` and `target`, pairs from `coupling`.

    `per_sample(pred, y, target_weight) -> [B]` is the per-sample loss (default: squared error averaged over the
    event dimensions); w_i are the coupling's weights (ones except for W-CFM). A path may return k·B rows for B pairs
    (the antithetic interpolant returns 2B): weights and labels are then repeated.

    Args:
        model: the model boundary `model(params, t, x, cond) -> [B, ...]` (t [B], x [B, ...]).
        path: the probability path.
        target: the regression target (a `Target`: velocity, noise, score, data or your own).
        coupling: how x0 and x1 are paired (default independent).
        time_sampler: draws t (default U[0, 1]).
        conditional: pass the pairing's labels to the model as `cond`.
        label_dropout: probability in [0, 1] of replacing a label by `null_label`.
        null_label: the label meaning "no condition" (needed when label_dropout > 0).
        per_sample: `per_sample(pred, y, target_weight) -> [B]`, the per-sample loss.
        path_kwargs: extra keyword arguments for `path.sample`.

    Raises:
        ValueError: label_dropout outside [0, 1], or > 0 without a null label; at call time a batch without "x1",
            conditional training without labels, or a model output of the wrong shape.
    """

    model: Velocity = eqx.field(static=True)
    path: ProbabilityPath
    target: Target
    coupling: Coupling
    time_sampler: TimeSampler
    conditional: bool = eqx.field(static=True)
    label_dropout: float = eqx.field(static=True)
    null_label: int | None = eqx.field(static=True)
    per_sample: Callable = eqx.field(static=True)
    path_kwargs: dict

    def __init__(
        self,
        model: Velocity,
        path: ProbabilityPath,
        target: Target,
        *,
        coupling: Coupling | None = None,
        time_sampler: TimeSampler | None = None,
        conditional: bool = False,
        label_dropout: float = 0.0,
        null_label: int | None = None,
        per_sample: Callable = squared_error,
        path_kwargs: dict | None = None,
    ):
        if not 0.0 <= label_dropout <= 1.0:
            raise ValueError(f"label_dropout must lie in [0, 1], got {label_dropout}")
        if label_dropout > 0 and null_label is None:
            raise ValueError("label_dropout > 0 needs the null_label index")
        self.model, self.path, self.target = model, path, target
        self.coupling = IndependentCoupling() if coupling is None else coupling
        self.time_sampler = UniformTime() if time_sampler is None else time_sampler
        self.conditional, self.label_dropout, self.null_label = conditional, label_dropout, null_label
        self.per_sample = per_sample
        self.path_kwargs = dict(path_kwargs or {})

    def __call__(self, params, batch, key):
        _check_batch(batch)
        k_pair, k_t, k_path = jax.random.split(key, 3)
        x1 = batch["x1"]
        # without 'x0' the source is N(0, I), drawn from a key of its own (batches with 'x0' are unaffected)
        x0 = batch["x0"] if "x0" in batch else jax.random.normal(jax.random.fold_in(key, 7), x1.shape, x1.dtype)
        pairing = self.coupling(k_pair, x0, x1, batch.get("labels"))
        n = pairing.x0.shape[0]
        t = self.time_sampler(k_t, n).astype(pairing.x0.dtype)
        ps = self.path.sample(k_path, pairing.x0, pairing.x1, t, **self.path_kwargs)
        k = ps.xt.shape[0] // n
        cond = pairing.labels if self.conditional else None
        if self.conditional and cond is None:
            raise ValueError("conditional training needs 'labels' in the batch")
        if self.conditional and self.label_dropout > 0:
            cond = drop_labels(jax.random.fold_in(k_pair, 1), cond, self.label_dropout, self.null_label)
        pred = self.model(params, ps.t, ps.xt, _repeat(cond, k))
        if pred.shape != ps.xt.shape:
            raise ValueError(f"the model returned shape {pred.shape}, expected {ps.xt.shape}")
        y, weight = self.target(self.path, ps)
        per = self.per_sample(pred, y, weight)
        value = jnp.mean(_repeat(pairing.weights, k) * per)
        return value, {"loss": value, "unweighted_loss": jnp.mean(per)}


regression_loss = RegressionLoss  # the builder's name, kept: it is the module itself


def cfm_loss(
    velocity: Velocity,
    path: ProbabilityPath | None = None,
    coupling: Coupling | None = None,
    time_sampler: TimeSampler | None = None,
    *,
    target: Target | str = "velocity",
    conditional: bool = False,
    label_dropout: float = 0.0,
    null_label: int | None = None,
) -> RegressionLoss:
    """Build the (weighted) conditional flow-matching objective E_t Σ_i w_i ‖v_θ(t, x_t^i) − u_t^i‖² / B
    (Lipman et al. 2023; Tong et al. 2024 for the couplings).

    The squared error is averaged over the event dimensions (as the reference PyTorch implementation does), then
    weighted by the coupling's weights (all ones except for W-CFM) and averaged over the batch.

    Args:
        velocity: the model boundary `v(params, t, x, cond) -> [B, ...]` (t [B], x [B, ...]).
        path: the probability path (a `ProbabilityPath`, e.g. `AffinePath(scheduler)`); default Cond-OT
            (x_t = (1 − t)x0 + t·x1).
        coupling: how x0 and x1 are paired (a `Coupling`: `IndependentCoupling`, `ExactOTCoupling`,
            `SinkhornCoupling`, `GibbsWeightedCoupling`, ...); default independent pairs.
        time_sampler: draws t (a `TimeSampler`); default U[0, 1].
        target: the regression target, a `Target` object read from the `PathSample` (`VelocityTarget`,
            `NoiseTarget`, `ScoreTarget`, `DataTarget`) or its short name; default the path's velocity u_t.
        conditional: pass the pairing's labels (batch["labels"], [B] int) to the velocity as `cond`.
        label_dropout: probability of replacing each label by `null_label` (classifier-free guidance,
            Ho & Salimans 2022), in [0, 1].
        null_label: the label that means "no condition" (needed when `label_dropout` > 0).

    Returns:
        A `RegressionLoss`, called as `loss(params, batch, key) -> (scalar, aux)` with batch {"x1": [B, ...],
        optionally "x0" (else drawn from N(0, I)) and "labels"}.

    Raises:
        ValueError: label dropout without a null label, a probability outside [0, 1], an unknown target name;
            at call time, a batch without "x1", empty or non-finite data.

    Example:
        >>> import jax, jax.numpy as jnp, jaxflow as jf
        >>> loss = jf.losses.cfm_loss(lambda params, t, x, cond: params * x)
        >>> batch = {"x0": jnp.zeros((8, 2)), "x1": jnp.ones((8, 2))}  # u_t = x1 − x0 = 1, x_t = t
        >>> value, aux = loss(0.0, batch, jax.random.key(0))  # the zero model's error is ‖u_t‖²/d = 1
        >>> print(round(float(value), 4))
        1.0
    """
    return regression_loss(
        velocity,
        cond_ot_path() if path is None else path,
        resolve_target(target) if not isinstance(target, Target) else target,
        coupling=coupling,
        time_sampler=time_sampler,
        conditional=conditional,
        label_dropout=label_dropout,
        null_label=null_label,
    )


__all__ = ["RegressionLoss", "VelocityTarget", "cfm_loss", "regression_loss", "squared_error"]
