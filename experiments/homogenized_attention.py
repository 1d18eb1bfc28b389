"""Deep random attention and its homogenised limits.

Model: jaxflow/dynamics/random_attention.py; scalings: docs/attention.md.

Parts:
  A. clustering against depth: mean pairwise cosine, |mean token|² and effective rank per layer for a grid of
     (d, n, β), heads with V = I + G/√d (value_mean 1), η = 0.05, one head, R runs each.
  B. scalings: L η H = T (= limit_horizon) fixed with (η, H) ∈ {(0.2, 1), (0.05, 4), (0.0125, 16)}: the spread
     across runs of the order parameter shrinks like √(L η² H) = √(η T) (deterministic limit).
  C. finite depth against the limit (head law = a fixed bank of M heads, shared): (i) value_mean 1, T fixed, depth
     L ∈ depths: W1 between the law of the final cosine over R runs and the ODE limit (slope in L, expected −½),
     and against the common-noise SDE at temperature η; (ii) value_mean 0, L η² H = S fixed: W1 between the
     finite-depth law and the SDE's law, next to the Monte-Carlo floor (W1 between two independent SDE samples).
  D. where clustering is avoided: final cosine and effective rank at T over value_mean × β × value noise.

One seed (each part already averages over many runs of random heads); the claims are judged on point estimates.

Run `python -m experiments run homogenized_attention` (or `--quick`); writes results/homogenized_attention/
(table.md, metrics.json, clustering.png, limit.png).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

import jaxflow.dynamics as dy
from experiments.claims import Claim
from experiments.common import StudyConfig, figure, loglog_slope, markdown_table, positive_float, positive_int, require
from experiments.pipeline import Output, Study


@dataclass(frozen=True)
class HomogenizedConfig(StudyConfig):
    dims: tuple[int, ...] = (2, 8, 32)
    ns: tuple[int, ...] = (16, 64)
    betas: tuple[float, ...] = (1.0, 4.0, 16.0)
    depth: int = 200
    eta: float = 0.05
    runs: int = 16
    scalings: tuple[tuple[float, int], ...] = ((0.2, 1), (0.05, 4), (0.0125, 16))
    horizon: float = 10.0
    """L η for part D (long-time regimes)."""
    limit_dim: int = 8
    limit_n: int = 16
    limit_beta: float = 4.0
    limit_horizon: float = 2.0
    limit_depths: tuple[int, ...] = (8, 16, 32, 64, 128, 256, 512)
    limit_runs: int = 256
    bank_size: int = 64
    limit_steps: int = 400
    noise_clock: float = 1.0
    """S = L η² H for the value_mean = 0 regime of part C."""
    noise_depths: tuple[int, ...] = (16, 64, 256, 1024)
    value_means: tuple[float, ...] = (1.0, 0.25, 0.0, -0.5)
    value_scales: tuple[float, ...] = (0.0, 1.0, 3.0)
    regime_betas: tuple[float, ...] = (1.0, 9.0)
    out_dir: str = "results/homogenized_attention"


def validate(cfg: HomogenizedConfig) -> None:
    positive_int(cfg, "depth", "runs", "limit_dim", "limit_n", "limit_runs", "bank_size", "limit_steps")
    positive_float(cfg, "eta", "horizon", "limit_beta", "limit_horizon", "noise_clock")
    for name in ("dims", "ns", "limit_depths", "noise_depths"):
        v = getattr(cfg, name)
        require(len(v) > 0 and all(x >= 1 for x in v), name, v, "positive integers")
    require(len(cfg.limit_depths) >= 2, "limit_depths", cfg.limit_depths, "at least two depths (a slope)")
    require(all(b > 0 for b in cfg.betas + cfg.regime_betas), "betas", cfg.betas, "positive inverse temperatures")
    require(all(e > 0 and h >= 1 for e, h in cfg.scalings), "scalings", cfg.scalings, "pairs (η > 0, H ≥ 1)")


def _final_measures(key, x0, runs, **kw):
    """Order parameters at the last layer for `runs` independent head draws: dict of [runs]."""
    keys = jax.random.split(key, runs)
    f = jax.jit(jax.vmap(lambda k: {n: v[-1] for n, v in dy.random_attention(k, x0, **kw).measures.items()}))
    return jax.tree.map(np.asarray, f(keys))


def _curves(key, x0, runs, **kw):
    keys = jax.random.split(key, runs)
    f = jax.jit(jax.vmap(lambda k: dy.random_attention(k, x0, **kw).measures))
    return jax.tree.map(np.asarray, f(keys))


def run(cfg: HomogenizedConfig, key: jax.Array) -> Output:
    f64 = jnp.float64
    bar = tqdm(total=4, desc="parts", disable=not cfg.progress)

    # A. clustering against depth
    part_a = {}
    for d in cfg.dims:
        for n in cfg.ns:
            x0 = dy.uniform_sphere(jax.random.fold_in(key, 1000 * d + n), n, d, f64)
            for beta in cfg.betas:
                c = _curves(jax.random.fold_in(key, 1), x0, cfg.runs, depth=cfg.depth, eta=cfg.eta, beta=beta)
                part_a[f"d={d},n={n},beta={beta:g}"] = {k: v.mean(0).tolist() for k, v in c.items()}
    bar.update()

    # B. scalings at fixed T = L η H
    d, n = cfg.limit_dim, cfg.limit_n
    x0 = dy.uniform_sphere(jax.random.fold_in(key, 2), n, d, f64)
    part_b = {}
    for eta, heads in cfg.scalings:
        depth = int(round(cfg.limit_horizon / (eta * heads)))
        c = _curves(jax.random.fold_in(key, 3), x0, cfg.runs, depth=depth, eta=eta, n_heads=heads, beta=cfg.limit_beta)
        part_b[f"eta={eta:g},H={heads}"] = dict(
            depth=depth,
            noise=depth * eta**2 * heads,
            t=(np.arange(depth + 1) * eta * heads).tolist(),
            mean=c["cosine"].mean(0).tolist(),
            std=c["cosine"].std(0).tolist(),
        )
    bar.update()

    # C. finite depth against the limit, one shared head bank
    law1 = dy.HeadLaw(1.0, 1.0)
    bank = dy.sample_bank(jax.random.fold_in(key, 4), cfg.bank_size, d, law1, f64)
    ode = dy.homogenized_limit(x0, bank, beta=cfg.limit_beta, horizon=cfg.limit_horizon, n_steps=cfg.limit_steps)
    ode_final = float(ode.measures["cosine"][-1])
    det = {"depth": [], "w1_ode": [], "w1_sde": [], "mean": [], "std": []}
    sde_fn = jax.jit(
        jax.vmap(
            lambda k, tau: dy.homogenized_limit(
                x0,
                bank,
                beta=cfg.limit_beta,
                horizon=cfg.limit_horizon,
                temperature=tau,
                n_steps=cfg.limit_steps,
                key=k,
            ).measures["cosine"][-1],
            in_axes=(0, None),
        )
    )
    for depth in cfg.limit_depths:
        eta = cfg.limit_horizon / depth
        fin = _final_measures(
            jax.random.fold_in(key, 5), x0, cfg.limit_runs, depth=depth, eta=eta, beta=cfg.limit_beta, bank=bank
        )["cosine"]
        sde = np.asarray(sde_fn(jax.random.split(jax.random.fold_in(key, 6 + depth), cfg.limit_runs), eta))
        det["depth"].append(depth)
        det["w1_ode"].append(float(np.mean(np.abs(fin - ode_final))))
        det["w1_sde"].append(float(dy.wasserstein_1d(fin, sde)))
        det["mean"].append(float(fin.mean()))
        det["std"].append(float(fin.std()))
    det["slope_ode"], det["slope_ci"] = loglog_slope(det["depth"], det["w1_ode"])

    bank0 = dy.sample_bank(jax.random.fold_in(key, 7), cfg.bank_size, d, dy.HeadLaw(0.0, 1.0), f64)
    noise = {"depth": [], "w1_sde": [], "finite_mean": [], "finite_std": []}
    # in the clock s = L η² H the SDE does not depend on η (its drift is the curvature term alone)
    eta_ref = 0.1
    sde0 = jax.jit(
        jax.vmap(
            lambda k: dy.homogenized_limit(
                x0,
                bank0,
                beta=cfg.limit_beta,
                horizon=cfg.noise_clock / eta_ref,
                temperature=eta_ref,
                n_steps=cfg.limit_steps,
                key=k,
            ).measures["cosine"][-1]
        )
    )
    s_a = np.asarray(sde0(jax.random.split(jax.random.fold_in(key, 8), cfg.limit_runs)))
    s_b = np.asarray(sde0(jax.random.split(jax.random.fold_in(key, 9), cfg.limit_runs)))
    noise["floor"] = float(dy.wasserstein_1d(s_a, s_b))
    noise["sde_mean"], noise["sde_std"] = float(s_a.mean()), float(s_a.std())
    for depth in cfg.noise_depths:
        eta = float(np.sqrt(cfg.noise_clock / depth))
        fin = _final_measures(
            jax.random.fold_in(key, 10), x0, cfg.limit_runs, depth=depth, eta=eta, beta=cfg.limit_beta, bank=bank0
        )["cosine"]
        noise["depth"].append(depth)
        noise["w1_sde"].append(float(dy.wasserstein_1d(fin, s_a)))
        noise["finite_mean"].append(float(fin.mean()))
        noise["finite_std"].append(float(fin.std()))
    bar.update()

    # D. regimes
    regimes = []
    depth_d = int(round(cfg.horizon / cfg.eta))
    for m in cfg.value_means:
        for s in cfg.value_scales:
            for beta in cfg.regime_betas:
                fin = _final_measures(
                    jax.random.fold_in(key, 11),
                    x0,
                    cfg.runs,
                    depth=depth_d,
                    eta=cfg.eta,
                    beta=beta,
                    law=dy.HeadLaw(m, s),
                )
                regimes.append(
                    dict(
                        value_mean=m,
                        value_scale=s,
                        beta=beta,
                        cosine=float(fin["cosine"].mean()),
                        mean_norm2=float(fin["mean_norm2"].mean()),
                        effective_rank=float(fin["effective_rank"].mean()),
                    )
                )
    bar.update()
    bar.close()

    result = dict(
        clustering=part_a,
        scalings=part_b,
        deterministic_limit=dict(ode_final=ode_final, **det),
        noise_limit=noise,
        regimes=regimes,
    )
    high_d = [v["cosine"][-1] for k, v in part_a.items() if int(k.split(",")[0][2:]) >= 8]
    measurements = {
        "slope_gap_ode": abs(det["slope_ode"] + 0.5),
        "noise_w1_over_floor": max(noise["w1_sde"]) / noise["floor"],
    }
    if high_d:
        measurements["cluster_min_final_cosine_d_ge_8"] = min(high_d)
    clustering, limit = _plots(cfg, result)
    return Output(measurements, _table(cfg, result), {"clustering": clustering, "limit": limit}, result)


def _plots(cfg, res):
    names = ("cosine", "mean_norm2", "effective_rank")
    fig = figure(figsize=(15, 4))
    axes = fig.subplots(1, 3)
    for label, curves in res["clustering"].items():
        for ax, name in zip(axes, names):
            ax.plot(curves[name], label=label, lw=1)
    for ax, name in zip(axes, names):
        ax.set_xlabel("layer")
        ax.set_title(name)
    axes[0].legend(fontsize=6, ncol=2)
    fig.suptitle(f"random attention, V = I + G/√d, η = {cfg.eta}, one head: mean over {cfg.runs} runs")
    fig.tight_layout()
    clustering = fig

    fig = figure(figsize=(15, 4))
    axes = fig.subplots(1, 3)
    for label, c in res["scalings"].items():
        t, m, s = np.asarray(c["t"]), np.asarray(c["mean"]), np.asarray(c["std"])
        axes[0].plot(t, m, label=f"{label} (Lη²H = {c['noise']:.2g})")
        axes[0].fill_between(t, m - s, m + s, alpha=0.2)
    axes[0].set_xlabel("t = ℓ η H")
    axes[0].set_ylabel("mean pairwise cosine (± sd over runs)")
    axes[0].legend(fontsize=7)
    det = res["deterministic_limit"]
    axes[1].loglog(det["depth"], det["w1_ode"], "o-", label="finite vs ODE limit")
    axes[1].loglog(det["depth"], det["w1_sde"], "s-", label="finite vs SDE (τ = η)")
    ref = np.asarray(det["depth"], float)
    axes[1].loglog(ref, det["w1_ode"][0] * (ref / ref[0]) ** -0.5, "k--", lw=0.8, label="L^(-1/2)")
    axes[1].set_xlabel("depth L (L η H fixed)")
    axes[1].set_ylabel("W1 between laws of the final cosine")
    axes[1].legend(fontsize=7)
    nz = res["noise_limit"]
    axes[2].semilogx(nz["depth"], nz["w1_sde"], "o-", label="finite vs SDE (L η² H fixed, value mean 0)")
    axes[2].axhline(nz["floor"], color="k", ls="--", lw=0.8, label="Monte-Carlo floor (SDE vs SDE)")
    axes[2].set_xlabel("depth L")
    axes[2].set_ylabel("W1")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    return clustering, fig


def _table(cfg, res):
    rows_a = []
    for label, c in res["clustering"].items():
        rows_a.append(
            [
                label,
                f"{c['cosine'][len(c['cosine']) // 4]:.3f}",
                f"{c['cosine'][-1]:.3f}",
                f"{c['mean_norm2'][-1]:.3f}",
                f"{c['effective_rank'][-1]:.2f}",
            ]
        )
    rows_b = [
        [k, v["depth"], f"{v['noise']:.3g}", f"{v['mean'][-1]:.3f}", f"{v['std'][-1]:.4f}"]
        for k, v in res["scalings"].items()
    ]
    det = res["deterministic_limit"]
    rows_c = [
        [L, f"{a:.4f}", f"{b:.4f}", f"{m:.4f} ± {s:.4f}"]
        for L, a, b, m, s in zip(det["depth"], det["w1_ode"], det["w1_sde"], det["mean"], det["std"])
    ]
    nz = res["noise_limit"]
    rows_n = [
        [L, f"{w:.4f}", f"{m:.4f} ± {s:.4f}"]
        for L, w, m, s in zip(nz["depth"], nz["w1_sde"], nz["finite_mean"], nz["finite_std"])
    ]
    rows_d = [
        [
            r["value_mean"],
            r["value_scale"],
            r["beta"],
            f"{r['cosine']:.3f}",
            f"{r['mean_norm2']:.3f}",
            f"{r['effective_rank']:.2f}",
        ]
        for r in res["regimes"]
    ]
    text = (
        "# Deep random attention and its homogenised limits\n\n"
        f"## A. Clustering against depth (η = {cfg.eta}, one head, V = I + G/√d, mean over {cfg.runs} runs)\n\n"
        + markdown_table(
            [
                "d, n, β",
                f"cosine at layer {cfg.depth // 4}",
                f"cosine at layer {cfg.depth}",
                "|mean|²",
                "effective rank",
            ],
            rows_a,
        )
        + f"\n## B. Scalings at L η H = {cfg.limit_horizon} (d = {cfg.limit_dim}, n = {cfg.limit_n}, "
        f"β = {cfg.limit_beta})\n\n"
        + markdown_table(["η, H", "depth L", "L η² H", "final cosine (mean)", "sd over runs"], rows_b)
        + f"\n## C. Finite depth against the limit (bank of {cfg.bank_size} heads, {cfg.limit_runs} runs)\n\n"
        f"(i) value mean 1, L η H = {cfg.limit_horizon}; ODE limit final cosine {det['ode_final']:.4f}; "
        f"slope of W1(finite, ODE) in L: {det['slope_ode']:.3f} ± {det['slope_ci']:.3f} (expected −1/2)\n\n"
        + markdown_table(["depth L", "W1 to ODE limit", "W1 to SDE (τ = η)", "finite cosine mean ± sd"], rows_c)
        + f"\n(ii) value mean 0, L η² H = {cfg.noise_clock}: SDE final cosine {nz['sde_mean']:.4f} ± "
        f"{nz['sde_std']:.4f}; Monte-Carlo floor W1(SDE, SDE') = {nz['floor']:.4f}\n\n"
        + markdown_table(["depth L", "W1 to SDE", "finite cosine mean ± sd"], rows_n)
        + f"\n## D. Where clustering is avoided (L η = {cfg.horizon}, η = {cfg.eta}, one head)\n\n"
        + markdown_table(["value mean", "value noise", "β", "cosine", "|mean|²", "effective rank"], rows_d)
    )
    return text


PAPER = "homogenised limits of deep random attention (interacting-particle view of transformers)"
CLAIMS = (
    Claim(
        "tokens_cluster[d>=8]",
        "deep random attention drives tokens to one cluster at d ≥ 8: the smallest final mean pairwise cosine over "
        "the (d, n, β) grid exceeds 0.99",
        "cluster_min_final_cosine_d_ge_8",
        ">",
        0.99,
        paper=PAPER,
        paper_value="cosine → 1",
    ),
    Claim(
        "deterministic_limit_rate",
        "with L η H fixed and L η² H → 0, finite depth converges to the deterministic (ODE) limit at rate L^(−1/2): "
        "the W1 slope in L is within 0.1 of −1/2",
        "slope_gap_ode",
        "<",
        0.1,
        paper=PAPER,
        paper_value="slope −1/2",
    ),
    Claim(
        "noise_limit_matches_sde",
        "with L η² H fixed, finite depth matches the common-noise SDE limit: W1 to the SDE's law stays under twice "
        "the Monte-Carlo floor at every depth",
        "noise_w1_over_floor",
        "<",
        2.0,
        paper=PAPER,
        paper_value="SDE limit",
    ),
)
STUDY = Study(
    "homogenized_attention",
    config=HomogenizedConfig,
    run=run,
    claims=CLAIMS,
    quick={
        "dims": (2, 8),
        "ns": (16,),
        "betas": (1.0, 9.0),
        "depth": 100,
        "runs": 8,
        "limit_depths": (8, 32, 128),
        "limit_runs": 64,
        "bank_size": 32,
        "limit_steps": 150,
        "noise_depths": (16, 64),
        "value_means": (1.0, -0.5),
        "value_scales": (0.0, 1.0),
        "regime_betas": (1.0,),
    },
    smoke={
        "dims": (2, 8),
        "betas": (4.0,),
        "depth": 40,
        "runs": 4,
        "limit_depths": (8, 16),
        "limit_runs": 16,
        "bank_size": 8,
        "limit_steps": 40,
        "noise_depths": (8,),
    },
    validate=validate,
    x64=True,
    description="Deep random attention: clustering with depth and its homogenised ODE and SDE limits.",
)
CONFIG = HomogenizedConfig
main = STUDY.main

if __name__ == "__main__":
    main()
