"""Flax MLP velocity field with a time embedding and an optional conditioning input.

The library boundary is the pure function returned by `velocity_fn(module)`: `velocity(params, t, x, cond=None)`
with x [B, d] (or [d]) and t [] or [B]. Flax stays inside nn/ and train/.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxflow.sampling.guidance import check_labels

ACTIVATIONS = {
    "selu": nn.selu,
    "silu": nn.silu,
    "relu": nn.relu,
    "gelu": nn.gelu,
    "tanh": jnp.tanh,
    "elu": nn.elu,
}


def sinusoidal_embedding(t: jax.Array, dim: int, max_period: float = 10_000.0) -> jax.Array:
    """Transformer-style embedding [B, dim] of times t [B] ∈ [0, 1] (scaled by 1000 as in DDPM code)."""
    if dim % 2:
        raise ValueError(f"embedding dim must be even, got {dim}")
    half = dim // 2
    freqs = jnp.exp(-jnp.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = 1000.0 * t[:, None].astype(jnp.float32) * freqs[None, :]
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


class MLPVelocity(nn.Module):
    """v_θ(t, x, cond): concat(x, emb(t), emb(cond)) → hidden layers → d outputs.

    time_embedding: "sinusoidal" (default) or "identity" (t appended as one feature, as in the reference 2-D MLP).
    num_classes: if set, `cond` is an integer label [B] in [0, num_classes] (index num_classes is the null label for
    classifier-free guidance), embedded by a table; otherwise a float `cond` [B, c] is concatenated as is.
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
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; choose one of {sorted(ACTIVATIONS)}")
        act = ACTIVATIONS[self.activation]
        if self.time_embedding == "sinusoidal":
            temb = sinusoidal_embedding(t, self.time_embed_dim)
        elif self.time_embedding == "identity":
            temb = t[:, None].astype(x.dtype)
        else:
            raise ValueError(f"unknown time_embedding {self.time_embedding!r}; choose 'sinusoidal' or 'identity'")
        feats = [x, temb.astype(x.dtype)]
        if cond is not None:
            if self.num_classes is not None:
                check_labels(cond, self.num_classes)
                feats.append(nn.Embed(self.num_classes + 1, self.cond_embed_dim)(cond).astype(x.dtype))
            else:
                feats.append(jnp.asarray(cond, x.dtype).reshape(x.shape[0], -1))
        h = jnp.concatenate(feats, axis=-1)
        for width in self.hidden:
            h = act(nn.Dense(width)(h))
        return nn.Dense(self.out_dim)(h)


def velocity_fn(module: nn.Module) -> Callable:
    """Wrap a Flax module `module(t, x, cond)` as the pure `velocity(params, t, x, cond=None)`.

    Accepts x [B, ...] or a single point x [...] (then returns [...]), and t of shape [] or [B].
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


def init_mlp(key: jax.Array, module: MLPVelocity, dim: int, cond_example=None):
    """Initialise an MLP velocity for inputs of dimension `dim`."""
    return module.init(key, jnp.zeros((1,)), jnp.zeros((1, dim)), cond_example)
