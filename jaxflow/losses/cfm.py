"""Conditional flow matching, plain and weighted (PAPERS.md §3).

A loss is built from a velocity function, a path, a coupling and a time sampler, and has the contract
`loss(params, batch, key) -> (scalar, aux)` with batch = {"x1": [B, ...], "x0": [B, ...] (optional: N(0, I) when
absent), "labels": [B] (optional)}.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxflow.couplings.base import Coupling, IndependentCoupling
from jaxflow.losses.time_samplers import TimeSampler, UniformTime
from jaxflow.paths.affine import cond_ot_path
from jaxflow.paths.base import ProbabilityPath
from jaxflow.sampling.guidance import drop_labels

Velocity = Callable[..., jax.Array]


def cfm_loss(
    velocity: Velocity,
    path: ProbabilityPath | None = None,
    coupling: Coupling | None = None,
    time_sampler: TimeSampler | None = None,
    *,
    conditional: bool = False,
    label_dropout: float = 0.0,
    null_label: int | None = None,
) -> Callable:
    """Build the (weighted) CFM objective  E_t Σ_i w_i ‖v_θ(t, x_t^i) − u_t^i‖² / B.

    The squared error is averaged over the event dimensions (as the reference PyTorch implementation does), then
    weighted by the coupling's weights (all ones except for W-CFM) and averaged over the batch.
    With `conditional=True` the pairing's labels are passed to the velocity as `cond`; `label_dropout=p` replaces
    each by `null_label` with probability p (classifier-free guidance, PAPERS.md §3).
    """
    if label_dropout > 0 and null_label is None:
        raise ValueError("label_dropout > 0 needs the null_label index")
    path = cond_ot_path() if path is None else path
    coupling = IndependentCoupling() if coupling is None else coupling
    time_sampler = UniformTime() if time_sampler is None else time_sampler

    def loss(params, batch, key):
        if "x1" not in batch:
            raise ValueError(f"batch must hold 'x1' (and optionally 'x0'), got keys {sorted(batch)}")
        k_pair, k_t, k_path = jax.random.split(key, 3)
        x1 = batch["x1"]
        # without 'x0' the source is N(0, I), drawn from a key of its own (batches with 'x0' are unaffected)
        x0 = batch["x0"] if "x0" in batch else jax.random.normal(jax.random.fold_in(key, 7), x1.shape, x1.dtype)
        pairing = coupling(k_pair, x0, x1, batch.get("labels"))
        n = pairing.x0.shape[0]
        t = time_sampler(k_t, n).astype(pairing.x0.dtype)
        ps = path.sample(k_path, pairing.x0, pairing.x1, t)
        cond = pairing.labels if conditional else None
        if conditional and cond is None:
            raise ValueError("conditional training needs 'labels' in the batch")
        if conditional and label_dropout > 0:
            cond = drop_labels(jax.random.fold_in(k_pair, 1), cond, label_dropout, null_label)
        v = velocity(params, ps.t, ps.xt, cond)
        if v.shape != ps.ut.shape:
            raise ValueError(f"velocity returned shape {v.shape}, expected {ps.ut.shape}")
        err = jnp.mean(((v - ps.ut) ** 2).reshape(n, -1), axis=1)
        value = jnp.mean(pairing.weights * err)
        return value, {"loss": value, "unweighted_loss": jnp.mean(err)}

    return loss
