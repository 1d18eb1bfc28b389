"""The coupling contract: `(key, x0, x1, labels=None) -> Pairing(x0, x1, weights, labels)`."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from jaxflow._checks import check_array, check_same_batch, is_concrete
from jaxflow.ot.sinkhorn import sqeuclidean_cost


class Pairing(NamedTuple):
    """Paired samples, what a coupling returns.

    Attributes:
        x0: source points [B, ...].
        x1: data points [B, ...], reordered or resampled by the coupling.
        weights: loss weights [B] (ones unless the coupling reweights).
        labels: labels of the pairs [B] (the x1 side), or None.
    """

    x0: jax.Array
    x1: jax.Array
    weights: jax.Array
    labels: jax.Array | None = None


class Coupling(eqx.Module):
    """Abstract coupling of a source batch x0 with a data batch x1. Never sees the model.

    `pairs_on_host`: the coupling solves on host threads (a callback); the step factory then pairs a whole chunk of
    batches ahead of the training steps in one call (see `make_train_step`).
    """

    @property
    def pairs_on_host(self) -> bool:
        return False

    @abc.abstractmethod
    def __call__(self, key: jax.Array, x0: jax.Array, x1: jax.Array, labels: jax.Array | None = None) -> Pairing: ...


def validate_coupling_inputs(x0, x1, labels):
    x0 = check_array(x0, "x0")
    x1 = check_array(x1, "x1")
    if x0.ndim < 2 or x1.ndim < 2:
        raise ValueError(f"x0 and x1 must be batched [B, ...], got {x0.shape} and {x1.shape}")
    if x0.shape[1:] != x1.shape[1:]:
        raise ValueError(f"x0 and x1 must have the same event shape, got {x0.shape[1:]} and {x1.shape[1:]}")
    check_same_batch(x0, x1, "x0", "x1")
    if x0.shape[0] == 0:
        raise ValueError("x0 and x1 are empty (batch size 0)")
    if labels is not None:
        labels = jnp.asarray(labels)
        # class labels [B], or a per-pair condition [B, ...] (a masked image, a segmentation) for the model's cond
        if labels.ndim == 0 or labels.shape[:1] != x1.shape[:1]:
            raise ValueError(f"labels must have shape [B, ...] with B={x1.shape[0]}, got {labels.shape}")
        if (
            jnp.issubdtype(labels.dtype, jnp.floating)
            and is_concrete(labels)
            and not bool(jnp.all(jnp.isfinite(labels)))
        ):
            raise ValueError("labels contain non-finite values (NaN or inf)")
    return x0, x1, labels


class CostCoupling(Coupling):
    """A coupling that solves a transport problem from a cost matrix.

    Subclasses implement `pair_from_cost(key, x0, x1, cost, labels=None, scale_cost=None)`; `__call__` builds the
    squared-Euclidean cost of the batch and calls it. `scale_cost` is the scale a relative ε refers to (the mean of
    the unmodified cost when a wrapper such as `ConditionalOTCoupling` adds penalties); solvers without an ε
    ignore it. A wrapper composes any `CostCoupling` through this one method.
    """

    @abc.abstractmethod
    def pair_from_cost(
        self,
        key: jax.Array,
        x0: jax.Array,
        x1: jax.Array,
        cost: jax.Array,
        labels: jax.Array | None = None,
        scale_cost: jax.Array | None = None,
    ) -> Pairing: ...

    def __call__(self, key, x0, x1, labels=None) -> Pairing:
        x0, x1, labels = validate_coupling_inputs(x0, x1, labels)
        return self.pair_from_cost(key, x0, x1, sqeuclidean_cost(x0, x1), labels)


class IndependentCoupling(Coupling):
    """(x0, x1) as drawn, all weights 1: the I-CFM coupling (Tong et al. 2024). Called as
    `coupling(key, x0 [B, ...], x1 [B, ...], labels=None) -> Pairing`; it takes no arguments."""

    def __call__(self, key, x0, x1, labels=None) -> Pairing:
        x0, x1, labels = validate_coupling_inputs(x0, x1, labels)
        return Pairing(x0, x1, jnp.ones(x0.shape[0], x0.dtype), labels)


def pair_in_data(data_fn: Callable, coupling: Coupling) -> Callable:
    """Move a coupling out of the loss into the data function: `key -> batch` with x0, x1 (and labels) already paired.

    Use with `cfm_loss(..., coupling=IndependentCoupling())` and `make_train_step(..., draw_ahead=True)`: the chunk's
    batches are then drawn and paired in one vmapped call, so a host solver (the exact coupling) sees all of them at
    once and solves them on parallel threads. Couplings with weights (W-CFM) must stay in the loss.

    Args:
        data_fn: `data_fn(key) -> batch` with "x0" and "x1" (and "labels").
        coupling: the `Coupling` to apply.

    Returns:
        `paired(key) -> batch` with the pairs in place.
    """

    def paired(key):
        k_data, k_pair = jax.random.split(key)
        batch = dict(data_fn(k_data))
        pairing = coupling(k_pair, batch["x0"], batch["x1"], batch.get("labels"))
        batch.update(x0=pairing.x0, x1=pairing.x1)
        if pairing.labels is not None:
            batch["labels"] = pairing.labels
        return batch

    return paired
