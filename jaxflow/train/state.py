"""Training state and the optax-style EMA pair."""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxflow._deprecation import key_first


class TrainState(flax.struct.PyTreeNode):
    """step: int32 []; params, opt_state, ema_params: pytrees; key: raw uint32 key data [2] (checkpointable).

    The key of step s is fold_in(key, s), so a resumed run draws exactly the randoms an uninterrupted one would.
    """

    step: jax.Array
    params: Any
    opt_state: Any
    ema_params: Any
    key: jax.Array

    @classmethod
    @key_first(2, method=True)
    def create(cls, key: jax.Array, params, optimizer: optax.GradientTransformation) -> TrainState:
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
            key = jax.random.key_data(key)
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=optimizer.init(params),
            ema_params=ema().init(params).params,
            key=key,
        )


class EmaState(NamedTuple):
    params: Any


class Ema(NamedTuple):
    """An init/update pair, optax style: state = init(params); state = update(params, state)."""

    init: Any
    update: Any


def ema(decay: float = 0.999) -> Ema:
    """Exponential moving average of parameters: ema ← decay · ema + (1 − decay) · params."""
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"ema decay must lie in [0, 1), got {decay}")

    def init(params):
        return EmaState(jax.tree.map(jnp.array, params))

    def update(params, state: EmaState) -> EmaState:
        return EmaState(optax.incremental_update(params, state.params, step_size=1.0 - decay))

    return Ema(init, update)
