"""Two-time models for flow maps: `u(params, s, t, x, cond=None)`, the average velocity from time s to time t.

The flow map is Ψ(x, s, t) = x + (t − s)·u(x, s, t): the state at time t of the ODE trajectory through x at time s.
At t = s the average velocity is the instantaneous one, so u(x, t, t) is an ordinary velocity field (flow matching
trains it there). MeanFlow (Geng et al. 2025) and shortcut models (Frans et al. 2024) both learn this object; the
shortcut model's s(x, t, d) is u(x, t, t + d).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxflow.nn.mlp import activation, dense_stack, embed_condition, embed_time


class FlowMapMLP(nn.Module):
    """u_θ(x, s, t, cond): concat(x, emb(s), emb(t − s), emb(cond)) → hidden layers → d outputs.

    The gap t − s is embedded rather than t (as MeanFlow does), so u(x, t, t) sees a fixed zero gap embedding and the
    model is an ordinary velocity there. `cond`: integer labels (with `num_classes`, null label = num_classes) or a
    float array [B, c] concatenated as is (e.g. a low-resolution image for super-resolution).

    Attributes:
        out_dim: the output dimension d.
        hidden: the widths of the hidden layers.
        activation: the activation's name ("silu", "selu", ...).
        time_embedding: "sinusoidal" or "identity" (MeanFlow differentiates u in time: a smooth identity input).
        time_embed_dim: the sinusoidal embedding's size.
        num_classes: if set, integer labels condition the model (num_classes is the null label).
        cond_embed_dim: the label embedding's size.
    """

    out_dim: int
    hidden: Sequence[int] = (128, 128, 128)
    activation: str = "silu"
    time_embedding: str = "sinusoidal"
    time_embed_dim: int = 32
    num_classes: int | None = None
    cond_embed_dim: int = 32

    @nn.compact
    def __call__(self, s, t, x, cond=None):
        act = activation(self.activation)
        feats = [
            x,
            embed_time(s, self.time_embedding, self.time_embed_dim, x.dtype),
            embed_time(t - s, self.time_embedding, self.time_embed_dim, x.dtype),
        ]
        feats += embed_condition(x, cond, self.num_classes, self.cond_embed_dim)
        return dense_stack(jnp.concatenate(feats, axis=-1), self.hidden, act, self.out_dim)


def flow_map_fn(module: nn.Module) -> Callable:
    """Wrap a Flax module `module(s, t, x, cond)` on flat x [B, d] as the pure `u(params, s, t, x, cond=None)`.

    Args:
        module: a flow-map module (`FlowMapMLP` or your own) called as `module(s, t, x, cond)`.

    Returns:
        `u(params, s, t, x, cond=None)`: x may carry any event shape [B, ...] (flattened for the module, the output
        reshaped back); s and t are scalars or [B].
    """

    def u(params, s, t, x, cond=None):
        b = x.shape[0]
        s = jnp.broadcast_to(jnp.asarray(s, x.dtype), (b,))
        t = jnp.broadcast_to(jnp.asarray(t, x.dtype), (b,))
        flat_cond = cond
        if cond is not None and jnp.issubdtype(jnp.asarray(cond).dtype, jnp.floating):
            flat_cond = jnp.asarray(cond).reshape(b, -1)
        out = module.apply(params, s, t, x.reshape(b, -1), flat_cond)
        return out.reshape(x.shape)

    return u


def as_velocity(u: Callable) -> Callable:
    """The instantaneous velocity v(params, t, x, cond) = u(params, t, t, x, cond) of a flow-map model (for ODE
    samplers, straightness and likelihood).

    Args:
        u: the flow-map boundary `u(params, s, t, x, cond)`.

    Returns:
        `v(params, t, x, cond=None)`.
    """
    return lambda params, t, x, cond=None: u(params, t, t, x, cond)


def init_flow_map(key: jax.Array, module: FlowMapMLP, dim: int, cond_example: Any = None) -> Any:
    """Initialise a flow-map MLP.

    Args:
        key: the JAX key of the initialisation.
        module: the `FlowMapMLP`.
        dim: the input dimension (flattened).
        cond_example: an example condition for a conditional model.

    Returns:
        The Flax parameters.
    """
    z = jnp.zeros((1,))
    if cond_example is not None and jnp.issubdtype(jnp.asarray(cond_example).dtype, jnp.floating):
        cond_example = jnp.asarray(cond_example).reshape(1, -1)
    return module.init(key, z, z, jnp.zeros((1, dim)), cond_example)
