"""Exact optimal transport through POT's network simplex (C code), callable from jitted JAX code.

The network simplex is run on the host through `jax.pure_callback`; under `vmap` the callback receives the whole
batch of problems at once (one host round trip per call). For uniform weights and equal sizes the optimal plan is a
permutation matrix divided by n (a vertex of the Birkhoff polytope), so `exact_assignment` returns the permutation.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
import ot as pot
from jax.typing import ArrayLike
from threadpoolctl import ThreadpoolController

from jaxflow._checks import check_array, is_concrete, traced_check

# POT's default iteration cap is too small for n in the thousands (it warns and returns a non-optimal plan).
_NUM_ITER_MAX = 100_000_000


def emd_plan_numpy(cost: ArrayLike, a: ArrayLike | None = None, b: ArrayLike | None = None) -> np.ndarray:
    """Exact OT plan [n, m] for cost [n, m] with marginals a [n], b [m] (uniform when None), float64.

    Args:
        cost: the cost matrix [n, m].
        a: source weights [n] summing to one (uniform when None).
        b: target weights [m] summing to one (uniform when None).

    Returns:
        The plan [n, m] as a float64 NumPy array.

    Raises:
        RuntimeError: the network-simplex solver did not converge.
    """
    cost = np.ascontiguousarray(cost, dtype=np.float64)
    n, m = cost.shape
    a = np.full(n, 1.0 / n) if a is None else np.asarray(a, np.float64)
    b = np.full(m, 1.0 / m) if b is None else np.asarray(b, np.float64)
    plan, log = pot.emd(a, b, cost, numItermax=_NUM_ITER_MAX, log=True)
    if log.get("warning"):
        raise RuntimeError(f"exact OT solver did not converge: {log['warning']}")
    return plan


_POOL: ThreadPoolExecutor | None = None
_NUM_THREADS = max(1, os.cpu_count() or 1)


def set_num_threads(n: int) -> None:
    """Number of host threads that solve a batch of exact problems in parallel (POT releases the GIL)."""
    global _POOL, _NUM_THREADS
    if n < 1:
        raise ValueError(f"num_threads must be >= 1, got {n}")
    if _POOL is not None:
        _POOL.shutdown()
    _POOL, _NUM_THREADS = None, n


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(_NUM_THREADS, thread_name_prefix="jaxflow-emd")
    return _POOL


_BLAS: ThreadpoolController | None = None


def _solve_all(solve, problems: list) -> list:
    """Solve a batch of problems (vmap), side by side on the pool's threads when there are several."""
    if len(problems) == 1 or _NUM_THREADS == 1:
        return [solve(p) for p in problems]
    global _BLAS
    if _BLAS is None:  # made once numpy's BLAS is loaded
        _BLAS = ThreadpoolController()
    # the pool's threads are the parallelism: numpy's BLAS (the costs' matrix products) keeps to one thread
    # meanwhile, or its own workers oversubscribe the cores (×1.8 slower at B = 512 on 2 cores, measured)
    with _BLAS.limit(limits=1, user_api="blas"):
        return list(_pool().map(solve, problems))


def _assignment_one(cost: ArrayLike) -> np.ndarray:
    return np.argmax(emd_plan_numpy(cost), axis=1).astype(np.int32)


def _assignment_host(cost: ArrayLike) -> np.ndarray:
    cost = np.asarray(cost)
    lead = cost.shape[:-2]
    flat = cost.reshape((-1,) + cost.shape[-2:])
    return np.stack(_solve_all(_assignment_one, list(flat))).reshape(lead + cost.shape[-2:-1])


def _sqeuclidean_numpy(x: ArrayLike, y: ArrayLike) -> np.ndarray:
    x = np.asarray(x, np.float64).reshape(x.shape[0], -1)
    y = np.asarray(y, np.float64).reshape(y.shape[0], -1)
    cost = np.einsum("id,id->i", x, x)[:, None] + np.einsum("jd,jd->j", y, y)[None, :] - 2.0 * (x @ y.T)
    return np.maximum(cost, 0.0, out=cost)


def _assignment_points_one(xy: tuple[ArrayLike, ArrayLike]) -> np.ndarray:
    return _assignment_one(_sqeuclidean_numpy(*xy))


