"""Few-step sampling speed: samples per second at 1 NFE against the teacher with Dopri5 (section 8 of BENCHMARKS.md).

`python -m benchmarks.few_step` (part of `make bench`): trains the teacher (1-RF, i.e. I-CFM, on the straight path)
of each problem of the few-step study, then times, on 10,000 points and alternating A, B, A, B: the teacher with
Dopri5 (rtol = atol = 1e-5) and one jump of a model of the same size (a flow map / distilled student costs one network
evaluation whatever its weights). The quality side of the goals (the best 1-NFE model against the adaptive teacher)
is read from results/few_step/metrics.json, written by `python -m experiments.few_step`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np
import tyro

import jaxflow as jf
from benchmarks.gpu import write_section as _write
from experiments import few_step

SECTION = "## 8. Few-step sampling"


@dataclass(frozen=True)
class FewStepBenchConfig:
    quick: bool = False
    repeats: int = 5
    n: int = 10_000
    out_json: str = "results/benchmarks_few_step.json"
    out_md: str = "BENCHMARKS.md"


def _time(fn, repeats):
    jax.block_until_ready(fn())  # compile
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        out.append(time.perf_counter() - t0)
    return out


def _problem(name: str, cfg: FewStepBenchConfig, study) -> dict:
    if name == "digits":
        prob = few_step.digits_problem(study, jf.metrics.DigitsMetric())
    else:
        prob = few_step.toy_problem(name, study, jax.random.key(0))
    model = jf.nn.MLPVelocity(out_dim=prob.dim, hidden=prob.hidden, activation="silu")
    v = jf.nn.velocity_fn(model)

    def data_fn(k):
        k0, k1 = jax.random.split(k)
        return {"x0": prob.source(k0, 256), "x1": prob.data(k1, 256)}

    teacher, _ = few_step.train(
        jf.losses.cfm_loss(v),
        jf.nn.init_mlp(jax.random.key(2), model, prob.dim),
        data_fn,
        600 if cfg.quick else 4000,
        study,
        "teacher",
    )
    fm = jf.nn.FlowMapMLP(out_dim=prob.dim, hidden=prob.hidden, activation="silu", time_embedding="identity")
    u = jf.nn.flow_map_fn(fm)
    fm_params = jf.nn.init_flow_map(jax.random.key(3), fm, prob.dim)
    z = prob.source(jax.random.key(4), cfg.n)
    dopri = jax.jit(lambda p, x: jf.sample(v, x, params=p, solver="dopri5", rtol=1e-5, atol=1e-5))
    one = jax.jit(lambda p, x: jf.sampling.sample_flow_map(u, x, params=p, steps=1).x)
    nfe = int(dopri(teacher, z).nfe)
    t_d, t_1 = [], []
    for _ in range(cfg.repeats):  # alternate A, B
        t_d += _time(lambda: dopri(teacher, z).x, 1)
        t_1 += _time(lambda: one(fm_params, z), 1)
    return {
        "teacher_nfe": nfe,
        "dopri5_s": t_d,
        "one_nfe_s": t_1,
        "dopri5_samples_per_s": cfg.n / float(np.median(t_d)),
        "one_nfe_samples_per_s": cfg.n / float(np.median(t_1)),
    }


def measure(cfg: FewStepBenchConfig) -> dict:
    study = few_step.FewStepConfig(progress=False, steps_per_call=500)
    return {name: _problem(name, cfg, study) for name in ("8gaussians->moons", "digits")}


def section(res: dict | None, study: dict | None = None) -> str:
    from experiments.common import markdown_table

    head = f"{SECTION}\n\n"
    if res is None:
        return head + "Not measured: run `python -m benchmarks.few_step`.\n"
    rows = []
    for name, r in res.items():
        if not isinstance(r, dict) or "dopri5_s" not in r:
            continue
        rows.append(
            [
                name,
                f"{r['dopri5_samples_per_s']:,.0f} ({r['teacher_nfe']} NFE)",
                f"{r['one_nfe_samples_per_s']:,.0f}",
                f"×{r['one_nfe_samples_per_s'] / r['dopri5_samples_per_s']:.0f}",
            ]
        )
    text = head + markdown_table(["problem", "teacher Dopri5 samples/s", "1-NFE samples/s", "speed-up"], rows)
    text += (
        f"\n{res.get('n', 10000):,} points per call, medians of {res.get('repeats', 5)} alternating timed calls "
        "(compile excluded). Teacher: the 1-RF (I-CFM) MLP of the few-step study, rtol = atol = 1e-5; one jump: a "
        "flow-map MLP of the same width.\n"
    )
    if study is not None and study.get("schema") == 2:  # a result of the study pipeline: its declared claims
        rows = [
            [
                c["text"],
                f"{c['verdict']['estimate']:.3g}" if c["verdict"]["estimate"] is not None else "—",
                c["verdict"]["status"],
            ]
            for c in study["claims"]
            if c["id"].startswith("some_one_step_near_teacher")
        ]
        if rows:
            kind = "quick run" if study["provenance"]["quick"] else "full run"
            text += f"\nQuality goal (from results/few_step, {kind}; declared claims):\n\n" + markdown_table(
                ["claim", "ratio to the teacher", "verdict"], rows
            )
    elif study is not None:
        best = next((c for c in study["claims"] if c["claim"].startswith("the best 1-NFE model")), None)
        if best is not None:
            goal = "met" if best["holds"] else "**not met**"
            text += (
                "\nQuality goal (from results/few_step, "
                f"{'quick run' if study['config'].get('quick') else 'full run'}): the best 1-NFE model against the "
                f"adaptive teacher, [method, value, ratio]: {best['measured']}; goal ≤ 1.2× (2-D W2), ≤ 1.5× "
                f"(digits FD): {goal}.\n"
            )
    return text


def load(path: str = "results/benchmarks_few_step.json") -> dict | None:
    p = Path(path)
    return json.loads(p.read_text()) if p.exists() else None


def load_study(path: str = "results/few_step/metrics.json") -> dict | None:
    p = Path(path)
    return json.loads(p.read_text()) if p.exists() else None


def main(cfg: FewStepBenchConfig) -> None:
    res = measure(cfg)
    res.update(n=cfg.n, repeats=cfg.repeats)
    Path(cfg.out_json).parent.mkdir(parents=True, exist_ok=True)
    Path(cfg.out_json).write_text(json.dumps(res, indent=1))
    text = section(res, load_study())
    _write(cfg.out_md, text, SECTION)
    print(text)


if __name__ == "__main__":
    main(tyro.cli(FewStepBenchConfig))
