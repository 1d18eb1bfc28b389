"""A small convolutional autoencoder for latent flow matching (deterministic, or KL-regularised as in VAEs).

The boundary is two pure functions (`encoder_fn`, `decoder_fn`): `encode(params, x) -> z` [B, k] (flat latents, so
any velocity model, loss and sampler works on them unchanged) and `decode(params, z) -> x`. The velocity never sees
the autoencoder; decoding is a separate call after sampling (Dao et al. 2023, arXiv:2307.08698).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


class ConvAutoencoder(nn.Module):
    """x [B, H, W, C] → conv → strided conv (H/2 × W/2) → 1×1 conv to `latent_channels` → flat z [B, H/2·W/2·c].

    variational: the encoder gives a mean and a log-variance per latent entry; `__call__` with a key samples
    z = μ + σε and reports KL(q(z|x) ‖ N(0, I)) per image; `encode` returns the mean.

    Attributes:
        image_shape: (H, W, C) of the images.
        latent_channels: c, channels of the latent map (H/2 × W/2 × c numbers).
        features: channels of the two convolutions.
        variational: a KL-regularised (VAE) encoder.
    """

    image_shape: Sequence[int] = (8, 8, 1)
    latent_channels: int = 1
    features: Sequence[int] = (32, 64)
    variational: bool = False

    def setup(self):
        f1, f2 = self.features
        out = 2 * self.latent_channels if self.variational else self.latent_channels
        self.e1 = nn.Conv(f1, (3, 3))
        self.e2 = nn.Conv(f2, (3, 3), strides=(2, 2))
        self.e3 = nn.Conv(f2, (3, 3))
        self.e4 = nn.Conv(out, (1, 1))
        self.d1 = nn.Conv(f2, (3, 3))
        self.d2 = nn.Conv(f2, (3, 3))
        self.d3 = nn.Conv(f1, (3, 3))
        self.d4 = nn.Conv(self.image_shape[-1], (3, 3))

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        h, w, _ = self.image_shape
        return (h // 2, w // 2, self.latent_channels)

    def _stats(self, x):
        if x.shape[1:] != tuple(self.image_shape):
            raise ValueError(f"images must be [B, {', '.join(map(str, self.image_shape))}], got {x.shape}")
        h = nn.silu(self.e1(x))
        h = nn.silu(self.e2(h))
        h = nn.silu(self.e3(h))
        h = self.e4(h)
        if self.variational:
            mean, logvar = jnp.split(h, 2, axis=-1)
            return mean.reshape(x.shape[0], -1), jnp.clip(logvar, -10.0, 5.0).reshape(x.shape[0], -1)
        return h.reshape(x.shape[0], -1), None

    def encode(self, x):
        return self._stats(x)[0]

    def decode(self, z):
        k = int(np.prod(self.latent_shape))
        if z.ndim != 2 or z.shape[1] != k:
            raise ValueError(f"latents must be [B, {k}], got {z.shape}")
        h = z.reshape(z.shape[0], *self.latent_shape)
        h = nn.silu(self.d1(h))
        h = nn.silu(self.d2(h))
        b, hh, ww, c = h.shape
        h = jax.image.resize(h, (b, 2 * hh, 2 * ww, c), "nearest")
        h = nn.silu(self.d3(h))
        return self.d4(h)

    def __call__(self, x, key=None):
        mean, logvar = self._stats(x)
        z = mean
        kl = jnp.zeros(x.shape[0], x.dtype)
        if self.variational:
            if key is not None:
                z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape, mean.dtype)
            kl = 0.5 * jnp.sum(jnp.exp(logvar) + mean**2 - 1.0 - logvar, axis=-1)
        return self.decode(z), z, kl


def encoder_fn(module: ConvAutoencoder) -> Callable:
    """`encode(params, x) -> z` [B, k] (the mean for a variational model).

    Args:
        module: the `ConvAutoencoder`.

    Returns:
        `encode(params, x)`.
    """
    return lambda params, x: module.apply(params, x, method=ConvAutoencoder.encode)


def decoder_fn(module: ConvAutoencoder) -> Callable:
    """`decode(params, z) -> x` [B, H, W, C].

    Args:
        module: the `ConvAutoencoder`.

    Returns:
        `decode(params, z)`.
    """
    return lambda params, z: module.apply(params, z, method=ConvAutoencoder.decode)


def autoencoder_loss(module: ConvAutoencoder, beta: float = 0.0) -> Callable:
    """Reconstruction ‖D(E(x)) − x‖² averaged over pixels, plus β·KL per latent entry for a variational model.

    batch = {"x1": images [B, H, W, C]}; the key samples the variational latent.

    Args:
        module: the `ConvAutoencoder`.
        beta: the KL weight β ≥ 0 (0 for a deterministic model).

    Returns:
        `loss(params, batch, key) -> (scalar, aux)`.
    """
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")

    def loss(params, batch, key):
        x = batch["x1"]
        recon, z, kl = module.apply(params, x, key if module.variational else None)
        mse = jnp.mean((recon - x) ** 2)
        value = mse + beta * jnp.mean(kl) / z.shape[-1]
        return value, {"loss": value, "mse": mse, "kl": jnp.mean(kl)}

    return loss


def init_autoencoder(key: jax.Array, module: ConvAutoencoder) -> Any:
    """Initialise an autoencoder's parameters on a dummy image of its `image_shape`.

    Args:
        key: a JAX PRNG key.
        module: the `ConvAutoencoder`.

    Returns:
        The flax parameter tree.
    """
    return module.init(key, jnp.zeros((1, *module.image_shape)))


__all__ = ["ConvAutoencoder", "autoencoder_loss", "decoder_fn", "encoder_fn", "init_autoencoder"]
