"""Flax MLP velocity field with a time embedding and an optional conditioning input.

The library boundary is the pure function returned by `velocity_fn(module)`: `velocity(params, t, x, cond=None)`
with x [B, d] (or [d]) and t [] or [B]. Flax stays inside nn/ and train/.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxflow.data.labels import check_labels

_ACTIVATIONS = {
    "selu": nn.selu,
    "silu": nn.silu,
    "relu": nn.relu,
    "gelu": nn.gelu,
    "tanh": jnp.tanh,
    "elu": nn.elu,
}


def sinusoidal_embedding(t: jax.Array, dim: int, max_period: float = 10_000.0) -> jax.Array:
    """Transformer-style embedding [B, dim] of times t [B] ∈ [0, 1] (scaled by 1000 as in DDPM code).

    Args:
        t: times [B] in [0, 1].
        dim: the embedding size (even).
        max_period: the longest period.

    Returns:
        [B, dim].
    """
    if dim % 2:
        raise ValueError(f"embedding dim must be even, got {dim}")
    half = dim // 2
    freqs = jnp.exp(-jnp.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = 1000.0 * t[:, None].astype(jnp.float32) * freqs[None, :]
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


class MLPVelocity(nn.Module):
    """The velocity MLP v_θ(t, x, cond): concat(x, emb(t), emb(cond)) → hidden layers → d outputs, on flat x [B, d].
    Use it through `velocity_fn(module)` (the pure boundary) and `init_mlp`.

    Attributes:
        out_dim: the output dimension d.
        hidden: the widths of the hidden layers.
        activation: "selu" (the reference 2-D MLP), "silu", "relu", "gelu", "tanh", ...
        time_embedding: "sinusoidal" (default) or "identity" (t appended as one feature, as in the reference 2-D
            MLP).
        time_embed_dim: the sinusoidal embedding's size.
        num_classes: if set, `cond` is an integer label [B] in [0, num_classes] (index num_classes is the null label
            for classifier-free guidance), embedded by a table; otherwise a float `cond` [B, c] is concatenated as is.
        cond_embed_dim: the label embedding's size.
    """

    out_dim: int
    hidden: Sequence[int] = (64, 64, 64)
    activation: str = "selu"
    time_embedding: str = "sinusoidal"
    time_embed_dim: int = 32
    num_classes: int | None = None
    cond_embed_dim: int = 32

    @nn.compact
    def __call__(self, t, x, cond=None):
        act = activation(self.activation)
        feats = [x, embed_time(t, self.time_embedding, self.time_embed_dim, x.dtype)]
        feats += embed_condition(x, cond, self.num_classes, self.cond_embed_dim)
        return dense_stack(jnp.concatenate(feats, axis=-1), self.hidden, act, self.out_dim)


def activation(name: str) -> Callable:
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]


def embed_time(t: jax.Array, kind: str, dim: int, dtype) -> jax.Array:
    """[B, dim] sinusoidal embedding, or [B, 1] with t itself ("identity")."""
    if kind == "sinusoidal":
        return sinusoidal_embedding(t, dim).astype(dtype)
    if kind == "identity":
        return t[:, None].astype(dtype)
    raise ValueError(f"unknown time_embedding {kind!r}; choose 'sinusoidal' or 'identity'")


def embed_condition(x, cond, num_classes: int | None, dim: int) -> list:
    """The conditioning features (inside a compact module): a label table when `num_classes` is set (index
    num_classes is the null label), else the float `cond` [B, c] as is; [] without a condition."""
    if cond is None:
        return []
    if num_classes is not None:
        check_labels(cond, num_classes)
        return [nn.Embed(num_classes + 1, dim)(cond).astype(x.dtype)]
    return [jnp.asarray(cond, x.dtype).reshape(x.shape[0], -1)]


def dense_stack(h, hidden: Sequence[int], act: Callable, out_dim: int):
    """Hidden Dense layers with `act`, then a linear output layer (inside a compact module)."""
    for width in hidden:
        h = act(nn.Dense(width)(h))
    return nn.Dense(out_dim)(h)


def velocity_fn(module: nn.Module) -> Callable:
    """Wrap a Flax module `module(t, x, cond)` as the pure model boundary `velocity(params, t, x, cond=None)`.

    Args:
        module: a Flax module called as `module(t, x, cond)` on flat x [B, d] (`MLPVelocity`, `UNet`, your own).

    Returns:
        `velocity(params, t, x, cond=None)`: x [B, ...] or a single point x [...] (then it returns [...]); t of shape
        [] or [B].
    """

    def velocity(params, t, x, cond=None):
        single = x.ndim == 1
        if single:
            x = x[None]
            cond = None if cond is None else jnp.asarray(cond)[None]
        t = jnp.broadcast_to(jnp.asarray(t, x.dtype), x.shape[:1])
        out = module.apply(params, t, x, cond)
        return out[0] if single else out

    return velocity


def init_mlp(key: jax.Array, module: MLPVelocity, dim: int, cond_example: Any = None) -> Any:
    """Initialise an MLP velocity.

    Args:
        key: the JAX key of the initialisation.
        module: the `MLPVelocity`.
        dim: the input dimension d (flat).
        cond_example: an example condition (labels [1] or features [1, c]) when the model is conditional.

    Returns:
        The Flax parameters.
    """
    return module.init(key, jnp.zeros((1,)), jnp.zeros((1, dim)), cond_example)
