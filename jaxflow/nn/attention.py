"""Classical and accelerated (SympFormer-type) attention blocks as Flax modules.

Tokens are [B, T, D]. `MultiHeadAttention` is softmax or linear attention, optionally causal:
  softmax: out_i = Σ_j softmax_j(⟨q_i, k_j⟩/√d_h) v_j
  linear:  out_i = (1/|J_i|) Σ_{j ∈ J_i} ⟨q_i, k_j⟩ v_j   (the bilinear kernel of the linear particle flow; J_i = j ≤ i
           when causal, all j otherwise)
`ClassicalBlock`: X ← X + h_a · Attn(LN X), then X ← X + h_m · MLP(LN X).
`AcceleratedBlock`: the state is (X, P); the attention output is the force G and the momentum carries it across
layers, with damping α(t) = c_log/t + c_lin at the nominal layer time t = layer + 1 (unit layer spacing):
  symplectic:   P ← σ (P + h G),              X ← X + h P      (σ = exp(−∫_t^{t+1} α))
  exponential:  P ← σ P + (1 − σ)/Δ · h G,    X ← X + h P      (Δ = ∫_t^{t+1} α)
  euler:        X ← X + h P,                  P ← P + h (G − α(t) P)
then the same MLP residual as the classical block. The velocity is P itself: the kinetic metric B/z_i of the
particle system is absorbed into the attention's output projection and its softmax normalisation.
Step sizes h (attention and MLP) are learnable, stored as log h. Both blocks call attention once.
With zero momentum and no damping (c_log = c_lin = 0) the symplectic block's first step is X + h² Attn(LN X): the
classical block with step h² (checked in the tests).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxflow.dynamics.accelerated import Classical, Damping, Scheme, resolve_scheme

ATTENTION_KINDS = ("softmax", "linear")
BLOCK_SCHEMES = ("symplectic", "exponential", "euler")  # the shorthand names a block accepts


class MultiHeadAttention(nn.Module):
    """Softmax or linear multi-head attention on tokens [B, T, D] (see the module docstring).

    Attributes:
        n_heads: the number of heads (D must be divisible by it).
        kind: "softmax" or "linear".
        causal: mask future tokens.
    """

    n_heads: int
    kind: str = "softmax"
    causal: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.kind not in ATTENTION_KINDS:
            raise ValueError(f"unknown attention kind {self.kind!r}; choose one of {ATTENTION_KINDS}")
        b, t, d = x.shape
        if d % self.n_heads:
            raise ValueError(f"width {d} is not divisible by n_heads={self.n_heads}")
        dh = d // self.n_heads
        qkv = nn.Dense(3 * d, use_bias=False, name="qkv")(x).reshape(b, t, 3, self.n_heads, dh)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [B, T, H, dh]
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k)
        mask = jnp.tril(jnp.ones((t, t), bool)) if self.causal else jnp.ones((t, t), bool)
        if self.kind == "softmax":
            weights = jax.nn.softmax(jnp.where(mask, scores / math.sqrt(dh), -jnp.inf), axis=-1)
        else:
            count = mask.sum(-1, keepdims=True).astype(x.dtype)
            weights = jnp.where(mask, scores, 0.0) / count
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, t, d)
        return nn.Dense(d, name="out")(out)


class MLP(nn.Module):
    expansion: int = 4

    @nn.compact
    def __call__(self, x):
        d = x.shape[-1]
        return nn.Dense(d, name="down")(nn.gelu(nn.Dense(self.expansion * d, name="up")(x)))


class ClassicalBlock(nn.Module):
    """X ← X + h_a·Attn(LN X), then X ← X + h_m·MLP(LN X), with learnable step sizes (the module docstring).

    Attributes:
        n_heads: attention heads.
        kind: "softmax" or "linear".
        causal: mask future tokens.
        step_init: the initial step sizes h.
    """

    n_heads: int
    kind: str = "softmax"
    causal: bool = True
    step_init: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h_a = jnp.exp(self.param("log_h_attn", lambda _: jnp.asarray(math.log(self.step_init), jnp.float32)))
        h_m = jnp.exp(self.param("log_h_mlp", lambda _: jnp.asarray(0.0, jnp.float32)))
        x = x + h_a * MultiHeadAttention(self.n_heads, self.kind, self.causal, name="attn")(nn.LayerNorm(name="ln1")(x))
        return x + h_m * MLP(name="mlp")(nn.LayerNorm(name="ln2")(x))


class AcceleratedBlock(nn.Module):
    """The accelerated (SympFormer-type) block on the state (X, P): the attention output is the force and the
    momentum carries it across layers, damped by α(t) = c_log/t + c_lin (the module docstring).

    Attributes:
        n_heads: attention heads.
        layer: the block's index (its nominal time is layer + 1).
        kind: "softmax" or "linear".
        causal: mask future tokens.
        scheme: "symplectic", "exponential" or "euler" (or a `Scheme` object).
        c_log: the damping's 1/t coefficient.
        c_lin: the damping's constant.
        step_init: the initial step sizes h.
    """

    n_heads: int
    layer: int = 0
    kind: str = "softmax"
    causal: bool = True
    scheme: Scheme | str = "symplectic"
    c_log: float = 3.0
    c_lin: float = 0.0
    step_init: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array, p: jax.Array) -> tuple[jax.Array, jax.Array]:
        if isinstance(self.scheme, str) and self.scheme not in BLOCK_SCHEMES:
            raise ValueError(f"unknown scheme {self.scheme!r}; pass a Scheme or one of {BLOCK_SCHEMES}")
        scheme = resolve_scheme(self.scheme)
        if isinstance(scheme, Classical):
            raise ValueError("the classical scheme has no accelerated block; use ClassicalBlock")
        h = jnp.exp(self.param("log_h_attn", lambda _: jnp.asarray(math.log(self.step_init), jnp.float32)))
        h_m = jnp.exp(self.param("log_h_mlp", lambda _: jnp.asarray(0.0, jnp.float32)))
        g = MultiHeadAttention(self.n_heads, self.kind, self.causal, name="attn")(nn.LayerNorm(name="ln1")(x))
        # layer ℓ is the step from time ℓ + 1 to ℓ + 2 of the damping α(t) = c_log / t + c_lin (unit time steps;
        # the learned step h scales the force and velocity terms)
        t = self.layer + 1.0
        damping = Damping(self.c_log, self.c_lin)
        x, p = scheme.update(x, p, g, lambda q: q, h, damping(t), damping.integral(t, t + 1.0))
        x = x + h_m * MLP(name="mlp")(nn.LayerNorm(name="ln2")(x))
        return x, p


class CharTransformer(nn.Module):
    """A causal character-level language model: token and position embeddings, `n_layers` blocks, a linear head.

    block: "classical" or "accelerated" (then `scheme`, `c_log`, `c_lin` apply; momentum starts at zero).

    Called as `model.apply(params, tokens)` with integer tokens [B, T] (T ≤ max_len); returns logits [B, T, vocab_size].

    Attributes:
        vocab_size: the number of token ids V.
        width: the model width.
        n_layers: the number of blocks.
        n_heads: the attention heads per block.
        max_len: the longest sequence.
        block: "classical" or "accelerated".
        kind: the attention kernel, "softmax" or "linear".
        scheme: the accelerated block's `Scheme` name.
        c_log: the accelerated block's logarithmic damping coefficient.
        c_lin: the accelerated block's constant damping.
    """

    vocab_size: int
    width: int = 64
    n_layers: int = 4
    n_heads: int = 4
    max_len: int = 128
    block: str = "classical"
    kind: str = "softmax"
    scheme: str = "symplectic"
    c_log: float = 3.0
    c_lin: float = 0.0

    @nn.compact
    def __call__(self, tokens: jax.Array) -> jax.Array:
        if self.block not in ("classical", "accelerated"):
            raise ValueError(f"unknown block {self.block!r}; choose 'classical' or 'accelerated'")
        if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
            raise ValueError(f"tokens must be an integer array [B, T], got {tokens.dtype} {tokens.shape}")
        t = tokens.shape[1]
        if t > self.max_len:
            raise ValueError(f"sequence length {t} exceeds max_len={self.max_len}")
        x = nn.Embed(self.vocab_size, self.width, name="embed")(tokens)
        x = x + self.param("pos", nn.initializers.normal(0.02), (self.max_len, self.width))[:t]
        p = jnp.zeros_like(x)
        for i in range(self.n_layers):
            if self.block == "classical":
                x = ClassicalBlock(self.n_heads, self.kind, True, name=f"block{i}")(x)
            else:
                x, p = AcceleratedBlock(
                    self.n_heads, i, self.kind, True, self.scheme, self.c_log, self.c_lin, name=f"block{i}"
                )(x, p)
        return nn.Dense(self.vocab_size, name="head")(nn.LayerNorm(name="ln_f")(x))
