"""Metrics of generated paths: path energy, normalised path energy (NPE; Tong et al. 2024, arXiv:2302.00482),
straightness (Liu, Gong & Liu 2023, arXiv:2209.03003)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def _velocities(velocity: Callable, trajectory: jax.Array, ts: jax.Array) -> jax.Array:
    return jax.vmap(velocity)(ts, trajectory)


def path_energy(velocity: Callable, trajectory: jax.Array, ts: jax.Array) -> jax.Array:
    """PE = E ∫ ‖v(t, X_t)‖² dt along saved trajectories [T, B, d] at times ts [T] (trapezoid rule)."""
    v = _velocities(velocity, trajectory, ts)
    sq = jnp.mean(jnp.sum(v.reshape(v.shape[0], v.shape[1], -1) ** 2, axis=-1), axis=1)
    return jnp.trapezoid(sq, ts)


def normalized_path_energy(path_energy_value, w2_squared) -> jax.Array:
    """NPE = |PE − W2²| / W2² (Tong et al. 2024): 0 for a flow that moves along OT displacements."""
    return jnp.abs(path_energy_value - w2_squared) / w2_squared


def straightness(velocity: Callable, trajectory: jax.Array, ts: jax.Array) -> jax.Array:
    """∫ E‖(X_1 − X_0) − v(t, X_t)‖² dt over saved trajectories [T, B, d] (0 for straight constant-speed paths)."""
    v = _velocities(velocity, trajectory, ts)
    disp = (trajectory[-1] - trajectory[0]) / (ts[-1] - ts[0])
    sq = jnp.mean(jnp.sum((v - disp[None]).reshape(v.shape[0], v.shape[1], -1) ** 2, axis=-1), axis=1)
    return jnp.abs(jnp.trapezoid(sq, ts))
