"""Train a small model with the library step; used by the tests in subprocesses (device count set by XLA_FLAGS).

`python _toy_run.py STEPS mesh|nomesh [SPLIT]`; with JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID
set, the process joins a multi-process run through `jax.distributed` (the README's launch command). With
TOY_CPU_THREADS=K set, XLA's CPU pool is started with K workers (`limit_cpu_threads`) first.
Prints the JSON list of per-step losses, the sum of the final parameters (from this process's replica) and a
sharded evaluation.
"""

import json
import os
import sys

import jax
import jax.numpy as jnp
import optax

import jaxflow as jf
from jaxflow.nn import MLPVelocity, init_mlp, velocity_fn
from jaxflow.train import TrainState, data_mesh, make_train_step, replicated


def main(steps: int, use_mesh: bool, split: int | None = None):
    mod = MLPVelocity(out_dim=2, hidden=(32, 32))
    loss = jf.losses.cfm_loss(velocity_fn(mod))
    opt = optax.adam(1e-3)

    def data_fn(k):
        k0, k1 = jax.random.split(k)
        return {"x0": jax.random.normal(k0, (64, 2)), "x1": jf.data.sample_toy(k1, "moons", 64)}

    mesh = data_mesh() if use_mesh else None
    state = TrainState.create(jax.random.key(1), init_mlp(jax.random.key(0), mod, 2), opt)
    if mesh is not None:
        state = jax.device_put(state, replicated(mesh))
    step = make_train_step(loss, opt, data_fn=data_fn, mesh=mesh, split=split)
    state, metrics = step(state, None, steps)
    local = jax.tree.map(lambda a: a.addressable_shards[0].data, (state.params, metrics["loss"]))
    params, losses = local
    total = float(sum(jnp.sum(p) for p in jax.tree.leaves(params)))
    target = jf.data.sample_toy(jax.random.key(7), "moons", 512)
    evaluator = jf.train.make_evaluator(
        jax.random.key(8),
        velocity_fn(mod),
        jf.data.get_sampler("gaussian"),
        target,
        num_samples=512,
        mesh=mesh,
        use_ema=False,
        metrics=("w2", "energy"),
        # fixed steps: an adaptive solver's accept / reject decisions flip under the 1e-7 parameter differences of
        # two device layouts and the runs then take different step sequences (463 vs 415 evaluations, W2 off by
        # 0.7%); on a fixed grid the outputs differ only by those 1e-7
        solver="heun",
        steps=32,
    )
    ev = evaluator(state)
    out = {"devices": jax.device_count(), "processes": jax.process_count(), "losses": [float(v) for v in losses]}
    print(json.dumps({**out, "psum": total, "eval": ev, "threads_at_start": THREADS_AT_START}), flush=True)


THREADS_AT_START = None  # set below, before main

if __name__ == "__main__":
    if "TOY_CPU_THREADS" in os.environ:
        before = os.sched_getaffinity(0)
        jf.train.limit_cpu_threads(int(os.environ["TOY_CPU_THREADS"]))
        # every thread, XLA's workers included, has its cores back (threads they start inherit them)
        masks = [os.sched_getaffinity(int(t)) for t in os.listdir("/proc/self/task")]
        assert all(m == before for m in masks), (masks, before)
    if "JAX_COORDINATOR_ADDRESS" in os.environ:  # the README's launch: everything from the environment
        jf.train.initialize_distributed(initialization_timeout=120)
    jax.devices()  # the backend is up: count its threads (fewer with a smaller pool)
    THREADS_AT_START = len(os.listdir("/proc/self/task"))
    main(int(sys.argv[1]), sys.argv[2] == "mesh", int(sys.argv[3]) if len(sys.argv) > 3 else None)
