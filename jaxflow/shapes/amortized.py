"""Amortized vMF distributional sliced Wasserstein (Nguyen, Nguyen & Ho 2023, "Self-attention amortized distributional
projection optimization for sliced Wasserstein point-cloud reconstruction", arXiv:2301.04791).

vMF-DSW_p(μ, ν) = max_ξ (E_{θ ~ vMF(ξ, κ)} W_p^p(θ#μ, θ#ν))^{1/p}. Instead of a projected ascent on ξ for every pair,
an amortizer g(X, Y) → ξ predicts the location in one forward pass; it is trained to maximise the distance while the
model minimises it. `SliceAmortizer` is invariant to permuting the points of each set (self-attention without
positions, then a mean) and symmetric in (X, Y) (it combines the two set embeddings through h_X + h_Y and h_X ⊙ h_Y).
`linear=True` uses efficient attention (softmax over the keys' features, then over the queries' features;
Shen et al. 2021), whose cost is linear in the number of points.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxflow.nn.attention import MultiHeadAttention
from jaxflow.ot.sliced import projected_wasserstein, sample_vmf


class _SetEmbed(nn.Module):
    """Points [n, d] → [features]: a point-wise layer, one residual self-attention block, a point-wise layer, mean."""

    features: int
    heads: int
    linear: bool

    @nn.compact
    def __call__(self, z):
        h = nn.gelu(nn.Dense(self.features)(z))
        if self.linear:  # efficient attention: a [heads, f, f] context, linear in the number of points
            n, f = h.shape
            q, k, v = (nn.Dense(self.features, use_bias=False)(h).reshape(n, self.heads, -1) for _ in range(3))
            ctx = jnp.einsum("nhf,nhg->hfg", jax.nn.softmax(k, axis=0), v)
            out = nn.Dense(self.features)(jnp.einsum("nhf,hfg->nhg", jax.nn.softmax(q, axis=-1), ctx).reshape(n, f))
        else:  # the library's softmax attention, without a causal mask
            out = MultiHeadAttention(n_heads=self.heads, kind="softmax", causal=False)(h[None])[0]
        h = h + out
        return jnp.mean(nn.gelu(nn.Dense(self.features)(h)), axis=0)


class SliceAmortizer(nn.Module):
    """g(X, Y) → a unit vector (the vMF location): one set embedding shared by X and Y, combined symmetrically.

    Called as `module.apply(params, x, y)` with point clouds x [n, d], y [m, d]; returns a unit vector [d].

    Attributes:
        features: the embedding width (divisible by heads).
        heads: the attention heads of the set embedding.
        linear: linear (True) or softmax attention in the set embedding.
    """

    features: int = 64
    heads: int = 4
    linear: bool = False

    def setup(self):
        if self.features % self.heads:
            raise ValueError(f"features ({self.features}) must be divisible by heads ({self.heads})")
        self.embed = _SetEmbed(self.features, self.heads, self.linear)
        self.mix = nn.Dense(self.features)

    @nn.compact
    def __call__(self, x: jax.Array, y: jax.Array) -> jax.Array:
        if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
            raise ValueError(f"x and y must be point clouds [n, d] and [m, d], got {x.shape} and {y.shape}")
        hx, hy = self.embed(x), self.embed(y)
        s = nn.Dense(x.shape[1])(nn.gelu(self.mix(jnp.concatenate([hx + hy, hx * hy]))))
        return s / jnp.maximum(jnp.linalg.norm(s), 1e-12)


class LinearSliceAmortizer(nn.Module):
    """Nguyen & Ho 2022's linear amortized model: g(X, Y) = normalise(Σ_i w_i z_i + b) over the stacked points
    z = [X; Y] ([n + m, d]), one weight per point slot and one scalar bias added to every coordinate.

    It is not permutation invariant: a slot's weight applies to whichever point sits there, so the direction varies
    with the points' order (the authors' released point-cloud code uses it as the amortized Max-SW baseline, with
    clouds in their sampled order). Called as `module.apply(params, x, y)` with x [n, d] and y [m, d] of fixed sizes;
    returns a unit vector [d]. The initialisation is uniform in ±1/√(n + m), as a default linear layer's."""

    @nn.compact
    def __call__(self, x: jax.Array, y: jax.Array) -> jax.Array:
        if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
            raise ValueError(f"x and y must be point clouds [n, d] and [m, d], got {x.shape} and {y.shape}")
        z = jnp.concatenate([x, y])
        bound = 1.0 / jnp.sqrt(z.shape[0])

        def init(key, shape, dtype):
            return jax.random.uniform(key, shape, dtype, -bound, bound)

        w = self.param("weight", init, (z.shape[0],), z.dtype)
        b = self.param("bias", init, (), z.dtype)
        s = w @ z + b
        return s / jnp.maximum(jnp.linalg.norm(s), 1e-12)


def amortized_vmf_sw(
    key: jax.Array,
    x: jax.Array,
    y: jax.Array,
    location: jax.Array,
    kappa: float | None = 50.0,
    n_projections: int = 64,
    p: float = 2.0,
) -> jax.Array:
    """(E_{θ ~ vMF(location, κ)} W_p^p(θ#μ, θ#ν))^{1/p} at a given location (no ascent); κ=None is κ = ∞ (the one
    direction `location`, i.e. Max-SW when it is the maximiser).

    Args:
        key: draws the vMF directions.
        x: points [n, d].
        y: points [m, d].
        location: the vMF location [d] (e.g. a `SliceAmortizer`'s output).
        kappa: κ, or None for κ = ∞.
        n_projections: directions drawn.
        p: the order.

    Returns:
        The distance as a scalar array.
    """
    if kappa is None:
        theta = location[None] / jnp.linalg.norm(location)
    else:
        theta = sample_vmf(key, location / jnp.linalg.norm(location), kappa, n_projections)
    return jnp.maximum(jnp.mean(projected_wasserstein(theta, x, y, p)), 0.0) ** (1.0 / p)
