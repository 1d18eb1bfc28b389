"""jaxflow: transport-based generative modelling and optimal transport in JAX.

Rooms: paths, manifolds, couplings, losses, nn, sampling, ot, dynamics, metrics, data, shapes, train (see README.md).
"""

from jaxflow import couplings, data, dynamics, losses, manifolds, metrics, nn, ot, paths, sampling, shapes, train
from jaxflow.sampling import SampleOutput, log_likelihood, sample, sample_sde

__version__ = "0.1.0"
__all__ = [
    "SampleOutput",
    "couplings",
    "data",
    "dynamics",
    "log_likelihood",
    "losses",
    "manifolds",
    "metrics",
    "nn",
    "ot",
    "paths",
    "sample",
    "sample_sde",
    "sampling",
    "shapes",
    "train",
]
