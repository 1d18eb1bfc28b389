"""The Euler jump sampler of discrete flow matching (Gat et al. 2024, arXiv:2407.15595, Algorithm 1; as Meta's
flow_matching library releases it), compiled with `lax.scan`.

From t to t + h, per token: draw x1 ~ p_{1|t}(·| x_t) from the model; the conditional rates toward it are
u(y) = κ̇/(1 − κ) δ_{x1}(y) (plus, optionally, the divergence-free term c_t κ̇/(κ(1 − κ)) ((1 − κ) p0(y) + κ δ_{x1}(y)),
which leaves the marginals unchanged and adds corrector-like mixing), zero at y = x_t; the token jumps with probability
1 − exp(−h Σ_y u(y)), to y ∝ u(y). The last step returns the draw x1 itself. docs/discrete_flows.md has the derivation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxflow._checks import check_array, check_count, is_concrete
from jaxflow.paths.discrete import DiscreteSource, MaskSource, MixtureDiscretePath, check_tokens


class DiscreteSampleOutput(NamedTuple):
    """x: final tokens [B, ...]; ts: the time grid [N+1]; trajectory: [N+1, B, ...] tokens or None; nfe: model
    evaluations (one per step).

    Attributes:
        x: the final tokens [B, ...].
        ts: the time grid [N + 1].
        trajectory: the tokens at every grid time [N + 1, B, ...], or None.
        nfe: model evaluations (one per step).
    """

    x: jax.Array
    ts: jax.Array
    trajectory: jax.Array | None
    nfe: int


def sample_discrete(
    logits_model: Callable,
    x0: jax.Array,
    key: jax.Array,
    *,
    path: MixtureDiscretePath,
    params: Any = None,
    cond: Any = None,
    steps: int | None = None,
    time_grid: jax.Array | None = None,
    div_free: float | Callable[[jax.Array], jax.Array] = 0.0,
    source: DiscreteSource | None = None,
    temperature: float = 1.0,
    save_trajectory: bool = False,
    carry_over: bool = False,
) -> DiscreteSampleOutput:
    """Run the mixture path's CTMC from the source tokens x0 to t = 1 (Gat et al. 2024, Algorithm 1).

    The key rule's stated exception (docs/conventions.md): like `sample_sde`, the key follows what is integrated.

    Args:
        logits_model: `logits(params, t, x, cond) -> [B, L, ..., V]` (with `params=`), or `logits(t, x)`; t is [B].
        x0: integer source tokens [B, L, ...].
        key: a `jax.random` key (the posterior draws and the jumps).
        path: the `MixtureDiscretePath` the model was trained on.
        params: the model's parameters (the model boundary takes them first), or None for `logits(t, x)`.
        cond: passed to the model as is.
        steps: uniform steps on [0, 1]; give this or `time_grid`.
        time_grid: [N+1] times increasing from the start to 1.
        div_free: the divergence-free coefficient c ≥ 0, a number or a function of t; needs `source` (its p0).
            The term's κ̇/κ is infinite at κ = 0, so with c > 0 the grid should start after 0 (or c(t) → 0 there).
        source: the `DiscreteSource` (only the divergence-free term uses it).
        temperature: the posterior draw uses softmax(logits / temperature).
        save_trajectory: keep the tokens at every grid time.
        carry_over: with a `MaskSource`, a token that is no longer the mask keeps its value (its posterior is set
            to δ(x_t), which is exact for the mask path): a model that copies unmasked tokens with probability
            below 1 otherwise lets them hop, more often the more steps near t = 1 where the rate κ̇/(1 − κ) is
            unbounded (MDLM's "carry-over unmasking"; Meta's solver does not do it).

    Returns:
        `DiscreteSampleOutput(x, ts, trajectory, nfe)`: x has x0's shape and dtype; trajectory is [N+1, B, ...].

    Raises:
        TypeError: tokens that are not integers, a path that is not a mixture path.
        ValueError: tokens outside the model's vocabulary, logits of the wrong shape, a bad grid, div_free without
            a source.
    """
    if isinstance(key, jax.Array) and not jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape != (2,):
        raise TypeError(f"key must be a jax.random key, got an array of shape {key.shape}")
    if not isinstance(path, MixtureDiscretePath):
        raise TypeError(f"path must be a MixtureDiscretePath, got {type(path).__name__}")
    x0 = check_tokens(x0, "x0")
    if x0.ndim < 2:
        raise ValueError(f"x0 must be batched tokens [B, L, ...], got shape {x0.shape}")
    if (steps is None) == (time_grid is None):
        raise ValueError("pass exactly one of steps= (uniform) or time_grid=")
    if time_grid is None:
        grid = jnp.linspace(0.0, 1.0, check_count(steps, "steps") + 1)
    else:
        grid = check_array(time_grid, "time_grid", ndim=1)
        if grid.shape[0] < 2:
            raise ValueError(f"time_grid needs at least 2 times, got {grid.shape[0]}")
        g = jnp.asarray(grid)
        if is_concrete(g) and (bool(jnp.any(jnp.diff(g) <= 0)) or g[0] < 0 or g[-1] > 1):
            raise ValueError("time_grid must increase strictly within [0, 1]")
    if not (isinstance(temperature, int | float) and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    uses_div_free = callable(div_free) or div_free != 0.0
    if uses_div_free and source is None:
        raise ValueError("div_free needs source= (the source law p0 enters the divergence-free term)")
    if not callable(div_free) and div_free < 0:
        raise ValueError(f"div_free must be ≥ 0, got {div_free}")
    if carry_over and not isinstance(source, MaskSource):
        raise ValueError("carry_over needs source=MaskSource(...): only the mask path fixes a token once it is shown")

    def logits_at(t, x):
        tb = jnp.full(x.shape[:1], t, grid.dtype)
        out = logits_model(tb, x) if params is None else logits_model(params, tb, x, cond)
        if out.ndim != x.ndim + 1 or out.shape[:-1] != x.shape:
            raise ValueError(f"the model returned logits of shape {out.shape}, expected [*x.shape, V] with x {x.shape}")
        if source is not None and out.shape[-1] != source.vocab_size:
            raise ValueError(f"the model's vocabulary {out.shape[-1]} differs from the source's {source.vocab_size}")
        return out / temperature

    vocab = jax.eval_shape(lambda x: logits_at(grid[0], x), x0).shape[-1]
    x0 = check_tokens(x0, "x0", vocab)

    def rates(t, x, x1):
        kappa, d_kappa = path.kappa(t), path.d_kappa(t)
        delta1 = jax.nn.one_hot(x1, vocab, dtype=grid.dtype)
        u = d_kappa / (1.0 - kappa) * delta1
        if uses_div_free:
            c = div_free(t) if callable(div_free) else div_free
            k = jnp.clip(kappa, jnp.finfo(grid.dtype).tiny, None)
            p0 = source.probs().astype(grid.dtype)
            u = u + c * d_kappa / (k * (1.0 - kappa)) * ((1.0 - kappa) * p0 + kappa * delta1)
        return jnp.where(jax.nn.one_hot(x, vocab, dtype=bool), 0.0, u)

    def step(x, inputs):
        t, h, k = inputs
        k_x1, k_jump, k_to = jax.random.split(k, 3)
        x1 = jax.random.categorical(k_x1, logits_at(t, x)).astype(x.dtype)
        if carry_over:
            x1 = jnp.where(x == source.token, x1, x)
        u = rates(t, x, x1)
        intensity = jnp.sum(u, axis=-1)
        jump = jax.random.uniform(k_jump, x.shape, grid.dtype) < -jnp.expm1(-h * intensity)
        target = jax.random.categorical(k_to, jnp.log(jnp.where(jump[..., None], u, 1.0))).astype(x.dtype)
        x = jnp.where(jump, target, x)
        return x, (x if save_trajectory else None)

    n = grid.shape[0] - 1
    keys = jax.random.split(key, n)
    x, traj = jax.lax.scan(step, x0, (grid[:-1][: n - 1], jnp.diff(grid)[: n - 1], keys[: n - 1]))
    # the last step returns the posterior draw itself (the chain ends in the data)
    last = jax.random.categorical(keys[-1], logits_at(grid[-2], x)).astype(x.dtype)
    x = jnp.where(x == source.token, last, x) if carry_over else last
    trajectory = jnp.concatenate([x0[None], traj, x[None]]) if save_trajectory else None
    return DiscreteSampleOutput(x, grid, trajectory, n)
