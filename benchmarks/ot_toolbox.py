"""OT toolbox rows (issue 5): sliced Wasserstein against POT at n = 4000, L = 1000; control-variate variance
reduction at d = 64, L = 100 (Gaussian vs anisotropic Gaussian); Sinkhorn–Newton–Sparse iterations against Sinkhorn on
the random assignment problem."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import ot as pot

import jaxflow as jf
from jaxflow.ot import sliced


def sw_vs_pot(n=4000, d=64, L=1000, repeats=5):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (1.0 + rng.normal(size=(n, d)) * np.geomspace(0.2, 3.0, d)).astype(np.float32)
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    key = jax.random.key(0)
    theta = np.asarray(sliced.random_directions(key, L, d))
    fn = jax.jit(lambda k: jf.ot.sliced_wasserstein(k, xj, yj, L).distance)
    fn(key).block_until_ready()
    ours, theirs, vals = [], [], []
    for _ in range(repeats):  # alternate A, B
        t = time.perf_counter()
        v1 = float(fn(key).block_until_ready())
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        v2 = pot.sliced_wasserstein_distance(x, y, projections=theta.T)
        theirs.append(time.perf_counter() - t)
        vals = (v1, float(v2))
    return {"n": n, "d": d, "L": L, "jaxflow_s": ours, "pot_s": theirs, "values": vals}


def cv_variance(n=1000, d=64, L=100, repeats=500):
    key = jax.random.key(1)
    k1, k2 = jax.random.split(key)
    x = jax.random.normal(k1, (n, d))
    y = 1.0 + jax.random.normal(k2, (n, d)) * jnp.geomspace(0.2, 3.0, d)
    keys = jax.random.split(jax.random.key(2), repeats)
    out = {}
    for cv in (None, "lower", "upper"):
        est = jax.jit(jax.vmap(lambda k, cv=cv: jf.ot.sliced_wasserstein(k, x, y, L, control_variate=cv).power))
        out[str(cv)] = float(jnp.var(est(keys), ddof=1))
    return {"n": n, "d": d, "L": L, "repeats": repeats, "variance": out}


def sns_iterations(n=500, eta=1200.0, threshold=1e-11):
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)  # float64 throughout: the threshold is near round-off
    try:
        cost = jax.random.uniform(jax.random.key(0), (n, n), jnp.float64)
        jf.ot.sinkhorn_newton_sparse(cost, epsilon=1 / eta, threshold=threshold)  # compile
        jf.ot.sinkhorn_to_precision(cost, 1 / eta, threshold=threshold, max_iterations=200_000)
        t = time.perf_counter()
        sns = jf.ot.sinkhorn_newton_sparse(cost, epsilon=1 / eta, threshold=threshold)
        t_sns = time.perf_counter() - t
        t = time.perf_counter()
        out, iters = jf.ot.sinkhorn_to_precision(cost, 1 / eta, threshold=threshold, max_iterations=200_000)
        t_sk = time.perf_counter() - t
        gap = float(jnp.abs(sns.matrix - out.matrix).sum())  # inside: ott builds the plan lazily
    finally:
        jax.config.update("jax_enable_x64", previous)
    return {
        "n": n,
        "eta": eta,
        "threshold": threshold,
        "sns_iterations": sns.iterations,
        "sns_newton": sns.newton_iterations,
        "sns_s": t_sns,
        "sinkhorn_iterations": iters,
        "sinkhorn_s": t_sk,
        "plan_gap": gap,
    }


def measure(quick: bool = False) -> dict:
    return {
        "sw": sw_vs_pot(repeats=3 if quick else 7),
        "cv": cv_variance(repeats=200 if quick else 500),
        "sns": sns_iterations(),
    }
