"""The 2-D flow-matching benchmark: I-CFM, OT-CFM (exact and Sinkhorn), SB-CFM and W-CFM on four tasks.

Run `python -m experiments run toy2d` (full protocol) or `python -m experiments run toy2d --quick` (what `make run`
does); `--help` lists every option. The claims (`CLAIMS`) are declared per task before the run and judged by the
pipeline on the per-seed measurements `w2/<task>/<method>`, `npe/...`, `nfe/...`.
Protocol (fixed, documented in the README and written into metrics.json):
- data: source → target pairs drawn fresh every step on device, batch 256; tasks N→8gaussians, N→moons,
  8gaussians→moons, N→scurve (N = standard normal).
- model: MLP 3×64 SELU with a sinusoidal time embedding; Adam 1e-3; seeds trained together by vmap.
- methods: I-CFM (independent, Cond-OT path); OT-CFM exact (network simplex, pairs resampled from the plan);
  OT-CFM Sinkhorn (ε = 0.05·mean C); SB-CFM (Brownian bridge σ, entropic plan ε = 2σ²); W-CFM (Gibbs weights,
  ε = 0.5·mean c, self-normalised).
- evaluation per seed: `eval_samples` fresh source points integrated by Dopri5 (rtol = atol = 1e-4), 101 saved times.
  W2: exact, against `eval_samples` fresh target points. NFE: the adaptive solver's.
  NPE = |PE − W2²(p0, p1)| / W2²(p0, p1)
  with PE = E∫‖v‖² dt on the trajectories and W2(p0, p1) exact between fresh source and target samples.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jax
import numpy as np
import optax

import jaxflow as jf
from experiments.claims import Claim, Diff, Ratio
from experiments.common import (
    StudyConfig,
    figure,
    markdown_table,
    mean_std,
    non_empty,
    positive_float,
    positive_int,
    require,
)
from experiments.pipeline import Output, Study
from jaxflow.couplings import (
    ExactOTCoupling,
    GibbsWeightedCoupling,
    IndependentCoupling,
    SinkhornCoupling,
    schrodinger_bridge_coupling,
)
from jaxflow.nn import MLPVelocity, init_mlp, velocity_fn
from jaxflow.paths import BrownianBridgePath, cond_ot_path
from jaxflow.train import TrainState, fit, make_train_step

METHODS = ("icfm", "otcfm", "otcfm_sinkhorn", "sbcfm", "wcfm")
METHOD_LABELS = {
    "icfm": "I-CFM",
    "otcfm": "OT-CFM (exact)",
    "otcfm_sinkhorn": "OT-CFM (Sinkhorn)",
    "sbcfm": "SB-CFM",
    "wcfm": "W-CFM",
}
TASKS = ("gaussian->8gaussians", "gaussian->moons", "8gaussians->moons", "gaussian->scurve")


@dataclass(frozen=True)
class Toy2dConfig(StudyConfig):
    """Configuration of the 2-D benchmark (every field is a command-line option)."""

    methods: tuple[str, ...] = METHODS
    tasks: tuple[str, ...] = TASKS
    seeds: int = 5
    steps: int = 5_000
    batch_size: int = 256
    lr: float = 1e-3
    hidden: tuple[int, ...] = (64, 64, 64)
    activation: str = "selu"
    time_embedding: str = "sinusoidal"
    sinkhorn_epsilon: float = 0.05
    """Sinkhorn OT-CFM ε relative to the batch's mean squared cost."""
    sb_sigma: float = 0.5
    """SB-CFM bridge noise σ (entropic ε = 2σ², absolute)."""
    wcfm_epsilon: float = 0.5
    """W-CFM ε relative to the batch's mean pair cost."""
    eval_samples: int = 2000
    solver_tol: float = 1e-4
    steps_per_call: int = 500
    """Training steps per compiled dispatch (40 for the exact coupling, whose chunks are paired on the host)."""
    out_dir: str = "results/toy2d"
    quick: bool = False
    """Quick version for `make run`: 3 seeds, 800 steps, 1000 evaluation samples, results/toy2d/quick (explicit flags
    win over it)."""


