"""Which probability path to train on: kinetic-optimal Gaussian paths (Shaul et al. 2023, arXiv:2306.06626) and
PFGM++ (Xu et al. 2023, arXiv:2302.04265).

Run `python -m experiments run paths` (full) or `--quick`; results in results/paths/.

Part 1, data separation (no training). λ(s) = (1/d) E‖E[x1 | s x1 + ε]‖² of normalised data (E‖x1‖²/d = 1) for the
digits, the 2-D sets and Gaussian data (λ = s²/(1 + s²) exactly); the bound ∫_0^∞ |1 − λ(s)| ds ≤ 3n/√d for n
Gaussian points in d dimensions as n/d varies; the KO path of each data set against Cond-OT: its radius parameter b
(b = 2 is Cond-OT), the largest gap max_t |α_KO − t|, and both kinetic energies (from λ).

Part 2, digits (flattened 8×8, normalised to E‖x‖²/d = 1): one MLP velocity per path (VP, Cond-OT, KO built from the
digits' λ), same steps and optimiser. Kinetic energy E∫‖v‖² dt / d along the model's own Dopri5 trajectories,
negative log-likelihood in bits/dim of the held-out split (exact divergence, integrated to t = 1 − 10⁻³ for every path,
since VP's σ̇ is singular at t = 1), and the
Fréchet distance (`jaxflow.metrics.DigitsMetric`, ≥ 1,000 samples, real-vs-real floor beside it) at 20 / 50 / 100
Euler steps and adaptive (Dopri5), with the adaptive NFE. The models train on uniformly dequantised digits (each of
the 17 grey levels spread over its bin) and the NLL is that of dequantised held-out digits, reported as the bound on
the discrete digits' bits/dim: without it the data's density is singular, the learned velocity near t = 1 grows like
1/σ², and the measured NLL depends on how fast each path's σ reaches 0 (VP's σ at t = 1 − 10⁻³ is ten times
Cond-OT's) and on how badly the network fits a singular field, not on the path (docs/paths.md).

Part 2b, few points in high dimension (`sparse_points` Gaussian points in `sparse_dim` dimensions): the regime where
the separation curve bends KO away from Cond-OT. The marginal velocity of a finite set is known in closed form
(`EmpiricalDistribution`), so the two paths are compared without learning: kinetic energy of the exact flow
(E∫‖v‖² dt / d along Dopri5 trajectories to t = 1 − 10⁻³) and the 2-Wasserstein distance between Euler samples at
2/4/8 steps and the points. `seeds` point sets.

Part 3, PFGM++ on a 2-D task (N → moons) and the digits for D ∈ `ds` (None = ∞, EDM): EDM-preconditioned MLP
denoisers trained with the PFGM++ kernel; quality (W2 in 2-D, FD on digits) at `pf_steps` Heun steps; degradation
under step noise α (Euler, x += α σ ε per step), under post-training weight quantisation (5–9 bits) and with fewer
steps. `seeds` seeds retrain every D. The robustness claims are declared as a trend over the planned D ≥ 16
(Spearman rank correlation of the degradation with D, ∞ ranked last, per seed); D = 1 is reported as a row of the
table, outside the trend (its kernel has heavy tails that the Heun sampler's fixed σ grid does not resolve).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy import stats

import jaxflow as jf
from experiments.claims import Claim, Diff, Ratio
from experiments.common import StudyConfig, figure, markdown_table, mean_std, positive_int, require
from experiments.pipeline import Output, Study
from jaxflow.nn import MLPVelocity, init_mlp, velocity_fn
from jaxflow.paths import AffinePath, CondOTScheduler, KineticOptimalScheduler, VPSDEScheduler
from jaxflow.train import TrainState, fit, make_train_step

PATHS = ("VP", "Cond-OT", "KO")
BIN = 0.125  # spacing of the digits' 17 grey levels in the [−1, 1] scale
PAPER_TABLE = {  # CIFAR-10 (Shaul et al. 2023, Table 1): NLL, KE, FID@20/50/100/adaptive, adaptive NFE
    "VP": (3.11, 2.30, 38.5, 18.0, 12.5, 7.4, 344),
    "Cond-OT": (2.97, 1.09, 9.9, 6.8, 6.8, 6.9, 146),
    "KO": (2.97, 1.08, 9.1, 6.2, 6.2, 6.1, 147),
}


@dataclass(frozen=True)
class PathsConfig(StudyConfig):
    """The paths study (every field is a command-line option)."""

    separation_samples: int = 2000
    bound_dims: tuple[int, ...] = (16, 64, 256, 1024, 4096)
    bound_points: tuple[int, ...] = (2, 8, 32, 128)
    steps: int = 6000
    """Digits training steps per path."""
    batch_size: int = 256
    lr: float = 1e-3
    hidden: int = 512
    eval_samples: int = 1000
    euler_steps: tuple[int, ...] = (20, 50, 100)
    nll_samples: int = 360
    dequantize: bool = True
    """train on and score uniformly dequantised digits (the 17 grey levels spread over their bins), so every path
    models the same continuous density; NLL then bounds the discrete digits' bits/dim (docs/paths.md)."""
    sparse_points: int = 8
    sparse_dim: int = 1024
    """part 2b: `sparse_points` Gaussian points in `sparse_dim` dimensions, where the separation curve makes KO
    differ from Cond-OT; exact (closed-form) fields of the finite set, so the comparison is of the paths alone."""
    sparse_samples: int = 512
    sparse_steps: tuple[int, ...] = (2, 4, 8)
    ds: tuple[float | None, ...] = (1.0, 16.0, 64.0, 256.0, 2048.0, None)
    """D = 1 is reported; the robustness trend is declared over D ≥ 16."""
    pf_steps: int = 35
    pf_steps_few: tuple[int, ...] = (8, 16)
    step_noise: tuple[float, ...] = (0.1, 0.2, 0.4)
    quant_bits: tuple[int, ...] = (5, 6, 7, 8, 9)
    pf_train_steps_2d: int = 4000
    pf_train_steps_digits: int = 6000
    seeds: int = 3
    """PFGM++ seeds (parts 1 and 2 run once)."""
    out_dir: str = "results/paths"


