"""Flax models behind the pure `velocity(params, t, x, cond=None)` boundary."""

from jaxflow._deprecation import deprecated_names
from jaxflow.nn.attention import (
    AcceleratedBlock,
    CharTransformer,
    ClassicalBlock,
    MultiHeadAttention,
)
from jaxflow.nn.autoencoder import ConvAutoencoder, autoencoder_loss, decoder_fn, encoder_fn, init_autoencoder
from jaxflow.nn.classifier import ConvClassifier
from jaxflow.nn.flowmap import FlowMapMLP, as_velocity, flow_map_fn, init_flow_map
from jaxflow.nn.mlp import MLPVelocity, init_mlp, sinusoidal_embedding, velocity_fn
from jaxflow.nn.quantize import quantize
from jaxflow.nn.sets import PopulationTable, SetEncoder, knn_indices, masked_mean
from jaxflow.nn.spd import BuresWassersteinBatchNorm
from jaxflow.nn.tokens import TokenMLP, TokenTransformer, init_tokens, logits_fn
from jaxflow.nn.unet import UNet, init_unet

__all__ = [
    "AcceleratedBlock",
    "BuresWassersteinBatchNorm",
    "CharTransformer",
    "ClassicalBlock",
    "ConvAutoencoder",
    "ConvClassifier",
    "FlowMapMLP",
    "MLPVelocity",
    "MultiHeadAttention",
    "PopulationTable",
    "SetEncoder",
    "TokenMLP",
    "TokenTransformer",
    "UNet",
    "as_velocity",
    "autoencoder_loss",
    "decoder_fn",
    "encoder_fn",
    "flow_map_fn",
    "init_autoencoder",
    "init_flow_map",
    "init_mlp",
    "init_tokens",
    "init_unet",
    "knn_indices",
    "logits_fn",
    "masked_mean",
    "quantize",
    "sinusoidal_embedding",
    "velocity_fn",
]

__getattr__ = deprecated_names(
    "jaxflow.nn",
    {
        "ACTIVATIONS": ("jaxflow.nn.mlp", "_ACTIVATIONS"),
    },
)
