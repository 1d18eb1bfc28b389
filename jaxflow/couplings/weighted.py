"""W-CFM: independent pairs reweighted by the Gibbs kernel of the transport cost (docs/couplings.md)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from jaxflow._checks import check_choice, check_positive
from jaxflow.couplings.base import Coupling, Pairing, validate_coupling_inputs

COSTS = ("sqeuclidean", "euclidean")


class GibbsWeightedCoupling(Coupling):
    """Independent pairs with weights w_i = exp(−c(x0_i, x1_i)/ε).

    `normalize=True` (default) self-normalises over the batch so the weights average to 1 (B · softmax(−c/ε));
    otherwise the raw kernel values are returned. With `relative=True`, ε is `epsilon` × mean(c) over the batch.
    ε → ∞ recovers I-CFM; small ε tilts towards the entropic OT plan (with tilted marginals).
    """

    epsilon: float = 0.5
    relative: bool = eqx.field(default=True, static=True)
    normalize: bool = eqx.field(default=True, static=True)
    cost: str = eqx.field(default="sqeuclidean", static=True)

    def __check_init__(self):
        check_positive(self.epsilon, "epsilon")
        check_choice(self.cost, "cost", COSTS)

    def __call__(self, key, x0, x1, labels=None) -> Pairing:
        x0, x1, labels = validate_coupling_inputs(x0, x1, labels)
        diff = (x0 - x1).reshape(x0.shape[0], -1)
        c = jnp.sum(diff * diff, axis=1)
        if self.cost == "euclidean":
            c = jnp.sqrt(c)
        c = jax.lax.stop_gradient(c)
        eps = self.epsilon * jnp.mean(c) if self.relative else self.epsilon
        if self.normalize:
            w = x0.shape[0] * jax.nn.softmax(-c / eps)
        else:
            w = jnp.exp(-c / eps)
        return Pairing(x0, x1, w.astype(x0.dtype), labels)


def effective_sample_size(weights: jax.Array) -> jax.Array:
    """Kish's effective sample size (Σw)² / Σw² of a weight vector."""
    return jnp.sum(weights) ** 2 / jnp.sum(weights**2)