def validate(cfg: PathsConfig) -> None:
    positive_int(cfg, "separation_samples", "steps", "batch_size", "hidden", "eval_samples", "nll_samples", "pf_steps")
    require(cfg.eval_samples >= 1000, "eval_samples", cfg.eval_samples, "the Fréchet distance needs >= 1000")
    for d in cfg.ds:
        require(d is None or d > 0, "ds", d, "D must be positive (or None for ∞)")
    for b in cfg.quant_bits:
        require(isinstance(b, int) and 2 <= b <= 32, "quant_bits", b, "bits must lie in [2, 32]")


SNR = np.concatenate([[0.0], np.geomspace(1e-3, 1e3, 80)])


# ---- part 1: separation ----
def separation_curves(cfg: PathsConfig, key) -> dict:
    digits = jf.data.load_digits().images.reshape(-1, 64)
    sets = {
        "digits (n=1797, d=64)": digits,
        "moons (n=2000, d=2)": jf.data.sample_toy(jax.random.fold_in(key, 1), "moons", 2000),
        "8gaussians (n=2000, d=2)": jf.data.sample_toy(jax.random.fold_in(key, 2), "8gaussians", 2000),
        "scurve (n=2000, d=2)": jf.data.sample_toy(jax.random.fold_in(key, 3), "scurve", 2000),
        "gaussian (n=20000, d=2)": jax.random.normal(jax.random.fold_in(key, 4), (20000, 2)),
    }
    out = {}
    for i, (name, data) in enumerate(sets.items()):
        lam = jf.paths.data_separation(
            jax.random.fold_in(key, 10 + i), data, jnp.asarray(SNR), num_samples=cfg.separation_samples
        )
        out[name] = np.asarray(lam)
    return out


def integral_one_minus_lambda(lam: np.ndarray) -> float:
    """∫_0^∞ |1 − λ(s)| ds on the SNR grid (trapezoid), plus the tail beyond s_max as |1 − λ(s_max)|·s_max (1 − λ
    decays at least like 1/s² there)."""
    g = np.abs(1 - lam)
    return float(np.trapezoid(g, SNR) + g[-1] * SNR[-1])


def ko_summary(lam: np.ndarray) -> dict:
    def lam_fn(s):
        return np.interp(np.arctan(s), np.arctan(SNR), lam)

    ko = KineticOptimalScheduler.from_separation(SNR, lam)
    t = jnp.linspace(0.0, 1.0, 401)
    gap = float(jnp.max(jnp.abs(ko.alpha(t) - t)))
    return {
        "b": ko.b,
        "max_alpha_gap": gap,
        "ke_ko": jf.paths.kinetic_energy_of(ko, lam_fn),
        "ke_cond_ot": jf.paths.kinetic_energy_of(CondOTScheduler(), lam_fn),
        "scheduler": ko,
    }


def bound_rows(cfg: PathsConfig, key) -> list[dict]:
    rows = []
    for d in cfg.bound_dims:
        for n in cfg.bound_points:
            pts = jax.random.normal(jax.random.fold_in(jax.random.fold_in(key, d), n), (n, d))
            lam = np.asarray(
                jf.paths.data_separation(jax.random.fold_in(key, 7), pts, jnp.asarray(SNR), num_samples=512)
            )
            ko = ko_summary(lam)
            rows.append(
                {
                    "n": n,
                    "d": d,
                    "n_over_d": n / d,
                    "integral": integral_one_minus_lambda(lam),
                    "bound": 3 * n / np.sqrt(d),
                    "b": ko["b"],
                    "max_alpha_gap": ko["max_alpha_gap"],
                    "ke_ratio": ko["ke_cond_ot"] / ko["ke_ko"],
                }
            )
    return rows


