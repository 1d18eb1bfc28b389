"""Section 9 of BENCHMARKS.md: jaxflow side by side with Meta's `flow_matching` (PyTorch) on the same tasks.

`python -m benchmarks.meta_fm` (part of `make bench`) runs each task of `benchmarks.meta_fm_ref` and its jaxflow
counterpart in fresh processes, alternating A, B, A, B over `rounds`, and writes results/benchmarks_meta_fm.json and
the section. `python -m benchmarks.meta_fm jaxflow TASK REPEATS` times one jaxflow task (one JSON line).

The jaxflow side builds the same sizes: the 2-D MLP (3 × 64 SELU, t appended), Cond-OT path, batch 256, Adam 1e-3,
200 steps in one compiled call; Dopri5 (rtol = atol = 1e-5) on 1,000 points; exact and Hutchinson (one Rademacher
probe) log-likelihoods with 100 midpoint steps; the discrete Euler jump sampler (V = 128, two tokens, 100 steps);
midpoint sampling on S² with a projection per step (100 steps). Each timing is of a compiled call after a warm-up
(compilation excluded on both sides: torch has none to exclude).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TASKS = ("train", "dopri5", "exact_ll", "hutchinson", "discrete", "riemannian")
LABELS = {
    "train": "training, 2-D task (200 steps)",
    "dopri5": "adaptive sampling, Dopri5, 1,000 points",
    "exact_ll": "exact log-likelihood, 100 midpoint steps, 1,000 points",
    "hutchinson": "Hutchinson log-likelihood (1 probe), 100 midpoint steps",
    "discrete": "discrete jump sampler, V = 128, 1,000 × 2 tokens, 100 steps",
    "riemannian": "sampling on S², midpoint with projection, 100 steps",
}
SECTION = "## 9. Side by side with Meta's flow_matching"
N = 1000


def jaxflow_task(task: str):
    import jax
    import optax

    import jaxflow as jf

    mlp = jf.nn.MLPVelocity(out_dim=2, hidden=(64, 64, 64), activation="selu", time_embedding="identity")
    v = jf.nn.velocity_fn(mlp)
    params = jf.nn.init_mlp(jax.random.key(0), mlp, 2)
    x = jax.random.normal(jax.random.key(1), (N, 2))
    if task == "train":
        opt = optax.adam(1e-3)
        loss = jf.losses.cfm_loss(v)

        def data_fn(k):
            k0, k1 = jax.random.split(k)
            return {"x0": jf.data.sample_toy(k0, "8gaussians", 256), "x1": jf.data.sample_toy(k1, "moons", 256)}

        step = jf.train.make_train_step(loss, opt, data_fn=data_fn)
        state = jf.train.TrainState.create(jax.random.key(2), params, opt)
        box = [state]

        def run():
            box[0], m = step(box[0], None, 200)
            return m["loss"]

        return run
    if task == "dopri5":
        f = jax.jit(lambda p, z: jf.sample(v, z, params=p, solver="dopri5", rtol=1e-5, atol=1e-5))
        return lambda: f(params, x)
    if task in ("exact_ll", "hutchinson"):
        div = jf.sampling.ExactDivergence() if task == "exact_ll" else jf.sampling.HutchinsonDivergence(1)
        f = jax.jit(
            lambda p, z, k: (
                jf.log_likelihood(v, z, params=p, divergence=div, key=k, solver="midpoint", steps=100).log_prob
            )
        )
        return lambda: f(params, x, jax.random.key(3))
    if task == "discrete":
        vocab = 128
        model = jf.nn.TokenMLP(vocab, embed_dim=32, hidden=(128, 128))
        net = jf.nn.logits_fn(model)
        tp = jf.nn.init_tokens(jax.random.key(4), model, 2)
        path = jf.paths.MixtureDiscretePath(jf.paths.PolynomialConvexScheduler(2.0))
        x0 = jax.random.randint(jax.random.key(5), (N, 2), 0, vocab)
        f = jax.jit(lambda p, k: jf.sampling.sample_discrete(net, x0, k, path=path, params=p, steps=100).x)
        return lambda: f(tp, jax.random.key(6))
    if task == "riemannian":
        s = jf.manifolds.Sphere()
        mlp3 = jf.nn.MLPVelocity(out_dim=3, hidden=(64, 64, 64), activation="selu", time_embedding="identity")
        v3 = jf.manifolds.TangentField(jf.nn.velocity_fn(mlp3), s)
        p3 = jf.nn.init_mlp(jax.random.key(7), mlp3, 3)
        z = s.uniform(jax.random.key(8), N, 3)
        f = jax.jit(lambda p, y: jf.sample(v3, y, params=p, solver="midpoint", steps=100, manifold=s).x)
        return lambda: f(p3, z)
    raise SystemExit(f"unknown task {task}")


def time_jaxflow(task: str, repeats: int) -> dict:
    import jax

    run = jaxflow_task(task)
    out = jax.block_until_ready(run())  # compile
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(run())
        seconds.append(time.perf_counter() - t0)
    nfe = int(out.nfe) if hasattr(out, "nfe") else None
    return {"task": task, "seconds": seconds, "nfe": nfe}


def _fresh(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class MetaBenchConfig:
    rounds: int = 3
    repeats: int = 5
    quick: bool = False
    out_json: str = "results/benchmarks_meta_fm.json"
    out_md: str = "BENCHMARKS.md"


def measure(cfg: MetaBenchConfig) -> dict:
    res = {t: {"meta": [], "jaxflow": [], "nfe": {}} for t in TASKS}
    rounds = 1 if cfg.quick else cfg.rounds
    repeats = 2 if cfg.quick else cfg.repeats
    for _ in range(rounds):
        for task in TASKS:  # alternate A, B within each task
            for side, args in (
                ("meta", ["benchmarks.meta_fm_ref", task, str(repeats)]),
                ("jaxflow", ["benchmarks.meta_fm", "jaxflow", task, str(repeats)]),
            ):
                out = _fresh(args)
                res[task][side] += out["seconds"]
                res[task]["nfe"][side] = out.get("nfe")
    return res


def _span(v) -> str:
    v = np.asarray(v) * 1e3
    return f"{np.median(v):.1f} ({v.min():.1f}–{v.max():.1f})"


def section(res: dict, versions: dict) -> str:
    rows = []
    for task in TASKS:
        m, j = res[task]["meta"], res[task]["jaxflow"]
        ratio = np.median(m) / np.median(j)
        nfe = res[task].get("nfe", {})
        extra = f"×{ratio:.2f}"
        if task == "dopri5" and nfe.get("meta") and nfe.get("jaxflow"):  # the weights differ: per evaluation too
            per = (np.median(m) / nfe["meta"]) / (np.median(j) / nfe["jaxflow"])
            extra += f" per call; NFE {nfe['meta']:.0f} vs {nfe['jaxflow']}: ×{per:.2f} per evaluation"
        rows.append(f"| {LABELS[task]} | {_span(m)} | {_span(j)} | {extra} |")
    vers = ", ".join(f"{k} {v}" for k, v in versions.items())
    return (
        f"{SECTION}\n\n"
        "The same tasks in both libraries on this machine's CPU, each in a fresh process, alternating Meta, jaxflow, "
        "Meta, ... (`python -m benchmarks.meta_fm`); wall-clock milliseconds per call, median (min–max) over "
        "rounds × repeats, compilation excluded; the ratio is Meta's median over jaxflow's (above 1: jaxflow faster). "
        "Freshly initialised models of the same sizes: fixed-step timings do not depend on the weights; the adaptive "
        "solver's step count does, so its row also compares time per network evaluation. "
        f"Versions: {vers}.\n\n"
        "| task | Meta flow_matching (ms) | jaxflow (ms) | ratio |\n|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )


def versions() -> dict:
    from importlib import metadata

    return {p: metadata.version(p) for p in ("flow_matching", "torch", "jax")}


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "jaxflow":
        print(json.dumps(time_jaxflow(argv[1], int(argv[2]))))
        return
    import tyro

    from benchmarks.gpu import write_section

    cfg = tyro.cli(MetaBenchConfig, args=argv)
    res = measure(cfg)
    vers = versions()
    Path(cfg.out_json).write_text(json.dumps({"results": res, "versions": vers, "quick": cfg.quick}, indent=1))
    write_section(cfg.out_md, section(res, vers), SECTION)
    print(section(res, vers))


if __name__ == "__main__":
    main()
