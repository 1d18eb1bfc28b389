"""Flax models behind the pure `velocity(params, t, x, cond=None)` boundary."""

from jaxflow.nn.attention import (
    AcceleratedBlock,
    CharTransformer,
    ClassicalBlock,
    MultiHeadAttention,
)
from jaxflow.nn.mlp import ACTIVATIONS, MLPVelocity, init_mlp, sinusoidal_embedding, velocity_fn
from jaxflow.nn.spd import BuresWassersteinBatchNorm

__all__ = [
    "ACTIVATIONS",
    "AcceleratedBlock",
    "BuresWassersteinBatchNorm",
    "CharTransformer",
    "ClassicalBlock",
    "MultiHeadAttention",
    "MLPVelocity",
    "init_mlp",
    "sinusoidal_embedding",
    "velocity_fn",
]
