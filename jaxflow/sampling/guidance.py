"""Classifier-free guidance as a wrapper around any conditional field (Ho & Salimans 2022, arXiv:2207.12598).

v_w(t, x, c) = v(t, x, ∅) + w (v(t, x, c) − v(t, x, ∅)): w = 0 is the unconditional model, w = 1 the conditional one,
w > 1 extrapolates towards the class. ∅ is the null label the model was trained with under label dropout
(`MLPVelocity(num_classes=K)` reserves index K for it).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxflow._checks import is_concrete


def check_labels(labels: jax.Array, num_classes: int, *, allow_null: bool = True) -> jax.Array:
    """Integer labels in [0, num_classes) (or == num_classes, the null label, when allowed); checked when concrete."""
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    if is_concrete(labels) and labels.size:
        hi = num_classes if allow_null else num_classes - 1
        lo_v, hi_v = int(labels.min()), int(labels.max())
        if lo_v < 0 or hi_v > hi:
            raise ValueError(f"labels must lie in [0, {hi}] ({num_classes} classes), got values in [{lo_v}, {hi_v}]")
    return labels


def guided(velocity: Callable, scale: float, null_label: int) -> Callable:
    """Wrap a conditional model boundary `v(params, t, x, cond)` into its guided version with weight `scale`.

    Both branches run as one batch of size 2B (one model call per evaluation).
    """

    def v_w(params, t, x, cond):
        cond = jnp.asarray(cond)
        b = x.shape[0]
        null = jnp.full_like(cond, null_label)
        tt = jnp.asarray(t)
        tt = jnp.concatenate([jnp.broadcast_to(tt, (b,))] * 2) if tt.ndim else tt
        both = velocity(params, tt, jnp.concatenate([x, x]), jnp.concatenate([cond, null]))
        v_c, v_u = both[:b], both[b:]
        return v_u + scale * (v_c - v_u)

    return v_w


def drop_labels(key: jax.Array, labels: jax.Array, p: float, null_label: int) -> jax.Array:
    """Replace each label by the null label with probability p (label dropout for classifier-free guidance)."""
    if is_concrete(p) and not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"label dropout probability must lie in [0, 1], got {p}")
    return jnp.where(jax.random.bernoulli(key, p, labels.shape), null_label, labels)