def validate(cfg: Toy2dConfig) -> None:
    """Check every flag before anything is compiled; the error names the flag."""
    non_empty(cfg, "methods", "tasks", "hidden")
    for m in cfg.methods:
        require(m in METHODS, "methods", m, f"unknown method; choose from {list(METHODS)}")
    for t in cfg.tasks:
        try:
            parse_task(t)
        except ValueError as e:
            require(False, "tasks", t, str(e))
    positive_int(cfg, "seeds", "steps", "batch_size", "steps_per_call")
    require(
        isinstance(cfg.eval_samples, int) and cfg.eval_samples >= 2,
        "eval_samples",
        cfg.eval_samples,
        "must be an integer >= 2",
    )
    require(all(isinstance(h, int) and h >= 1 for h in cfg.hidden), "hidden", cfg.hidden, "widths must be >= 1")
    positive_float(cfg, "lr", "sinkhorn_epsilon", "sb_sigma", "wcfm_epsilon", "solver_tol")
    try:
        make_model(cfg)
    except ValueError as e:
        require(False, "activation/time_embedding", (cfg.activation, cfg.time_embedding), str(e))


def parse_task(task: str) -> tuple[str, str]:
    if "->" not in task:
        raise ValueError(f"task must read 'source->target', got {task!r}")
    src, tgt = task.split("->")
    jf.data.get_sampler(src), jf.data.get_sampler(tgt)  # validates names
    return src, tgt


def build_method(name: str, cfg: Toy2dConfig):
    """(path, coupling) of a method."""
    path = cond_ot_path()
    if name == "icfm":
        return path, IndependentCoupling()
    if name == "otcfm":
        return path, ExactOTCoupling(mode="resample")
    if name == "otcfm_sinkhorn":
        return path, SinkhornCoupling(epsilon=cfg.sinkhorn_epsilon, relative=True, mode="resample")
    if name == "sbcfm":
        return BrownianBridgePath(cfg.sb_sigma), schrodinger_bridge_coupling(cfg.sb_sigma)
    if name == "wcfm":
        return path, GibbsWeightedCoupling(epsilon=cfg.wcfm_epsilon, relative=True)
    raise ValueError(f"unknown method {name!r}; choose one of {METHODS}")


def make_model(cfg: Toy2dConfig) -> MLPVelocity:
    return MLPVelocity(out_dim=2, hidden=cfg.hidden, activation=cfg.activation, time_embedding=cfg.time_embedding)


def train_method(task: str, method: str, cfg: Toy2dConfig, key: jax.Array, path_and_coupling=None):
    """Train `cfg.seeds` models of one method on one task in one compiled program. Returns (states, steps/s).

    `path_and_coupling` overrides the method's (path, coupling) pair (the W-CFM sweep passes its own couplings)."""
    src, tgt = parse_task(task)
    sample_src, sample_tgt = jf.data.get_sampler(src), jf.data.get_sampler(tgt)
    model = make_model(cfg)
    velocity = velocity_fn(model)
    path, coupling = path_and_coupling if path_and_coupling is not None else build_method(method, cfg)
    # the exact coupling runs on host threads: pair a whole chunk of batches in one call (same pairs, faster)
    ahead = isinstance(coupling, ExactOTCoupling)
    loss = jf.losses.cfm_loss(velocity, path=path, coupling=IndependentCoupling() if ahead else coupling)
    optimizer = optax.adam(cfg.lr)

    def data_fn(k):
        k0, k1 = jax.random.split(k)
        return {"x0": sample_src(k0, cfg.batch_size), "x1": sample_tgt(k1, cfg.batch_size)}

    if ahead:
        data_fn = jf.couplings.pair_in_data(data_fn, coupling)

    def init(k):
        k_param, k_train = jax.random.split(k)
        return TrainState.create(k_train, init_mlp(k_param, model, 2), optimizer)

    states = jax.vmap(init)(jax.random.split(key, cfg.seeds))
    step = make_train_step(loss, optimizer, data_fn=data_fn, sweep=True, draw_ahead=ahead)
    # drawn-ahead chunks hold seeds × chunk cost matrices on the host: keep chunks short
    chunk = min(cfg.steps_per_call, 40) if ahead else cfg.steps_per_call
    # compile outside the timed region
    jax.block_until_ready(step.lower(states, None, chunk).compile())
    t0 = time.perf_counter()
    states, _ = fit(
        states,
        step,
        cfg.steps,
        steps_per_call=chunk,
        progress=cfg.progress,
        desc=f"{task} {method}",
    )
    jax.block_until_ready(states)
    elapsed = time.perf_counter() - t0
    return states, cfg.steps / elapsed


