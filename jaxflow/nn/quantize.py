"""Post-training weight quantisation (a robustness probe): every floating-point leaf rounded to a uniform symmetric
grid of 2^(bits−1) − 1 levels per sign, scaled by the leaf's largest magnitude."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def quantize(params: Any, bits: int) -> Any:
    """The pytree with each float array w replaced by round(w / s)·s, s = max|w| / (2^(bits−1) − 1).

    Args:
        params: a pytree of parameters.
        bits: the bit width ≥ 2 (symmetric, per array).

    Returns:
        The quantised pytree (same structure and dtypes).
    """
    if not (isinstance(bits, int) and 2 <= bits <= 32):
        raise ValueError(f"bits must be an integer in [2, 32], got {bits!r}")
    levels = 2 ** (bits - 1) - 1

    def q(w):
        if not jnp.issubdtype(jnp.asarray(w).dtype, jnp.floating):
            return w
        scale = jnp.max(jnp.abs(w)) / levels
        return jnp.where(scale > 0, jnp.round(w / jnp.where(scale > 0, scale, 1)) * scale, w)

    return jax.tree.map(q, params)
