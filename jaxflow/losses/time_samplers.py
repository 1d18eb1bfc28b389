"""Distributions of the training time t ∈ [0, 1]. Each is a small object: `sampler(key, n) -> t [n]`."""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax

from jaxflow._checks import check_positive


class TimeSampler(eqx.Module):
    @abc.abstractmethod
    def __call__(self, key: jax.Array, n: int) -> jax.Array: ...


class UniformTime(TimeSampler):
    """t ~ U[0, 1]."""

    def __call__(self, key, n):
        return jax.random.uniform(key, (n,))


class LogitNormalTime(TimeSampler):
    """t = sigmoid(m + s·n), n ~ N(0, 1) (Esser et al. 2024): concentrates training mid-path.

    Attributes:
        mean: m.
        std: s > 0.
    """

    mean: float = 0.0
    std: float = 1.0

    def __check_init__(self):
        check_positive(self.std, "std")

    def __call__(self, key, n):
        return jax.nn.sigmoid(self.mean + self.std * jax.random.normal(key, (n,)))


class TruncatedUniformTime(TimeSampler):
    """t ~ U[ε, 1 − ε]: avoids the singular ends of bridges and interpolants.

    Attributes:
        eps: ε in [0, ½).
    """

    eps: float = 1e-3

    def __check_init__(self):
        check_positive(self.eps, "eps")
        if not self.eps < 0.5:
            raise ValueError(f"eps must be < 0.5, got {self.eps}")

    def __call__(self, key, n):
        return jax.random.uniform(key, (n,), minval=self.eps, maxval=1.0 - self.eps)


_TIME_SAMPLERS = {"uniform": UniformTime, "logit_normal": LogitNormalTime, "truncated": TruncatedUniformTime}


def get_time_sampler(name: str, **kwargs: Any) -> TimeSampler:
    """A time sampler by name (a shorthand: every sampler is an object you can construct or subclass).

    Args:
        name: "uniform", "logit_normal" or "truncated".
        **kwargs: the sampler's arguments.

    Returns:
        The `TimeSampler`.

    Raises:
        ValueError: an unknown name.
    """
    if name not in _TIME_SAMPLERS:
        raise ValueError(f"unknown time sampler {name!r}; choose one of {sorted(_TIME_SAMPLERS)}")
    return _TIME_SAMPLERS[name](**kwargs)
