"""A small UNet for images, channels-last [B, H, W, C], behind the `velocity(params, t, x, cond)` boundary.

Residual blocks (GroupNorm → SiLU → 3×3 conv, twice) take a time embedding (sinusoidal → MLP) and, with
`num_classes`, a label embedding added to it (index num_classes is the null label of classifier-free guidance).
Self-attention runs at the spatial sizes listed in `attention_resolutions`. Down-sampling by strided convolution,
up-sampling by nearest-neighbour resize and convolution; skip connections at every block. The output convolution
starts at zero, so an untrained model predicts 0. No dropout.

The defaults suit the 8×8 digits; `UNet.cifar10()` gives the published CIFAR-10 recipe's network
(128 channels, multipliers (1, 2, 2, 2), two residual blocks per level, attention at 16×16, 4 heads).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxflow.data.labels import check_labels
from jaxflow.nn.mlp import sinusoidal_embedding


def _groups(channels: int, groups: int) -> int:
    g = min(groups, channels)
    while channels % g:
        g -= 1
    return g


class ResBlock(nn.Module):
    channels: int
    groups: int = 8

    @nn.compact
    def __call__(self, x, emb):
        h = nn.silu(nn.GroupNorm(_groups(x.shape[-1], self.groups))(x))
        h = nn.Conv(self.channels, (3, 3))(h)
        h = h + nn.Dense(self.channels)(nn.silu(emb))[:, None, None, :]
        h = nn.silu(nn.GroupNorm(_groups(self.channels, self.groups))(h))
        h = nn.Conv(self.channels, (3, 3), kernel_init=nn.initializers.zeros)(h)
        if x.shape[-1] != self.channels:
            x = nn.Conv(self.channels, (1, 1))(x)
        return x + h


class SelfAttention(nn.Module):
    heads: int = 4
    groups: int = 8

    @nn.compact
    def __call__(self, x):
        b, hh, ww, c = x.shape
        h = nn.GroupNorm(_groups(c, self.groups))(x).reshape(b, hh * ww, c)
        h = nn.MultiHeadDotProductAttention(num_heads=self.heads, out_kernel_init=nn.initializers.zeros)(h)
        return x + h.reshape(b, hh, ww, c)


class UNet(nn.Module):
    """A DDPM-style UNet velocity/denoiser `module(t, x, cond)` on images x [B, H, W, C] (residual blocks with
    time and label embeddings, optional self-attention; `UNet.cifar10()` is TorchCFM's CIFAR-10 configuration). Use
    it through `velocity_fn(module)` and `init_unet`.

    Attributes:
        out_channels: output channels (default: the input's).
        channels: base channel count.
        channel_mult: the channel multiplier of each resolution level.
        num_res_blocks: residual blocks per level.
        attention_resolutions: the spatial sizes (feature-map heights, e.g. 16) at which self-attention runs.
        heads: attention heads.
        num_classes: if set, labels [B] in [0, num_classes] condition the model (num_classes is the null label).
        groups: GroupNorm groups.
    """

    out_channels: int | None = None
    channels: int = 32
    channel_mult: Sequence[int] = (1, 2)
    num_res_blocks: int = 1
    attention_resolutions: Sequence[int] = ()
    heads: int = 4
    num_classes: int | None = None
    groups: int = 8

    @classmethod
    def cifar10(cls, num_classes: int | None = None) -> UNet:
        return cls(
            out_channels=3,
            channels=128,
            channel_mult=(1, 2, 2, 2),
            num_res_blocks=2,
            attention_resolutions=(16,),
            heads=4,
            num_classes=num_classes,
            groups=32,
        )

    @nn.compact
    def __call__(self, t, x, cond=None):
        if x.ndim != 4:
            raise ValueError(f"UNet expects images [B, H, W, C], got shape {x.shape}")
        factor = 2 ** (len(self.channel_mult) - 1)
        if x.shape[1] % factor or x.shape[2] % factor:
            raise ValueError(
                f"image size {x.shape[1:3]} must be divisible by {factor} for {len(self.channel_mult)} levels"
            )
        out_channels = self.out_channels or x.shape[-1]
        t = jnp.broadcast_to(jnp.asarray(t, x.dtype), x.shape[:1])
        dim = 4 * self.channels
        emb = nn.Dense(dim)(nn.silu(nn.Dense(dim)(sinusoidal_embedding(t, self.channels))))
        if self.num_classes is not None and cond is not None:
            cond = check_labels(cond, self.num_classes)
            emb = emb + nn.Embed(self.num_classes + 1, dim)(cond)

        h = nn.Conv(self.channels, (3, 3))(x)
        skips = [h]
        for level, mult in enumerate(self.channel_mult):
            for _ in range(self.num_res_blocks):
                h = ResBlock(self.channels * mult, self.groups)(h, emb)
                if h.shape[1] in self.attention_resolutions:
                    h = SelfAttention(self.heads, self.groups)(h)
                skips.append(h)
            if level < len(self.channel_mult) - 1:
                h = nn.Conv(h.shape[-1], (3, 3), strides=(2, 2))(h)
                skips.append(h)
        h = ResBlock(h.shape[-1], self.groups)(h, emb)
        h = SelfAttention(self.heads, self.groups)(h)
        h = ResBlock(h.shape[-1], self.groups)(h, emb)
        for level, mult in reversed(list(enumerate(self.channel_mult))):
            for _ in range(self.num_res_blocks + 1):
                h = ResBlock(self.channels * mult, self.groups)(jnp.concatenate([h, skips.pop()], -1), emb)
                if h.shape[1] in self.attention_resolutions:
                    h = SelfAttention(self.heads, self.groups)(h)
            if level > 0:
                b, hh, ww, c = h.shape
                h = nn.Conv(c, (3, 3))(jax.image.resize(h, (b, 2 * hh, 2 * ww, c), "nearest"))
        h = nn.silu(nn.GroupNorm(_groups(h.shape[-1], self.groups))(h))
        return nn.Conv(out_channels, (3, 3), kernel_init=nn.initializers.zeros)(h)


def init_unet(key: jax.Array, module: UNet, shape: Sequence[int], cond_example: Any = None) -> Any:
    """Initialise a UNet.

    Args:
        key: the JAX key of the initialisation.
        module: the `UNet`.
        shape: the image shape (H, W, C).
        cond_example: example labels [1] for a class-conditional model.

    Returns:
        The Flax parameters.
    """
    # checked here: inside jit the labels are not concrete
    if cond_example is not None and module.num_classes is not None:
        check_labels(cond_example, module.num_classes)
    # compiled once: run op by op, the init of this many layers dispatches (and compiles) each op alone (12 s → 6 s)
    return jax.jit(module.init)(key, jnp.zeros((1,)), jnp.zeros((1, *shape)), cond_example)
