"""Posterior models for discrete flow matching: `logits(params, t, x_tokens, cond) -> [B, L, V]`.

`TokenMLP` embeds each of the L tokens, concatenates them with a time embedding and maps the lot through an MLP to
L × V logits (short sequences: the 2-D grid of a discretised toy set, L = 2). `TokenTransformer` is a bidirectional
transformer (no causal mask: every position sees the whole noisy sequence) with the time embedding added to every
position (longer sequences). `logits_fn(module)` makes the pure boundary; `init_tokens(key, module, length)` the
parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxflow.nn.attention import MLP, MultiHeadAttention
from jaxflow.nn.mlp import activation, dense_stack, embed_condition, sinusoidal_embedding


def _check(tokens):
    if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise ValueError(f"tokens must be an integer array [B, L], got {tokens.dtype} {tokens.shape}")


class TokenMLP(nn.Module):
    """MLP posterior over L tokens for discrete flow matching: `module(t, tokens [B, L], cond) -> logits [B, L, V]`
    (token embeddings concatenated with the time embedding, an MLP, one head per position).

    Attributes:
        vocab_size: V, the vocabulary's size (include the mask id if the source uses one).
        embed_dim: the token embedding's size.
        hidden: the widths of the hidden layers.
        activation: the activation's name.
        time_embed_dim: the time embedding's size.
        num_classes: if set, integer labels condition the model.
    """

    vocab_size: int
    embed_dim: int = 64
    hidden: Sequence[int] = (256, 256, 256)
    activation: str = "silu"
    time_embed_dim: int = 32
    num_classes: int | None = None

    @nn.compact
    def __call__(self, t, tokens, cond=None):
        _check(tokens)
        b, length = tokens.shape
        e = nn.Embed(self.vocab_size, self.embed_dim, name="embed")(tokens).reshape(b, length * self.embed_dim)
        feats = [e, sinusoidal_embedding(t, self.time_embed_dim).astype(e.dtype)]
        feats += embed_condition(e, cond, self.num_classes, self.time_embed_dim)
        act = activation(self.activation)
        out = dense_stack(jnp.concatenate(feats, -1), self.hidden, act, length * self.vocab_size)
        return out.reshape(b, length, self.vocab_size)


class TokenBlock(nn.Module):
    n_heads: int

    @nn.compact
    def __call__(self, x):
        x = x + MultiHeadAttention(self.n_heads, "softmax", causal=False, name="attn")(nn.LayerNorm(name="ln1")(x))
        return x + MLP(name="mlp")(nn.LayerNorm(name="ln2")(x))


class TokenTransformer(nn.Module):
    """Bidirectional transformer posterior for discrete flow matching: token + position + time embeddings,
    `n_layers` pre-norm blocks, a head: `module(t, tokens [B, L], cond) -> logits [B, L, V]`.

    Attributes:
        vocab_size: V, the vocabulary's size.
        width: the model width.
        n_layers: the number of blocks.
        n_heads: attention heads.
        max_len: the longest sequence (position table).
        num_classes: if set, integer labels condition the model.
    """

    vocab_size: int
    width: int = 128
    n_layers: int = 4
    n_heads: int = 4
    max_len: int = 128
    num_classes: int | None = None

    @nn.compact
    def __call__(self, t, tokens, cond=None):
        _check(tokens)
        length = tokens.shape[1]
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len={self.max_len}")
        x = nn.Embed(self.vocab_size, self.width, name="embed")(tokens)
        x = x + self.param("pos", nn.initializers.normal(0.02), (self.max_len, self.width))[:length]
        temb = nn.Dense(self.width, name="time")(sinusoidal_embedding(t, self.width).astype(x.dtype))
        x = x + temb[:, None, :]
        for c in embed_condition(temb, cond, self.num_classes, self.width):
            x = x + c[:, None, :]
        for i in range(self.n_layers):
            x = TokenBlock(self.n_heads, name=f"block{i}")(x)
        return nn.Dense(self.vocab_size, name="head")(nn.LayerNorm(name="ln_f")(x))


def logits_fn(module: nn.Module) -> Callable:
    """The pure boundary of a Flax token model.

    Args:
        module: `TokenMLP`, `TokenTransformer` or your own module `module(t, tokens, cond)`.

    Returns:
        `logits(params, t, x, cond=None) -> [B, L, V]` with x int [B, L] and t of shape [] or [B].
    """

    def logits(params, t, x, cond=None):
        t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), x.shape[:1])
        return module.apply(params, t, x, cond)

    return logits


def init_tokens(key: jax.Array, module: nn.Module, length: int, cond_example: Any = None) -> Any:
    """Initialise a token model.

    Args:
        key: the JAX key of the initialisation.
        module: the token model.
        length: L, the sequence length.
        cond_example: example labels for a conditional model.

    Returns:
        The Flax parameters.
    """
    return module.init(key, jnp.zeros((1,)), jnp.zeros((1, length), jnp.int32), cond_example)
