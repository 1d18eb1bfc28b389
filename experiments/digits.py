"""Flow matching and diffusion on the 8×8 digits of scikit-learn.

Models (one small UNet each, same optimiser and steps):
  fm       unconditional flow matching (Cond-OT path), sampled with Heun;
  fm_cond  class-conditional flow matching with label dropout 0.1, sampled with classifier-free guidance
           v_w = v(∅) + w (v(c) − v(∅)) over a grid of w;
  vp       VP-SDE diffusion with ε-prediction (denoising_loss), sampled by the reverse-time SDE (ε(t) = β/2,
           Euler–Maruyama) and by the probability-flow ODE (Heun), both stopped at t = 1 − δ.
Quality: `jaxflow.metrics.DigitsMetric()` (the shipped CNN classifier with ≥ 97 % held-out accuracy and its split,
shared by every digits study; the models train on its training split): the Fréchet distance (FD) of `n_eval` ≥ 1,000
generated digits to the WHOLE held-out split, next to the real-vs-real floor (as many real training digits against
the same split). Conditional samples are also scored by the classifier's accuracy on their requested labels. Seeds
retrain every model (the metric's classifier ships with jaxflow); each seed's number is its mean over `eval_draws`
sample draws, and the claims are judged over seeds (the table and figures show seed 0).

Run `python -m experiments run digits` (or `--quick`); writes results/digits/ (table.md, metrics.json, samples.png,
guidance.png, loss.png).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

import jaxflow as jf
from experiments.claims import Claim, Diff
from experiments.common import StudyConfig, figure, markdown_table, mean_std, positive_float, positive_int, require
from experiments.pipeline import Output, Study, unit
from jaxflow.train import TrainState, fit, make_train_step

MODELS = ("fm", "fm_cond", "vp")


@dataclass(frozen=True)
class DigitsConfig(StudyConfig):
    models: tuple[str, ...] = MODELS
    channels: int = 32
    steps: int = 1500
    batch_size: int = 128
    learning_rate: float = 1e-3
    ema_decay: float = 0.998
    """short runs: 0.998^1500 ≈ 5% of the weight stays on the initialisation."""
    chunk: int = 5
    label_dropout: float = 0.1
    guidance_scales: tuple[float, ...] = (0.0, 1.0, 1.5, 2.0, 3.0, 5.0)
    ode_steps: int = 50
    sde_steps: int = 250
    delta: float = 1e-3
    eval_draws: int = 3
    n_eval: int = 1000
    """generated digits per Fréchet distance (>= 1000: the metric refuses fewer)."""
    seeds: int = 3
    """training seeds (every model is retrained per seed)."""
    vp_steps: tuple[int, ...] = (6000, 24000)
    """the VP model trains on past `steps` to each of these budgets (one run, checkpoints along it); at each, its
    reverse SDE and adaptive PF-ODE are scored again: does the ODE's gap shrink as the learned score improves?"""
    out_dir: str = "results/digits"


def validate(cfg: DigitsConfig) -> None:
    for m in cfg.models:
        require(m in MODELS, "models", m, f"unknown model; choose from {list(MODELS)}")
    positive_int(cfg, "channels", "steps", "batch_size", "chunk", "ode_steps", "sde_steps")
    positive_int(cfg, "eval_draws")
    require(all(n > cfg.steps for n in cfg.vp_steps), "vp_steps", cfg.vp_steps, "each budget must exceed `steps`")
    positive_float(cfg, "learning_rate", "delta")
    require(0 <= cfg.ema_decay < 1, "ema_decay", cfg.ema_decay, "must lie in [0, 1)")
    require(0 <= cfg.label_dropout < 1, "label_dropout", cfg.label_dropout, "must lie in [0, 1)")
    require(cfg.n_eval >= 1000, "n_eval", cfg.n_eval, "DigitsMetric needs at least 1000 samples per distance")
    require(all(w >= 0 for w in cfg.guidance_scales), "guidance_scales", cfg.guidance_scales, "must be ≥ 0")


