"""Class labels for conditional models: validation, and label dropout for classifier-free guidance.

A model with `num_classes=K` takes labels in [0, K) and reserves K as the null label ∅ it is trained with under
label dropout (`jaxflow.sampling.guided` then mixes the conditional and unconditional fields).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxflow._checks import is_concrete


def check_labels(labels: jax.Array, num_classes: int, *, allow_null: bool = True) -> jax.Array:
    """Integer labels in [0, num_classes) (or == num_classes, the null label, when allowed); checked when concrete.

    Args:
        labels: integer labels [B].
        num_classes: the number of classes.
        allow_null: accept `num_classes` itself (the null label of classifier-free guidance).

    Returns:
        The labels as an int32 array.

    Raises:
        ValueError: non-integer or out-of-range labels (when concrete).
    """
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    if is_concrete(labels) and labels.size:
        hi = num_classes if allow_null else num_classes - 1
        lo_v, hi_v = int(labels.min()), int(labels.max())
        if lo_v < 0 or hi_v > hi:
            raise ValueError(f"labels must lie in [0, {hi}] ({num_classes} classes), got values in [{lo_v}, {hi_v}]")
    return labels


def drop_labels(key: jax.Array, labels: jax.Array, p: float, null_label: int) -> jax.Array:
    """Replace each label by the null label with probability p (label dropout for classifier-free guidance).

    Args:
        key: the JAX key of the draws.
        labels: integer labels [B].
        p: the dropout probability in [0, 1].
        null_label: the label that means "no condition".

    Returns:
        The labels [B] with some replaced.
    """
    if is_concrete(p) and not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"label dropout probability must lie in [0, 1], got {p}")
    return jnp.where(jax.random.bernoulli(key, p, labels.shape), null_label, labels)
