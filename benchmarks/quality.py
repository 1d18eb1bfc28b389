"""Quality and sampling under one protocol: I-CFM and OT-CFM trained by TorchCFM and by jaxflow on 8gaussians → moons
(the tutorial's MLP with t as an input feature, batch 256, Adam 1e-3, the same number of steps, σ = 0), several seeds;
every model is scored by the same jaxflow evaluation (Dopri5, rtol = atol = 1e-4; exact W2 to fresh moons samples;
NPE). Sampling: NFE and wall time to draw 10,000 samples, jaxflow (diffrax) against torchdiffeq on the same weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import optax

import jaxflow as jf
from jaxflow.couplings import ExactOTCoupling, IndependentCoupling, pair_in_data
from jaxflow.nn import MLPVelocity, init_mlp, velocity_fn
from jaxflow.train import TrainState, fit, make_train_step

MODEL = MLPVelocity(out_dim=2, hidden=(64, 64, 64), activation="selu", time_embedding="identity")
VELOCITY = velocity_fn(MODEL)


def train_jaxflow(method: str, steps: int, seeds: int):
    ahead = method == "otcfm"
    loss = jf.losses.cfm_loss(VELOCITY, coupling=IndependentCoupling())
    opt = optax.adam(1e-3)

    def data_fn(k):
        k0, k1 = jax.random.split(k)
        return {"x0": jf.data.sample_toy(k0, "8gaussians", 256), "x1": jf.data.sample_toy(k1, "moons", 256)}

    if ahead:
        data_fn = pair_in_data(data_fn, ExactOTCoupling())
    states = jax.vmap(lambda k: TrainState.create(jax.random.fold_in(k, 1), init_mlp(k, MODEL, 2), opt))(
        jax.random.split(jax.random.key(123), seeds)
    )
    step = make_train_step(loss, opt, data_fn=data_fn, sweep=True, draw_ahead=ahead)
    t0 = time.perf_counter()
    states, _ = fit(states, step, steps, steps_per_call=40 if ahead else 500, progress=False)
    jax.block_until_ready(states)
    return [jax.tree.map(lambda a, s=s: a[s], states.params) for s in range(seeds)], time.perf_counter() - t0


def _torch(args: list[str]) -> str:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.torchcfm_ref", *args], capture_output=True, text=True, env=env, check=True
    )
    return out.stdout


def params_from_npz(path) -> dict:
    data = np.load(path)
    return {"params": {f"Dense_{i}": {"kernel": data[f"kernel_{i}"], "bias": data[f"bias_{i}"]} for i in range(4)}}


def train_torchcfm(method: str, steps: int, seeds: int, tmp: Path):
    out, seconds = [], 0.0
    for s in range(seeds):
        path = tmp / f"{method}_{s}.npz"
        _torch(["train", method, str(steps), str(s), str(path)])
        out.append(params_from_npz(path))
        seconds += float(np.load(path)["seconds"])
    return out, seconds, [tmp / f"{method}_{s}.npz" for s in range(seeds)]


def evaluate(params, n: int = 2000, seed: int = 0) -> dict:
    """The toy2d study's evaluation (the library's `flow_quality`) on 8gaussians → moons."""
    k0, k1, k2 = jax.random.split(jax.random.key(10_000 + seed), 3)
    record, _ = jf.train.flow_quality(
        VELOCITY,
        params,
        jf.data.sample_toy(k0, "8gaussians", n),
        jf.data.sample_toy(k1, "moons", n),
        jf.data.sample_toy(k2, "8gaussians", n),
    )
    return {k: record[k] for k in ("w2", "npe", "nfe")}


def sampling_time(params, npz_path, n: int = 10_000, repeats: int = 3) -> dict:
    @jax.jit
    def draw(p, x0):
        out = jf.sample(VELOCITY, x0, params=p, solver="dopri5", rtol=1e-4, atol=1e-4, save_trajectory=100)
        return out.trajectory, out.nfe

    x0 = jf.data.sample_toy(jax.random.key(0), "8gaussians", n)
    jax.block_until_ready(draw(params, x0))
    jax_s, ref_s, nfe, ref_nfe = [], [], 0, 0
    for r in range(repeats):  # alternate A, B
        t0 = time.perf_counter()
        _, nfe = jax.block_until_ready(draw(params, jf.data.sample_toy(jax.random.key(r + 1), "8gaussians", n)))
        jax_s.append(time.perf_counter() - t0)
        ref = json.loads(_torch(["sample", str(npz_path), str(n), "1"]).strip().splitlines()[-1])
        ref_s += ref["seconds"]
        ref_nfe = ref["nfe"]
    return {"jaxflow_s": jax_s, "torch_s": ref_s, "jaxflow_nfe": int(nfe), "torch_nfe": int(ref_nfe)}


def measure(steps: int = 5000, seeds: int = 5) -> dict:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("icfm", "otcfm"):
            jparams, jsec = train_jaxflow(method, steps, seeds)
            tparams, tsec, paths = train_torchcfm(method, steps, seeds, Path(tmp))
            results[method] = {
                "jaxflow": [evaluate(p, seed=s) for s, p in enumerate(jparams)],
                "torchcfm": [evaluate(p, seed=s) for s, p in enumerate(tparams)],
                "train_seconds": {"jaxflow (all seeds, vmapped)": jsec, "torchcfm (seeds in turn)": tsec},
                "sampling": sampling_time(tparams[0], paths[0]),
            }
    return {"steps": steps, "seeds": seeds, "results": results}
