"""A point-cloud autoencoder: a permutation-invariant set encoder and an MLP decoder to a fixed number of points."""

from __future__ import annotations

import flax.linen as nn
import jax

from jaxflow.nn.sets import SetEncoder


class PointCloudAutoencoder(nn.Module):
    """x [n, 3] → latent [latent] → reconstruction [points, 3]. `encode` and `decode` are available as methods.

    Attributes:
        latent: the latent size.
        points: the number of reconstructed points.
        hidden: the hidden width.
        dim: the point dimension.
    """

    latent: int = 128
    points: int = 512
    hidden: int = 256
    dim: int = 3

    def setup(self):
        self.encoder = SetEncoder(out_dim=self.latent, features=self.hidden, layers=2, k=0, activation="gelu")
        self.d1 = nn.Dense(self.hidden)
        self.d2 = nn.Dense(2 * self.hidden)
        self.d3 = nn.Dense(self.points * self.dim)

    def encode(self, x: jax.Array) -> jax.Array:
        return self.encoder(x)

    def decode(self, z: jax.Array) -> jax.Array:
        h = nn.gelu(self.d2(nn.gelu(self.d1(z))))
        return self.d3(h).reshape(self.points, self.dim)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.decode(self.encode(x))