def evaluate(params, task: str, cfg: Toy2dConfig, key: jax.Array, velocity) -> dict:
    """W2, NFE, path energy and NPE of one trained model (the library's `flow_quality`)."""
    src, tgt = parse_task(task)
    k_src, k_tgt, k_src2 = jax.random.split(key, 3)
    sample_src = jf.data.get_sampler(src)
    record, _ = jf.train.flow_quality(
        velocity,
        params,
        sample_src(k_src, cfg.eval_samples),
        jf.data.get_sampler(tgt)(k_tgt, cfg.eval_samples),
        sample_src(k_src2, cfg.eval_samples),
        rtol=cfg.solver_tol,
        atol=cfg.solver_tol,
    )
    return record


def evaluate_seeds(states, task: str, cfg: Toy2dConfig, key: jax.Array, ti: int, velocity, rate: float):
    """Evaluate every seed of a trained sweep (the same evaluation draws for every method of a task): returns
    (per-seed records, summary with means, sds and model-steps/s)."""
    per_seed = []
    for s in range(cfg.seeds):
        params = jax.tree.map(lambda a, s=s: a[s], states.params)
        per_seed.append(evaluate(params, task, cfg, eval_key(key, ti, s), velocity))
    summary = {
        f"{k}_{stat}": float(getattr(np, stat)([r[k] for r in per_seed]))
        for k in ("w2", "npe", "nfe")
        for stat in ("mean", "std")
    }
    summary.update({"model_steps_per_s": rate * cfg.seeds, "sweep_steps_per_s": rate, "per_seed": per_seed})
    return per_seed, summary


def eval_key(key: jax.Array, ti: int, seed: int) -> jax.Array:
    return jax.random.fold_in(jax.random.fold_in(key, 10_000 + ti), seed)


def trajectories_of(velocity, params, x0, cfg: Toy2dConfig) -> np.ndarray:
    out = jf.sample(
        velocity, x0, params=params, solver="dopri5", rtol=cfg.solver_tol, atol=cfg.solver_tol, save_trajectory=101
    )
    return np.asarray(out.trajectory)


def plot(results: dict, trajectories: dict, cfg: Toy2dConfig):
    tasks, methods = cfg.tasks, cfg.methods
    fig = figure(figsize=(2.6 * len(methods), 2.6 * len(tasks)))
    axes = fig.subplots(len(tasks), len(methods), squeeze=False)
    for r, task in enumerate(tasks):
        for c, method in enumerate(methods):
            ax = axes[r, c]
            traj = trajectories[(task, method)]
            ax.plot(traj[:, :40, 0], traj[:, :40, 1], color="olive", alpha=0.35, lw=0.6)
            ax.scatter(traj[0, :, 0], traj[0, :, 1], s=1, color="black", alpha=0.4)
            ax.scatter(traj[-1, :, 0], traj[-1, :, 1], s=1, color="tab:blue", alpha=0.6)
            m = results[task][method]
            ax.set_title(f"{METHOD_LABELS[method]}\nW2 {m['w2_mean']:.2f}  NPE {m['npe_mean']:.2f}", fontsize=8)
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(task, fontsize=8)
    fig.suptitle("samples (blue), source (black), trajectories (olive); seed 0", fontsize=9)
    fig.tight_layout()
    return fig


def make_table(results: dict, cfg: Toy2dConfig) -> str:
    header = ["method", "task", "W2", "NPE", "NFE (dopri5)", "train model-steps/s"]
    rows = []
    for method in cfg.methods:
        for task in cfg.tasks:
            m = results[task][method]
            per = m["per_seed"]
            rows.append(
                [
                    METHOD_LABELS[method],
                    task,
                    mean_std([r["w2"] for r in per]),
                    mean_std([r["npe"] for r in per]),
                    mean_std([r["nfe"] for r in per]),
                    f"{m['model_steps_per_s']:.0f}",
                ]
            )
    note = (
        f"{cfg.seeds} seeds, {cfg.steps} steps, batch {cfg.batch_size}, {cfg.eval_samples} evaluation samples; "
        "mean ± std over seeds. Training rate: model-steps/s of the vmapped sweep (all seeds at once).\n\n"
    )
    return "# toy2d\n\n" + note + markdown_table(header, rows)


