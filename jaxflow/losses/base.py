"""The objective contract: a loss is a small `eqx.Module` called as `loss(params, batch, key) -> (scalar, aux)`.

Its parts (model boundary, path, coupling, target, time sampler, options) are fields, so a user reads them
(`loss.coupling`), swaps one with `eqx.tree_at` (`eqx.tree_at(lambda l: l.coupling, loss, ExactOTCoupling())`),
and subclasses a loss as any other module. The step factory reads `coupling` as a field when it moves a host-solved
pairing ahead of the device work (`jaxflow.train.make_train_step`); an objective without pairs has no coupling.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax

from jaxflow.couplings.base import Coupling


class Objective(eqx.Module):
    """A training objective. Subclasses implement `__call__(params, batch, key) -> (scalar, aux dict)`."""

    @abc.abstractmethod
    def __call__(self, params, batch, key: jax.Array) -> tuple[jax.Array, dict]: ...

    # a loss is used as a function (`jax.jit(loss)`, `jax.value_and_grad(loss)`), which hashes it: by identity, as
    # a function is, since its fields may hold arrays (a teacher's parameters, a scheduler's tables)
    def __hash__(self):
        return id(self)

    def __eq__(self, other):
        return self is other


def coupling_of(loss):
    """The loss's coupling field, or None for an objective (or a plain function) that draws no pairs."""
    return getattr(loss, "coupling", None) if isinstance(loss, Objective) else None


def with_coupling(loss: Objective, coupling: Coupling) -> Objective:
    """The same objective with another coupling (a new module; the loss passed in is unchanged).

    Args:
        loss: an objective with a `coupling` field (e.g. `RegressionLoss`).
        coupling: the new `Coupling`.

    Returns:
        The new objective.
    """
    return eqx.tree_at(lambda obj: obj.coupling, loss, coupling)