# ---- part 2b: few points in high dimension, exact fields ----
def sparse_paths(cfg: PathsConfig, key) -> dict:
    """Cond-OT against KO on `sparse_points` Gaussian points in `sparse_dim` dimensions with the closed-form fields."""
    pts = jax.random.normal(jax.random.fold_in(key, 0), (cfg.sparse_points, cfg.sparse_dim))
    lam = np.asarray(jf.paths.data_separation(jax.random.fold_in(key, 1), pts, jnp.asarray(SNR), num_samples=512))
    summary = ko_summary(lam)
    emp = jf.paths.EmpiricalDistribution(pts)
    z = jax.random.normal(jax.random.fold_in(key, 2), (cfg.sparse_samples, cfg.sparse_dim))
    out = {"b": summary["b"], "max_alpha_gap": summary["max_alpha_gap"]}
    for name, sched in (("Cond-OT", CondOTScheduler()), ("KO", summary["scheduler"])):
        path = AffinePath(sched)

        def field(t, x, path=path):
            return emp.velocity(t, x, path)

        # σ = 0 at t = 1, where the closed-form field divides by σ; near it the field of a finite set is so stiff
        # that float32 Dopri5 stages overflow (seen at 1 − 10⁻⁴): the kinetic energy is taken over [0, 1 − 10⁻³]
        t1 = 1.0 - 1e-3
        ad = jf.sample(field, z, solver="dopri5", rtol=1e-5, atol=1e-5, t1=t1, save_trajectory=201)
        speeds = jax.vmap(lambda t, x: jnp.mean(jnp.sum(field(t, x) ** 2, axis=1)))(ad.ts, ad.trajectory)
        rec = {"kinetic_energy": float(np.trapezoid(np.asarray(speeds), np.asarray(ad.ts)) / cfg.sparse_dim)}
        target = jnp.tile(pts, (cfg.sparse_samples // cfg.sparse_points + 1, 1))[: cfg.sparse_samples]
        for n in cfg.sparse_steps:
            x = jf.sample(field, z, solver="euler", steps=n).x
            rec[f"w2@{n}"] = float(jf.metrics.wasserstein(x, target)) / np.sqrt(cfg.sparse_dim)
            # a column beside the claim: how far each sample lands from its nearest point (W2 also counts how the
            # samples split between the points, which varies from draw to draw)
            rec[f"snap@{n}"] = float(jnp.mean(jnp.min(jf.ot.sqeuclidean_cost(x, pts), axis=1)) ** 0.5) / np.sqrt(
                cfg.sparse_dim
            )
        rec["w2_adaptive"] = float(jf.metrics.wasserstein(ad.x, target)) / np.sqrt(cfg.sparse_dim)
        out[name] = rec
    return out


# ---- part 2: digits under three paths ----
def digits_paths(cfg: PathsConfig, key, metric, lam_digits) -> tuple[dict, dict]:
    data = metric.train.images.reshape(-1, 64)
    scale = float(jnp.sqrt(64 / jnp.mean(jnp.sum(data**2, axis=1))))  # normalised space: x_norm = scale · x
    train = data * scale
    width = BIN if cfg.dequantize else 0.0  # the grey levels are 0.125 apart in the [−1, 1] scale
    ko = KineticOptimalScheduler.from_separation(SNR, lam_digits)
    schedulers = {"VP": VPSDEScheduler(), "Cond-OT": CondOTScheduler(), "KO": ko}
    model = MLPVelocity(out_dim=64, hidden=(cfg.hidden,) * 3, activation="selu", time_embedding="sinusoidal")
    v = velocity_fn(model)
    out, samples_fig = {}, {}
    test = metric.test.images.reshape(-1, 64)[: cfg.nll_samples]
    test = (
        test + width * jax.random.uniform(jax.random.fold_in(key, 999), test.shape, minval=-0.5, maxval=0.5)
    ) * scale
    for i, (name, sched) in enumerate(schedulers.items()):
        loss = jf.losses.cfm_loss(v, path=AffinePath(sched))
        opt = optax.adam(cfg.lr)

        def data_fn(k):
            k_i, k_u = jax.random.split(k)
            x = train[jax.random.randint(k_i, (cfg.batch_size,), 0, train.shape[0])]
            return {"x1": x + scale * width * jax.random.uniform(k_u, x.shape, minval=-0.5, maxval=0.5)}

        state = TrainState.create(jax.random.fold_in(key, 10 + i), init_mlp(jax.random.fold_in(key, i), model, 64), opt)
        step = make_train_step(loss, opt, data_fn=data_fn)
        t0 = time.perf_counter()
        state, _ = fit(state, step, cfg.steps, steps_per_call=500, progress=cfg.progress, desc=f"digits {name}")
        jax.block_until_ready(state)
        seconds = time.perf_counter() - t0
        params = state.ema_params
        x0 = jax.random.normal(jax.random.fold_in(key, 100), (cfg.eval_samples, 64))
        rec = {"train_seconds": seconds}

        def to_images(x):
            return (x / scale).reshape(-1, 8, 8, 1)

        for n in cfg.euler_steps:
            xs = jf.sample(v, x0, params=params, solver="euler", steps=n).x
            rec[f"fd_euler_{n}"] = metric.frechet(to_images(xs))
        ad = jf.sample(v, x0, params=params, solver="dopri5", rtol=1e-5, atol=1e-5, save_trajectory=101)
        rec["fd_adaptive"] = metric.frechet(to_images(ad.x))
        rec["nfe_adaptive"] = int(ad.nfe)
        # kinetic energy of the learned flow: E ∫ ‖v(t, x_t)‖² dt / d on its own trajectories (saved times)
        traj, ts = ad.trajectory, ad.ts
        speeds = jax.vmap(lambda t, x, p=params: jnp.mean(jnp.sum(v(p, t, x) ** 2, axis=1)))(ts, traj)
        rec["kinetic_energy"] = float(np.trapezoid(np.asarray(speeds), np.asarray(ts)) / 64)
        # to t1 = 1 − 1e-3 for every path: VP's σ̇ is singular at t = 1 (σ = √(1 − α²)), which sends the divergence
        # integral to infinity; the density is then that of the data convolved with the path's last small noise
        ll = jf.sampling.log_likelihood(v, test, params=params, solver="dopri5", rtol=1e-5, atol=1e-5, t1=1 - 1e-3)
        # bits/dim of the data in the [−1, 1] pixel scale: log p(x) = log p_norm(scale · x) + d log scale; with
        # dequantisation, log P(level) ≥ E_u log p(x + u) + d log(bin width): the bound on the discrete digits
        logp = np.asarray(ll.log_prob) + 64 * np.log(scale) + (64 * np.log(width) if width else 0.0)
        rec["nll_bits_per_dim"] = float(-np.mean(logp) / (64 * np.log(2)))
        rec["sigma_t1"] = float(sched.sigma(1 - 1e-3))
        out[name] = rec
        samples_fig[name] = np.asarray(to_images(ad.x[:64]))
        print(
            f"digits {name:8s} KE {rec['kinetic_energy']:.3f}  NLL {rec['nll_bits_per_dim']:.3f} bits/dim  FD@20 "
            f"{rec.get('fd_euler_20', float('nan')):.2f}  FD adaptive {rec['fd_adaptive']:.2f} "
            f"(NFE {rec['nfe_adaptive']})",
            flush=True,
        )
    out["_ko_b"] = ko.b
    return out, samples_fig


# ---- part 3: PFGM++ ----
def pfgm_task(name: str, cfg: PathsConfig, key, metric):
    """(data_fn, dim, sigma_data, sigma_max, score(samples) -> float, to_images or None)."""
    if name == "2d":
        tgt = jf.data.get_sampler("moons")
        ref = np.asarray(tgt(jax.random.fold_in(key, 1), 2000))

        def score(x):
            return jf.metrics.wasserstein(np.asarray(x)[:2000], ref)

        return (lambda k: {"x1": tgt(k, cfg.batch_size)}), 2, 1.0, 40.0, score
    train = metric.train.images.reshape(-1, 64)

    def score(x):
        return metric.frechet(jnp.clip(x, -1, 1).reshape(-1, 8, 8, 1))

    return (
        (lambda k: {"x1": train[jax.random.randint(k, (cfg.batch_size,), 0, train.shape[0])]}),
        64,
        0.5,
        80.0,
        score,
    )


def pfgmpp(cfg: PathsConfig, key, metric) -> dict:
    out = {}
    for ti, task in enumerate(("2d", "digits")):
        data_fn, dim, sd, smax, score = pfgm_task(task, cfg, jax.random.fold_in(key, ti), metric)
        model = MLPVelocity(
            out_dim=dim, hidden=(128,) * 3 if dim == 2 else (cfg.hidden,) * 3, time_embedding="sinusoidal"
        )
        den = jf.losses.edm_denoiser(velocity_fn(model), sigma_data=sd)
        steps = cfg.pf_train_steps_2d if dim == 2 else cfg.pf_train_steps_digits
        out[task] = {}
        for di, D in enumerate(cfg.ds):
            loss = jf.losses.pfgmpp_loss(den, D, sigma_data=sd)
            opt = optax.adam(1e-3 if dim == 2 else 2e-4)
            state = TrainState.create(
                jax.random.fold_in(key, 80 + di), init_mlp(jax.random.fold_in(key, 50 + di), model, dim), opt
            )
            step = make_train_step(loss, opt, data_fn=data_fn)
            state, _ = fit(state, step, steps, steps_per_call=500, progress=False)
            params = state.ema_params
            x_prior = jf.sampling.pfgmpp_prior(jax.random.fold_in(key, 999), cfg.eval_samples, (dim,), smax, D)
            sig = jf.sampling.karras_sigmas(cfg.pf_steps, 0.002, smax)
            rec = {"base": score(jf.sampling.sample_pfgmpp(den, x_prior, sig, params=params))}
            rec["base_euler"] = score(jf.sampling.sample_pfgmpp(den, x_prior, sig, params=params, solver="euler"))
            for a in cfg.step_noise:
                x = jf.sampling.sample_pfgmpp(
                    den, x_prior, sig, params=params, solver="euler", step_noise=a, key=jax.random.fold_in(key, 7)
                )
                rec[f"noise_{a:g}"] = score(x)
            for bits in cfg.quant_bits:
                rec[f"quant_{bits}"] = score(
                    jf.sampling.sample_pfgmpp(den, x_prior, sig, params=jf.nn.quantize(params, bits))
                )
            for n in cfg.pf_steps_few:
                rec[f"steps_{n}"] = score(
                    jf.sampling.sample_pfgmpp(den, x_prior, jf.sampling.karras_sigmas(n, 0.002, smax), params=params)
                )
            label = "∞" if D is None else f"{D:g}"
            out[task][label] = rec
            print(f"PFGM++ {task:6s} D={label:5s} " + "  ".join(f"{k} {v:.3f}" for k, v in rec.items()), flush=True)
    return out


def d_rank(label: str) -> float:
    return np.inf if label == "∞" else float(label)


def pfgmpp_measurements(per_seed: list[dict], cfg: PathsConfig) -> dict:
    m = {}
    a, bits = max(cfg.step_noise), min(cfg.quant_bits)
    for task in per_seed[0]:
        trend = [D for D in per_seed[0][task] if d_rank(D) >= 16]
        for name, probe in ((f"step_noise_{a:g}", f"noise_{a:g}"), (f"quant_{bits}", f"quant_{bits}")):
            rhos = []
            for pf in per_seed:
                recs = pf[task]
                base = "base_euler" if probe.startswith("noise") else "base"
                deg = [recs[D][probe] - recs[D][base] for D in trend]
                rhos.append(
                    float(stats.spearmanr([d_rank(D) for D in trend], deg).statistic) if len(trend) > 2 else 0.0
                )
            m[f"pfgmpp/{task}/degradation_rank_corr/{name}"] = rhos
        for D in per_seed[0][task]:
            m[f"pfgmpp/{task}/base/D={D}"] = [pf[task][D]["base"] for pf in per_seed]
    return m


def run(cfg: PathsConfig, key: jax.Array) -> Output:
    metric = jf.metrics.DigitsMetric()
    lam = separation_curves(cfg, jax.random.fold_in(key, 1))
    ko = {name: ko_summary(v) for name, v in lam.items()}
    bounds = bound_rows(cfg, jax.random.fold_in(key, 2))
    print("separation and bound done", flush=True)
    digits, samples = digits_paths(cfg, jax.random.fold_in(key, 3), metric, lam["digits (n=1797, d=64)"])
    k_sp = jax.random.fold_in(key, 5)
    sparse = [sparse_paths(cfg, jax.random.fold_in(k_sp, s)) for s in range(cfg.seeds)]
    k_pf = jax.random.fold_in(key, 4)
    pf_seeds = [pfgmpp(cfg, jax.random.fold_in(k_pf, 1000 + s) if s else k_pf, metric) for s in range(cfg.seeds)]
    pf = pf_seeds[0]
    results = {
        "snr": SNR.tolist(),
        "lambda": {k: v.tolist() for k, v in lam.items()},
        "ko": {k: {kk: vv for kk, vv in v.items() if kk != "scheduler"} for k, v in ko.items()},
        "bound": bounds,
        "digits": digits,
        "sparse": sparse,
        "digits_metric": {"accuracy": metric.accuracy, "floor": metric.floor(cfg.eval_samples)},
        "pfgmpp": pf,
        "pfgmpp_per_seed": pf_seeds,
    }
    figs = {
        "separation": plot_separation(lam, ko, bounds),
        "pfgmpp": plot_pfgmpp(pf, cfg),
        "digits": plot_digits(samples),
    }
    return Output(
        path_measurements(results) | pfgmpp_measurements(pf_seeds, cfg), make_table(results, cfg), figs, results
    )


def path_measurements(res: dict) -> dict:
    """Parts 1 and 2 (one run): the theorem's bound, the n/d limit, the Gaussian λ, and the digits paths."""
    b = res["bound"]
    order = sorted(b, key=lambda r: r["n_over_d"])
    small, large = order[: max(1, len(order) // 4)], order[-max(1, len(order) // 4) :]
    s = np.asarray(res["snr"])
    mask = s <= 3
    g = np.asarray(res["lambda"]["gaussian (n=20000, d=2)"])
    m = {
        "bound/max_integral_over_bound": max(r["integral"] / r["bound"] for r in b),
        "limit/integral_small_minus_large_nd": max(r["integral"] for r in small) - min(r["integral"] for r in large),
        "limit/ke_ratio_small_minus_large_nd": max(r["ke_ratio"] for r in small) - min(r["ke_ratio"] for r in large),
        "gaussian_lambda_max_error": float(np.max(np.abs(g[mask] - s[mask] ** 2 / (1 + s[mask] ** 2)))),
    }
    for p in ("Cond-OT", "KO"):
        m[f"sparse/ke/{p}"] = [r[p]["kinetic_energy"] for r in res["sparse"]]
        for k in res["sparse"][0][p]:
            if k.startswith("w2"):
                m[f"sparse/{k}/{p}"] = [r[p][k] for r in res["sparse"]]
    m["sparse/max_alpha_gap"] = [r["max_alpha_gap"] for r in res["sparse"]]
    dg = res["digits"]
    for p in PATHS:
        m[f"digits/ke/{p}"] = dg[p]["kinetic_energy"]
        m[f"digits/nll/{p}"] = dg[p]["nll_bits_per_dim"]
        for k, v in dg[p].items():
            if k.startswith("fd_euler_"):
                m[f"digits/fd@{k[len('fd_euler_') :]}/{p}"] = v
    return m


# ---- reporting ----
def make_table(res: dict, cfg: PathsConfig) -> str:
    parts = ["# Probability paths: kinetic-optimal Gaussian paths and PFGM++\n"]
    rows = [
        [k, f"{v['b']:.3f}", f"{v['max_alpha_gap']:.3f}", f"{v['ke_ko']:.3f}", f"{v['ke_cond_ot']:.3f}"]
        for k, v in res["ko"].items()
    ]
    parts.append(
        "## KO path of each data set (from its λ)\n\nb = 2 is Cond-OT; KE per dimension from λ (clipped below at "
        "s²/(1 + s²)). The λ form weights λ's estimation error by β² ~ 1/σ² near t = 1, so these energies are "
        "rougher than the learned flows' below. Gaussian data is the degenerate case γ ≡ 0: b → 0 and any angle "
        "schedule with r ≡ 1 has zero energy, so its KO row only shows the construction's limit.\n\n"
    )
    parts.append(markdown_table(["data", "b", "max_t |α_KO − t|", "KE KO", "KE Cond-OT"], rows))
    rows = [
        [
            r["n"],
            r["d"],
            f"{r['n_over_d']:.4f}",
            f"{r['integral']:.4f}",
            f"{r['bound']:.3f}",
            "yes" if r["integral"] <= r["bound"] else "no",
            f"{r['b']:.3f}",
            f"{r['max_alpha_gap']:.3f}",
            f"{r['ke_ratio']:.4f}",
        ]
        for r in res["bound"]
    ]
    parts.append("\n## ∫|1 − λ| against 3n/√d (n Gaussian points in d dimensions, normalised)\n\n")
    parts.append(
        markdown_table(
            ["n", "d", "n/d", "∫|1 − λ| ds", "3n/√d", "bound holds", "KO b", "max |α_KO − t|", "KE Cond-OT / KE KO"],
            rows,
        )
    )
    dg = res["digits"]
    floor = res["digits_metric"]["floor"]
    header = ["path", "KE", "NLL bits/dim", *[f"FD@{n}" for n in cfg.euler_steps], "FD adaptive", "NFE", "train s"]
    rows = [
        [
            p,
            f"{dg[p]['kinetic_energy']:.3f}",
            f"{dg[p]['nll_bits_per_dim']:.3f}",
            *[f"{dg[p][f'fd_euler_{n}']:.2f}" for n in cfg.euler_steps],
            f"{dg[p]['fd_adaptive']:.2f}",
            f"{dg[p]['nfe_adaptive']}",
            f"{dg[p]['train_seconds']:.0f}",
        ]
        for p in PATHS
    ]
    parts.append(
        f"\n## Digits under VP, Cond-OT and KO ({cfg.steps} steps each, MLP 3×{cfg.hidden})\n\n"
        f"FD: `DigitsMetric` (classifier held-out accuracy {res['digits_metric']['accuracy']:.3f}), "
        f"{cfg.eval_samples} samples against the whole held-out split; real-vs-real floor at the same size "
        f"{floor:.2f}. NLL on {cfg.nll_samples} held-out images. Paper (CIFAR-10) NLL / KE / FID@20/50/100/adaptive / "
        "NFE: " + "; ".join(f"{k} {v}" for k, v in PAPER_TABLE.items()) + "\n\n"
    )
    parts.append(markdown_table(header, rows))
    parts.append(
        "\nσ at t = 1 − 10⁻³ (the likelihood's end): "
        + ", ".join(f"{p} {dg[p].get('sigma_t1', float('nan')):.2g}" for p in PATHS)
        + (". Dequantised digits (NLL bounds the discrete digits' bits/dim).\n" if cfg.dequantize else ".\n")
    )
    sp = res["sparse"]
    steps = [k for k in sp[0]["KO"] if k.startswith("w2@") or k.startswith("snap@")]
    rows = [
        [p, mean_std([r[p]["kinetic_energy"] for r in sp])]
        + [mean_std([r[p][k] for r in sp]) for k in steps]
        + [mean_std([r[p]["w2_adaptive"] for r in sp])]
        for p in ("Cond-OT", "KO")
    ]
    parts.append(
        f"\n## Few points in high dimension ({cfg.sparse_points} Gaussian points, d = {cfg.sparse_dim}; exact fields)"
        f"\n\nKO radius b {mean_std([r['b'] for r in sp])}, "
        f"largest α gap {mean_std([r['max_alpha_gap'] for r in sp])}; "
        f"mean ± sd over {len(sp)} point sets; W2 per √d between {cfg.sparse_samples} samples and the points.\n\n"
    )
    labels = [f"W2 @ {k[3:]} Euler" if k.startswith("w2") else f"to nearest point @ {k[5:]} Euler" for k in steps]
    parts.append(markdown_table(["path", "KE", *labels, "W2 Dopri5"], rows))
    for task, recs in res["pfgmpp"].items():
        metric = "W2" if task == "2d" else "FD"
        keys = list(next(iter(recs.values())))
        rows = [[D, *[f"{r[k]:.3f}" for k in keys]] for D, r in recs.items()]
        parts.append(
            f"\n## PFGM++ on {'N → moons (W2)' if task == '2d' else 'digits (FD, floor ' + f'{floor:.2f})'}\n\n"
            f"{metric} at {cfg.pf_steps} Heun steps (base), Euler (base_euler), Euler with step noise α (noise_α), "
            "quantised weights (quant_bits), fewer Heun steps (steps_n).\n\n"
        )
        parts.append(markdown_table(["D", *keys], rows))
    return "".join(parts)


SHAUL = "Shaul et al. 2023, arXiv:2306.06626"
XU = "Xu et al. 2023, arXiv:2302.04265"


def _claims():
    out = [
        Claim(
            "separation_bound",
            "∫|1 − λ| ds ≤ 3n/√d for n normalised Gaussian points in d dimensions, on every (n, d) of the grid",
            "bound/max_integral_over_bound",
            "<",
            1.0,
            paper=SHAUL + ", Theorem 4.1",
            paper_value="3n/√d",
        ),
        Claim(
            "lambda_to_one_as_n_over_d_vanishes",
            "λ → 1 as n/d → 0: the smallest quarter of n/d has a smaller ∫|1 − λ| than the largest quarter",
            "limit/integral_small_minus_large_nd",
            "<",
            0.0,
            paper=SHAUL,
            paper_value="Cond-OT is kinetic-optimal in the limit",
        ),
        Claim(
            "ko_to_cond_ot_as_n_over_d_vanishes",
            "Cond-OT → KO as n/d → 0: the KE ratio Cond-OT / KO of the smallest quarter of n/d is below the largest's",
            "limit/ke_ratio_small_minus_large_nd",
            "<",
            0.0,
            paper=SHAUL,
        ),
        Claim(
            "gaussian_lambda_closed_form",
            "Gaussian data: the estimated λ(s) matches s²/(1 + s²) within 0.03 for s ≤ 3",
            "gaussian_lambda_max_error",
            "<",
            0.03,
            paper=SHAUL,
            paper_value="exact",
        ),
        Claim(
            "digits_vp_highest_ke",
            "digits: Cond-OT's learned flow has a lower kinetic energy than VP's",
            Diff("digits/ke/VP", "digits/ke/Cond-OT"),
            ">",
            0.0,
            paper=SHAUL + ", Table 1",
            paper_value="CIFAR-10 KE: VP 2.30, Cond-OT 1.09, KO 1.08",
        ),
        Claim(
            "digits_ko_not_above_cond_ot_ke",
            "digits: KO's kinetic energy is no higher than Cond-OT's (ratio below 1.02)",
            Ratio("digits/ke/KO", "digits/ke/Cond-OT"),
            "<",
            1.02,
            paper=SHAUL + ", Table 1",
            paper_value="CIFAR-10 KE: Cond-OT 1.09, KO 1.08",
        ),
        Claim(
            "digits_vp_worst_fd_at_20",
            "digits: at 20 Euler steps Cond-OT's samples beat VP's (Fréchet distance)",
            Diff("digits/fd@20/VP", "digits/fd@20/Cond-OT"),
            ">",
            0.0,
            paper=SHAUL + ", Table 1",
            paper_value="CIFAR-10 FID@20: VP 38.5, Cond-OT 9.9, KO 9.1",
        ),
        Claim(
            "digits_ko_beats_vp_fd_at_20",
            "digits: at 20 Euler steps KO's samples beat VP's (Fréchet distance)",
            Diff("digits/fd@20/VP", "digits/fd@20/KO"),
            ">",
            0.0,
            paper=SHAUL + ", Table 1",
            paper_value="CIFAR-10 FID@20: VP 38.5, KO 9.1",
        ),
        Claim(
            "digits_nll_vp_above_cond_ot",
            "digits: VP's negative log-likelihood is above Cond-OT's (bits/dim)",
            Diff("digits/nll/VP", "digits/nll/Cond-OT"),
            ">",
            0.0,
            paper=SHAUL + ", Table 1",
            paper_value="CIFAR-10 NLL: VP 3.11, Cond-OT 2.97, KO 2.97",
            note="dequantised digits (the discrete digits' bits/dim bound); without dequantisation the VP column was "
            "23.7 bits/dim against Cond-OT's −0.96 (a singular density, docs/paths.md)",
        ),
        Claim(
            "sparse_ko_differs",
            "few points in high dimension (8 Gaussian points, d = 1024): the KO path differs from Cond-OT (largest "
            "gap of α over t above 0.05), so the comparison below can separate them",
            "sparse/max_alpha_gap",
            ">",
            0.05,
            paper=SHAUL,
        ),
        Claim(
            "sparse_ko_lower_ke",
            "there, KO's exact flow has lower kinetic energy than Cond-OT's (paired per point set)",
            Diff("sparse/ke/KO", "sparse/ke/Cond-OT"),
            "<",
            0.0,
            paper=SHAUL + ", Table 1",
            paper_value="CIFAR-10 KE: KO 1.08, Cond-OT 1.09",
        ),
        Claim(
            "sparse_ko_better_at_4_steps",
            "there, 4 Euler steps of KO's exact flow land closer to the data than 4 of Cond-OT's (W2 per √d, paired)",
            Diff("sparse/w2@4/KO", "sparse/w2@4/Cond-OT"),
            "<",
            0.0,
            paper=SHAUL + ", Table 1",
            paper_value="CIFAR-10 FID@20: KO 9.1, Cond-OT 9.9",
        ),
    ]
    a, bits = max(PathsConfig.step_noise), min(PathsConfig.quant_bits)
    for task in ("2d", "digits"):
        out += [
            Claim(
                f"pfgmpp_step_noise_trend[{task}]",
                f"PFGM++ {task}: degradation under step noise α = {a:g} grows with D (Spearman correlation over "
                "D ∈ {16, 64, 256, 2048, ∞} above 0)",
                f"pfgmpp/{task}/degradation_rank_corr/step_noise_{a:g}",
                ">",
                0.0,
                paper=XU,
                paper_value="robustness grows as D falls",
            ),
            Claim(
                f"pfgmpp_quantisation_trend[{task}]",
                f"PFGM++ {task}: degradation under {bits}-bit weights grows with D (Spearman correlation above 0)",
                f"pfgmpp/{task}/degradation_rank_corr/quant_{bits}",
                ">",
                0.0,
                paper=XU,
                paper_value="robustness grows as D falls",
            ),
            Claim(
                f"pfgmpp_d2048_matches_edm[{task}]",
                f"PFGM++ {task}: D = 2048 samples at least as well as D = ∞ (EDM), within 2%",
                Ratio(f"pfgmpp/{task}/base/D=2048", f"pfgmpp/{task}/base/D=∞"),
                "<",
                1.02,
                paper=XU,
                paper_value="CIFAR-10 FID: D=2048 1.91, D=∞ 1.98",
            ),
        ]
    return tuple(out)


CLAIMS = _claims()


def plot_separation(lam, ko, bounds):
    fig = figure(figsize=(13, 3.8))
    a1, a2, a3 = fig.subplots(1, 3)
    for name, v in lam.items():
        a1.plot(SNR[1:], v[1:], label=name)
    a1.plot(SNR[1:], SNR[1:] ** 2 / (1 + SNR[1:] ** 2), "k:", label="s²/(1+s²)")
    a1.set_xscale("log"), a1.set_xlabel("s = α/σ"), a1.set_ylabel("λ(s)"), a1.legend(fontsize=6)
    t = jnp.linspace(0, 1, 201)
    a2.plot(t, t, "k:", label="Cond-OT α = t")
    for name, v in ko.items():
        a2.plot(t, v["scheduler"].alpha(t), label=f"KO {name.split(' ')[0]} (b={v['b']:.2f})")
    a2.set_xlabel("t"), a2.set_ylabel("α_t"), a2.legend(fontsize=6)
    for d in sorted({r["d"] for r in bounds}):
        rs = [r for r in bounds if r["d"] == d]
        a3.loglog([r["n"] for r in rs], [r["integral"] for r in rs], "o-", label=f"∫|1−λ|, d={d}")
        a3.loglog([r["n"] for r in rs], [r["bound"] for r in rs], ":", color=a3.lines[-1].get_color())
    a3.set_xlabel("n points"), a3.set_title("dotted: 3n/√d", fontsize=8), a3.legend(fontsize=6)
    fig.tight_layout()
    return fig


def plot_pfgmpp(pf, cfg):
    fig = figure(figsize=(10, 3.6))
    axes = fig.subplots(1, len(pf), squeeze=False)[0]
    for ax, (task, recs) in zip(axes, pf.items(), strict=True):
        ds = list(recs)
        x = np.arange(len(ds))
        ax.plot(x, [recs[D]["base"] for D in ds], "o-", label="Heun")
        for a in cfg.step_noise:
            ax.plot(x, [recs[D][f"noise_{a:g}"] for D in ds], "s--", label=f"Euler + noise α={a:g}")
        b = min(cfg.quant_bits)
        ax.plot(x, [recs[D][f"quant_{b}"] for D in ds], "^:", label=f"{b}-bit weights")
        ax.set_xticks(x, ds), ax.set_xlabel("D"), ax.set_yscale("log")
        ax.set_ylabel("W2" if task == "2d" else "FD"), ax.set_title(f"PFGM++ {task}", fontsize=9), ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def plot_digits(samples):
    fig = figure(figsize=(3.2 * len(samples), 3.4))
    for ax, (name, imgs) in zip(fig.subplots(1, len(samples)), samples.items(), strict=True):
        grid = np.clip(imgs[:64, :, :, 0], -1, 1).reshape(8, 8, 8, 8).transpose(0, 2, 1, 3).reshape(64, 64)
        ax.imshow(grid, cmap="gray_r"), ax.set_title(f"{name} (Dopri5)", fontsize=9), ax.axis("off")
    fig.tight_layout()
    return fig


STUDY = Study(
    "paths",
    config=PathsConfig,
    run=run,
    claims=CLAIMS,
    quick={
        "separation_samples": 500,
        "bound_dims": (16, 256, 4096),
        "bound_points": (2, 32),
        "steps": 800,
        "euler_steps": (20,),
        "nll_samples": 64,
        "ds": (16.0, 256.0, 2048.0, None),
        "pf_steps_few": (8,),
        "step_noise": (0.4,),
        "quant_bits": (5,),
        "pf_train_steps_2d": 800,
        "pf_train_steps_digits": 800,
        "seeds": 1,
    },
    smoke={
        "separation_samples": 200,
        "bound_dims": (16, 256),
        "bound_points": (2, 8),
        "steps": 50,
        "hidden": 32,
        "nll_samples": 8,
        "ds": (16.0, None),
        "pf_steps": 6,
        "pf_steps_few": (4,),
        "pf_train_steps_2d": 50,
        "pf_train_steps_digits": 50,
        "sparse_dim": 64,
        "sparse_samples": 64,
        "sparse_steps": (2, 4),
    },
    validate=validate,
    description="Kinetic-optimal Gaussian paths and PFGM++: separation, three paths on digits, robustness in D.",
)
CONFIG = PathsConfig
main = STUDY.main

if __name__ == "__main__":
    main()
