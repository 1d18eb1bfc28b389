"""The path contract: `sample(key, x0, x1, t) -> PathSample`."""

from __future__ import annotations

import abc
from typing import NamedTuple

import equinox as eqx
import jax

from jaxflow._checks import check_array, check_same_shape, check_time


class PathSample(NamedTuple):
    """A draw from a probability path (what `path.sample(key, x0, x1, t)` returns; the losses' targets read it).

    Attributes:
        t: times [B].
        x0: source endpoints [B, ...].
        x1: data endpoints [B, ...].
        xt: the point on the path [B, ...].
        ut: the conditional target velocity d/dt x_t [B, ...].
        z: the path's own Gaussian noise [B, ...] (None for deterministic paths).
    """

    t: jax.Array
    x0: jax.Array
    x1: jax.Array
    xt: jax.Array
    ut: jax.Array
    z: jax.Array | None = None


class ProbabilityPath(eqx.Module):
    """Abstract path between a source sample x0 and a data sample x1."""

    @abc.abstractmethod
    def sample(self, key: jax.Array, x0: jax.Array, x1: jax.Array, t: jax.Array) -> PathSample: ...


def validate_path_inputs(x0, x1, t):
    x0 = check_array(x0, "x0")
    x1 = check_array(x1, "x1")
    check_same_shape(x0, x1, "x0", "x1")
    if x0.ndim < 2:
        raise ValueError(f"x0 and x1 must be batched, shape [B, ...], got {x0.shape}")
    t = check_time(t)
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != x0.shape[0]):
        raise ValueError(f"t must be a scalar or of shape [B]={x0.shape[:1]}, got {t.shape}")
    return x0, x1, t