def _assignment_points_host(x: ArrayLike, y: ArrayLike, *, ndim: int) -> np.ndarray:
    # ndim: the axes of one problem's points [n, ...]; vmapping (expand_dims) puts batch axes in front of them
    # (an unbatched argument arrives with size-1 axes there)
    x, y = np.asarray(x), np.asarray(y)
    lead = np.broadcast_shapes(x.shape[: x.ndim - ndim], y.shape[: y.ndim - ndim])
    event = x.shape[x.ndim - ndim :]
    x, y = np.broadcast_to(x, lead + event), np.broadcast_to(y, lead + event)
    flat = list(zip(x.reshape((-1,) + event), y.reshape((-1,) + event)))
    return np.stack(_solve_all(_assignment_points_one, flat)).reshape(lead + event[:1])


def exact_assignment(cost: jax.Array) -> jax.Array:
    """Optimal permutation σ [n] for the square cost [n, n] (uniform weights): pairs (i, σ(i)). Jit- and vmap-able.

    Args:
        cost: a square cost matrix [n, n].

    Returns:
        The permutation σ [n] (int32).
    """
    if cost.ndim != 2 or cost.shape[0] != cost.shape[1]:
        raise ValueError(f"exact_assignment needs a square cost matrix, got shape {cost.shape}")
    out = jax.ShapeDtypeStruct(cost.shape[:1], jnp.int32)
    return jax.pure_callback(_assignment_host, out, cost, vmap_method="expand_dims")


def exact_plan(cost: jax.Array, a: jax.Array | None = None, b: jax.Array | None = None) -> jax.Array:
    """The exact OT plan for a cost matrix and general marginals (POT's network simplex through a host callback:
    jit-able, not differentiable).

    Args:
        cost: the cost matrix [n, m].
        a: source marginal [n], non-negative (default uniform).
        b: target marginal [m], non-negative, the same mass as `a` (default uniform).

    Returns:
        The plan [n, m] (row sums a, column sums b).

    Raises:
        ValueError: a non-finite cost, marginals of the wrong shape, negative or of unequal mass.
    """
    cost = check_array(cost, "cost", ndim=2)
    n, m = cost.shape
    a = jnp.full((n,), 1.0 / n, cost.dtype) if a is None else check_array(a, "a", ndim=1).astype(cost.dtype)
    b = jnp.full((m,), 1.0 / m, cost.dtype) if b is None else check_array(b, "b", ndim=1).astype(cost.dtype)
    if a.shape != (n,) or b.shape != (m,):
        raise ValueError(f"marginals must match the cost [{n}, {m}], got a {a.shape} and b {b.shape}")
    # the network simplex needs non-negative marginals of equal mass (POT's own assert would surface as an XLA
    # INTERNAL error from inside the callback)
    bad = jnp.any(a < 0) | jnp.any(b < 0) | (jnp.abs(a.sum() - b.sum()) > 1e-6 * jnp.maximum(a.sum(), 1.0))
    if is_concrete(bad):
        if bool(bad):
            raise ValueError(
                f"marginals a and b must be non-negative with equal mass, got masses {float(a.sum())} and "
                f"{float(b.sum())} (min {float(a.min())}, {float(b.min())})"
            )
    else:
        a = traced_check(a, bad, "exact_plan: marginals a and b must be non-negative with equal mass")

    def host(c, a_, b_):
        return emd_plan_numpy(c, a_, b_).astype(np.asarray(c).dtype)

    return jax.pure_callback(host, jax.ShapeDtypeStruct((n, m), cost.dtype), cost, a, b, vmap_method="sequential")


def exact_assignment_sqeuclidean(x: jax.Array, y: jax.Array) -> jax.Array:
    """`exact_assignment(sqeuclidean_cost(x, y))` for points x, y [n, ...], with the cost built on the host in float64.

    Only the points cross to the host (n·d numbers, not n² costs), and each worker thread builds its problem's cost
    next to the solver, so a chunk of problems costs no device work and no n²-sized buffer. Jit- and vmap-able.

    Args:
        x: source points [n, ...].
        y: target points [n, ...], the same shape.

    Returns:
        The optimal permutation [n] (int32): x[i] goes to y[perm[i]].

    Raises:
        ValueError: x and y of different shapes or without a batch axis.
    """
    if x.ndim < 2 or x.shape != y.shape:
        raise ValueError(f"exact_assignment_sqeuclidean needs points [n, ...] of one shape, got {x.shape}, {y.shape}")
    out = jax.ShapeDtypeStruct(x.shape[:1], jnp.int32)
    host = functools.partial(_assignment_points_host, ndim=x.ndim)
    return jax.pure_callback(host, out, x, y, vmap_method="expand_dims")
