"""W-CFM under a sweep of ε: marginal bias, sample quality, straightness and cost, with and without the Sinkhorn
correction of the Gibbs weights.

W-CFM (weighted conditional flow matching) keeps independent pairs and weights pair i by exp(−c_ii/ε). Its claim is
quality comparable to OT-CFM at the cost of I-CFM. The plain weights tilt both marginals (docs/couplings.md): the
weighted x1-marginal is p1(x1)·Z(x1) with Z(x1) = E_x0 exp(−c(x0, x1)/ε), so a model trained on them learns a
transport to the tilted target. `GibbsWeightedCoupling(correction="sinkhorn")` divides the tilt out with the batch's
Sinkhorn scalings.

Protocol: the 2-D benchmark's (experiments/toy2d: MLP 3×64 SELU, Adam 1e-3, batch 256, Cond-OT path, Dopri5
evaluation), fewer steps and seeds by default. For each task, I-CFM and exact OT-CFM are trained as references, then
W-CFM for every (rule, κ, correction):
- rule `relative`: ε = κ · mean pair cost of the batch; rule `dimension`: ε = κ · d (absolute).
- marginal bias: W2 (exact, POT) of the weighted x0- and x1-marginals of `bias_batches` batches to
  `bias_reference` fresh points of each marginal, next to the same W2 with uniform weights (the batch-noise floor).
- effective sample size of the weights (Kish), W2 of the trained model's samples, NPE, adaptive NFE, model-steps/s.

Claims are declared per task at W-CFM's default ε (κ = 0.5 · mean pair cost, the toy2d study's), and, as declared
best-ofs, over the whole ε grid; quality and straightness are paired per seed (same evaluation draws). The grid runs
up to κ = 32, where the weights are nearly uniform, so that the W2 curve's plateau (W-CFM → I-CFM) lies inside it.
Quality is compared with OT-CFM twice: at Dopri5 tolerance, where I-CFM and OT-CFM are within each other's spread on
these tasks, and with `low_nfe` Euler steps, where OT-CFM's straighter paths pay off; a declared claim first checks
that OT-CFM does beat I-CFM there on each task, since "within 10% of OT-CFM" means nothing otherwise. The third row of
the figure sets path energy against W2 over the grid (energy at matched quality). Speed is
measured in `make bench`, not claimed here.

Run `python -m experiments run wcfm` (full) or `--quick`; results in results/wcfm/.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

import jaxflow as jf
from experiments import toy2d
from experiments.claims import BestOf, Claim, Diff, Ratio
from experiments.common import (
    StudyConfig,
    figure,
    markdown_table,
    non_empty,
    positive_float,
    positive_int,
    require,
)
from experiments.pipeline import Output, Study, unit
from jaxflow.couplings import GibbsWeightedCoupling, effective_sample_size
from jaxflow.nn import velocity_fn
from jaxflow.paths import cond_ot_path

RULES = ("relative", "dimension")
CORRECTIONS = ("none", "sinkhorn")


@dataclass(frozen=True)
class WcfmConfig(StudyConfig):
    """The W-CFM ε sweep (every field is a command-line option)."""

    tasks: tuple[str, ...] = ("gaussian->moons", "gaussian->scurve", "8gaussians->moons", "gaussian->8gaussians")
    relative_kappas: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
    """ε = κ · mean pair cost of the batch; the grid runs on until the weights are nearly uniform (W-CFM → I-CFM),
    so the W2 curve can plateau inside it."""
    dimension_kappas: tuple[float, ...] = (0.25, 1.0)
    """ε = κ · d (absolute)."""
    corrections: tuple[str, ...] = CORRECTIONS
    seeds: int = 3
    steps: int = 3_000
    batch_size: int = 256
    lr: float = 1e-3
    eval_samples: int = 1000
    bias_batches: int = 8
    bias_reference: int = 2000
    solver_tol: float = 1e-4
    low_nfe: int = 4
    """Euler steps of the low-budget quality measure (where OT-CFM's straighter paths pay off)."""
    steps_per_call: int = 500
    out_dir: str = "results/wcfm"

    def toy2d_config(self) -> toy2d.Toy2dConfig:
        return toy2d.Toy2dConfig(
            tasks=self.tasks,
            seeds=self.seeds,
            steps=self.steps,
            batch_size=self.batch_size,
            lr=self.lr,
            eval_samples=self.eval_samples,
            solver_tol=self.solver_tol,
            steps_per_call=self.steps_per_call,
            progress=self.progress,
        )


def validate(cfg: WcfmConfig) -> None:
    non_empty(cfg, "tasks", "corrections")
    for t in cfg.tasks:
        try:
            toy2d.parse_task(t)
        except ValueError as e:
            require(False, "tasks", t, str(e))
    for c in cfg.corrections:
        require(c in CORRECTIONS, "corrections", c, f"choose from {list(CORRECTIONS)}")
    require(len(cfg.relative_kappas) + len(cfg.dimension_kappas) > 0, "relative_kappas", (), "no ε to sweep")
    for name in ("relative_kappas", "dimension_kappas"):
        for k in getattr(cfg, name):
            require(isinstance(k, int | float) and k > 0, name, k, "every κ must be positive")
    positive_int(
        cfg, "seeds", "steps", "batch_size", "eval_samples", "bias_batches", "bias_reference", "steps_per_call"
    )
    positive_float(cfg, "lr", "solver_tol")


def variants(cfg: WcfmConfig) -> list[tuple[str, str, float, str]]:
    """(label, rule, κ, correction) of every W-CFM run."""
    out = []
    for correction in cfg.corrections:
        for rule, kappas in (("relative", cfg.relative_kappas), ("dimension", cfg.dimension_kappas)):
            for k in kappas:
                eps = f"{k:g}·mean c" if rule == "relative" else f"{k:g}·d"
                out.append((f"W-CFM ε={eps} ({correction})", rule, float(k), correction))
    return out


def make_coupling(rule: str, kappa: float, correction: str, dim: int) -> GibbsWeightedCoupling:
    if rule == "relative":
        return GibbsWeightedCoupling(epsilon=kappa, relative=True, correction=correction)
    return GibbsWeightedCoupling(epsilon=kappa * dim, relative=False, correction=correction)


def marginal_bias(coupling, task: str, cfg: WcfmConfig, key: jax.Array) -> dict:
    """W2 of the weighted batch marginals to fresh reference points, beside the uniform-weight floor."""
    import ot as pot

    src, tgt = toy2d.parse_task(task)
    sample_src, sample_tgt = jf.data.get_sampler(src), jf.data.get_sampler(tgt)
    k_ref0, k_ref1, k_b = jax.random.split(key, 3)
    refs = (
        np.asarray(sample_src(k_ref0, cfg.bias_reference), np.float64),
        np.asarray(sample_tgt(k_ref1, cfg.bias_reference), np.float64),
    )
    u_ref = np.full(cfg.bias_reference, 1.0 / cfg.bias_reference)
    u_b = np.full(cfg.batch_size, 1.0 / cfg.batch_size)
    rows = {"w2_x0": [], "w2_x1": [], "floor_x0": [], "floor_x1": [], "ess": []}
    for r in range(cfg.bias_batches):
        k = jax.random.fold_in(k_b, r)
        k0, k1, kc = jax.random.split(k, 3)
        pairing = coupling(kc, sample_src(k0, cfg.batch_size), sample_tgt(k1, cfg.batch_size))
        w = np.asarray(pairing.weights, np.float64)
        w = w / w.sum()
        rows["ess"].append(float(effective_sample_size(jnp.asarray(w))))
        for side, pts, ref in (("x0", pairing.x0, refs[0]), ("x1", pairing.x1, refs[1])):
            cost = pot.dist(np.asarray(pts, np.float64), ref)
            rows[f"w2_{side}"].append(float(np.sqrt(pot.emd2(w, u_ref, cost, numItermax=1_000_000))))
            rows[f"floor_{side}"].append(float(np.sqrt(pot.emd2(u_b, u_ref, cost, numItermax=1_000_000))))
    return {k: float(np.mean(v)) for k, v in rows.items()}


def train_and_evaluate(task, label, path_and_coupling, tcfg, key, velocity, ti, low_nfe: int) -> dict:
    """toy2d's training and evaluation (the same evaluation draws as toy2d uses for the task), plus the W2 of
    `low_nfe` Euler steps from the same source draws."""
    states, rate = toy2d.train_method(task, label, tcfg, key, path_and_coupling=path_and_coupling)
    per_seed, summary = toy2d.evaluate_seeds(states, task, tcfg, jax.random.key(tcfg.seed), ti, velocity, rate)
    src, tgt = toy2d.parse_task(task)
    for s, rec in enumerate(per_seed):
        params = jax.tree.map(lambda a, s=s: a[s], states.params)
        k_src, k_tgt, _ = jax.random.split(toy2d.eval_key(jax.random.key(tcfg.seed), ti, s), 3)
        x0 = jf.data.get_sampler(src)(k_src, tcfg.eval_samples)
        x1 = jf.sample(velocity, x0, params=params, solver="euler", steps=low_nfe).x
        target = jf.data.get_sampler(tgt)(k_tgt, tcfg.eval_samples)
        rec["w2_low_nfe"] = float(jf.metrics.wasserstein(np.asarray(x1), np.asarray(target)))
    lows = [r["w2_low_nfe"] for r in per_seed]
    summary.update(w2_low_nfe_mean=float(np.mean(lows)), w2_low_nfe_std=float(np.std(lows)))
    summary["path_energy_mean"] = float(np.mean([r["path_energy"] for r in per_seed]))
    return summary


def tag(rule: str, kappa: float, correction: str) -> str:
    return f"{rule}{kappa:g}_{correction}"


def run(cfg: WcfmConfig, key: jax.Array) -> Output:
    tcfg = cfg.toy2d_config()
    velocity = velocity_fn(toy2d.make_model(tcfg))
    results, measurements = {}, {}
    for ti, task in enumerate(cfg.tasks):
        k_task = jax.random.fold_in(key, ti)
        res = {}
        for mi, method in enumerate(("icfm", "otcfm")):
            r = unit(
                f"{task}/{method}",
                lambda mi=mi, method=method, ti=ti, task=task, k_task=k_task: train_and_evaluate(
                    task, method, None, tcfg, jax.random.fold_in(k_task, mi), velocity, ti, cfg.low_nfe
                ),
            )
            r.update(label=toy2d.METHOD_LABELS[method])
            res[method] = r
            for q in ("w2", "npe", "w2_low_nfe", "path_energy"):
                measurements[f"{q}/{task}/{method}"] = [x[q] for x in r["per_seed"]]
            _report(task, r)
        for vi, (label, rule, kappa, correction) in enumerate(variants(cfg)):
            coupling = make_coupling(rule, kappa, correction, dim=2)

            def one(coupling=coupling, vi=vi, label=label, ti=ti, task=task, k_task=k_task):
                bias = marginal_bias(coupling, task, cfg, jax.random.fold_in(k_task, 5_000 + vi))
                pc = (cond_ot_path(), coupling)
                r = train_and_evaluate(
                    task, label, pc, tcfg, jax.random.fold_in(k_task, 100 + vi), velocity, ti, cfg.low_nfe
                )
                return {**r, **bias}

            t = tag(rule, kappa, correction)
            r = unit(f"{task}/{t}", one)
            r.update(label=label, rule=rule, kappa=kappa, correction=correction)
            res[label] = r
            for q in ("w2", "npe", "w2_low_nfe", "path_energy"):
                measurements[f"{q}/{task}/{t}"] = [x[q] for x in r["per_seed"]]
            measurements[f"tilt_excess_x1/{task}/{t}"] = r["w2_x1"] - r["floor_x1"]
            _report(task, r)
        results[task] = res
    return Output(measurements, make_table(results, cfg), {"sweep": plot(results, cfg)}, results)


def _report(task, r) -> None:
    extra = f"  bias x1 {r['w2_x1']:.3f} (floor {r['floor_x1']:.3f})" if "w2_x1" in r else ""
    print(
        f"{task:20s} {r['label']:34s} W2 {r['w2_mean']:.3f}  NPE {r['npe_mean']:.3f}  NFE {r['nfe_mean']:.0f}  "
        f"{r['model_steps_per_s']:.0f} model-steps/s{extra}",
        flush=True,
    )


def make_table(results: dict, cfg: WcfmConfig) -> str:
    header = [
        "task",
        "method",
        "W2",
        f"W2, {cfg.low_nfe} Euler steps",
        "path energy",
        "NPE",
        "NFE",
        "bias x0",
        "bias x1",
        "ESS / B",
        "model-steps/s",
    ]
    rows = []
    for task, res in results.items():
        for r in res.values():
            has_bias = "w2_x0" in r
            rows.append(
                [
                    task,
                    r["label"],
                    f"{r['w2_mean']:.3f} ± {r['w2_std']:.3f}",
                    f"{r['w2_low_nfe_mean']:.3f} ± {r['w2_low_nfe_std']:.3f}",
                    f"{r['path_energy_mean']:.3f}",
                    f"{r['npe_mean']:.3f}",
                    f"{r['nfe_mean']:.0f}",
                    f"{r['w2_x0']:.3f}" if has_bias else "—",
                    f"{r['w2_x1']:.3f}" if has_bias else "—",
                    f"{r['ess'] / cfg.batch_size:.2f}" if has_bias else "1",
                    f"{r['model_steps_per_s']:.0f}",
                ]
            )
    floors = "; ".join(
        f"{t}: x0 {_wcfm(res)[0]['floor_x0']:.3f}, x1 {_wcfm(res)[0]['floor_x1']:.3f}" for t, res in results.items()
    )
    note = (
        f"{cfg.seeds} seeds × {cfg.steps} steps, batch {cfg.batch_size}; W2 of {cfg.eval_samples} samples (Dopri5). "
        f"Marginal bias: W2 of the weighted batch marginals ({cfg.bias_batches} batches) to {cfg.bias_reference} "
        f"fresh points; the uniform-weight floor (batch noise) is {floors}. ESS / B: Kish's effective sample size "
        "over the batch size. model-steps/s: this run's, seeds vmapped; they vary with the machine's load (the "
        "plain weights cost as much as I-CFM); BENCHMARKS.md section 1 has W-CFM next to I-CFM in one alternating "
        "run.\n\n"
    )
    return "# W-CFM ε sweep\n\n" + note + markdown_table(header, rows)


def _wcfm(res: dict) -> list[dict]:
    return [r for r in res.values() if "w2_x0" in r]


DEFAULT = tag("relative", 0.5, "none")  # W-CFM as the toy2d study runs it


def _claims():
    cfg = WcfmConfig()
    plain = [tag(r, k, c) for _, r, k, c in variants(cfg) if c == "none"]
    out = []
    for task in cfg.tasks:
        out += [
            Claim(
                f"correction_reduces_tilt[{task}]",
                f"the Sinkhorn-corrected Gibbs weights tilt the x1-marginal less than the plain ones at the default ε "
                f"({task}; excess W2 over the uniform-weight floor)",
                Diff(f"tilt_excess_x1/{task}/relative0.5_sinkhorn", f"tilt_excess_x1/{task}/{DEFAULT}"),
                "<",
                0.0,
                paper="docs/couplings.md (the tilt of Gibbs weights)",
            ),
            Claim(
                f"wcfm_near_otcfm[{task}]",
                f"W-CFM (plain weights, default ε) reaches W2 within 10% of exact OT-CFM's ({task}, paired per seed)",
                Ratio(f"w2/{task}/{DEFAULT}", f"w2/{task}/otcfm"),
                "<",
                1.1,
                paper="weighted CFM (W-CFM)",
                paper_value="quality comparable to OT-CFM at I-CFM's cost",
            ),
            Claim(
                f"some_wcfm_near_otcfm[{task}]",
                f"some ε of the grid gives plain W-CFM a W2 within 10% of exact OT-CFM's ({task})",
                Ratio(BestOf(tuple(f"w2/{task}/{t}" for t in plain)), f"w2/{task}/otcfm"),
                "<",
                1.1,
                paper="weighted CFM (W-CFM)",
            ),
            Claim(
                f"otcfm_beats_icfm_low_nfe[{task}]",
                f"the task separates the couplings: with {cfg.low_nfe} Euler steps exact OT-CFM samples better than "
                f"I-CFM ({task}, paired per seed; without this, 'near OT-CFM' tests nothing)",
                Diff(f"w2_low_nfe/{task}/otcfm", f"w2_low_nfe/{task}/icfm"),
                "<",
                0.0,
                paper="Tong et al. 2024, arXiv:2302.00482 (straighter flows integrate in fewer steps)",
            ),
            Claim(
                f"wcfm_near_otcfm_low_nfe[{task}]",
                f"W-CFM (plain weights, default ε) reaches, with {cfg.low_nfe} Euler steps, a W2 within 10% of exact "
                f"OT-CFM's ({task}, paired per seed)",
                Ratio(f"w2_low_nfe/{task}/{DEFAULT}", f"w2_low_nfe/{task}/otcfm"),
                "<",
                1.1,
                paper="weighted CFM (W-CFM)",
                paper_value="quality comparable to OT-CFM at I-CFM's cost",
            ),
            Claim(
                f"some_wcfm_near_otcfm_low_nfe[{task}]",
                f"some ε of the grid gives plain W-CFM, with {cfg.low_nfe} Euler steps, a W2 within 10% of exact "
                f"OT-CFM's ({task})",
                Ratio(BestOf(tuple(f"w2_low_nfe/{task}/{t}" for t in plain)), f"w2_low_nfe/{task}/otcfm"),
                "<",
                1.1,
                paper="weighted CFM (W-CFM)",
            ),
            Claim(
                f"wcfm_straighter_than_icfm[{task}]",
                f"W-CFM's weights straighten the flow: at the default ε its NPE is below I-CFM's ({task})",
                Diff(f"npe/{task}/{DEFAULT}", f"npe/{task}/icfm"),
                "<",
                0.0,
                paper="weighted CFM (W-CFM)",
            ),
        ]
    return tuple(out)


CLAIMS = _claims()


def plot(results: dict, cfg: WcfmConfig):
    tasks = list(results)
    fig = figure(figsize=(4.2 * len(tasks), 9.6))
    axes = fig.subplots(3, len(tasks), squeeze=False)
    for c, t in enumerate(tasks):
        res = results[t]
        for row, (key, ylabel) in enumerate((("w2_mean", "W2 of samples"), ("w2_x1", "x1-marginal bias (W2)"))):
            ax = axes[row, c]
            for correction, marker in (("none", "o"), ("sinkhorn", "s")):
                for rule, ls in (("relative", "-"), ("dimension", ":")):
                    pts = sorted(
                        (r["kappa"], r[key]) for r in _wcfm(res) if r["correction"] == correction and r["rule"] == rule
                    )
                    if pts:
                        x, y = zip(*pts, strict=True)
                        ax.plot(
                            x,
                            y,
                            ls,
                            marker=marker,
                            label=f"{correction}, ε={'κ·mean c' if rule == 'relative' else 'κ·d'}",
                        )
            if row == 0:
                ax.axhline(res["icfm"]["w2_mean"], color="grey", lw=1, label="I-CFM")
                ax.axhline(res["otcfm"]["w2_mean"], color="black", lw=1, ls="--", label="OT-CFM")
            else:
                ax.axhline(_wcfm(res)[0]["floor_x1"], color="grey", lw=1, label="uniform weights (floor)")
            ax.set_xscale("log")
            ax.set_xlabel("κ")
            ax.set_ylabel(ylabel)
            ax.set_title(t, fontsize=9)
            ax.legend(fontsize=6)
        # matched quality: path energy against W2 over the whole grid, beside the two references
        ax = axes[2, c]
        for correction, marker in (("none", "o"), ("sinkhorn", "s")):
            pts = [r for r in _wcfm(res) if r["correction"] == correction]
            ax.scatter(
                [r["w2_mean"] for r in pts], [r["path_energy_mean"] for r in pts], marker=marker, s=14, label=correction
            )
        for ref, color in (("icfm", "grey"), ("otcfm", "black")):
            ax.scatter(
                res[ref]["w2_mean"],
                res[ref]["path_energy_mean"],
                marker="*",
                s=80,
                color=color,
                label=res[ref]["label"],
            )
        ax.set_xlabel("W2 of samples (Dopri5)")
        ax.set_ylabel("path energy")
        ax.set_title(f"{t}: energy at matched quality", fontsize=9)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


STUDY = Study(
    "wcfm",
    config=WcfmConfig,
    run=run,
    claims=CLAIMS,
    quick={
        "tasks": ("gaussian->moons",),
        "relative_kappas": (0.25, 0.5, 1.0),
        "dimension_kappas": (1.0,),
        "seeds": 2,
        "steps": 600,
        "eval_samples": 500,
        "bias_batches": 4,
        "bias_reference": 1000,
        "steps_per_call": 300,
    },
    smoke={"relative_kappas": (0.5,), "dimension_kappas": (), "steps": 200, "eval_samples": 200, "seeds": 1},
    validate=validate,
    description="W-CFM under a sweep of ε: marginal tilt, quality and straightness, with and without the correction.",
)
CONFIG = WcfmConfig
main = STUDY.main

if __name__ == "__main__":
    main()
