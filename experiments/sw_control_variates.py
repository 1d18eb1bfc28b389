"""Control variates for sliced Wasserstein: variance and error against the number of projections L,
and a sliced-Wasserstein gradient flow with and without control variates.

Claims: per pair, the smallest variance ratio Var(plain)/Var(CV) over every (d, L) cell of the grid must exceed 1
(one value per pair: the repeats are the statistic's own sample); the flows are paired per seed (same particles,
target and direction draws for every estimator).

Run `python -m experiments run sw_control_variates` (or `--quick`); writes results/sw_control_variates/
(table.md, metrics.json, variance.png, flow.png).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

import jaxflow as jf
from experiments.claims import Claim, Diff
from experiments.common import StudyConfig, figure, markdown_table, positive_float, positive_int, require
from experiments.pipeline import Output, Study

ESTIMATORS = (None, "lower", "upper")
LABEL = {None: "plain MC", "lower": "CV lower", "upper": "CV upper"}


@dataclass(frozen=True)
class SWConfig(StudyConfig):
    pairs: tuple[str, ...] = ("gaussian", "mixture", "pointcloud")
    """gaussian: N(0, I) vs N(m, anisotropic diag); mixture: two 4-component mixtures; pointcloud: cube vs shell."""
    dims: tuple[int, ...] = (2, 16, 64)
    projections: tuple[int, ...] = (10, 30, 100, 300, 1000)
    n_points: int = 1000
    repeats: int = 200
    """independent direction draws per (pair, d, L) for the variance."""
    reference_projections: int = 100_000
    flow_dim: int = 16
    flow_points: int = 500
    flow_steps: int = 300
    flow_projections: int = 10
    flow_step_size: float = 1.0
    seeds: int = 3
    """seeds of the gradient flows."""
    out_dir: str = "results/sw_control_variates"


PAIRS = ("gaussian", "mixture", "pointcloud")


def validate(cfg: SWConfig) -> None:
    for p in cfg.pairs:
        require(p in PAIRS, "pairs", p, f"unknown pair; choose from {list(PAIRS)}")
    require(cfg.dims and all(d >= 1 for d in cfg.dims), "dims", cfg.dims, "positive dimensions")
    require(cfg.projections and all(n >= 2 for n in cfg.projections), "projections", cfg.projections, "each ≥ 2")
    positive_int(cfg, "n_points", "reference_projections", "flow_dim", "flow_points", "flow_steps")
    positive_int(cfg, "flow_projections")
    require(isinstance(cfg.repeats, int) and cfg.repeats >= 2, "repeats", cfg.repeats, "must be an integer ≥ 2")
    positive_float(cfg, "flow_step_size")


def make_pair(name: str, key: jax.Array, n: int, d: int) -> tuple[jax.Array, jax.Array]:
    k1, k2, k3, k4 = jax.random.split(key, 4)
    if name == "gaussian":
        x = jax.random.normal(k1, (n, d))
        scales = jnp.geomspace(0.2, 3.0, d)
        y = 1.0 + jax.random.normal(k2, (n, d)) * scales
    elif name == "mixture":
        cx = 3.0 * jax.random.normal(k3, (4, d)) / jnp.sqrt(d) * 2.0
        cy = cx + 1.0
        x = cx[jax.random.randint(k1, (n,), 0, 4)] + 0.5 * jax.random.normal(k2, (n, d))
        y = cy[jax.random.randint(k4, (n,), 0, 4)] * 1.5 + 0.8 * jax.random.normal(k3, (n, d))
    elif name == "pointcloud":
        x = jax.random.uniform(k1, (n, d), minval=-1.0, maxval=1.0)
        v = jax.random.normal(k2, (n, d))
        r = 2.0 + 0.1 * jax.random.normal(k3, (n, 1))
        y = 0.5 + r * v / jnp.linalg.norm(v, axis=1, keepdims=True)
    else:
        raise ValueError(f"unknown pair {name!r}; choose gaussian, mixture or pointcloud")
    return x, y


def reference_power(key, x, y, n_proj, chunk=5000):
    """SW_2² with many directions (chunked)."""
    keys = jax.random.split(key, max(1, n_proj // chunk))
    return float(np.mean([_chunk_power(k, x, y, chunk) for k in keys]))


@functools.partial(jax.jit, static_argnums=(3,))
def _chunk_power(k, x, y, chunk):
    theta = jf.ot.sliced.random_directions(k, chunk, x.shape[1])
    return jnp.mean(jf.ot.sliced.projected_wasserstein(theta, x, y))


@functools.partial(jax.jit, static_argnums=(3, 4))
def _batched_sw(keys, x, y, n_proj, cv):
    # x, y are arguments (not closed-over constants, which XLA would constant-fold at compile time)
    return jax.vmap(lambda k: jf.ot.sliced_wasserstein(k, x, y, n_proj, control_variate=cv))(keys)


def variance_study(cfg: SWConfig, key):
    rows = []
    combos = [(i, p, d) for i, p in enumerate(cfg.pairs) for d in cfg.dims]
    for i, pair, d in tqdm(combos, desc="pairs × d", disable=not cfg.progress):
        kp = jax.random.fold_in(key, 1000 * i + d)
        x, y = make_pair(pair, kp, cfg.n_points, d)
        ref = reference_power(jax.random.fold_in(kp, 1), x, y, cfg.reference_projections)
        for L in cfg.projections:
            keys = jax.random.split(jax.random.fold_in(kp, 1000 + L), cfg.repeats)
            for cv in ESTIMATORS:
                out = _batched_sw(keys, x, y, L, cv)
                power = np.asarray(out.power)
                rows.append(
                    dict(
                        pair=pair,
                        d=d,
                        L=L,
                        estimator=LABEL[cv],
                        variance=float(power.var(ddof=1)),
                        bias=float(power.mean() - ref),
                        rmse_sw=float(np.sqrt(np.mean((np.asarray(out.distance) - np.sqrt(ref)) ** 2))),
                        mean_reported_se=float(np.mean(np.asarray(out.power_stderr))),
                        reference_sw2=ref,
                    )
                )
    return rows


def sw_flow(cfg: SWConfig, key, cv):
    """Particles x follow −∇_x SW_2²(x, y) estimated with `flow_projections` directions per step."""
    kx, ky, kl = jax.random.split(key, 3)
    d = cfg.flow_dim
    x0 = jax.random.normal(kx, (cfg.flow_points, d))
    y, _ = make_pair("mixture", ky, cfg.flow_points, d)

    xs, w2 = x0, []
    record = sorted(set(np.unique(np.geomspace(1, cfg.flow_steps, 15).astype(int)).tolist()))
    keys = jax.random.split(kl, cfg.flow_steps)
    for t in range(1, cfg.flow_steps + 1):
        xs = _flow_step(xs, y, keys[t - 1], cfg.flow_projections, cv, cfg.flow_step_size)
        if t in record:
            w2.append(jf.metrics.wasserstein(np.asarray(xs), np.asarray(y)))
    return record, w2


@functools.partial(jax.jit, static_argnums=(3, 4))
def _flow_step(x, y, k, n_proj, cv, step_size):
    g = jax.grad(lambda x: jf.ot.sliced_wasserstein(k, x, y, n_proj, control_variate=cv).power)(x)
    return x - step_size * x.shape[0] * g / 2.0


def run(cfg: SWConfig, key: jax.Array) -> Output:
    rows = variance_study(cfg, key)

    flows = {}
    for cv in tqdm(ESTIMATORS, desc="SW flows", disable=not cfg.progress):
        runs = [sw_flow(cfg, jax.random.fold_in(key, 77 + s), cv) for s in range(cfg.seeds)]
        flows[LABEL[cv]] = {"steps": runs[0][0], "w2": [r[1] for r in runs]}

    # table: variance ratios (plain / CV) and RMSE at each L
    table_rows = []
    for pair in cfg.pairs:
        for d in cfg.dims:
            for L in cfg.projections:
                sel = {r["estimator"]: r for r in rows if r["pair"] == pair and r["d"] == d and r["L"] == L}
                plain = sel["plain MC"]
                table_rows.append(
                    [
                        pair,
                        d,
                        L,
                        f"{plain['variance']:.2e}",
                        f"{plain['variance'] / max(sel['CV lower']['variance'], 1e-300):.1f}",
                        f"{plain['variance'] / max(sel['CV upper']['variance'], 1e-300):.1f}",
                        f"{plain['rmse_sw']:.2e}",
                        f"{sel['CV lower']['rmse_sw']:.2e}",
                        f"{sel['CV upper']['rmse_sw']:.2e}",
                    ]
                )
    header = [
        "pair",
        "d",
        "L",
        "Var plain (SW₂²)",
        "ratio lower",
        "ratio upper",
        "RMSE plain",
        "RMSE lower",
        "RMSE upper",
    ]
    flow_rows = []
    for name, f in flows.items():
        w = np.asarray(f["w2"])
        flow_rows.append(
            [
                name,
                f"{w[:, 0].mean():.3f}",
                f"{w[:, len(w[0]) // 2].mean():.3f}",
                f"{w[:, -1].mean():.3f} ± {w[:, -1].std():.3f}",
            ]
        )
    text = (
        "# Sliced Wasserstein with control variates\n\n"
        f"{cfg.n_points} points per cloud, {cfg.repeats} independent direction sets per cell; variance of the SW₂² "
        f"estimate; ratio = Var(plain) / Var(CV) (> 1: the control variate helps); RMSE of SW₂ against a "
        f"{cfg.reference_projections:,}-direction reference.\n\n"
        + markdown_table(header, table_rows)
        + f"\n## SW gradient flow (d = {cfg.flow_dim}, {cfg.flow_points} particles, L = {cfg.flow_projections}, "
        f"{cfg.seeds} seeds): exact W₂ to the target\n\n"
        + markdown_table(
            [
                "estimator",
                f"step {flows['plain MC']['steps'][0]}",
                f"step {flows['plain MC']['steps'][len(flows['plain MC']['steps']) // 2]}",
                f"step {cfg.flow_steps}",
            ],
            flow_rows,
        )
    )
    measurements = {}
    for pair in cfg.pairs:
        for cv in ("lower", "upper"):
            ratios = []
            for r in rows:
                if r["pair"] == pair and r["estimator"] == LABEL[cv]:
                    plain = next(
                        x
                        for x in rows
                        if (x["pair"], x["d"], x["L"], x["estimator"]) == (pair, r["d"], r["L"], "plain MC")
                    )
                    ratios.append(plain["variance"] / max(r["variance"], 1e-300))
            measurements[f"min_variance_ratio/{pair}/{cv}"] = min(ratios)
    for name, f in flows.items():
        measurements[f"flow_final_w2/{name}"] = [w[-1] for w in f["w2"]]
    variance, flow = plot(rows, flows, cfg)
    return Output(measurements, text, {"variance": variance, "flow": flow}, {"variance": rows, "flows": flows})


def plot(rows, flows, cfg):
    fig = figure(figsize=(3.2 * len(cfg.dims), 2.6 * len(cfg.pairs)))
    axes = fig.subplots(len(cfg.pairs), len(cfg.dims), squeeze=False)
    for i, pair in enumerate(cfg.pairs):
        for j, d in enumerate(cfg.dims):
            ax = axes[i, j]
            for est in LABEL.values():
                sel = [r for r in rows if r["pair"] == pair and r["d"] == d and r["estimator"] == est]
                ax.loglog([r["L"] for r in sel], [r["variance"] for r in sel], "o-", label=est, ms=3)
            ax.set_title(f"{pair}, d = {d}", fontsize=9)
            ax.set_xlabel("L")
            if j == 0:
                ax.set_ylabel("Var of SW₂² estimate")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    variance = fig

    fig = figure(figsize=(4.5, 3.2))
    ax = fig.subplots()
    for name, f in flows.items():
        w = np.asarray(f["w2"])
        ax.plot(f["steps"], w.mean(0), "o-", ms=3, label=name)
        ax.fill_between(f["steps"], w.min(0), w.max(0), alpha=0.2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("flow step")
    ax.set_ylabel("W₂(particles, target)")
    ax.set_title(f"SW flow, d = {cfg.flow_dim}, L = {cfg.flow_projections}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return variance, fig


NGUYEN = "Nguyen & Ho 2023 (control variates for sliced Wasserstein)"


def _claims():
    out = []
    for pair in PAIRS:
        for cv in ("upper", "lower"):
            out.append(
                Claim(
                    f"cv_lowers_variance[{pair},{cv}]",
                    f"the {cv} control variate lowers the variance of Monte Carlo SW in every (d, L) cell ({pair})",
                    f"min_variance_ratio/{pair}/{cv}",
                    ">",
                    1.0,
                    paper=NGUYEN,
                    paper_value="variance reduced",
                )
            )
    for cv in ("CV lower", "CV upper"):
        out.append(
            Claim(
                f"cv_flow_not_worse[{cv}]",
                f"an SW gradient flow with the {cv} estimator ends at least as close to the target (W2) as with plain "
                "Monte Carlo (paired per seed)",
                Diff(f"flow_final_w2/{cv}", "flow_final_w2/plain MC"),
                "<",
                0.0,
                paper=NGUYEN,
                paper_value="faster SW gradient flows",
            )
        )
    return tuple(out)


CLAIMS = _claims()
STUDY = Study(
    "sw_control_variates",
    config=SWConfig,
    run=run,
    claims=CLAIMS,
    quick={
        "repeats": 50,
        "projections": (10, 30, 100, 300),
        "reference_projections": 20_000,
        "flow_steps": 100,
        "seeds": 2,
    },
    smoke={
        "pairs": ("gaussian",),
        "dims": (16,),
        "projections": (20, 80),
        "n_points": 200,
        "repeats": 30,
        "reference_projections": 5000,
        "flow_dim": 4,
        "flow_points": 100,
        "flow_steps": 5,
        "seeds": 1,
    },
    validate=validate,
    description="Control variates for sliced Wasserstein: variance against L, and SW gradient flows.",
)
CONFIG = SWConfig
main = STUDY.main

if __name__ == "__main__":
    main()