def train(loss_fn, params, cfg, key, data, desc, stages=()):
    """The library's training loop: ArraySource batches (epoch permutations), an unrolled step (convolutions inside
    XLA's CPU while loops run ~20× slower, see make_train_step), `fit` with its non-finite guard. Returns the state
    after `cfg.steps` and, for each budget in `stages`, the state after training on to it (one continued run)."""
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(cfg.learning_rate))
    state = TrainState.create(key, params, optimizer)
    run = make_train_step(loss_fn, optimizer, ema_decay=cfg.ema_decay, unroll=True)
    source = jf.train.ArraySource(
        jax.random.fold_in(key, 1), {"x1": np.asarray(data.images), "labels": np.asarray(data.labels)}, cfg.batch_size
    )
    losses, later, first = [], {}, None
    for budget in (cfg.steps, *stages):  # fit counts to a total step: each call trains on from the last
        state, records = fit(
            state, run, budget, steps_per_call=cfg.chunk, batches_fn=source, progress=cfg.progress, desc=desc
        )
        losses += [r["loss"] for r in records]
        if first is None:
            first = state
        else:
            later[budget] = state
    return (first, losses, later) if stages else (first, losses)


def ode_sampler(v, shape, n, steps, null_label=None):
    """Heun sampling from N(0, I): jitted (params, key, cond, w) -> [n, *shape]. With `null_label` the model is
    guided with scale w (traced, so every w shares one compiled program); without it cond and w are ignored."""

    def draw(params, key, cond, w):
        field = v if null_label is None else jf.sampling.guided(v, w, null_label)
        x0 = jax.random.normal(key, (n, *shape))
        return jf.sample(field, x0, params=params, cond=cond, solver="heun", steps=steps).x

    return jax.jit(draw)


def vp_samplers(v, path, shape, n, cfg):
    """Reverse-time SDE (ε(t) = β/2, Euler–Maruyama) and probability-flow ODE (Heun) for an ε-prediction model."""

    def fields(params):
        def score(t, x):
            return path.convert(v(params, t, x, None), t, x, source="epsilon", target="score")

        def drift(t, x):
            return path.convert(v(params, t, x, None), t, x, source="epsilon", target="velocity")

        return drift, score

    t1 = 1.0 - cfg.delta
    eps = jf.sampling.diffusion_epsilon(path.scheduler)

    def sde(params, key):
        drift, score = fields(params)
        x0 = jax.random.normal(key, (n, *shape))
        return jf.sampling.sample_sde(
            drift, score, x0, jax.random.fold_in(key, 1), epsilon=eps, t1=t1, steps=cfg.sde_steps
        ).x

    def ode(params, key, solver="heun", steps=cfg.ode_steps):
        drift, _ = fields(params)
        x0 = jax.random.normal(key, (n, *shape))
        out = jf.sample(drift, x0, solver=solver, t1=t1, steps=steps, rtol=1e-5, atol=1e-5)
        return out.x, out.nfe

    return jax.jit(sde), jax.jit(ode, static_argnames=("solver", "steps"))


