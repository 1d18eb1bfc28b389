"""Meta flow matching: flows conditioned on the population they start from (Atanackovic et al. 2024,
arXiv:2408.14608), against plain flow matching (FM) and the conditional-generator baseline (CGFM).

Run `python -m experiments run meta_fm` (full) or `--quick`; results in results/meta_fm/.

Claims (declared before the run): "the" MFM is k = 10, the paper's headline encoder; the other encoders have claims
of their own (no best-of). The letters run at both source-noise levels of `noises` as one planned sweep. Every
comparison is paired per seed (the same held-out populations score every method).

Data (jaxflow.data.populations, no downloads):
- letters: populations of the glyphs of DejaVu Sans (matplotlib). Source = glyph samples + N(0, noise² I), target =
  independent glyph samples, both rotated by one of `angles` (2π j / angles). Train on every letter except the
  held-out ones (X and Y) at every rotation; test on the held-out letters at every rotation.
- particles: initial populations from random 2-D Gaussian mixtures (1–3 components), moved by an attraction–repulsion
  aggregation dynamics to time T; the target of each particle is its own final position. Train and test populations
  are independent draws.
Each population holds a pool of `pool` points per side; training subsamples `points` rows from its first
`pool − points` rows, evaluation uses the last `points` rows (the source cloud the encoder sees and the target
cloud the samples are scored against).

Methods (one MLP velocity 3×128 SELU with a sinusoidal time embedding, conditioned by concatenation):
FM (no conditioning); CGFM (a free 32-d embedding per training population; unseen populations get the table's
mean); MFM k ∈ `ks` (set encoder on the source population, k = 0 DeepSets, k > 0 kNN-graph convolution; trained
jointly). Adam, `populations` populations per step, seeds trained together (vmapped).
Evaluation: RK4 with `ode_steps` steps from each population's source cloud; W1, W2 (exact, POT) and MMD (RBF, several
bandwidths) against its target cloud; mean over populations, then mean ± sd over seeds.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

import jaxflow as jf
from experiments.claims import Claim, Diff
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
from experiments.pipeline import Output, Study, unit
from jaxflow.nn import MLPVelocity, PopulationTable, SetEncoder, init_mlp, velocity_fn
from jaxflow.train import TrainState, make_train_step

DATASETS = ("letters", "particles")
PAPER_LETTERS_W1 = {"FM": (0.234, 0.238), "CGFM": (0.334, 0.327), "MFM k=0": (0.202, 0.218), "MFM k=10": (0.201, 0.208)}


@dataclass(frozen=True)
class MetaFmConfig(StudyConfig):
    """The Meta flow matching study (every field is a command-line option)."""

    datasets: tuple[str, ...] = DATASETS
    ks: tuple[int, ...] = (0, 10, 50)
    """MFM encoders: k nearest neighbours of the graph (0: DeepSets)."""
    seeds: int = 3
    steps: int = 12_000
    """Every method trains this many steps. CGFM needs them: its table row for a population moves only in the steps
    that draw that population (8 of 192 letters populations per step), and at 3,000 steps it did not fit its
    training populations better than FM (train W1 0.160 against 0.163; at 12,000: 0.149 against 0.160, with
    held-out W1 0.227 against 0.169, the memorising baseline of the paper)."""
    populations: int = 8
    """Populations per training step."""
    points: int = 256
    """Points per population in a training step and in evaluation."""
    pool: int = 1024
    lr: float = 1e-3
    embed_dim: int = 32
    held_out: tuple[str, ...] = ("X", "Y")
    angles: int = 8
    noises: tuple[float, ...] = (0.25, 0.5)
    """Letters: noise levels of the source population (one letters task per level)."""
    particle_train: int = 256
    particle_test: int = 64
    particle_time: float = 1.0
    ode_steps: int = 40
    eval_train: int = 16
    """Training populations scored (spread over the training set)."""
    out_dir: str = "results/meta_fm"


def validate(cfg: MetaFmConfig) -> None:
    non_empty(cfg, "datasets", "held_out")
    for d in cfg.datasets:
        require(d in DATASETS, "datasets", d, f"choose from {list(DATASETS)}")
    for k in cfg.ks:
        require(isinstance(k, int) and k >= 0, "ks", k, "k must be an integer >= 0")
    for letter in cfg.held_out:
        require(letter in jf.data.LETTERS, "held_out", letter, "must be upper-case letters")
    positive_int(cfg, "seeds", "steps", "populations", "points", "pool", "embed_dim", "angles", "particle_train")
    positive_int(cfg, "particle_test", "ode_steps", "eval_train")
    positive_float(cfg, "lr", "particle_time")
    require(cfg.pool > cfg.points, "pool", cfg.pool, "must exceed --points (evaluation rows are held back)")
    require(len(cfg.noises) > 0 and all(n >= 0 for n in cfg.noises), "noises", cfg.noises, "must be >= 0")


def tasks(cfg: MetaFmConfig) -> list[tuple[str, str, float | None]]:
    """(label, data set, letters noise) of every task of the run."""
    out = []
    for d in cfg.datasets:
        if d == "letters":
            out += [(f"letters@{n:g}", d, n) for n in cfg.noises]
        else:
            out.append((d, d, None))
    return out


def methods(cfg: MetaFmConfig) -> list[str]:
    return ["FM", "CGFM", *[f"MFM k={k}" for k in cfg.ks]]


# ---- data ----
def make_data(name: str, cfg: MetaFmConfig, key: jax.Array, noise: float | None = None) -> dict:
    """{'train': {'x0', 'x1': [P, pool, 2], 'names'}, 'test': {...}, 'paired': whether row i of x0 maps to row i}."""
    angles = [2 * np.pi * j / cfg.angles for j in range(cfg.angles)]
    if name == "letters":
        train_letters = [c for c in jf.data.LETTERS if c not in cfg.held_out]
        out = {}
        for split, letters in (("train", train_letters), ("test", list(cfg.held_out))):
            pops = jf.data.letter_populations(key, letters, angles, cfg.pool, noise=noise)
            names = [f"{ch} {a:.2f}" for ch, a in zip(pops["letter"], pops["angle"], strict=True)]
            out[split] = {"x0": pops["x0"], "x1": pops["x1"], "names": names}
        out["paired"] = False
        return out
    k_train, k_test = jax.random.split(key)
    out = {"paired": True}
    for split, k, count in (("train", k_train, cfg.particle_train), ("test", k_test, cfg.particle_test)):
        x0 = jf.data.random_mixture_populations(k, count, cfg.pool)
        # the dynamics act on the population the encoder sees: evolve the training rows and the evaluation rows
        # as two populations of their own
        cut = cfg.pool - cfg.points
        x1 = jnp.concatenate(
            [
                jf.data.interacting_particles(x0[:, :cut], cfg.particle_time),
                jf.data.interacting_particles(x0[:, cut:], cfg.particle_time),
            ],
            axis=1,
        )
        out[split] = {"x0": x0, "x1": x1, "names": [f"population {i}" for i in range(count)]}
    return out


def data_fn_for(train: dict, cfg: MetaFmConfig, paired: bool):
    x0_pool, x1_pool = train["x0"], train["x1"]
    count = x0_pool.shape[0]
    usable = cfg.pool - cfg.points

    def data_fn(key):
        k_pop, k0, k1 = jax.random.split(key, 3)
        idx = jax.random.choice(k_pop, count, (cfg.populations,), replace=False)

        def rows(k):
            return jax.vmap(lambda kk: jax.random.permutation(kk, usable)[: cfg.points])(
                jax.random.split(k, cfg.populations)
            )

        r0 = rows(k0)
        r1 = r0 if paired else rows(k1)
        take = jax.vmap(lambda pool, r: pool[r])
        return {"x0": take(x0_pool[idx], r0), "x1": take(x1_pool[idx], r1), "population": idx}

    return data_fn


# ---- models ----
def build(method: str, cfg: MetaFmConfig, num_train: int):
    """(velocity, embed, init(key) -> params) of a method."""
    model = MLPVelocity(out_dim=2, hidden=(128, 128, 128), activation="selu", time_embedding="sinusoidal")
    velocity = velocity_fn(model)
    if method == "FM":
        embed, enc_init = None, None
    elif method == "CGFM":
        table = PopulationTable(num_populations=num_train, out_dim=cfg.embed_dim)
        embed = jf.losses.table_embedding(table)

        def enc_init(k):
            return table.init(k, jnp.zeros((), jnp.int32))
    else:
        k = int(method.split("=")[1])
        enc = SetEncoder(out_dim=cfg.embed_dim, features=64, layers=2, k=k)
        embed = jf.losses.set_embedding(enc)

        def enc_init(key):
            return enc.init(key, jnp.zeros((cfg.points, 2)))

    def init(key):
        k_v, k_e = jax.random.split(key)
        cond = None if embed is None else jnp.zeros((1, cfg.embed_dim))
        params = {"velocity": init_mlp(k_v, model, 2, cond)}
        if enc_init is not None:
            params["encoder"] = enc_init(k_e)
        return params

    return velocity, embed, init


def train(method: str, data: dict, cfg: MetaFmConfig, key: jax.Array, desc: str):
    velocity, embed, init = build(method, cfg, data["train"]["x0"].shape[0])
    loss = jf.losses.population_loss(velocity, embed)
    opt = optax.adam(cfg.lr)
    data_fn = data_fn_for(data["train"], cfg, data["paired"])
    states = jax.vmap(lambda k: TrainState.create(jax.random.fold_in(k, 1), init(jax.random.fold_in(k, 0)), opt))(
        jax.random.split(key, cfg.seeds)
    )
    step = make_train_step(loss, opt, data_fn=data_fn, sweep=True)
    chunk = min(500, cfg.steps)
    step.lower(states, None, chunk).compile()
    t0 = time.perf_counter()
    losses = []
    with tqdm(total=cfg.steps, desc=desc, disable=not cfg.progress, leave=False) as bar:
        done = 0
        while done < cfg.steps:
            n = min(chunk, cfg.steps - done)
            states, metrics = step(states, None, n)
            losses.append(np.asarray(metrics["loss"]))
            done += n
            bar.update(n)
    jax.block_until_ready(states)
    return states, velocity, embed, time.perf_counter() - t0, np.concatenate(losses, axis=1)


def evaluate(states, velocity, embed, split: dict, which: np.ndarray, cfg: MetaFmConfig, seed: int, train_idx=None):
    params = jax.tree.map(lambda a: a[seed], states.params)
    x0 = split["x0"][which, -cfg.points :]
    x1 = split["x1"][which, -cfg.points :]
    # unseen populations have no row in CGFM's table: index −1 (the table's mean); set encoders ignore the index
    index = jnp.full(len(which), -1, jnp.int32) if train_idx is None else jnp.asarray(train_idx, jnp.int32)
    out = jf.losses.sample_populations(velocity, embed, params, x0, index=index, solver="rk4", steps=cfg.ode_steps).x
    pred, true = np.asarray(out), np.asarray(x1)
    w1 = [jf.metrics.wasserstein(p, q, p=1.0) for p, q in zip(pred, true, strict=True)]
    w2 = [jf.metrics.wasserstein(p, q, p=2.0) for p, q in zip(pred, true, strict=True)]
    mmd = [float(jf.metrics.mmd(jnp.asarray(p), jnp.asarray(q))) for p, q in zip(pred, true, strict=True)]
    return {"w1": float(np.mean(w1)), "w2": float(np.mean(w2)), "mmd": float(np.mean(mmd))}, pred


def run(cfg: MetaFmConfig, key: jax.Array) -> Output:
    results, figures_data, measurements = {}, {}, {}
    for name, dataset, noise in tasks(cfg):
        di = DATASETS.index(dataset)
        data = make_data(dataset, cfg, jax.random.fold_in(key, di), noise)
        n_train, n_test = data["train"]["x0"].shape[0], data["test"]["x0"].shape[0]
        train_sel = np.linspace(0, n_train - 1, min(cfg.eval_train, n_train)).round().astype(int)
        test_sel = np.arange(n_test)
        results[name] = {}
        for mi, method in enumerate(methods(cfg)):
            # one (task, method) is a resumable unit: a killed run starts again at the first unfinished one
            summary, pred = unit(
                f"{name}/{method}",
                functools.partial(_train_and_score, method, data, cfg, key, di, mi, name, dataset, train_sel, test_sel),
            )
            figures_data[(name, method)] = pred
            results[name][method] = summary
            for split in ("train", "test"):
                measurements[f"{split}_w1/{name}/{method}"] = [r[split]["w1"] for r in summary["per_seed"]]
            print(
                f"{name:9s} {method:9s} train W1 {summary['train_w1_mean']:.3f}  held-out W1 "
                f"{summary['test_w1_mean']:.3f} ± {summary['test_w1_std']:.3f}  ({summary['train_seconds']:.0f} s)",
                flush=True,
            )
        figures_data[(name, "_data")] = data
    figs = {f"populations_{name.replace('@', '_')}": plot(figures_data, name, cfg) for name, _, _ in tasks(cfg)}
    return Output(measurements, make_table(results, cfg), figs, results)


def _train_and_score(method, data, cfg, key, di, mi, name, dataset, train_sel, test_sel):
    """Train one method on one task over every seed and score it: (summary, the seed-0 held-out predictions)."""
    states, velocity, embed, seconds, losses = train(
        method, data, cfg, jax.random.fold_in(jax.random.fold_in(key, 100 + di), mi), f"{name} {method}"
    )
    per_seed, shown = [], None
    for s in range(cfg.seeds):
        tr, _ = evaluate(states, velocity, embed, data["train"], train_sel, cfg, s, train_idx=train_sel)
        te, pred = evaluate(states, velocity, embed, data["test"], test_sel, cfg, s)
        per_seed.append({"train": tr, "test": te})
        if s == 0:
            shown = pred
    summary = {
        f"{split}_{m}_{stat}": float(getattr(np, stat)([r[split][m] for r in per_seed]))
        for split in ("train", "test")
        for m in ("w1", "w2", "mmd")
        for stat in ("mean", "std")
    }
    summary.update(
        per_seed=per_seed,
        train_seconds=seconds,
        model_steps_per_s=cfg.steps * cfg.seeds / seconds,
        final_loss=float(losses[:, -50:].mean()),
    )
    if dataset == "letters":
        summary["test_w1_per_letter"] = _per_letter(states, velocity, embed, data, cfg)
    return summary, shown


def _per_letter(states, velocity, embed, data, cfg) -> dict:
    """Held-out W1 per letter (mean over rotations and seeds), as the paper reports X and Y separately."""
    names = data["test"]["names"]
    out = {}
    for letter in cfg.held_out:
        sel = np.asarray([i for i, n in enumerate(names) if n.startswith(letter + " ")])
        vals = [evaluate(states, velocity, embed, data["test"], sel, cfg, s)[0]["w1"] for s in range(cfg.seeds)]
        out[letter] = float(np.mean(vals))
    return out


def make_table(results: dict, cfg: MetaFmConfig) -> str:
    header = ["data", "method", "train W1", "held-out W1", "held-out W2", "held-out MMD", "train s"]
    rows = []
    for name, res in results.items():
        for method, r in res.items():
            ps = r["per_seed"]
            rows.append(
                [
                    name,
                    method,
                    mean_std([p["train"]["w1"] for p in ps]),
                    mean_std([p["test"]["w1"] for p in ps]),
                    mean_std([p["test"]["w2"] for p in ps]),
                    mean_std([p["test"]["mmd"] for p in ps], digits=4),
                    f"{r['train_seconds']:.0f}",
                ]
            )
    extra = ""
    for name in results:
        if not name.startswith("letters"):
            continue
        per = [
            [m, *(f"{r['test_w1_per_letter'][c]:.3f}" for c in cfg.held_out), _paper(m)]
            for m, r in results[name].items()
        ]
        extra += f"\n### Held-out letters ({name}), W1 per letter (paper's X / Y beside)\n\n" + markdown_table(
            ["method", *cfg.held_out, "paper X / Y"], per
        )
    note = (
        f"{cfg.seeds} seeds × {cfg.steps} steps, {cfg.populations} populations × {cfg.points} points per step; "
        f"held-out: letters {', '.join(cfg.held_out)} at {cfg.angles} rotations, {cfg.particle_test} new particle "
        f"populations; mean ± sd over seeds of the mean over populations. Train W1 over {cfg.eval_train} training "
        "populations (their held-back rows).\n\n"
    )
    return "# Meta flow matching\n\n" + note + markdown_table(header, rows) + extra


def _paper(method: str) -> str:
    v = PAPER_LETTERS_W1.get(method)
    return "—" if v is None else f"{v[0]} / {v[1]}"


ATANACKOVIC = "Atanackovic et al. 2024, arXiv:2408.14608"


def _claims():
    cfg = MetaFmConfig()
    out = []
    for name, dataset, _ in tasks(cfg):
        letters = dataset == "letters"
        te = lambda m, name=name: f"test_w1/{name}/{m}"  # noqa: E731
        tr = lambda m, name=name: f"train_w1/{name}/{m}"  # noqa: E731
        out += [
            Claim(
                f"mfm_beats_fm[{name}]",
                f"MFM (k = 10) transports held-out populations better than FM (W1, {name})",
                Diff(te("MFM k=10"), te("FM")),
                "<",
                0.0,
                paper=ATANACKOVIC + (", Table 2 (letters)" if letters else ""),
                paper_value="X / Y: MFM k=10 0.201 / 0.208, FM 0.234 / 0.238" if letters else None,
            ),
            Claim(
                f"mfm_beats_cgfm[{name}]",
                f"MFM (k = 10) transports held-out populations better than CGFM (W1, {name})",
                Diff(te("MFM k=10"), te("CGFM")),
                "<",
                0.0,
                paper=ATANACKOVIC,
                paper_value="X / Y: CGFM 0.334 / 0.327" if letters else None,
            ),
            Claim(
                f"cgfm_fits_training[{name}]",
                f"CGFM fits its training populations better than FM (train W1, {name})",
                Diff(tr("CGFM"), tr("FM")),
                "<",
                0.0,
                paper=ATANACKOVIC,
                paper_value="letters train W1: CGFM 0.090 vs FM 0.209" if letters else None,
            ),
            Claim(
                f"cgfm_does_not_generalise[{name}]",
                f"CGFM does not carry over to held-out populations: its held-out W1 exceeds its train W1 ({name})",
                Diff(te("CGFM"), tr("CGFM")),
                ">",
                0.0,
                paper=ATANACKOVIC,
            ),
        ]
        for k in cfg.ks:
            if k != 10:
                out.append(
                    Claim(
                        f"mfm_k{k}_beats_fm[{name}]",
                        f"MFM with k = {k} also beats FM on held-out populations (W1, {name})",
                        Diff(te(f"MFM k={k}"), te("FM")),
                        "<",
                        0.0,
                        paper=ATANACKOVIC,
                    )
                )
    return tuple(out)


CLAIMS = _claims()


def plot(figures_data: dict, name: str, cfg: MetaFmConfig):
    data = figures_data[(name, "_data")]
    ms = methods(cfg)
    n_show = min(4, data["test"]["x0"].shape[0])
    sel = np.linspace(0, data["test"]["x0"].shape[0] - 1, n_show).round().astype(int)
    fig = figure(figsize=(2.2 * (len(ms) + 2), 2.2 * n_show))
    axes = fig.subplots(n_show, len(ms) + 2, squeeze=False)
    for r, i in enumerate(sel):
        src = np.asarray(data["test"]["x0"][i, -cfg.points :])
        tgt = np.asarray(data["test"]["x1"][i, -cfg.points :])
        panels = [("source", src), ("true target", tgt)] + [(m, figures_data[(name, m)][i]) for m in ms]
        for c, (title, pts) in enumerate(panels):
            ax = axes[r, c]
            if c >= 2:
                ax.scatter(tgt[:, 0], tgt[:, 1], s=2, color="lightgrey")
            ax.scatter(pts[:, 0], pts[:, 1], s=2, color="black" if c < 2 else "tab:blue")
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_aspect("equal")
            if r == 0:
                ax.set_title(title, fontsize=8)
            if c == 0:
                ax.set_ylabel(data["test"]["names"][i], fontsize=7)
    fig.suptitle(f"{name}: held-out populations, seed 0 (blue: predicted, grey: true target)", fontsize=9)
    fig.tight_layout()
    return fig


STUDY = Study(
    "meta_fm",
    config=MetaFmConfig,
    run=run,
    claims=CLAIMS,
    quick={
        "ks": (0, 10),
        "seeds": 1,
        "steps": 600,
        "points": 128,
        "pool": 384,
        "angles": 4,
        "particle_train": 64,
        "particle_test": 16,
        "eval_train": 8,
        "ode_steps": 20,
    },
    smoke={
        "ks": (10,),
        "noises": (0.25,),
        "steps": 40,
        "points": 32,
        "pool": 96,
        "angles": 2,
        "particle_train": 16,
        "particle_test": 8,
        "eval_train": 4,
        "ode_steps": 10,
    },
    validate=validate,
    description="Meta flow matching on letters and interacting particles, against FM and CGFM.",
)
CONFIG = MetaFmConfig
main = STUDY.main

if __name__ == "__main__":
    main()
