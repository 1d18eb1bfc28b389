"""Training throughput of one 2-D model (MLP 3×64 SELU, batch 256, Adam 1e-3) on 8gaussians → moons.

Run as a script to measure in a fresh process (the device count is fixed by XLA_FLAGS at start-up):
`python -m benchmarks.train_throughput METHOD STEPS REPEATS [mesh] [split=K] [threads=K] [checks=off]` prints one
JSON line of steps/s samples (split: see `make_train_step`; left out, one shard per device; threads: start XLA's CPU
pool with K workers through `limit_cpu_threads`; checks=off: the compiled value checks removed, for their A/B).
"""

from __future__ import annotations

import json
import sys
import time

import jax
import optax

import jaxflow as jf
from jaxflow.couplings import ExactOTCoupling, GibbsWeightedCoupling, IndependentCoupling, SinkhornCoupling
from jaxflow.nn import MLPVelocity, init_mlp, velocity_fn
from jaxflow.train import TrainState, data_mesh, limit_cpu_threads, make_train_step, replicated

COUPLINGS = {
    "icfm": IndependentCoupling,
    "otcfm_exact": ExactOTCoupling,
    "otcfm_sinkhorn": lambda: SinkhornCoupling(epsilon=0.05),
    # the README form: the exact coupling in the loss; make_train_step moves the pairing ahead of the chunk by itself
    # (one callback, problems solved on parallel host threads)
    "otcfm_exact_ahead": ExactOTCoupling,
    # the same, pairing chunk k + 1 while chunk k trains (make_train_step(overlap=True); off by default on a CPU)
    "otcfm_exact_ahead_overlap": ExactOTCoupling,
    "wcfm": lambda: GibbsWeightedCoupling(epsilon=1.0),
    "wcfm_sinkhorn": lambda: GibbsWeightedCoupling(epsilon=1.0, correction="sinkhorn"),
}
AHEAD = {"otcfm_exact_ahead", "otcfm_exact_ahead_overlap"}


def measure(method: str, steps: int, repeats: int, use_mesh: bool, split: int | None = None) -> list[float]:
    # the reference 2-D MLP: t appended as one input feature
    model = MLPVelocity(out_dim=2, hidden=(64, 64, 64), activation="selu", time_embedding="identity")
    ahead = method in AHEAD
    coupling = COUPLINGS[method]()
    loss = jf.losses.cfm_loss(velocity_fn(model), coupling=coupling)
    opt = optax.adam(1e-3)

    def data_fn(k):
        k0, k1 = jax.random.split(k)
        return {"x0": jf.data.sample_toy(k0, "8gaussians", 256), "x1": jf.data.sample_toy(k1, "moons", 256)}

    mesh = data_mesh() if use_mesh else None
    state = TrainState.create(jax.random.key(1), init_mlp(jax.random.key(0), model, 2), opt)
    if mesh is not None:
        state = jax.device_put(state, replicated(mesh))
    # draw_ahead=None: automatic (the exact pairing moves ahead); False keeps every other method's pairing in the step
    step = make_train_step(
        loss,
        opt,
        data_fn=data_fn,
        mesh=mesh,
        draw_ahead=None if ahead else False,
        split=split,
        overlap=True if method.endswith("_overlap") else None,
    )
    state, _ = step(state, None, steps)  # compile and warm up
    jax.block_until_ready(state)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        state, _ = step(state, None, steps)
        jax.block_until_ready(state)
        rates.append(steps / (time.perf_counter() - t0))
    return rates


if __name__ == "__main__":
    method, steps, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    extra = sys.argv[4:]
    split = next((int(a.split("=", 1)[1]) for a in extra if a.startswith("split=")), None)
    threads = next((int(a.split("=", 1)[1]) for a in extra if a.startswith("threads=")), None)
    if threads is not None:
        limit_cpu_threads(threads)
    if "checks=off" in extra:  # the A/B of the compiled value checks (docs/conventions.md): set before any trace
        import jaxflow._checks

        jaxflow._checks.TRACED_CHECKS = False
    rates = measure(method, steps, repeats, "mesh" in extra, split)
    print(json.dumps({"devices": jax.device_count(), "split": split, "rates": rates}))