def run(cfg: Toy2dConfig, key: jax.Array) -> Output:
    velocity = velocity_fn(make_model(cfg))
    results, trajectories, measurements = {}, {}, {}
    for ti, task in enumerate(cfg.tasks):
        results[task] = {}
        for mi, method in enumerate(cfg.methods):
            k_train = jax.random.fold_in(jax.random.fold_in(key, ti), mi)
            states, rate = train_method(task, method, cfg, k_train)
            per_seed, summary = evaluate_seeds(states, task, cfg, key, ti, velocity, rate)
            src, _ = parse_task(task)
            x0 = jf.data.get_sampler(src)(eval_key(key, ti, 0), 500)
            params0 = jax.tree.map(lambda a: a[0], states.params)
            trajectories[(task, method)] = trajectories_of(velocity, params0, x0, cfg)
            results[task][method] = summary
            for q in ("w2", "npe", "nfe"):
                measurements[f"{q}/{task}/{method}"] = [r[q] for r in per_seed]
            print(
                f"{task:24s} {method:15s} W2 {summary['w2_mean']:.3f}  NPE {summary['npe_mean']:.3f}  "
                f"NFE {summary['nfe_mean']:.0f}  {rate * cfg.seeds:.0f} model-steps/s",
                flush=True,
            )
    return Output(measurements, make_table(results, cfg), {"samples": plot(results, trajectories, cfg)}, results)


TONG = "Tong et al. 2024, arXiv:2302.00482, Table 2"


def _claims() -> list[Claim]:
    """The OT-CFM paper's claims (Tong et al. 2024), one per task, declared for the default tasks."""
    out = []
    for task in TASKS:
        paper_npe = "OT-CFM 0.018 vs I-CFM 0.222" if task == "gaussian->8gaussians" else None
        out += [
            Claim(
                f"npe_otcfm_below_icfm[{task}]",
                f"exact OT-CFM has lower normalised path energy (straighter flows) than I-CFM on {task}",
                Diff(f"npe/{task}/otcfm", f"npe/{task}/icfm"),
                "<",
                0.0,
                paper=TONG,
                paper_value=paper_npe,
            ),
            Claim(
                f"npe_sinkhorn_below_icfm[{task}]",
                f"entropic (Sinkhorn) OT-CFM also has lower normalised path energy than I-CFM on {task}",
                Diff(f"npe/{task}/otcfm_sinkhorn", f"npe/{task}/icfm"),
                "<",
                0.0,
                paper=TONG,
            ),
            Claim(
                f"nfe_otcfm_below_icfm[{task}]",
                f"exact OT-CFM needs fewer adaptive-solver (Dopri5) evaluations than I-CFM on {task}",
                Diff(f"nfe/{task}/otcfm", f"nfe/{task}/icfm"),
                "<",
                0.0,
                paper=TONG,
            ),
            Claim(
                f"w2_otcfm_not_worse[{task}]",
                f"OT-CFM sample quality is no worse than I-CFM's on {task} (W2 ratio below a 1.2 margin)",
                Ratio(f"w2/{task}/otcfm", f"w2/{task}/icfm"),
                "<",
                1.2,
                paper=TONG,
            ),
            Claim(
                f"w2_wcfm_near_otcfm[{task}]",
                f"W-CFM sample quality is within 10% of exact OT-CFM's on {task}, at I-CFM's training cost",
                Ratio(f"w2/{task}/wcfm", f"w2/{task}/otcfm"),
                "<",
                1.1,
                paper="weighted CFM (W-CFM)",
                note="the Gibbs weights tilt the marginals at finite ε (see docs/couplings.md)",
            ),
        ]
    return out


CLAIMS = tuple(_claims())

STUDY = Study(
    "toy2d",
    config=Toy2dConfig,
    run=run,
    claims=CLAIMS,
    quick={"seeds": 3, "steps": 800, "eval_samples": 1000, "steps_per_call": 400},
    smoke={"methods": ("icfm", "otcfm", "wcfm"), "tasks": ("8gaussians->moons",), "steps": 200, "eval_samples": 300},
    validate=validate,
    description="2-D flow matching: I-CFM, OT-CFM (exact and Sinkhorn), SB-CFM and W-CFM on four tasks.",
)
CONFIG = Toy2dConfig
main = STUDY.main

if __name__ == "__main__":
    main()
