"""Unfolding (deconvolution of a detector's smearing): Richardson–Lucy on bins and Wasserstein unfolding on unbinned
samples.

Richardson (1972); Lucy (1974); D'Agostini (1995), "A multidimensional unfolding method based on Bayes' theorem".
The derivation of the Wasserstein scheme is in docs/unfolding.md.

Richardson–Lucy / iterative Bayesian unfolding. R_ij = P(measured in bin i | true bin j), efficiency ε_j = Σ_i R_ij,
measured histogram g. Iterate f_j ← (f_j / ε_j) Σ_i R_ij g_i / Σ_k R_ik f_k.

Wasserstein unfolding (derived here; docs/unfolding.md). Data: measured points x_i with
weights b_i (Σ b = mass). Simulation: truth atoms z_j, each with S simulated detector responses y_js, so a truth measure
Σ_j w_j δ_{z_j} has the detector-level image K w = Σ_j w_j (1/S) Σ_s δ_{y_js}. With C = squared Euclidean cost,
we minimise over truth weights w ≥ 0 and couplings π ≥ 0 of the sim responses (j, s) with the data i

    F(w, π) = ⟨C, π⟩ + ε KL(π ‖ (K w) ⊗ b)   subject to   Σ_{j,s} π_{js,i} = b_i   (the data marginal),

i.e. the entropic transport cost between the model's detector-level law K w and the data, where the reference measure
is the product of the two marginals (so the model side is free). F is jointly convex in (w, π) (KL is jointly convex
and K w is linear in w), and the generalised Sinkhorn scheme is exact block-coordinate descent on it:
  - π-step (KL projection onto the data-marginal constraint, a Sinkhorn half-step):
        π_{js,i} = (w_j/S) e^{−C_{js,i}/ε} b_i / Σ_{kt} (w_k/S) e^{−C_{kt,i}/ε};
  - w-step (minimising over the free model marginal): w_j = Σ_{s,i} π_{js,i}.
Together: w ← w ⊙ Kᵀ(b ⊘ K w) with K_ij = (1/S) Σ_s exp(−‖y_js − x_i‖²/ε), and eliminating π,

    min_π F(w, π) = −ε Σ_i b_i log Σ_j w_j K_ij + const,

so the iteration decreases this objective monotonically, conserves mass exactly (Σ_j w_j = Σ_i b_i after every step)
and, as ε → 0 with many responses per atom, tends to unbinned maximum-likelihood (EM) unfolding: the Gibbs kernel is
the simulated response smoothed by a Gaussian of variance ε/2 per coordinate. ε sets a resolution, not a bin width.
Like Richardson–Lucy, early stopping regularises (iterations against error are reported by the experiment).
All computations are in the log domain, so small ε does not underflow.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxflow._checks import check_array, check_positive, is_concrete


def _nonneg(v, name):
    if is_concrete(v) and np.any(np.asarray(v) < 0):
        raise ValueError(f"{name} must be non-negative")


# ---------------------------------------------------------------------------------------------------------------------
# binned: Richardson–Lucy


def response_matrix(true_values, measured_values, true_edges, measured_edges) -> jax.Array:
    """R_ij = P(measured bin i | true bin j) estimated from simulation pairs (1-D or per-coordinate-flattened inputs).

    Events measured outside `measured_edges` count as inefficiency (the column sums are then below 1).
    """
    t = np.asarray(true_values, np.float64).ravel()
    m = np.asarray(measured_values, np.float64).ravel()
    if t.shape != m.shape:
        raise ValueError(f"true and measured values must pair up, got {t.shape} and {m.shape}")
    counts, _, _ = np.histogram2d(m, t, bins=[np.asarray(measured_edges), np.asarray(true_edges)])
    per_true, _ = np.histogram(t, bins=np.asarray(true_edges))
    return jnp.asarray(counts / np.maximum(per_true, 1)[None, :])


def richardson_lucy(
    response: jax.Array, measured: jax.Array, prior: jax.Array | None = None, n_iter: int = 50
) -> jax.Array:
    """Richardson–Lucy unfolding. response [n_meas, n_true], measured histogram [n_meas], prior [n_true] (flat with
    the measured mass when None). Returns the iterates [n_iter + 1, n_true] (row 0 is the prior).

    Args:
        response: the response matrix R [n_meas, n_true] (column j: the measured law of true bin j).
        measured: the measured histogram [n_meas].
        prior: the starting truth histogram [n_true], or None.
        n_iter: the number of iterations.

    Returns:
        The iterates [n_iter + 1, n_true].
    """
    response = check_array(response, "response", ndim=2)
    measured = check_array(measured, "measured", ndim=1)
    _nonneg(response, "response")
    _nonneg(measured, "measured")
    n_meas, n_true = response.shape
    if measured.shape[0] != n_meas:
        raise ValueError(f"measured must have {n_meas} bins to match the response, got {measured.shape}")
    if n_iter < 0:
        raise ValueError(f"n_iter must be >= 0, got {n_iter}")
    if prior is None:
        prior = jnp.full(n_true, jnp.sum(measured) / n_true, response.dtype)
    prior = check_array(prior, "prior", ndim=1)
    _nonneg(prior, "prior")
    eff = response.sum(0)
    safe_eff = jnp.where(eff > 0, eff, 1.0)

    def step(f, _):
        folded = response @ f
        ratio = jnp.where(folded > 0, measured / jnp.where(folded > 0, folded, 1.0), 0.0)
        f = jnp.where(eff > 0, f / safe_eff * (response.T @ ratio), 0.0)
        return f, f

    _, hist = jax.lax.scan(step, prior, None, length=n_iter)
    return jnp.concatenate([prior[None], hist], axis=0)


# ---------------------------------------------------------------------------------------------------------------------
# unbinned: Wasserstein unfolding


class UnfoldingOutput(NamedTuple):
    weights: jax.Array  # truth weights per iteration [n_iter + 1, M] (row 0: the prior)
    objective: jax.Array  # −ε Σ_i b_i log (K w)_i per iteration [n_iter + 1] (decreasing)


def wasserstein_unfolding(
    data: ArrayLike,
    sim_response: ArrayLike,
    epsilon: float,
    n_iter: int = 100,
    prior: jax.Array | None = None,
    data_weights: jax.Array | None = None,
) -> UnfoldingOutput:
    """Wasserstein unfolding by the generalised Sinkhorn scheme above.

    Args:
      data: measured points [N, d] (or [N] for 1-D).
      sim_response: simulated detector responses of the truth atoms, [M, S, d] (S responses per atom), [M, d] (one)
        or [M] (1-D, one). The truth atoms themselves are not needed: the weights returned are on them, in order.
      epsilon: entropic regularisation ε > 0 in squared-distance units.
      prior: initial truth weights [M] (uniform with the data's mass when None); atoms with zero prior stay at zero.
      n_iter: the number of generalised Sinkhorn iterations (≥ 0).
      data_weights: b [N] (1/N each when None).
    """
    x = jnp.asarray(data)
    x = x[:, None] if x.ndim == 1 else x
    x = check_array(x, "data", ndim=2)
    y = jnp.asarray(sim_response)
    if y.ndim == 1:
        y = y[:, None, None]
    elif y.ndim == 2:
        y = y[:, None, :] if x.shape[1] != 1 or y.shape[1] == 1 else y[:, :, None]
    y = check_array(y, "sim_response", ndim=3)
    if y.shape[2] != x.shape[1]:
        raise ValueError(f"sim_response has dimension {y.shape[2]} but data has {x.shape[1]}")
    check_positive(epsilon, "epsilon")
    if n_iter < 0:
        raise ValueError(f"n_iter must be >= 0, got {n_iter}")
    n, m = x.shape[0], y.shape[0]
    b = jnp.full(n, 1.0 / n, x.dtype) if data_weights is None else check_array(data_weights, "data_weights", ndim=1)
    _nonneg(b, "data_weights")
    if b.shape[0] != n:
        raise ValueError(f"data_weights must have {n} entries, got {b.shape}")
    mass = jnp.sum(b)
    w0 = jnp.full(m, mass / m, x.dtype) if prior is None else check_array(prior, "prior", ndim=1)
    _nonneg(w0, "prior")
    if w0.shape[0] != m:
        raise ValueError(f"prior must have {m} entries (one per truth atom), got {w0.shape}")
    return _unfold(x, y, b, w0 * mass / jnp.sum(w0), epsilon, n_iter)


@functools.partial(jax.jit, static_argnums=(5,))
def _unfold(x, y, b, w0, epsilon, n_iter):
    m, s, d = y.shape
    # log K_ij = log (1/S) Σ_s exp(−‖y_js − x_i‖²/ε)   [M, N]
    yy = y.reshape(m * s, d)
    c = jnp.maximum(jnp.sum(yy**2, 1)[:, None] + jnp.sum(x**2, 1)[None, :] - 2.0 * yy @ x.T, 0.0)
    log_k = jax.nn.logsumexp((-c / epsilon).reshape(m, s, -1), axis=1) - jnp.log(s)
    log_b = jnp.log(b)
    tiny = jnp.finfo(x.dtype).tiny

    def log_kw(log_w):
        return jax.nn.logsumexp(log_k + log_w[:, None], axis=0)  # [N]

    def objective(log_w):
        return -epsilon * jnp.sum(b * log_kw(log_w))

    def step(log_w, _):
        log_w = log_w + jax.nn.logsumexp(log_k + (log_b - log_kw(log_w))[None, :], axis=1)
        return log_w, (jnp.exp(log_w), objective(log_w))

    log_w0 = jnp.log(jnp.maximum(w0, tiny))
    log_w0 = jnp.where(w0 > 0, log_w0, -jnp.inf)
    _, (ws, objs) = jax.lax.scan(step, log_w0, None, length=n_iter)
    return UnfoldingOutput(jnp.concatenate([w0[None], ws]), jnp.concatenate([objective(log_w0)[None], objs]))
