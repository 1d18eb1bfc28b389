"""Metrics of generated paths: path energy, normalised path energy (NPE; Tong et al. 2024, arXiv:2302.00482),
straightness (Liu, Gong & Liu 2023, arXiv:2209.03003)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def _velocities(velocity: Callable, trajectory: jax.Array, ts: jax.Array) -> jax.Array:
    return jax.vmap(velocity)(ts, trajectory)


def path_energy(velocity: Callable, trajectory: jax.Array, ts: jax.Array) -> jax.Array:
    """Path energy PE = E ∫ ‖v(t, X_t)‖² dt along saved trajectories (trapezoid rule).

    Args:
        velocity: `v(t, x) -> [B, ...]`.
        trajectory: the saved states [T, B, ...] (e.g. `jf.sample(..., save_trajectory=T).trajectory`).
        ts: their times [T].

    Returns:
        PE as a scalar array.
    """
    v = _velocities(velocity, trajectory, ts)
    sq = jnp.mean(jnp.sum(v.reshape(v.shape[0], v.shape[1], -1) ** 2, axis=-1), axis=1)
    return jnp.trapezoid(sq, ts)


def normalized_path_energy(path_energy_value: float | jax.Array, w2_squared: float | jax.Array) -> jax.Array:
    """Normalised path energy NPE = |PE − W2²| / W2² (Tong et al. 2024): 0 for a flow that moves along OT
    displacements.

    Args:
        path_energy_value: PE (`path_energy`).
        w2_squared: the squared W2 between source and target.

    Returns:
        NPE as a scalar array.
    """
    return jnp.abs(path_energy_value - w2_squared) / w2_squared


def straightness(velocity: Callable, trajectory: jax.Array, ts: jax.Array) -> jax.Array:
    """Straightness S = ∫ E‖(X_1 − X_0) − v(t, X_t)‖² dt (Liu et al. 2023): 0 for straight constant-speed paths.

    Args:
        velocity: `v(t, x) -> [B, ...]`.
        trajectory: the saved states [T, B, ...].
        ts: their times [T].

    Returns:
        S as a scalar array.
    """
    v = _velocities(velocity, trajectory, ts)
    disp = (trajectory[-1] - trajectory[0]) / (ts[-1] - ts[0])
    sq = jnp.mean(jnp.sum((v - disp[None]).reshape(v.shape[0], v.shape[1], -1) ** 2, axis=-1), axis=1)
    return jnp.abs(jnp.trapezoid(sq, ts))
