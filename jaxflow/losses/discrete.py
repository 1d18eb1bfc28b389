"""Objectives of discrete flow matching: the generalized KL of mixture paths, and cross-entropy (Gat et al. 2024,
arXiv:2407.15595; docs/discrete_flows.md).

The model boundary is `logits(params, t, x_tokens, cond) -> [B, L, V]`: for each token, the logits of the posterior
p_{1|t}(x1^i | x_t). Both losses are minimised by the true posterior. The generalized KL weighs each token by the
path's jump coefficient κ̇/(1 − κ) and is the one the paper derives as an ELBO-type bound for mixture paths; the
cross-entropy E −log p_{1|t}(x1 | x_t) is the simpler objective most masked-diffusion codes train with.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from jaxflow._checks import check_probability
from jaxflow.data.labels import drop_labels
from jaxflow.losses.base import Objective
from jaxflow.losses.time_samplers import TimeSampler, UniformTime
from jaxflow.paths.discrete import DiscreteSource, MixtureDiscretePath, check_tokens


def generalized_kl(logits: jax.Array, x1: jax.Array, xt: jax.Array, jump_coefficient: float | jax.Array) -> jax.Array:
    """Per-token generalized KL: −κ̇/(1−κ) [p_{1|t}(x_t) − δ(x1 = x_t) + (1 − δ(x1 = x_t)) log p_{1|t}(x1)].

    logits [..., V]; x1, xt [...] integer; jump_coefficient broadcastable to x1's shape. Non-negative up to
    round-off when the posterior puts mass 1 on x1 (its minimum is 0 there).

    Campbell et al. (2024) and Gat et al. (2024), "Discrete flow matching", arXiv:2407.15595.

    Args:
        logits: the model's posterior logits [..., V].
        x1: the data tokens [...] (integer).
        xt: the path tokens [...] (integer).
        jump_coefficient: κ̇/(1 − κ), broadcastable to x1's shape.

    Returns:
        The per-token loss, shaped like x1.
    """
    log_p = jax.nn.log_softmax(logits, axis=-1)
    log_p_x1 = jnp.take_along_axis(log_p, x1[..., None], axis=-1)[..., 0]
    p_xt = jnp.exp(jnp.take_along_axis(log_p, xt[..., None], axis=-1)[..., 0])
    same = (x1 == xt).astype(log_p.dtype)
    return -jump_coefficient * (p_xt - same + (1.0 - same) * log_p_x1)


def token_cross_entropy(
    logits: jax.Array, x1: jax.Array, xt: jax.Array | None = None, jump_coefficient: float | jax.Array | None = None
) -> jax.Array:
    """Per-token −log p_{1|t}(x1 | x_t) (xt and the jump coefficient are unused: same signature as generalized_kl).

    Args:
        logits: the model's posterior logits [..., V].
        x1: the data tokens [...] (integer).
        xt: unused.
        jump_coefficient: unused.

    Returns:
        The per-token loss, shaped like x1.
    """
    del xt, jump_coefficient
    log_p = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(log_p, x1[..., None], axis=-1)[..., 0]


class DiscreteFlowLoss(Objective):
    """Mean over tokens and batch of `per_token(logits, x1, xt, jump_coefficient)` on mixture-path draws.

    batch: {"x1": int [B, L, ...]} (optionally "x0", the source tokens, and "labels"); without "x0" the source is
    drawn from `source`. t ~ `time_sampler`, scaled into [0, t_max] (the jump coefficient is infinite at t = 1).

    Args:
        model: the logits boundary `logits(params, t, x, cond) -> [B, L, V]`.
        path: the `MixtureDiscretePath`.
        source: the `DiscreteSource` (uniform or mask).
        per_token: the per-token objective (`generalized_kl` or `token_cross_entropy`).
        time_sampler: draws t (default U[0, 1]).
        t_max: the largest t (the jump coefficient is infinite at 1).
        conditional: pass batch["labels"] to the model as `cond`.
        label_dropout: probability of dropping a label.
        null_label: the label meaning "no condition".

    Raises:
        TypeError: a path that is not a `MixtureDiscretePath`.
    """

    model: Callable = eqx.field(static=True)
    path: MixtureDiscretePath
    source: DiscreteSource
    time_sampler: TimeSampler
    per_token: Callable = eqx.field(static=True)
    t_max: float = eqx.field(static=True)
    conditional: bool = eqx.field(static=True)
    label_dropout: float = eqx.field(static=True)
    null_label: int | None = eqx.field(static=True)

    def __init__(
        self,
        model: Callable,
        path: MixtureDiscretePath,
        source: DiscreteSource,
        *,
        per_token: Callable = generalized_kl,
        time_sampler: TimeSampler | None = None,
        t_max: float = 1.0 - 1e-3,
        conditional: bool = False,
        label_dropout: float = 0.0,
        null_label: int | None = None,
    ):
        if not isinstance(path, MixtureDiscretePath):
            raise TypeError(f"path must be a MixtureDiscretePath, got {type(path).__name__}")
        if not isinstance(source, DiscreteSource):
            raise TypeError(f"source must be a DiscreteSource (UniformSource, MaskSource), got {type(source).__name__}")
        if not 0.0 < t_max < 1.0:
            raise ValueError(f"t_max must lie in (0, 1): the jump coefficient is infinite at t = 1, got {t_max}")
        check_probability(label_dropout, "label_dropout")
        if label_dropout > 0 and null_label is None:
            raise ValueError("label_dropout > 0 needs the null_label index")
        self.model, self.path, self.source, self.per_token = model, path, source, per_token
        self.time_sampler = UniformTime() if time_sampler is None else time_sampler
        self.t_max, self.conditional = float(t_max), conditional
        self.label_dropout, self.null_label = label_dropout, null_label

    def __call__(self, params, batch, key):
        if not isinstance(batch, dict) or "x1" not in batch:
            raise ValueError(f"batch must be a dict holding 'x1' (integer tokens), got {type(batch).__name__}")
        vocab = self.source.vocab_size
        x1 = check_tokens(batch["x1"], "batch['x1']", vocab)
        if x1.ndim < 2:
            raise ValueError(f"batch['x1'] must be [B, L, ...] tokens, got shape {x1.shape}")
        k_src, k_t, k_path, k_drop = jax.random.split(key, 4)
        x0 = check_tokens(batch["x0"], "batch['x0']", vocab) if "x0" in batch else self.source.sample(k_src, x1.shape)
        t = self.t_max * self.time_sampler(k_t, x1.shape[0])
        ps = self.path.sample(k_path, x0, x1, t)
        cond = batch.get("labels") if self.conditional else None
        if self.conditional and cond is None:
            raise ValueError("conditional training needs 'labels' in the batch")
        if self.conditional and self.label_dropout > 0:
            cond = drop_labels(k_drop, cond, self.label_dropout, self.null_label)
        logits = self.model(params, ps.t, ps.xt, cond)
        if logits.shape != (*x1.shape, vocab):
            raise ValueError(f"the model returned logits of shape {logits.shape}, expected {(*x1.shape, vocab)}")
        jump = self.path.jump_coefficient(ps.t).reshape((-1,) + (1,) * (x1.ndim - 1))
        per = self.per_token(logits, x1, ps.xt, jump)
        value = jnp.mean(per)
        ce = jnp.mean(token_cross_entropy(logits, x1))
        return value, {"loss": value, "cross_entropy": ce}


def mixture_kl_loss(
    logits_model: Callable, path: MixtureDiscretePath, source: DiscreteSource, **kwargs: Any
) -> DiscreteFlowLoss:
    """The generalized-KL objective of a mixture path (Gat et al. 2024).

    Args:
        logits_model: `logits(params, t, x_tokens, cond) -> [B, L, V]`, the posterior's logits per token.
        path: the `MixtureDiscretePath` (its scheduler is κ).
        source: the `DiscreteSource` the x0 tokens come from when the batch has none.
        **kwargs: `time_sampler`, `t_max`, `conditional`, `label_dropout`, `null_label` of `DiscreteFlowLoss`.

    Returns:
        `DiscreteFlowLoss` with `per_token=generalized_kl`, called as `loss(params, {"x1": tokens}, key)`.
    """
    return DiscreteFlowLoss(logits_model, path, source, per_token=generalized_kl, **kwargs)


def discrete_cross_entropy_loss(
    logits_model: Callable, path: MixtureDiscretePath, source: DiscreteSource, **kwargs: Any
) -> DiscreteFlowLoss:
    """The cross-entropy objective −log p_{1|t}(x1 | x_t) (`DiscreteFlowLoss` with `per_token=token_cross_entropy`).

    Args:
        logits_model: the logits boundary `logits(params, t, x, cond) -> [B, L, V]`.
        path: the `MixtureDiscretePath`.
        source: the `DiscreteSource`.
        **kwargs: the other arguments of `DiscreteFlowLoss` (time_sampler, t_max, conditional, label_dropout,
            null_label).

    Returns:
        A `DiscreteFlowLoss` with the cross-entropy per token.
    """
    return DiscreteFlowLoss(logits_model, path, source, per_token=token_cross_entropy, **kwargs)
