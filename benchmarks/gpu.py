"""GPU rows (`make bench-gpu`): training steps/s of I-CFM and exact OT-CFM (pairs from host threads running POT's
network simplex, or from the on-device auction) at batch 256, 1024 and 4096; pairing ms per batch; the digits UNet's
training steps/s. Writes results/benchmarks_gpu.json and rewrites section 7 of BENCHMARKS.md.

Without a GPU nothing is timed: the JSON records `measured: false` with the reason, and section 7 says so. Every
row has its own time budget (`--budget-s`, default 45 s) so the whole run stays under 8 minutes; a row that would
exceed it is skipped with the reason written beside it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

SECTION = "## 7. GPU"


@dataclass(frozen=True)
class GpuBenchConfig:
    batches: tuple[int, ...] = (256, 1024, 4096)
    steps: int = 50
    """Training steps per timed dispatch."""
    repeats: int = 3
    budget_s: float = 45.0
    """A row is skipped when one untimed warm-up dispatch takes longer than this."""
    out_json: str = "results/benchmarks_gpu.json"
    out_md: str = "BENCHMARKS.md"
    note: str = ""
    """Appended to the reason when nothing could be measured (e.g. why no GPU machine was at hand)."""


def _gpu():
    import jax

    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    return gpus[0] if gpus else None


def _train_rates(coupling, batch: int, cfg: GpuBenchConfig) -> dict:
    import jax
    import optax

    import jaxflow as jf
    from jaxflow.nn import MLPVelocity, init_mlp, velocity_fn
    from jaxflow.train import TrainState, make_train_step

    model = MLPVelocity(out_dim=2, hidden=(64, 64, 64), activation="selu", time_embedding="identity")
    loss = jf.losses.cfm_loss(velocity_fn(model), coupling=coupling)
    opt = optax.adam(1e-3)

    def data_fn(k):
        k0, k1 = jax.random.split(k)
        return {"x0": jf.data.sample_toy(k0, "8gaussians", batch), "x1": jf.data.sample_toy(k1, "moons", batch)}

    state = TrainState.create(jax.random.key(1), init_mlp(jax.random.key(0), model, 2), opt)
    step = make_train_step(loss, opt, data_fn=data_fn)
    t0 = time.perf_counter()
    state, _ = step(state, None, cfg.steps)
    jax.block_until_ready(state)
    warm = time.perf_counter() - t0
    if warm > cfg.budget_s:
        return {"skipped": f"one warm-up dispatch of {cfg.steps} steps took {warm:.0f} s"}
    rates = []
    for _ in range(cfg.repeats):
        t0 = time.perf_counter()
        state, _ = step(state, None, cfg.steps)
        jax.block_until_ready(state)
        rates.append(cfg.steps / (time.perf_counter() - t0))
    return {"steps_per_s": rates}


def _pairing_ms(solver: str, batch: int, cfg: GpuBenchConfig) -> dict:
    import jax

    import jaxflow as jf
    from jaxflow.couplings import ExactOTCoupling

    coupling = ExactOTCoupling(mode="permutation", solver=solver)
    pair = jax.jit(lambda k, a, b: coupling(k, a, b)[:2])
    keys = jax.random.split(jax.random.key(batch), cfg.repeats + 1)
    x0 = [jf.data.sample_toy(jax.random.fold_in(k, 0), "8gaussians", batch) for k in keys]
    x1 = [jf.data.sample_toy(jax.random.fold_in(k, 1), "moons", batch) for k in keys]
    t0 = time.perf_counter()
    jax.block_until_ready(pair(keys[0], x0[0], x1[0]))
    if time.perf_counter() - t0 > cfg.budget_s:
        return {"skipped": f"the first (compiling) call took {time.perf_counter() - t0:.0f} s"}
    ms = []
    for i in range(1, cfg.repeats + 1):
        t0 = time.perf_counter()
        jax.block_until_ready(pair(keys[i], x0[i], x1[i]))
        ms.append(1e3 * (time.perf_counter() - t0))
    return {"ms": ms}


def _unet_rate(cfg: GpuBenchConfig) -> dict:
    import jax
    import optax

    import jaxflow as jf
    from jaxflow.nn import init_unet
    from jaxflow.train import TrainState, make_train_step

    images = np.asarray(jf.data.load_digits().images)
    unet = jf.nn.UNet(channels=32, num_classes=10)
    v = jf.nn.velocity_fn(unet)
    loss = jf.losses.cfm_loss(lambda p, t, x, c: v(p, t, x, None))
    opt = optax.adam(2e-4)
    source = jf.train.ArraySource(jax.random.key(0), {"x1": images}, 128)
    params = init_unet(jax.random.key(1), unet, images.shape[1:], jax.numpy.zeros((1,), jax.numpy.int32))
    state = TrainState.create(jax.random.key(2), params, opt)
    step = make_train_step(loss, opt)
    state, _ = step(state, source(0, cfg.steps), cfg.steps)
    jax.block_until_ready(state)
    rates = []
    for r in range(cfg.repeats):
        batch = source((r + 1) * cfg.steps, cfg.steps)
        t0 = time.perf_counter()
        state, _ = step(state, batch, cfg.steps)
        jax.block_until_ready(state)
        rates.append(cfg.steps / (time.perf_counter() - t0))
    return {"steps_per_s": rates}


def measure(cfg: GpuBenchConfig) -> dict:
    from jaxflow.couplings import ExactOTCoupling, IndependentCoupling

    gpu = _gpu()
    if gpu is None:
        import jax

        seen = ", ".join(sorted({d.platform for d in jax.devices()}))
        reason = f"no GPU visible to jax on the machine that ran `make bench-gpu` (jax saw: {seen})"
        return {"measured": False, "reason": reason + (f"; {cfg.note}" if cfg.note else "")}
    out = {"measured": True, "device": str(gpu.device_kind), "training": {}, "pairing": {}}
    for b in cfg.batches:
        out["training"][str(b)] = {
            "I-CFM": _train_rates(IndependentCoupling(), b, cfg),
            "OT-CFM, host network simplex": _train_rates(ExactOTCoupling(), b, cfg),
            "OT-CFM, device auction": _train_rates(ExactOTCoupling(solver="auction"), b, cfg),
        }
        out["pairing"][str(b)] = {s: _pairing_ms(s, b, cfg) for s in ("network_simplex", "auction")}
    out["digits_unet"] = _unet_rate(cfg)
    return out


def _cell(entry: dict, key: str, unit_ms: bool = False) -> str:
    if "skipped" in entry:
        return f"skipped ({entry['skipped']})"
    v = np.asarray(entry[key])
    d = 2 if unit_ms or np.median(v) < 100 else 0
    return f"{np.median(v):,.{d}f} ({v.min():,.{d}f}–{v.max():,.{d}f})"


def section(res: dict | None) -> str:
    """Section 7 of BENCHMARKS.md from the JSON of a `make bench-gpu` run (None: never run)."""
    from experiments.common import markdown_table

    head = f"{SECTION}\n\n"
    if res is None:
        return head + "Not measured: `make bench-gpu` has not been run on a GPU machine.\n"
    if not res.get("measured"):
        return head + f"Not measured: {res['reason']}.\n"
    rows = []
    for b, methods in res["training"].items():
        for name, entry in methods.items():
            rows.append([b, name, _cell(entry, "steps_per_s"), "steps/s"])
    for b, solvers in res["pairing"].items():
        for name, entry in solvers.items():
            rows.append([b, f"pairing, {name.replace('_', ' ')}", _cell(entry, "ms", unit_ms=True), "ms per batch"])
    rows.append([128, "digits UNet (32 channels), I-CFM", _cell(res["digits_unet"], "steps_per_s"), "steps/s"])
    return (
        head + f"Device: {res['device']}; versions as above; {res.get('steps', '')} steps per timed dispatch, median "
        "(min–max) of the repeats, compile excluded. The 2-D task and model of section 1 at larger batches.\n\n"
        + markdown_table(["B", "what", "median (min–max)", "unit"], rows)
    )


def write_section(md_path: str, text: str, section: str = SECTION) -> None:
    """Replace a section of BENCHMARKS.md (default 7: everything from its heading to the next `## ` heading or the
    end); append it when absent."""
    SECTION = section  # noqa: N806
    p = Path(md_path)
    doc = p.read_text() if p.exists() else "# Benchmarks\n\n"
    if SECTION in doc:
        start = doc.index(SECTION)
        nxt = doc.find("\n## ", start + len(SECTION))
        doc = doc[:start] + text.rstrip() + "\n" + (doc[nxt:] if nxt >= 0 else "")
    else:
        doc = doc.rstrip() + "\n\n" + text.rstrip() + "\n"
    p.write_text(doc)


def load(path: str = "results/benchmarks_gpu.json") -> dict | None:
    p = Path(path)
    return json.loads(p.read_text()) if p.exists() else None


def main(cfg: GpuBenchConfig) -> None:
    t0 = time.perf_counter()
    res = measure(cfg)
    res["seconds"] = time.perf_counter() - t0
    res["steps"] = cfg.steps
    Path(cfg.out_json).parent.mkdir(parents=True, exist_ok=True)
    Path(cfg.out_json).write_text(json.dumps(res, indent=1))
    text = section(res)
    write_section(cfg.out_md, text)
    print(text)


if __name__ == "__main__":
    main(tyro.cli(GpuBenchConfig))
