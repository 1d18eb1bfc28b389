"""Unfolding Gaussian smearing: Wasserstein unfolding (unbinned) against Richardson–Lucy (binned).

Cases: a steeply falling spectrum and a bimodal one, in 1-D and 2-D. The simulation draws truth atoms from a broad
prior (not the true spectrum) with `responses` smeared copies each; Richardson–Lucy builds its response matrix from the
same pairs, with coarse and fine bins (coarse bins on the falling spectrum are where binning error dominates: the
response inside a wide bin depends on the unknown spectrum). Error to the truth: W1 (1-D, exact from CDFs) or sliced W1
(2-D, the same 256 directions for every estimate) against a large truth sample, after every iteration.

Run `python -m experiments.unfolding` (or `--quick`); writes results/unfolding/ (table.md, metrics.json, error.png).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np
import tyro
from tqdm.auto import tqdm

import jaxflow as jf
from experiments.common import (
    StudyConfig,
    atomic_write_bytes,
    markdown_table,
    results_dir,
    study,
    versions,
    write_json,
)


@dataclass(frozen=True)
class UnfoldingConfig(StudyConfig):
    cases: tuple[str, ...] = ("falling-1d", "bimodal-1d", "falling-2d", "bimodal-2d")
    sigma: float = 0.3
    """detector smearing (standard deviation per coordinate)."""
    n_data: int = 5000
    n_atoms: int = 1500
    responses: int = 10
    """simulated responses per truth atom."""
    epsilon_rel: float = 0.2
    """ε = epsilon_rel · σ² (the Gibbs kernel adds variance ε/2 to the simulated response)."""
    coarse_bins: int = 8
    fine_bins: int = 24
    n_iter: int = 200
    truth_samples: int = 50_000
    out_dir: str = "results/unfolding"
    quick: bool = False
    """quick version: 2,000 data, 600 atoms, 100 iterations, results/unfolding/quick."""


def quick_config(cfg: UnfoldingConfig) -> UnfoldingConfig:
    return dataclasses.replace(
        cfg, n_data=2000, n_atoms=600, n_iter=100, truth_samples=20_000, out_dir=str(Path(cfg.out_dir) / "quick")
    )


RANGE = (0.0, 4.0)


def sample_truth(case: str, key, n: int) -> jax.Array:
    d = 2 if case.endswith("2d") else 1
    k1, k2, k3 = jax.random.split(key, 3)
    if case.startswith("falling"):
        z = jax.random.exponential(k1, (n, d), jnp.float64) / 1.5
    else:
        comp = jax.random.bernoulli(k1, 0.4, (n, 1))
        centres = jnp.where(comp, 1.0, 2.6) * jnp.ones((1, d))
        spread = jnp.where(comp, 0.2, 0.35)
        z = centres + spread * jax.random.normal(k2, (n, d), jnp.float64)
    return jnp.clip(z, *RANGE)


def sample_prior(key, n: int, d: int) -> jax.Array:
    """Broad simulation prior: uniform on the range."""
    return jax.random.uniform(key, (n, d), jnp.float64, *RANGE)


def w1_1d_atoms(points, weights, truth_sorted, grid):
    order = np.argsort(points)
    cdf = np.concatenate([[0.0], np.cumsum(weights[order])])
    f = cdf[np.searchsorted(points[order], grid, side="right")]
    g = np.searchsorted(truth_sorted, grid, side="right") / truth_sorted.size
    return float(np.trapezoid(np.abs(f - g), grid))


def w1_1d_hist(edges, counts, truth_sorted, grid):
    cdf_edges = np.concatenate([[0.0], np.cumsum(counts)]) / max(counts.sum(), 1e-300)
    f = np.interp(grid, edges, cdf_edges)
    g = np.searchsorted(truth_sorted, grid, side="right") / truth_sorted.size
    return float(np.trapezoid(np.abs(f - g), grid))


def hist_points_2d(edges, sub=4):
    """Each 2-D bin as sub×sub uniformly spread points (weights split evenly)."""
    lo, hi = edges[:-1], edges[1:]
    offs = (np.arange(sub) + 0.5) / sub
    pts1 = (lo[:, None] + (hi - lo)[:, None] * offs[None, :]).ravel()  # [bins * sub]
    xx, yy = np.meshgrid(pts1, pts1, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel()], 1)


@jax.jit
def _sw1(theta, points, truth, weights):
    # arrays are arguments, not closed-over constants: XLA would otherwise constant-fold the sorts at compile time
    return jnp.mean(jf.ot.sliced.projected_wasserstein(theta, points, truth, 1.0, weights, None))


def eval_iterations(n_iter: int) -> list[int]:
    """Iterations at which the error is evaluated: 0, 1, 2, ... spaced geometrically up to n_iter."""
    return sorted({0, *np.unique(np.geomspace(1, n_iter, 25).astype(int)).tolist()}) if n_iter else [0]


def spread_2d(h, nb, sub=4):
    """Bin (i, j) content spread evenly over its sub×sub points, in the order of `hist_points_2d`."""
    w = np.repeat(np.repeat(h.reshape(nb, nb), sub, 0), sub, 1) / sub**2
    return w.ravel() / max(w.sum(), 1e-300)


def run_case(case: str, cfg: UnfoldingConfig, key) -> dict:
    d = 2 if case.endswith("2d") else 1
    k_truth, k_data, k_prior, k_resp, k_noise, k_sw = jax.random.split(key, 6)
    truth = np.asarray(sample_truth(case, k_truth, cfg.truth_samples))
    data = sample_truth(case, k_data, cfg.n_data) + cfg.sigma * jax.random.normal(k_noise, (cfg.n_data, d), jnp.float64)
    atoms = sample_prior(k_prior, cfg.n_atoms, d)
    resp = atoms[:, None, :] + cfg.sigma * jax.random.normal(k_resp, (cfg.n_atoms, cfg.responses, d), jnp.float64)
    eps = cfg.epsilon_rel * cfg.sigma**2

    if d == 1:
        grid = np.linspace(RANGE[0] - 0.5, RANGE[1] + 0.5, 4001)
        truth_sorted = np.sort(truth[:, 0])

        def err_atoms(w):
            return w1_1d_atoms(np.asarray(atoms[:, 0]), np.asarray(w) / float(np.sum(w)), truth_sorted, grid)
    else:
        theta = jf.ot.sliced.random_directions(k_sw, 256, 2, jnp.float64)
        truth_j = jnp.asarray(truth[:10_000])

        def sw1(points, weights):
            return float(_sw1(theta, jnp.asarray(points), truth_j, jnp.asarray(weights)))

        def err_atoms(w):
            return sw1(atoms, np.asarray(w) / float(np.sum(w)))

    out = jf.ot.wasserstein_unfolding(data, resp, epsilon=eps, n_iter=cfg.n_iter)
    its = eval_iterations(cfg.n_iter)
    weights = np.asarray(out.weights)
    curves = {"Wasserstein unfolding": [err_atoms(weights[i]) for i in its]}
    mass = np.asarray(out.weights).sum(1)

    sim_true = np.repeat(np.asarray(atoms), cfg.responses, axis=0)
    sim_meas = np.asarray(resp).reshape(-1, d)
    data_np = np.asarray(data)
    for label, nb in (("Richardson–Lucy, coarse bins", cfg.coarse_bins), ("Richardson–Lucy, fine bins", cfg.fine_bins)):
        edges = np.linspace(*RANGE, nb + 1)
        medges = np.linspace(RANGE[0] - 3 * cfg.sigma, RANGE[1] + 3 * cfg.sigma, nb + 7)
        if d == 1:
            t_idx = np.clip(np.digitize(sim_true[:, 0], edges) - 1, 0, nb - 1)
            m_idx = np.clip(np.digitize(sim_meas[:, 0], medges) - 1, 0, len(medges) - 2)
            g_idx = np.clip(np.digitize(data_np[:, 0], medges) - 1, 0, len(medges) - 2)
            n_t, n_m = nb, len(medges) - 1
        else:
            nm1 = len(medges) - 1

            def idx2(v, e, n):
                return np.clip(np.digitize(v, e) - 1, 0, n - 1)

            t_idx = idx2(sim_true[:, 0], edges, nb) * nb + idx2(sim_true[:, 1], edges, nb)
            m_idx = idx2(sim_meas[:, 0], medges, nm1) * nm1 + idx2(sim_meas[:, 1], medges, nm1)
            g_idx = idx2(data_np[:, 0], medges, nm1) * nm1 + idx2(data_np[:, 1], medges, nm1)
            n_t, n_m = nb * nb, nm1 * nm1
        counts = np.zeros((n_m, n_t))
        np.add.at(counts, (m_idx, t_idx), 1.0)
        per_true = np.bincount(t_idx, minlength=n_t)
        response = counts / np.maximum(per_true, 1)[None, :]
        measured = np.bincount(g_idx, minlength=n_m) / cfg.n_data
        prior = per_true / per_true.sum()  # the simulation's own truth histogram
        hist = np.asarray(
            jf.ot.richardson_lucy(jnp.asarray(response), jnp.asarray(measured), jnp.asarray(prior), cfg.n_iter)
        )
        if d == 1:
            curves[label] = [w1_1d_hist(edges, hist[i], truth_sorted, grid) for i in its]
        else:
            pts = hist_points_2d(edges)
            curves[label] = [sw1(pts, spread_2d(hist[i], nb)) for i in its]
    return {
        "iterations": its,
        "curves": curves,
        "mass_min": float(mass.min()),
        "mass_max": float(mass.max()),
        "epsilon": eps,
    }


def _run_study(cfg: UnfoldingConfig) -> dict:
    """Run the study in float64 (scoped: the global precision setting is left as it was)."""
    with jax.enable_x64(True):
        return _run(cfg)


def _run(cfg: UnfoldingConfig) -> dict:
    if cfg.quick:
        cfg = quick_config(cfg)
    out_dir = results_dir(cfg.out_dir)
    key = jax.random.key(cfg.seed)
    results = {}
    for i, case in enumerate(tqdm(cfg.cases, desc="cases", disable=not cfg.progress)):
        results[case] = run_case(case, cfg, jax.random.fold_in(key, i))
    rows = []
    for case, r in results.items():
        for label, c in r["curves"].items():
            c, its = np.asarray(c), r["iterations"]
            best = int(np.argmin(c))
            at10 = int(np.argmin(np.abs(np.asarray(its) - 10)))
            rows.append([case, label, f"{c[0]:.4f}", f"{c[at10]:.4f}", f"{c[-1]:.4f}", f"{c[best]:.4f} @ {its[best]}"])
    header = ["case", "method", "error at start (prior)", "after 10 it.", f"after {cfg.n_iter} it.", "best @ iteration"]
    text = (
        "# Unfolding: Wasserstein (unbinned) vs Richardson–Lucy (binned)\n\n"
        f"σ = {cfg.sigma}, {cfg.n_data} data events, {cfg.n_atoms} simulated truth atoms × {cfg.responses} responses "
        f"(uniform prior on {RANGE}), ε = {cfg.epsilon_rel}·σ²; Richardson–Lucy with {cfg.coarse_bins} (coarse) and "
        f"{cfg.fine_bins} (fine) truth bins per axis, started at the simulation's truth histogram. Error: W1 to "
        "the truth (1-D) or sliced W1 over 256 fixed directions (2-D). Wasserstein unfolding conserves mass: total "
        "weight stayed in ["
        + ", ".join(f"{r['mass_min']:.12f}–{r['mass_max']:.12f}" for r in results.values())
        + "] (data mass 1).\n\n"
        + markdown_table(header, rows)
    )
    atomic_write_bytes(out_dir / "table.md", text.encode())
    write_json(
        out_dir / "metrics.json", {"config": dataclasses.asdict(cfg), "versions": versions(), "results": results}
    )
    fig, axes = plt.subplots(1, len(results), figsize=(3.8 * len(results), 3.2), squeeze=False)
    for ax, (case, r) in zip(axes[0], results.items(), strict=True):
        for label, c in r["curves"].items():
            ax.plot(r["iterations"], c, "o-", ms=2, label=label, lw=1.3)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_yscale("log")
        ax.set_title(case, fontsize=9)
        ax.set_xlabel("iteration")
        ax.set_ylabel("W1 to truth" if case.endswith("1d") else "sliced W1 to truth")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "error.png", dpi=110)
    plt.close(fig)
    print(text)
    print(f"results written to {out_dir}/")
    return results


def claims(results: dict, cfg) -> list:
    """Wasserstein unfolding conserves mass and matches or beats binned Richardson–Lucy at its best iteration."""
    from experiments.common import Claim

    best = {}
    for case, r in results.items():
        best[case] = {m: round(float(np.min(c)), 4) for m, c in r["curves"].items()}
    mass = max(max(abs(r["mass_min"] - 1), abs(r["mass_max"] - 1)) for r in results.values())
    wins = {c: b for c, b in best.items() if any("Wasserstein" in m for m in b)}

    def beats_coarse(b):
        w = next(v for m, v in b.items() if "Wasserstein" in m)
        coarse = [v for m, v in b.items() if "coarse" in m]
        return all(w <= 1.05 * c for c in coarse)

    return [
        Claim("the generalised Sinkhorn unfolding conserves mass exactly", 0.0, f"{mass:.1e}", mass < 1e-9),
        Claim(
            "unbinned Wasserstein unfolding is at least as accurate as Richardson–Lucy on coarse bins (where binning "
            "error dominates)",
            None,
            wins,
            all(beats_coarse(b) for b in wins.values()),
        ),
    ]


run = study("unfolding", quick=quick_config)(_run_study)


CONFIG = UnfoldingConfig


def main() -> None:
    run(tyro.cli(UnfoldingConfig))


if __name__ == "__main__":
    main()
