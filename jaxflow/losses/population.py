"""Flow matching conditioned on the source population (Meta flow matching; Atanackovic et al. 2024,
arXiv:2408.14608), with its two baselines as special cases.

A batch holds P populations: {"x0": [P, N, d] source populations, "x1": [P, N, d] target populations, "mask":
[P, N] (optional: padding of populations smaller than N), "population": [P] ints (optional: the population's index,
used by a per-population table)}. Within population p, pairs come from `coupling` (independent pairs by default,
row i with row i; minibatch OT within the population with an exact or Sinkhorn coupling) and the velocity sees the
embedding of the source population, c_p = embed(params["encoder"], x0_p, mask_p, index_p):

    L = mean_p E_t mean_i ‖v(params["velocity"], t, x_t^{p,i}, c_p) − u_t^{p,i}‖².

The encoder is trained jointly (its parameters are part of `params`). `embed=None` is plain flow matching (FM, no
conditioning); `set_embedding(SetEncoder(k=...))` is MFM (k = 0: DeepSets); `table_embedding(PopulationTable(...))`
is the conditional-generator baseline CGFM.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxflow.couplings.base import Coupling, IndependentCoupling, Pairing
from jaxflow.losses.base import Objective
from jaxflow.losses.cfm import RegressionLoss
from jaxflow.losses.time_samplers import TimeSampler
from jaxflow.paths.affine import cond_ot_path
from jaxflow.paths.base import ProbabilityPath
from jaxflow.paths.targets import Target, resolve_target
from jaxflow.sampling.ode import SampleOutput, sample

Embed = Callable[..., jax.Array]


def set_embedding(module: nn.Module) -> Embed:
    """`embed(params, x0 [N, d], mask [N], index)` of a set encoder module (`SetEncoder`); the index is unused.

    Args:
        module: a flax module applied as `module.apply(params, x0, mask)` (e.g. `jaxflow.nn.SetEncoder`).

    Returns:
        The `embed` function (its `module` attribute is the module).
    """

    def embed(params, x0, mask, index):
        return module.apply(params, x0, mask)

    embed.module = module
    return embed


def table_embedding(module: nn.Module) -> Embed:
    """`embed(params, x0, mask, index)` of a per-population table (`PopulationTable`): only the index is used.

    Args:
        module: a flax module applied as `module.apply(params, index)` (e.g. `jaxflow.nn.PopulationTable`).

    Returns:
        The `embed` function; it raises ValueError when called without an index.
    """

    def embed(params, x0, mask, index):
        if index is None:
            raise ValueError("a per-population table needs batch['population'] (the populations' indices)")
        return module.apply(params, index)

    embed.module = module
    return embed


class _MaskWeights(Coupling):
    """Row i with row i; padded rows get weight 0 and real rows weight N / (number of real rows)."""

    mask: jax.Array

    def __call__(self, key, x0, x1, labels=None) -> Pairing:
        m = self.mask.astype(x0.dtype)
        return Pairing(x0, x1, m * (m.shape[0] / jnp.maximum(jnp.sum(m), 1.0)), labels)


def conditioned(velocity: Callable, embedding: jax.Array | None) -> Callable:
    """The model boundary `v(params, t, x, cond)` with cond fixed to one population's embedding (broadcast to the
    rows of x); `embedding=None` drops the conditioning.

    Args:
        velocity: the conditioned velocity `v(params, t, x, cond)`.
        embedding: one population's embedding [k], or None.

    Returns:
        `v(params, t, x, cond=None) -> [B, d]` with cond broadcast to [B, k].
    """

    def v(params, t, x, cond=None):
        if embedding is None:
            return velocity(params, t, x, None)
        return velocity(params, t, x, jnp.broadcast_to(embedding, (x.shape[0], embedding.shape[-1])))

    return v


class PopulationLoss(Objective):
    """Population-conditioned flow matching (see the module): `loss(params, batch, key) -> (scalar, aux)`.

    params: {"velocity": ..., "encoder": ...} ({"velocity": ...} when `embed` is None).
    With a mask, pairs are row i with row i (padding weighted out); a within-population OT coupling needs
    populations of equal size without padding.

    Args:
        velocity: the conditioned velocity `v(params, t, x, cond)` (cond: the population embedding [P, k]).
        embed: the population encoder (`set_embedding(SetEncoder(...))` for MFM, `table_embedding(PopulationTable(...))`
            for CGFM), or None for plain FM.
        path: the probability path (default Cond-OT).
        coupling: the pairing within a population (default independent).
        time_sampler: draws t (default U[0, 1]).
        target: the regression target (a `Target` or its name).
    """

    velocity: Callable = eqx.field(static=True)
    embed: Embed | None = eqx.field(static=True)
    path: ProbabilityPath
    coupling: Coupling
    time_sampler: TimeSampler | None
    target: Target

    def __init__(
        self,
        velocity: Callable,
        embed: Embed | None = None,
        path: ProbabilityPath | None = None,
        coupling: Coupling | None = None,
        time_sampler: TimeSampler | None = None,
        *,
        target: Target | str = "velocity",
    ):
        self.velocity, self.embed = velocity, embed
        self.path = cond_ot_path() if path is None else path
        self.target = resolve_target(target)
        self.coupling = IndependentCoupling() if coupling is None else coupling
        self.time_sampler = time_sampler

    def __call__(self, params, batch, key):
        embed, coupling = self.embed, self.coupling
        if not isinstance(batch, dict) or "x0" not in batch or "x1" not in batch:
            raise ValueError("a population batch is a dict with 'x0' and 'x1' of shape [P, N, d]")
        x0, x1 = batch["x0"], batch["x1"]
        if x0.ndim != 3 or x0.shape != x1.shape:
            raise ValueError(f"x0 and x1 must both be [P, N, d], got {x0.shape} and {x1.shape}")
        mask = batch.get("mask")
        if mask is not None and not isinstance(coupling, IndependentCoupling):
            raise ValueError(
                "a mask (padded populations) pairs row i with row i; within-population OT needs equal-size "
                "populations: drop the mask or use IndependentCoupling"
            )
        if mask is not None and mask.shape != x0.shape[:2]:
            raise ValueError(f"mask must be [P, N] = {list(x0.shape[:2])}, got {mask.shape}")
        index = batch.get("population")
        if embed is not None and "encoder" not in params:
            raise ValueError("params must hold 'encoder' (and 'velocity') when the loss has an embedding")
        p = x0.shape[0]
        masks = jnp.ones(x0.shape[:2], bool) if mask is None else mask
        indices = jnp.full((p,), -1, jnp.int32) if index is None else jnp.asarray(index, jnp.int32)

        def one(x0p, x1p, mp, ip, k):
            emb = None if embed is None else embed(params["encoder"], x0p, mp, None if index is None else ip)
            pairing = coupling if mask is None else _MaskWeights(mp)
            inner = RegressionLoss(
                conditioned(self.velocity, emb),
                self.path,
                self.target,
                coupling=pairing,
                time_sampler=self.time_sampler,
            )
            value, _ = inner(params["velocity"], {"x0": x0p, "x1": x1p}, k)
            return value

        values = jax.vmap(one)(x0, x1, masks, indices, jax.random.split(key, p))
        value = jnp.mean(values)
        return value, {"loss": value}


population_loss = PopulationLoss  # the builder's name, kept: it is the module itself


def embed_population(
    embed: Embed | None,
    params: Any,
    x0: jax.Array,
    mask: jax.Array | None = None,
    index: int | jax.Array | None = None,
) -> jax.Array | None:
    """The embedding of one source population (None for unconditioned FM).

    Args:
        embed: the embedding function (`set_embedding(...)` or `table_embedding(...)`), or None.
        params: {"encoder": ..., ...}; only the encoder's parameters are read.
        x0: the population [N, d].
        mask: which rows are real [N] (bool), or None for all.
        index: the population's index (for a table), or None.

    Returns:
        The embedding [k], or None when `embed` is None.
    """
    if embed is None:
        return None
    return embed(params["encoder"], x0, mask, index)


def sample_populations(
    velocity: Callable,
    embed: Embed | None,
    params: Any,
    x0: jax.Array,
    mask: jax.Array | None = None,
    index: jax.Array | None = None,
    **sample_kwargs: Any,
) -> SampleOutput:
    """Integrate every source population [P, N, d] through its own conditioned velocity in ONE solve: the rows are
    flattened to [P·N, d] and each row carries its population's embedding as `cond`. Returns `jf.sample`'s output
    with x reshaped to [P, N, d]. `sample_kwargs` go to `jaxflow.sample` (solver, steps, ...).

    Args:
        velocity: the conditioned velocity `v(params, t, x, cond)`.
        embed: the embedding function, or None for unconditioned FM.
        params: {"velocity": ..., "encoder": ...}.
        x0: the source populations [P, N, d].
        mask: which rows are real [P, N] (bool), or None for all.
        index: the populations' indices [P] (for a table), or None.
        **sample_kwargs: passed to `jaxflow.sample`.

    Returns:
        `SampleOutput` with x [P, N, d].

    Raises:
        ValueError: x0 not of rank 3.
    """
    if x0.ndim != 3:
        raise ValueError(f"x0 must be [P, N, d], got shape {x0.shape}")
    p, n, d = x0.shape
    flat = x0.reshape(p * n, d)
    if embed is None:
        out = sample(lambda prm, t, x, c: velocity(prm, t, x, None), flat, params=params["velocity"], **sample_kwargs)
    else:
        masks = jnp.ones((p, n), bool) if mask is None else mask
        idx = jnp.full((p,), -1, jnp.int32) if index is None else jnp.asarray(index, jnp.int32)
        embs = jax.vmap(lambda x, m, i: embed(params["encoder"], x, m, None if index is None else i))(x0, masks, idx)
        cond = jnp.repeat(embs, n, axis=0)
        out = sample(velocity, flat, params=params["velocity"], cond=cond, **sample_kwargs)
    return out._replace(x=out.x.reshape(p, n, d))
