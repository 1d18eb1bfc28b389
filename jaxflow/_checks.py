"""Input validation shared by every room.

Shape and dtype problems are caught at trace time (shapes are static). Value problems (non-finite entries, t outside
[0, 1]) are caught when the array is concrete (eager calls) with a `ValueError`; under `jit`, `vmap` or `grad`, where
the values are unknown at trace time, the same check is compiled into the program with `equinox.error_if` and fails
at run time with an error carrying the same message (docs/conventions.md measures its cost). `TRACED_CHECKS = False`
turns the compiled checks off (the eager ones stay).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

TRACED_CHECKS = True


def is_concrete(x: Any) -> bool:
    """True when `x` holds values now (not a tracer inside jit/vmap/grad)."""
    return not isinstance(x, jax.core.Tracer)


def traced_check(x: jax.Array, bad: jax.Array, message: str) -> jax.Array:
    """`x`, with a run-time error `message` when `bad` (a traced boolean) is true: the check of a value that is only
    known when the compiled program runs. The returned array must be used for the check to stay in the program."""
    if not TRACED_CHECKS or _varying(x) or _varying(bad):
        return x
    import equinox as eqx

    return eqx.error_if(x, bad, message)


def _varying(x) -> bool:
    """Whether `x` varies over manual mesh axes (inside a `shard_map` body). equinox's `error_if` cannot branch on such
    values in jax 0.10 (its cond's two branches get different manual-axis types), and a psum per check would add a
    collective per step: inside `shard_map` the compiled check is skipped; the loop's non-finite-loss guard remains."""
    axis_type = getattr(jax.typeof(x), "manual_axis_type", None)
    return bool(getattr(axis_type, "varying", ()))


def check_array(x: Any, name: str, *, ndim: int | tuple[int, ...] | None = None, finite: bool = True) -> jax.Array:
    """Return `x` as an array after checking its rank, floating dtype and (when concrete) finiteness."""
    if x is None:
        raise ValueError(f"{name} must be an array, got None")
    x = jnp.asarray(x)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if x.ndim not in allowed:
            raise ValueError(f"{name} must have ndim in {allowed}, got shape {x.shape}")
    if finite:
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise ValueError(f"{name} must have a floating dtype, got {x.dtype}")
        message = f"{name} contains non-finite values (NaN or inf)"
        if is_concrete(x):
            if not bool(np.all(np.isfinite(np.asarray(x)))):
                raise ValueError(message)
        else:
            x = traced_check(x, jnp.logical_not(jnp.all(jnp.isfinite(x))), message)
    return x


def check_same_batch(a: jax.Array, b: jax.Array, name_a: str, name_b: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{name_a} and {name_b} must have the same batch size, got {a.shape[0]} and {b.shape[0]}")


def check_same_shape(a: jax.Array, b: jax.Array, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {a.shape} and {b.shape}")


def check_time(t: Any, name: str = "t") -> jax.Array:
    """Times must lie in [0, 1] (checked when concrete)."""
    t = check_array(t, name)
    if is_concrete(t):
        tv = np.asarray(t)
        if np.any(tv < 0.0) or np.any(tv > 1.0):
            raise ValueError(f"{name} must lie in [0, 1], got values in [{tv.min()}, {tv.max()}]")
    else:
        t = traced_check(t, jnp.any((t < 0) | (t > 1)), f"{name} must lie in [0, 1]")
    return t


def check_positive(value: Any, name: str, *, allow_zero: bool = False) -> None:
    """Scalar hyper-parameters (epsilon, sigma, ...) must be positive (checked when concrete)."""
    if value is None or not is_concrete(value):
        return
    v = np.asarray(value)
    bad = np.any(v < 0) if allow_zero else np.any(v <= 0)
    if bad or not np.all(np.isfinite(v)):
        rel = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {rel}, got {value}")


def check_probability(value: Any, name: str) -> None:
    """A number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")


def check_choice(value: str, name: str, choices) -> str:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {sorted(choices)}")
    return value


def broadcast_time(t: jax.Array, x: jax.Array) -> jax.Array:
    """Turn t of shape [] or [B] into shape [B, 1, ..., 1] matching x of shape [B, ...]."""
    t = jnp.asarray(t, dtype=x.dtype)
    if t.ndim == 0:
        t = jnp.broadcast_to(t, x.shape[:1])
    if t.shape[0] != x.shape[0]:
        raise ValueError(f"t must be a scalar or have the batch size {x.shape[0]}, got shape {t.shape}")
    return t.reshape(t.shape + (1,) * (x.ndim - 1))


def check_weights(w: Any, n: int, name: str) -> jax.Array:
    """Sample or mixture weights: shape [n], non-negative with positive mass (checked when concrete); normalised."""
    w = check_array(w, name, ndim=1)
    if w.shape[0] != n:
        raise ValueError(f"{name} must have one entry per point ({n}), got shape {w.shape}")
    if is_concrete(w):
        wv = np.asarray(w)
        if np.any(wv < 0):
            raise ValueError(f"{name} must be non-negative, got min {wv.min()}")
        if wv.sum() <= 0:
            raise ValueError(f"{name} must have positive total mass")
    return w / jnp.sum(w)


def check_count(n: Any, name: str = "n") -> int:
    """A number of samples: a positive Python/NumPy int (sizes are static under jit)."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"{name} must be a positive int, got {n!r}")
    return int(n)


def check_point_clouds(x: Any, y: Any, name_x: str = "x", name_y: str = "y") -> tuple[jax.Array, jax.Array]:
    """Two point clouds [n, d] and [m, d]: rank 2, floating, non-empty, the same dimension d."""
    x = check_array(x, name_x, ndim=2)
    y = check_array(y, name_y, ndim=2)
    for a, name in ((x, name_x), (y, name_y)):
        if a.shape[0] == 0:
            raise ValueError(f"{name} is empty (shape {a.shape}): it must hold at least one point")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"{name_x} and {name_y} must have the same dimension, got {x.shape} and {y.shape}")
    return x, y
