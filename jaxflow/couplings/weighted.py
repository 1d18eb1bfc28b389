"""W-CFM: independent pairs reweighted by the Gibbs kernel of the transport cost (docs/couplings.md)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from jaxflow._checks import check_choice, check_positive
from jaxflow.couplings.base import Coupling, Pairing, validate_coupling_inputs
from jaxflow.ot.sinkhorn import sqeuclidean_cost

COSTS = ("sqeuclidean", "euclidean")
CORRECTIONS = ("none", "sinkhorn")


class GibbsWeightedCoupling(Coupling):
    """Independent pairs with weights w_i = exp(−c(x0_i, x1_i)/ε).

    `normalize=True` (default) self-normalises over the batch so the weights average to 1 (B · softmax(−c/ε));
    otherwise the raw kernel values are returned. With `relative=True`, ε is `epsilon` × mean(c) over the batch.
    ε → ∞ recovers I-CFM; small ε tilts towards the entropic OT plan (with tilted marginals).

    correction: `none` (the weights above) or `sinkhorn`: the weight of pair i is the entropic plan's density ratio on
    the batch, w_i ∝ B² P_ii with P the Sinkhorn plan (uniform marginals 1/B) of the batch's cost matrix at the same
    ε. The plain Gibbs weight exp(−c_ii/ε) tilts the x0-marginal by Z(x0) = E_y exp(−c(x0, y)/ε) (and x1 likewise);
    the Sinkhorn scalings divide that tilt out, so the weighted pairs follow the entropic plan, whose marginals are
    the data's (docs/couplings.md). It costs one Sinkhorn solve per batch.

    Called as `coupling(key, x0 [B, ...], x1 [B, ...], labels=None) -> Pairing` with the weights [B] set.

    Attributes:
        epsilon: the temperature ε > 0 (relative to the batch's mean cost when `relative`).
        relative: ε = `epsilon` × mean(c) over the batch (default True).
        normalize: self-normalise the weights to average 1 over the batch.
        cost: the pair cost ("sqeuclidean").
        correction: "none" or "sinkhorn" (see above).
        sinkhorn_iterations: the most iterations of the `sinkhorn` correction.
        sinkhorn_tolerance: its stopping tolerance on the row marginals (L1).

    Raises:
        ValueError: ε ≤ 0, an unknown cost or correction, a bad iteration count or tolerance.
    """

    epsilon: float = 0.5
    relative: bool = eqx.field(default=True, static=True)
    normalize: bool = eqx.field(default=True, static=True)
    cost: str = eqx.field(default="sqeuclidean", static=True)
    correction: str = eqx.field(default="none", static=True)
    sinkhorn_iterations: int = eqx.field(default=100, static=True)
    """The most Sinkhorn iterations of the `sinkhorn` correction."""
    sinkhorn_tolerance: float = eqx.field(default=1e-3, static=True)
    """The `sinkhorn` correction stops once the plan's row marginals are within this L1 distance of uniform (the
    columns are exact after each iteration). Large ε converges in a few iterations, small ε needs more."""

    def __check_init__(self):
        check_positive(self.epsilon, "epsilon")
        check_choice(self.cost, "cost", COSTS)
        check_choice(self.correction, "correction", CORRECTIONS)
        check_positive(self.sinkhorn_tolerance, "sinkhorn_tolerance")
        if not isinstance(self.sinkhorn_iterations, int) or self.sinkhorn_iterations < 1:
            raise ValueError(f"sinkhorn_iterations must be a positive integer, got {self.sinkhorn_iterations!r}")

    def __call__(self, key, x0, x1, labels=None) -> Pairing:
        x0, x1, labels = validate_coupling_inputs(x0, x1, labels)
        diff = (x0 - x1).reshape(x0.shape[0], -1)
        c = jnp.sum(diff * diff, axis=1)
        if self.cost == "euclidean":
            c = jnp.sqrt(c)
        c = jax.lax.stop_gradient(c)
        eps = self.epsilon * jnp.mean(c) if self.relative else self.epsilon
        if self.correction == "sinkhorn":
            log_w = self._log_plan_diagonal(x0, x1, eps)
            w = x0.shape[0] * jax.nn.softmax(log_w) if self.normalize else jnp.exp(log_w)
            return Pairing(x0, x1, w.astype(x0.dtype), labels)
        if self.normalize:
            w = x0.shape[0] * jax.nn.softmax(-c / eps)
        else:
            w = jnp.exp(-c / eps)
        return Pairing(x0, x1, w.astype(x0.dtype), labels)

    def _log_plan_diagonal(self, x0, x1, eps):
        """log(B² P_ii) for the log-domain Sinkhorn plan P of the batch (uniform marginals), ε as the pairs use it."""
        n = x0.shape[0]
        cost = jax.lax.stop_gradient(sqeuclidean_cost(x0, x1))
        if self.cost == "euclidean":
            cost = jnp.sqrt(cost)
        # ε relative to the mean pair cost (as the plain weights) is the same ε on the full cost matrix's scale
        log_k = -cost / eps
        log_marg = -jnp.log(n) * jnp.ones(n, cost.dtype)

        def body(state):
            i, f, g, _ = state
            f_new = log_marg - jax.nn.logsumexp(log_k + g[None, :], axis=1)
            # the row marginals of the previous (f, g) are exp(f − f_new)/n: their L1 error comes for free
            err = jnp.sum(jnp.abs(jnp.expm1(f - f_new))) / n
            g_new = log_marg - jax.nn.logsumexp(log_k + f_new[:, None], axis=0)
            return i + 1, f_new, g_new, err

        def cond(state):
            i, _, _, err = state
            return (i < self.sinkhorn_iterations) & (err > self.sinkhorn_tolerance)

        zeros = jnp.zeros(n, cost.dtype)
        _, f, g, _ = jax.lax.while_loop(cond, body, (0, zeros, zeros, jnp.asarray(jnp.inf, cost.dtype)))
        return 2.0 * jnp.log(n) + f + g + jnp.diagonal(log_k)


def effective_sample_size(weights: jax.Array) -> jax.Array:
    """Kish's effective sample size (Σw)² / Σw² of a weight vector.

    Args:
        weights: [B], non-negative.

    Returns:
        The ESS, between 1 and B.
    """
    return jnp.sum(weights) ** 2 / jnp.sum(weights**2)
