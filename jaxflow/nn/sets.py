"""Permutation-invariant encoders of populations (point clouds): DeepSets and a kNN-graph convolution.

A population is an array [N, d] of points with an optional mask [N] (True for real points, False for padding), so
that populations of different sizes can share one padded array. Every encoder here is invariant to permuting the
points and ignores padded rows: the embedding of (x, mask) equals that of x[mask].

Zaheer et al. (2017), "Deep sets", arXiv:1703.06114; the kNN-graph encoder follows the graph network of Meta flow
matching (Atanackovic et al. 2024, arXiv:2408.14608), where k = 0 reduces to DeepSets.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxflow.nn.mlp import _ACTIVATIONS
from jaxflow.ot.sinkhorn import sqeuclidean_cost


def _mask_of(x: jax.Array, mask: jax.Array | None) -> jax.Array:
    if x.ndim != 2:
        raise ValueError(f"a population is [N, d], got shape {x.shape} (vmap the encoder over populations)")
    if mask is None:
        return jnp.ones(x.shape[0], bool)
    if mask.shape != x.shape[:1]:
        raise ValueError(f"mask must be [N] = [{x.shape[0]}], got shape {mask.shape}")
    return mask.astype(bool)


def knn_indices(x: jax.Array, k: int, mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """The k nearest other points of every point (squared Euclidean), among the unmasked ones.

    Returns (indices [N, k'], valid [N, k']) with k' = min(k, N − 1); `valid` is False where a point has fewer than
    k' real neighbours (the extra slots point at padding). Ties are broken by index (`lax.top_k`).

    Args:
        x: points [N, d].
        k: the number of neighbours wanted.
        mask: which points are real [N] (bool), or None for all.

    Returns:
        (indices [N, k'], valid [N, k']).
    """
    mask = _mask_of(x, mask)
    n = x.shape[0]
    k = min(int(k), n - 1)
    if k < 1:
        raise ValueError(f"k must be at least 1 and N at least 2, got k={k} with N={n}")
    d2 = jnp.where(jnp.eye(n, dtype=bool) | ~mask[None, :], jnp.inf, sqeuclidean_cost(x, x))
    neg, idx = jax.lax.top_k(-d2, k)
    return idx, jnp.isfinite(neg) & mask[:, None]


def masked_mean(h: jax.Array, mask: jax.Array, axis: int) -> jax.Array:
    """The mean of the rows of h whose mask is True (0 when none is).

    Args:
        h: features [..., N, k].
        mask: which rows count [..., N] (bool or 0/1).
        axis: the row axis of h (and of the mask).

    Returns:
        The masked mean, h without that axis.
    """
    w = jnp.expand_dims(mask.astype(h.dtype), -1)
    return jnp.sum(h * w, axis=axis) / jnp.maximum(jnp.sum(w, axis=axis), 1.0)


class SetEncoder(nn.Module):
    """φ(x, mask) → [out_dim]: per-point layers (k = 0, DeepSets) or kNN-graph convolutions (k > 0), then a masked
    mean over the points and an MLP.

    Graph layer: h_i ← act(W h_i + U · mean_{j ∈ kNN(i)} h_j), the neighbours found once on the input points.

    Attributes:
        out_dim: the embedding size.
        features: the per-point width.
        layers: per-point (or graph) layers.
        k: neighbours of the kNN graph (0: DeepSets).
        activation: the activation's name.
    """

    out_dim: int = 32
    features: int = 64
    layers: int = 2
    k: int = 0
    activation: str = "selu"

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        mask = _mask_of(x, mask)
        act = _ACTIVATIONS[self.activation]
        if self.k < 0:
            raise ValueError(f"k must be >= 0 (0 is DeepSets), got {self.k}")
        idx, valid = knn_indices(x, self.k, mask) if self.k > 0 else (None, None)
        h = act(nn.Dense(self.features)(x))
        for _ in range(self.layers):
            out = nn.Dense(self.features)(h)
            if idx is not None:
                out = out + nn.Dense(self.features, use_bias=False)(masked_mean(h[idx], valid, axis=1))
            h = act(out)
        pooled = masked_mean(h, mask, axis=0)
        return nn.Dense(self.out_dim)(act(nn.Dense(self.features)(pooled)))


class PopulationTable(nn.Module):
    """One free embedding per training population (the conditional-generator baseline, CGFM): index → [out_dim].

    An index of −1 (a population not seen in training) gets the mean of the table: the table cannot say anything
    about a new population, which is the point of the baseline.

    Attributes:
        num_populations: the number of training populations.
        out_dim: the embedding size.
    """

    num_populations: int
    out_dim: int = 32

    @nn.compact
    def __call__(self, index: jax.Array) -> jax.Array:
        table = self.param("table", nn.initializers.normal(1.0), (self.num_populations, self.out_dim))
        index = jnp.asarray(index)
        return jnp.where(index >= 0, table[jnp.clip(index, 0, self.num_populations - 1)], jnp.mean(table, axis=0))
