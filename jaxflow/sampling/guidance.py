"""Classifier-free guidance as a wrapper around any conditional field (Ho & Salimans 2022, arXiv:2207.12598).

v_w(t, x, c) = v(t, x, ∅) + w (v(t, x, c) − v(t, x, ∅)): w = 0 is the unconditional model, w = 1 the conditional one,
w > 1 extrapolates towards the class. ∅ is the null label the model was trained with under label dropout
(`MLPVelocity(num_classes=K)` reserves index K for it).
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp

from jaxflow.data.labels import check_labels, drop_labels

__all__ = ["check_labels", "drop_labels", "guided"]  # the label helpers live in jaxflow.data.labels


def guided(velocity: Callable, scale: float, null_label: int) -> Callable:
    """Wrap a conditional model boundary `v(params, t, x, cond)` into its classifier-free guided version
    (Ho & Salimans 2022): v_w = v(x | ∅) + w·(v(x | c) − v(x | ∅)).

    Both branches run as one batch of size 2B (one model call per evaluation).

    Args:
        velocity: the conditional model boundary `v(params, t, x, cond)` (trained with label dropout).
        scale: the guidance weight w (1: the conditional model; 0: the unconditional one; above 1: guided).
        null_label: the label that means "no condition".

    Returns:
        The guided boundary `v_w(params, t, x, cond)`.
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