def run(cfg: DigitsConfig, key: jax.Array) -> Output:
    metric = jf.metrics.DigitsMetric()  # the shipped classifier and split, shared by every digits study
    n_half = cfg.n_eval  # samples per draw (the name is kept from the half-split protocol)
    clf_acc = metric.accuracy
    fd_real = metric.floor(n_half)
    # the other end of the scale: uniform noise images in the data range
    noise_images = jax.random.uniform(jax.random.fold_in(key, 3), (n_half, 8, 8, 1), minval=-1.0, maxval=1.0)
    fd_noise = metric.frechet(noise_images)

    def fd(samples):
        return metric.frechet(samples)

    def predict(x):
        return jnp.argmax(metric._logits(x), -1)

    per_seed = [
        run_seed(cfg, jax.random.fold_in(key, 10_000 + s) if s else key, metric, fd, predict, n_half, f"seed {s}")
        for s in range(cfg.seeds)
    ]
    results, losses, grids = per_seed[0]
    measurements = _measurements([r for r, _, _ in per_seed])
    best_w = None
    if "fm_cond" in results:
        per = results["fm_cond"]["per_scale"]
        best_w = min(per, key=lambda w: np.mean(per[w]["fd"]))
        results["fm_cond"]["best_scale"] = best_w
    result = dict(
        classifier_accuracy=clf_acc,
        fd_real_halves=fd_real,
        fd_uniform_noise=fd_noise,
        n_eval=int(n_half),
        steps=cfg.steps,
        results=results,
        per_seed=[r for r, _, _ in per_seed],
        losses={k: v_[:: max(1, len(v_) // 200)] for k, v_ in losses.items()},
    )
    return Output(measurements, _table(cfg, result), _plots(result, grids, losses), result)


def _measurements(per_seed: list[dict]) -> dict:
    m = {}
    for r in per_seed:
        if "fm" in r:
            m.setdefault("fd/fm", []).append(float(np.mean(r["fm"]["fd"])))
        if "fm_cond" in r:
            for w, p in r["fm_cond"]["per_scale"].items():
                m.setdefault(f"fd/fm_cond/w={w}", []).append(float(np.mean(p["fd"])))
                m.setdefault(f"accuracy/fm_cond/w={w}", []).append(float(np.mean(p["accuracy"])))
        if "vp" in r:
            for k in ("fd_sde", "fd_ode", "fd_ode_fine", "fd_ode_adaptive"):
                m.setdefault(f"{k}/vp", []).append(float(np.mean(r["vp"][k])))
            for budget, f in r["vp"].get("longer", {}).items():
                for k in ("fd_sde", "fd_ode_adaptive"):
                    m.setdefault(f"{k}/vp@{budget}", []).append(float(np.mean(f[k])))
    return m


def run_seed(cfg: DigitsConfig, key: jax.Array, metric, fd, predict, n_half: int, tag: str = "seed 0"):
    """Train and sample every model of one seed: (results, losses, sample grids). Seed 0 uses the run's key as the
    study always has; seed s > 0 folds in 10,000 + s."""
    unet = jf.nn.UNet(channels=cfg.channels, num_classes=10)
    v = jf.nn.velocity_fn(unet)
    shape = (8, 8, 1)
    train_set = metric.train
    params0 = jf.nn.init_unet(jax.random.fold_in(key, 2), unet, shape, jnp.zeros((1,), jnp.int32))
    vp_path = jf.paths.AffinePath(jf.paths.VPSDEScheduler())
    results, losses, grids = {}, {}, {}
    label_grid = jnp.repeat(jnp.arange(10), n_half // 10 + 1)[:n_half]

    def run_model(name):
        """Train one model and score its samples: (its results, its loss curve, its sample grids)."""
        results, losses, grids = {}, {}, {}
        k_model = jax.random.fold_in(key, 100 + MODELS.index(name))
        if name == "fm":
            loss = jf.losses.cfm_loss(lambda p, t, x, c: v(p, t, x, None))
        elif name == "fm_cond":
            loss = jf.losses.cfm_loss(v, conditional=True, label_dropout=cfg.label_dropout, null_label=10)
        else:
            loss = jf.losses.denoising_loss(lambda p, t, x, c: v(p, t, x, None), vp_path, "epsilon")
        if name == "vp":
            state, losses[name], later = train(loss, params0, cfg, k_model, train_set, name, cfg.vp_steps)
        else:
            state, losses[name] = train(loss, params0, cfg, k_model, train_set, name)
        params = state.ema_params
        draws = [jax.random.fold_in(k_model, 1000 + i) for i in range(cfg.eval_draws)]

        if name == "fm":
            sampler = ode_sampler(v, shape, n_half, cfg.ode_steps)
            xs = [sampler(params, k, None, 0.0) for k in draws]
            results[name] = dict(fd=[fd(x) for x in xs], nfe=2 * cfg.ode_steps)
            grids[name] = np.asarray(xs[0][:40])
        elif name == "fm_cond":
            per_w = {}
            sampler = ode_sampler(v, shape, n_half, cfg.ode_steps, null_label=10)
            for w in cfg.guidance_scales:
                xs = [sampler(params, k, label_grid, jnp.float32(w)) for k in draws]
                per_w[f"{w:g}"] = dict(
                    fd=[fd(x) for x in xs],
                    accuracy=[float(jnp.mean(predict(x) == label_grid)) for x in xs],
                )
                grids[f"fm_cond w={w:g}"] = np.asarray(xs[0])
            results[name] = dict(per_scale=per_w, nfe=4 * cfg.ode_steps)
        else:
            sde, ode = vp_samplers(v, vp_path, shape, n_half, cfg)
            xs_sde, xs_ode = [sde(params, k) for k in draws], [ode(params, k)[0] for k in draws]
            # is the PF-ODE's gap a discretisation error? the same model with 4× the Heun steps and adaptive Tsit5
            fine = [ode(params, k, steps=4 * cfg.ode_steps)[0] for k in draws]
            adaptive = [ode(params, k, solver="tsit5", steps=None) for k in draws]
            results[name] = dict(
                fd_sde=[fd(x) for x in xs_sde],
                fd_ode=[fd(x) for x in xs_ode],
                fd_ode_fine=[fd(x) for x in fine],
                fd_ode_adaptive=[fd(x) for x, _ in adaptive],
                nfe_ode_adaptive=[int(n) for _, n in adaptive],
                nfe_sde=cfg.sde_steps,
                nfe_ode=2 * cfg.ode_steps,
                longer={},
            )
            for budget, st in later.items():  # the same run trained on: SDE and converged ODE again
                results[name]["longer"][str(budget)] = dict(
                    fd_sde=[fd(sde(st.ema_params, k)) for k in draws],
                    fd_ode_adaptive=[fd(ode(st.ema_params, k, solver="tsit5", steps=None)[0]) for k in draws],
                )
            grids["vp (SDE)"] = np.asarray(xs_sde[0][:40])
        return results[name], losses[name], grids

    for name in tqdm(cfg.models, desc="models", disable=not cfg.progress):
        # one model of one seed is a resumable unit: a killed run starts again at the first unfinished one
        results[name], losses[name], pics = unit(f"{tag}/{name}", lambda name=name: run_model(name))
        grids.update(pics)
    return results, losses, grids


HO = "Ho & Salimans 2022 (classifier-free guidance)"
SONG = "Song et al. 2021 (score SDEs: the probability-flow ODE shares the SDE's marginals)"
CLAIMS = (
    Claim(
        "guidance_raises_accuracy[w=1]",
        "classifier-free guidance raises the share of samples of the requested class: accuracy at w = 1 above w = 0",
        Diff("accuracy/fm_cond/w=1", "accuracy/fm_cond/w=0"),
        ">",
        0.0,
        paper=HO,
    ),
    Claim(
        "guidance_raises_accuracy[w=3]",
        "stronger guidance raises it further: accuracy at w = 3 above w = 1",
        Diff("accuracy/fm_cond/w=3", "accuracy/fm_cond/w=1"),
        ">",
        0.0,
        paper=HO,
    ),
    Claim(
        "moderate_guidance_improves_fd",
        "moderate guidance (w = 1) lowers the Fréchet distance below the unguided conditional model's (w = 0)",
        Diff("fd/fm_cond/w=1", "fd/fm_cond/w=0"),
        "<",
        0.0,
        paper=HO,
        paper_value="FID lowest at a small w > 0",
    ),
    Claim(
        "strong_guidance_costs_diversity",
        "strong guidance (w = 5) raises the Fréchet distance above moderate guidance's (w = 1): fidelity for diversity",
        Diff("fd/fm_cond/w=5", "fd/fm_cond/w=1"),
        ">",
        0.0,
        paper=HO,
        paper_value="FID rises for large w",
    ),
    Claim(
        "pf_ode_matches_sde",
        "the probability-flow ODE of a VP score model samples as well as its reverse SDE: its Fréchet distance is "
        "at most 3 above the SDE's (converged adaptive solver)",
        Diff("fd_ode_adaptive/vp", "fd_sde/vp"),
        "<",
        3.0,
        paper=SONG,
        paper_value="same marginals",
        note="exact only for the exact score; with a learned ε-model the two samplers respond differently to its "
        "errors",
    ),
    Claim(
        "pf_ode_gap_shrinks",
        "the PF-ODE's excess Fréchet distance over the reverse SDE shrinks as the learned score improves: the gap "
        "after 24,000 training steps is below the gap after 1,500 (paired per seed, one continued run)",
        Diff(
            Diff("fd_ode_adaptive/vp@24000", "fd_sde/vp@24000"),
            Diff("fd_ode_adaptive/vp", "fd_sde/vp"),
        ),
        "<",
        0.0,
        paper=SONG,
        paper_value="gap 0 for the exact score",
        note="the default `steps` is 1,500; a run with other budgets leaves this claim not measured",
    ),
    Claim(
        "pf_ode_matches_sde_trained_longer",
        "after 24,000 training steps the PF-ODE's Fréchet distance is at most 3 above the reverse SDE's",
        Diff("fd_ode_adaptive/vp@24000", "fd_sde/vp@24000"),
        "<",
        3.0,
        paper=SONG,
        paper_value="same marginals",
    ),
)


def _plots(res, grids, losses) -> dict:
    figs = {}
    rows = []
    for name, g in grids.items():
        if name.startswith("fm_cond") and name != f"fm_cond w={res['results']['fm_cond']['best_scale']}":
            continue
        if name.startswith("fm_cond"):  # one row of 10 per class, first 4 samples each
            per = g.shape[0] // 10 + 1
            g = np.concatenate([g[c * per : c * per + 4] for c in range(10)])
        rows.append((name, g[:40]))
    fig = figure(figsize=(12, 1.6 * len(rows) + 0.4))
    axes = fig.subplots(len(rows), 1, squeeze=False)
    for ax, (name, g) in zip(axes[:, 0], rows):
        tiles = np.asarray(jf.data.from_unit_range(g, 1.0))[..., 0]
        n = tiles.shape[0]
        strip = np.concatenate([np.pad(tiles[i], 1, constant_values=0.5) for i in range(n)], axis=1)
        ax.imshow(
            np.concatenate([strip[:, : strip.shape[1] // 2], strip[:, strip.shape[1] // 2 :]], 0) if n >= 20 else strip,
            cmap="gray_r",
        )
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    figs["samples"] = fig

    if "fm_cond" in res["results"]:
        figs["guidance"] = plot_guidance(res)

    if res["results"].get("vp", {}).get("longer"):  # the PF-ODE's gap against training budget, every seed
        fig = figure(figsize=(6, 4))
        ax = fig.subplots()
        for s, r in enumerate(res["per_seed"]):
            vp = r["vp"]
            budgets = [res["steps"]] + [int(b) for b in vp["longer"]]
            sde = [np.mean(vp["fd_sde"])] + [np.mean(f["fd_sde"]) for f in vp["longer"].values()]
            ode = [np.mean(vp["fd_ode_adaptive"])] + [np.mean(f["fd_ode_adaptive"]) for f in vp["longer"].values()]
            ax.plot(budgets, sde, "o-", color="C0", alpha=0.7, label="reverse SDE" if s == 0 else None)
            ax.plot(budgets, ode, "s--", color="C3", alpha=0.7, label="PF-ODE (Tsit5)" if s == 0 else None)
        ax.axhline(res["fd_real_halves"], color="k", ls=":", lw=0.8, label="real-vs-real floor")
        ax.set_xscale("log")
        ax.set_xlabel("training steps of the VP ε-model")
        ax.set_ylabel("Fréchet feature distance")
        ax.legend(fontsize=8)
        fig.tight_layout()
        figs["pf_ode_gap"] = fig

    fig = figure(figsize=(6, 4))
    ax = fig.subplots()
    for name, l_ in losses.items():
        ax.plot(np.convolve(l_, np.ones(20) / 20, mode="valid"), label=name)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (running mean of 20)")
    ax.legend()
    fig.tight_layout()
    figs["loss"] = fig
    return figs


def plot_guidance(res):
    """FD (left axis) and the classifier's accuracy on the requested labels (right axis) against the guidance scale,
    from a run's stored results (`metrics.json`'s "data")."""
    per = res["results"]["fm_cond"]["per_scale"]
    ws = [float(w) for w in per]
    fig = figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.errorbar(
        ws,
        [np.mean(per[w]["fd"]) for w in per],
        [np.std(per[w]["fd"]) for w in per],
        marker="o",
        label="FD (conditional FM)",
    )
    ax.axhline(res["fd_real_halves"], color="k", ls="--", lw=0.8, label="real-vs-real floor")
    if "fm" in res["results"]:
        ax.axhline(np.mean(res["results"]["fm"]["fd"]), color="C2", ls=":", label="FD unconditional FM")
    ax.set_xlabel("guidance scale w")
    ax.set_ylabel("Fréchet feature distance")
    ax2 = ax.twinx()
    ax2.plot(ws, [np.mean(per[w]["accuracy"]) for w in per], "s-", color="C3", label="accuracy (right axis)")
    ax2.set_ylabel("classifier accuracy on requested labels", color="C3")
    # one legend for both axes, on the top axis (the accuracy curve is drawn over the left axis' artists)
    (h1, l1), (h2, l2) = ax.get_legend_handles_labels(), ax2.get_legend_handles_labels()
    ax2.legend(h1 + h2, l1 + l2, fontsize=8, loc="center right")
    fig.tight_layout()
    return fig


def _table(cfg, res) -> str:
    r = res["results"]
    floor = f"real-vs-real floor ({res['n_eval']} training digits)"
    rows = [[floor, f"{res['fd_real_halves']:.3f}", "–", "–"]]
    if "fm" in r:
        rows.append(["unconditional FM (Heun)", mean_std(r["fm"]["fd"]), "–", r["fm"]["nfe"]])
    if "fm_cond" in r:
        for w, p in r["fm_cond"]["per_scale"].items():
            best = " (best)" if w == r["fm_cond"]["best_scale"] else ""
            rows.append(
                [f"conditional FM, w = {w}{best}", mean_std(p["fd"]), mean_std(p["accuracy"]), r["fm_cond"]["nfe"]]
            )
    if "vp" in r:
        rows.append(["VP diffusion, reverse SDE (EM)", mean_std(r["vp"]["fd_sde"]), "–", r["vp"]["nfe_sde"]])
        rows.append(["VP diffusion, probability-flow ODE (Heun)", mean_std(r["vp"]["fd_ode"]), "–", r["vp"]["nfe_ode"]])
        if "fd_ode_fine" in r["vp"]:
            rows.append(
                [
                    "VP diffusion, probability-flow ODE (Heun, 4× steps)",
                    mean_std(r["vp"]["fd_ode_fine"]),
                    "–",
                    4 * r["vp"]["nfe_ode"],
                ]
            )
            rows.append(
                [
                    "VP diffusion, probability-flow ODE (Tsit5, adaptive)",
                    mean_std(r["vp"]["fd_ode_adaptive"]),
                    "–",
                    mean_std(r["vp"]["nfe_ode_adaptive"]),
                ]
            )
    for budget, f in r.get("vp", {}).get("longer", {}).items():
        rows.append([f"VP diffusion trained to {budget} steps, reverse SDE (EM)", mean_std(f["fd_sde"]), "–", "–"])
        rows.append(
            [f"VP diffusion trained to {budget} steps, PF-ODE (Tsit5)", mean_std(f["fd_ode_adaptive"]), "–", "–"]
        )
    text = (
        "# Digits (8×8, scikit-learn): Fréchet feature distance and conditional accuracy\n\n"
        f"{res['n_eval']} generated digits against the whole held-out split, mean ± sd over {cfg.eval_draws} "
        f"draws. Features: `jaxflow.metrics.DigitsMetric` (held-out accuracy {res['classifier_accuracy']:.3f}); "
        "the floor is the same distance for as many real training digits. "
        f"UNet {cfg.channels} channels, {cfg.steps} steps, batch "
        f"{cfg.batch_size}, Adam {cfg.learning_rate:g}, EMA {cfg.ema_decay}; EMA weights sampled.\n\n"
        + markdown_table(["samples", "FD", "accuracy on labels", "NFE"], rows)
    )
    rows_real = f"Uniform-noise images score FD {res['fd_uniform_noise']:.2f} on the same features.\n"
    return text + "\n" + rows_real


STUDY = Study(
    "digits",
    config=DigitsConfig,
    run=run,
    claims=CLAIMS,
    quick={
        "steps": 150,
        "ema_decay": 0.95,
        "guidance_scales": (0.0, 1.0, 3.0, 5.0),
        "ode_steps": 10,
        "sde_steps": 40,
        "eval_draws": 1,
        "seeds": 1,
        "vp_steps": (600,),
    },
    smoke={
        "models": ("fm_cond", "vp"),
        "channels": 8,
        "steps": 2,
        "chunk": 1,
        "ode_steps": 3,
        "sde_steps": 6,
        "vp_steps": (3,),
    },
    validate=validate,
    description="Flow matching, guidance and VP diffusion on scikit-learn's 8×8 digits, scored by DigitsMetric.",
)
CONFIG = DigitsConfig
main = STUDY.main

if __name__ == "__main__":
    main()
