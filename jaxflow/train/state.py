"""Training state and the optax-style EMA pair."""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxflow._deprecation import key_first


class TrainState(flax.struct.PyTreeNode):
    """Everything a training run carries from step to step (a pytree: checkpointable with orbax, shardable).

    The key of step s is fold_in(key, s), so a resumed run draws exactly the randoms an uninterrupted one would.

    Attributes:
        step: the number of steps taken, int32 [].
        params: the model's parameters (a pytree).
        opt_state: the optax optimiser's state.
        ema_params: the exponential moving average of `params` (decay set by `make_train_step(ema_decay=)`).
        key: the run's key as raw uint32 key data [2] (a typed key is converted by `create`).
    """

    # step and key are typed Any: pytree maps (shardings, shape structs, None placeholders) rebuild the state with
    # other leaves, and a checked __init__ would refuse them
    step: Any
    params: Any
    opt_state: Any
    ema_params: Any
    key: Any

    @classmethod
    @key_first(2, method=True)
    def create(cls, key: jax.Array, params: Any, optimizer: optax.GradientTransformation) -> TrainState:
        """A state at step 0.

        Args:
            key: the run's JAX key (typed or raw); it draws every batch and every loss noise of the run.
            params: the initial parameters.
            optimizer: the optax transformation whose state is initialised on `params`.

        Returns:
            The `TrainState` (EMA initialised to `params`).
        """
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
    """The state of `ema`.

    Attributes:
        params: the averaged parameters (a pytree like the model's).
    """

    params: Any


class Ema(NamedTuple):
    """An init/update pair, optax style: state = init(params); state = update(params, state).

    Attributes:
        init: `init(params) -> EmaState`.
        update: `update(params, state) -> EmaState`.
    """

    init: Any
    update: Any


def ema(decay: float = 0.999) -> Ema:
    """Exponential moving average of parameters: ema ← decay · ema + (1 − decay) · params.

    Args:
        decay: in [0, 1).

    Returns:
        An `Ema` (init, update) pair.

    Raises:
        ValueError: a decay outside [0, 1).
    """
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"ema decay must lie in [0, 1), got {decay}")

    def init(params):
        return EmaState(jax.tree.map(jnp.array, params))

    def update(params, state: EmaState) -> EmaState:
        return EmaState(optax.incremental_update(params, state.params, step_size=1.0 - decay))

    return Ema(init, update)
