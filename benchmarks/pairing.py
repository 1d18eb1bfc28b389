"""Minibatch OT pairing per batch (8gaussians → moons): TorchCFM's exact path (torch.cdist + POT network simplex +
plan sampling) against jaxflow's pairings; time per batch and each pairing's transport cost relative to the exact
optimum of that batch. Methods alternate on the same batches so that machine drift cancels in the ratios."""

from __future__ import annotations

import time

import jax
import numpy as np
import ot as pot

import jaxflow as jf
from jaxflow.couplings import ExactOTCoupling, SinkhornCoupling

CHUNK = 16  # batches paired in one call by the drawn-ahead exact pairing
AUCTION_MAX = 256  # the device auction is timed up to this size (on this CPU: 0.34 s per B = 256 batch)


def _batches(key, size: int, count: int):
    k0, k1 = jax.random.split(key)
    x0 = jax.vmap(lambda k: jf.data.sample_toy(k, "8gaussians", size))(jax.random.split(k0, count))
    x1 = jax.vmap(lambda k: jf.data.sample_toy(k, "moons", size))(jax.random.split(k1, count))
    return x0, x1


def _jax_pairer(coupling):
    one = jax.jit(lambda k, a, b: coupling(k, a, b)[:2])
    many = jax.jit(jax.vmap(lambda k, a, b: coupling(k, a, b)[:2]))
    return one, many


def measure(sizes=(128, 256, 512, 1024), repeats: int = 8, seed: int = 0) -> list[dict]:
    import torch
    from torchcfm.optimal_transport import OTPlanSampler

    np.random.seed(seed)  # noqa: NPY002 (the reference samples plans with numpy's global generator)
    torch.manual_seed(seed)
    ref = OTPlanSampler(method="exact")
    methods = {
        "jaxflow exact (1 batch per call)": ExactOTCoupling(mode="resample"),
        f"jaxflow exact ({CHUNK} batches per call, threads)": ExactOTCoupling(mode="resample"),
        "jaxflow exact, device auction (1 batch per call)": ExactOTCoupling(mode="resample", solver="auction"),
        f"jaxflow exact, device auction ({CHUNK} batches per call, vmapped)": ExactOTCoupling(
            mode="resample", solver="auction"
        ),
        "jaxflow Sinkhorn ε=0.05·mean C, resample": SinkhornCoupling(epsilon=0.05, mode="resample"),
        "jaxflow Sinkhorn ε=0.01·mean C, permutation": SinkhornCoupling(epsilon=0.01, mode="permutation"),
    }
    pairers = {name: _jax_pairer(c) for name, c in methods.items()}
    rows = []
    for size in sizes:
        key = jax.random.key(size)
        x0s, x1s = _batches(key, size, repeats * CHUNK)
        x0n, x1n = np.asarray(x0s, np.float64), np.asarray(x1s, np.float64)
        optimum = [pot.emd2(pot.unif(size), pot.unif(size), pot.dist(a, b), numItermax=10**8) for a, b in zip(x0n, x1n)]
        active = {m: p for m, p in pairers.items() if "auction" not in m or size <= AUCTION_MAX}
        times = {"TorchCFM exact (POT)": [], **{m: [] for m in active}}
        ratios = {m: [] for m in times}
        keys = jax.random.split(jax.random.key(seed), repeats * CHUNK)
        for one, many in active.values():  # compile
            jax.block_until_ready(one(keys[0], x0s[0], x1s[0]))
            jax.block_until_ready(many(keys[:CHUNK], x0s[:CHUNK], x1s[:CHUNK]))
        for r in range(repeats):
            sl = slice(r * CHUNK, (r + 1) * CHUNK)
            # reference: TorchCFM's sampler, one batch at a time
            t0 = time.perf_counter()
            pairs = [
                ref.sample_plan(torch.from_numpy(a).float(), torch.from_numpy(b).float())
                for a, b in zip(x0n[sl], x1n[sl])
            ]
            times["TorchCFM exact (POT)"].append((time.perf_counter() - t0) / CHUNK)
            ratios["TorchCFM exact (POT)"] += [float(((p0 - p1) ** 2).sum(1).mean()) for p0, p1 in pairs]
            for name, (one, many) in active.items():
                t0 = time.perf_counter()
                if "batches per call" in name:
                    out = jax.block_until_ready(many(keys[sl], x0s[sl], x1s[sl]))
                    p0s, p1s = np.asarray(out[0]), np.asarray(out[1])
                else:
                    outs = [jax.block_until_ready(one(k, a, b)) for k, a, b in zip(keys[sl], x0s[sl], x1s[sl])]
                    p0s, p1s = np.stack([np.asarray(o[0]) for o in outs]), np.stack([np.asarray(o[1]) for o in outs])
                times[name].append((time.perf_counter() - t0) / CHUNK)
                ratios[name] += list(((p0s - p1s) ** 2).sum(-1).mean(-1))
        opt = np.asarray(optimum)
        for name in times:
            rel = np.asarray(ratios[name], np.float64) / opt
            rows.append(
                {
                    "batch": size,
                    "method": name,
                    "ms": [1e3 * t for t in times[name]],
                    "cost_ratio": float(np.mean(rel)),
                    "cost_ratio_sem": float(np.std(rel) / np.sqrt(rel.size)),
                }
            )
    return rows
