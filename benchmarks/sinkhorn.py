"""Entropic OT: jaxflow's Sinkhorn path (ott-jax underneath) against POT's `sinkhorn`, same problem, same ε (absolute,
ε = 0.05·mean C), same stopping rule in the same units: the ℓ2 norm of the column-marginal violation ‖πᵀ1 − b‖₂ below
`tol`, checked every 10 iterations by both. Log-domain against log-domain, kernel against kernel."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import ot as pot
from ott.solvers.linear import sinkhorn as ott_sinkhorn

from jaxflow.ot import solve_sinkhorn, sqeuclidean_cost


def _problem(n: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = 1.0 + 1.5 * rng.normal(size=(n, d))
    cost = np.asarray(sqeuclidean_cost(jnp.asarray(x), jnp.asarray(y)), np.float64)
    cost = cost / cost.mean()  # ε below is then a fraction of mean C
    return cost


def measure(
    shapes=((1000, 2), (1000, 64), (4000, 2), (4000, 64)),
    repeats: int = 3,
    eps: float = 0.05,
    tol: float = 1e-6,
    max_iter: int = 20_000,
) -> list[dict]:
    rows = []
    for n, d in shapes:
        cost64 = _problem(n, d)
        cost32 = jnp.asarray(cost64, jnp.float32)
        a = np.full(n, 1.0 / n)
        for lse in (True, False):
            solver = ott_sinkhorn.Sinkhorn(
                threshold=tol, max_iterations=max_iter, norm_error=2, lse_mode=lse, inner_iterations=10
            )
            run = jax.jit(lambda c, s=solver: solve_sinkhorn(c, eps, solver=s))
            out = jax.block_until_ready(run(cost32))  # compile
            method = "sinkhorn_log" if lse else "sinkhorn"
            t_j, t_p = [], []
            for _ in range(repeats):  # alternate A, B
                t0 = time.perf_counter()
                out = jax.block_until_ready(run(cost32))
                t_j.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                plan, log = pot.sinkhorn(a, a, cost64, eps, method=method, numItermax=max_iter, stopThr=tol, log=True)
                t_p.append(time.perf_counter() - t0)
            err_j = float(jnp.linalg.norm(out.matrix.sum(0) - 1.0 / n))
            err_p = float(np.linalg.norm(plan.sum(0) - a))
            iters_j = int(jnp.sum(out.errors > -1)) * 10
            rows.append(
                {
                    "n": n,
                    "d": d,
                    "mode": "log-domain" if lse else "kernel",
                    "jaxflow_s": t_j,
                    "pot_s": t_p,
                    "jaxflow_iters": iters_j,
                    "pot_iters": int(log.get("niter", -1)),
                    "jaxflow_err": err_j,
                    "pot_err": err_p,
                }
            )
    return rows
