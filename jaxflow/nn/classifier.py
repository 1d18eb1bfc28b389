"""A small convolutional classifier whose penultimate layer provides features for a Fréchet distance."""

from __future__ import annotations

import flax.linen as nn
import jax


class ConvClassifier(nn.Module):
    """conv(32) → conv(64, stride 2) → pool → dense(`feature_dim`) → logits. Images [B, H, W, C].

    `apply(params, x)` gives logits; `apply(params, x, method=ConvClassifier.features)` the features.
    pool: "mean" (global average, translation-invariant features) or "flatten" (keeps where the strokes are; more
    accurate on small images such as the 8×8 digits).

    Attributes:
        num_classes: the number of classes.
        feature_dim: the size of the feature layer (the Fréchet distance's features in `DigitsMetric`).
        pool: "mean" or "flatten".
    """

    num_classes: int = 10
    feature_dim: int = 64
    pool: str = "mean"

    def setup(self):
        self.c1 = nn.Conv(32, (3, 3))
        self.c2 = nn.Conv(64, (3, 3), strides=(2, 2))
        self.fc = nn.Dense(self.feature_dim)
        self.head = nn.Dense(self.num_classes)

    def features(self, x: jax.Array) -> jax.Array:
        if x.ndim != 4:
            raise ValueError(f"ConvClassifier expects images [B, H, W, C], got shape {x.shape}")
        h = nn.gelu(self.c2(nn.gelu(self.c1(x))))
        if self.pool == "mean":
            h = h.mean(axis=(1, 2))
        elif self.pool == "flatten":
            h = h.reshape(h.shape[0], -1)
        else:
            raise ValueError(f"pool must be 'mean' or 'flatten', got {self.pool!r}")
        return nn.gelu(self.fc(h))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.features(x))
