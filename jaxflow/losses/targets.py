"""Regression targets live in `jaxflow.paths.targets` (a target is read from a path's `PathSample`, and the path's
parametrisation converters use the same objects); re-exported here, where the losses take them."""

from jaxflow.paths.targets import (
    DataTarget,
    NoiseTarget,
    ScoreTarget,
    Target,
    VelocityTarget,
    noise_scale,
    path_noise,
    resolve_target,
)

__all__ = [
    "DataTarget",
    "NoiseTarget",
    "ScoreTarget",
    "Target",
    "VelocityTarget",
    "noise_scale",
    "path_noise",
    "resolve_target",
]
