"""Exact assignment on the device: Bertsekas' auction algorithm with ε-scaling and Jacobi bidding.

Bertsekas (1988), "The auction algorithm: a distributed relaxation method for the assignment problem", Annals of
Operations Research 14; Bertsekas & Castañon (1991) for ε-scaling.

Minimise Σ_i C_{i, σ(i)} over permutations σ. Rows are bidders, columns objects with prices p. In one round every
unassigned row i looks at its values v_ij = −C_ij − p_j, takes its best object j* and bids p_{j*} + (v₁ − v₂) + ε
(v₁, v₂ its best and second-best values): all rows bid at once (Jacobi), so a round is dense [B, B] array work. Each
object that received bids goes to the highest bidder at that price; its previous owner becomes unassigned. When every
row is assigned, the assignment satisfies ε-complementary slackness, so its total cost is within B·ε of the optimum.
ε-scaling runs phases with ε divided by `scale` from ε₀ = max|C|/4 down to ε_final, keeping the prices between phases,
which bounds the number of rounds.

Guarantee: total cost ≤ optimum + B·ε_final. The default ε_final is 1e-4 · (Σ_i min_j C_ij)/B for non-negative costs,
so the relative gap to the optimum (which is at least Σ_i min_j C_ij) is at most 1e-4; for integer costs it is
1/(B + 1), which makes the assignment optimal. Everything is `lax.while_loop`s with a bounded number of rounds, so it
jits, vmaps (a chunk of problems in one call) and runs on any device; `converged` is false when the cap was hit.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxflow._checks import check_array, is_concrete


class AuctionOutput(NamedTuple):
    """perm [..., B] (row i is paired with column perm[i]); cost: total cost of the assignment; epsilon: the final ε
    (the assignment's total cost is within B·ε of the optimum); rounds: bidding rounds used; converged.

    Attributes:
        perm: the assignment [..., B].
        cost: its total cost.
        epsilon: the final ε.
        rounds: the bidding rounds used.
        converged: whether the last phase ended before `max_rounds`.
    """

    perm: jax.Array
    cost: jax.Array
    epsilon: jax.Array
    rounds: jax.Array
    converged: jax.Array


def default_epsilon_final(cost: jax.Array, relative_gap: float = 1e-4) -> jax.Array:
    """ε_final with a relative optimality gap ≤ `relative_gap` (non-negative costs); 1/(B + 1) for integer costs."""
    n = cost.shape[-1]
    lower = jnp.sum(jnp.min(cost, axis=-1))  # a lower bound on the optimal total for non-negative costs
    scale = jnp.maximum(jnp.max(jnp.abs(cost)), jnp.finfo(cost.dtype).tiny)
    eps = relative_gap * jnp.where(lower > 0, lower, scale) / n
    integer = jnp.all(cost == jnp.round(cost))
    return jnp.where(integer, jnp.minimum(eps, 1.0 / (n + 1)), eps).astype(cost.dtype)


def _varying_like(ref, *values):
    """Mark fresh loop carries as varying over the same mesh axes as `ref` (inside `shard_map` a constant initial
    carry would otherwise differ in type from the carry the loop computes from the device's own cost matrix)."""
    aval = jax.typeof(ref)
    manual = getattr(aval, "manual_axis_type", None)  # jax ≥ 0.10; older releases call the set `vma`
    axes = tuple(sorted(manual.varying if manual is not None else getattr(aval, "vma", ())))
    if not axes:
        return values
    out = []
    for v in values:
        have = getattr(jax.typeof(v), "manual_axis_type", None)
        missing = tuple(a for a in axes if have is None or a not in have.varying)
        out.append(jax.lax.pcast(v, missing, to="varying") if missing else v)
    return tuple(out)


def _phase(benefit, prices, eps, max_rounds):
    """One ε phase from scratch (no row assigned), keeping the prices. Returns (owner_of_row, prices, rounds)."""
    n = benefit.shape[0]
    rows = jnp.arange(n, dtype=jnp.int32)
    cols = jnp.arange(n, dtype=jnp.int32)

    def cond(state):
        assigned, _, _, rounds = state
        return jnp.any(assigned < 0) & (rounds < max_rounds)

    def body(state):
        assigned, owner, prices, rounds = state
        values = benefit - prices[None, :]
        best = jnp.argmax(values, axis=1).astype(jnp.int32)
        v1 = jnp.max(values, axis=1)
        v2 = jnp.max(jnp.where(cols[None, :] == best[:, None], -jnp.inf, values), axis=1)
        bidding = assigned < 0
        bid = jnp.where(bidding, prices[best] + (v1 - v2) + eps, -jnp.inf)
        # dense [rows, objects] bid table: each object goes to its highest bidder (the first one on ties)
        table = jnp.where(cols[None, :] == best[:, None], bid[:, None], -jnp.inf)
        high = jnp.max(table, axis=0)
        winner = jnp.argmax(table, axis=0).astype(jnp.int32)
        sold = high > -jnp.inf
        # previous owners of sold objects lose them; winners get them
        lost = (assigned >= 0) & sold[jnp.clip(assigned, 0)]
        assigned = jnp.where(lost, -1, assigned)
        won = bidding & sold[best] & (winner[best] == rows)
        assigned = jnp.where(won, best, assigned)
        owner = jnp.where(sold, winner, owner)
        prices = jnp.where(sold, high, prices)
        return assigned, owner, prices, rounds + 1

    init = (*_varying_like(benefit, -jnp.ones(n, jnp.int32), -jnp.ones(n, jnp.int32)), prices, jnp.zeros((), jnp.int32))
    init = (*init[:3], *_varying_like(benefit, init[3]))
    assigned, _, prices, rounds = jax.lax.while_loop(cond, body, init)
    return assigned, prices, rounds


def auction_assignment(
    cost: Float[Array, "*batch n n"],
    *,
    epsilon_final: float | jax.Array | None = None,
    scale: float = 5.0,
    max_rounds: int = 100_000,
) -> AuctionOutput:
    """Minimum-cost assignment of a square cost matrix [..., B, B] by the auction algorithm (see the module).

    epsilon_final: the last phase's ε (default: `default_epsilon_final`, relative gap ≤ 1e-4, exact for integers).
    scale: ε is divided by this between phases (4–8 is usual). max_rounds: cap on bidding rounds over all phases.
    Batch dimensions are handled by `vmap`. Works in float32 and float64.

    Args:
        cost: square cost matrices [..., B, B] (float32 or float64).
        epsilon_final: the last phase's ε (default: relative gap ≤ 1e-4, exact for integer costs).
        scale: ε is divided by this between phases (4–8 is usual), > 1.
        max_rounds: cap on bidding rounds over all phases.

    Returns:
        `AuctionOutput`: `perm` [..., B] (row i takes column perm[i]), its cost, the final ε, rounds, `converged`.

    Raises:
        ValueError: a cost that is not square, non-finite costs, scale ≤ 1.
    """
    cost = check_array(cost, "cost")
    if cost.ndim < 2 or cost.shape[-1] != cost.shape[-2]:
        raise ValueError(f"cost must be square [..., B, B], got shape {cost.shape}")
    if cost.shape[-1] < 1:
        raise ValueError("cost is empty (B = 0)")
    if not scale > 1:
        raise ValueError(f"scale must be > 1, got {scale}")
    if epsilon_final is not None and is_concrete(epsilon_final):
        eps = np.asarray(epsilon_final, np.float64)
        if not (np.all(np.isfinite(eps)) and np.all(eps > 0)):
            raise ValueError(f"epsilon_final must be positive and finite, got {epsilon_final!r}")
    if not (isinstance(max_rounds, int) and max_rounds >= 1):
        raise ValueError(f"max_rounds must be a positive int, got {max_rounds!r}")
    if cost.ndim > 2:
        batch = cost.shape[:-2]
        flat = cost.reshape(-1, *cost.shape[-2:])
        if epsilon_final is None or jnp.ndim(epsilon_final) == 0:
            out = jax.vmap(lambda c: _solve(c, epsilon_final, scale, max_rounds))(flat)
        else:
            eps = jnp.broadcast_to(jnp.asarray(epsilon_final, cost.dtype), batch).reshape(-1)
            out = jax.vmap(lambda c, e: _solve(c, e, scale, max_rounds))(flat, eps)
        return jax.tree.map(lambda a: a.reshape(*batch, *a.shape[1:]), out)
    return _solve(cost, epsilon_final, scale, max_rounds)


def _solve(cost, epsilon_final, scale, max_rounds):
    n = cost.shape[0]
    cost = jax.lax.stop_gradient(cost)
    eps_final = default_epsilon_final(cost) if epsilon_final is None else jnp.asarray(epsilon_final, cost.dtype)
    benefit = -cost
    if n == 1:
        zero = jnp.zeros((), jnp.int32)
        return AuctionOutput(jnp.zeros(1, jnp.int32), cost[0, 0], eps_final, zero, jnp.asarray(True))
    eps0 = jnp.maximum(jnp.max(jnp.abs(cost)) / 4.0, eps_final)

    def cond(state):
        _, _, eps, rounds, done = state
        return ~done & (rounds < max_rounds)

    def body(state):
        _, prices, eps, rounds, _ = state
        assigned, prices, used = _phase(benefit, prices, eps, max_rounds - rounds)
        last = eps <= eps_final
        return assigned, prices, jnp.maximum(eps / scale, eps_final), rounds + used, last

    init = _varying_like(
        cost, -jnp.ones(n, jnp.int32), jnp.zeros(n, cost.dtype), eps0, jnp.zeros((), jnp.int32), jnp.asarray(False)
    )
    assigned, _, _, rounds, done = jax.lax.while_loop(cond, body, init)
    complete = jnp.all(assigned >= 0)
    perm = jnp.where(complete, assigned, jnp.arange(n, dtype=jnp.int32))
    total = jnp.sum(cost[jnp.arange(n), perm])
    return AuctionOutput(perm, total, eps_final, rounds, done & complete)
