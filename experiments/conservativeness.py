"""Non-conservativeness of learned fields.

A score network (denoising score matching on the linear path from N(0, I)) and a velocity network (CFM) are trained
on a Gaussian mixture in d = 4 (closed-form score and velocity) and on the 2-D moons. Along the path, at points
X_t = (1 − t)X₀ + tX₁, we report the relative Jacobian asymmetry ‖J − Jᵀ‖_F/‖J‖_F and the mean |normalised loop
integral| over random circles, next to the closed-form fields (conservative: for this path the exact velocity is
(x + (1 − t)∇log p_t)/t, a gradient). Sample quality: exact W2 between 1,000 samples and target samples; the score
model samples through the same identity, integrated from t = 0.01 (x ~ N(0, 0.99² I)) with Dopri5.

Run `python -m experiments.conservativeness` (or `--quick`); writes results/conservativeness/ (table.md,
metrics.json, asymmetry.png).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np
import optax
import tyro

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
from jaxflow.nn import MLPVelocity, init_mlp, velocity_fn
from jaxflow.train import TrainState, fit, make_train_step

TIMES = (0.1, 0.3, 0.5, 0.7, 0.9)


@dataclass(frozen=True)
class ConservativenessConfig(StudyConfig):
    tasks: tuple[str, ...] = ("mixture-4d", "moons")
    steps: int = 4000
    batch_size: int = 256
    lr: float = 1e-3
    hidden: tuple[int, ...] = (128, 128, 128)
    n_points: int = 256
    """evaluation points per time."""
    radius: float = 0.25
    n_samples: int = 1000
    t_start: float = 0.01
    out_dir: str = "results/conservativeness"
    quick: bool = False
    """quick version: 1,500 steps, results/conservativeness/quick."""


def quick_config(cfg: ConservativenessConfig) -> ConservativenessConfig:
    return dataclasses.replace(cfg, steps=1500, out_dir=str(Path(cfg.out_dir) / "quick"))


def mixture() -> jf.data.GaussianMixture:
    d = 4
    means = jnp.array([[2.0, 0, 0, 0], [-1.0, 1.7, 0, 0], [-1.0, -1.7, 0.5, 0]])
    covs = jnp.stack(
        [jnp.diag(jnp.array([0.3, 0.1, 0.2, 0.4])), 0.2 * jnp.eye(d), jnp.diag(jnp.array([0.1, 0.3, 0.3, 0.1]))]
    )
    return jf.data.GaussianMixture(jnp.array([0.3, 0.3, 0.4]), means, covs)


def target_sampler(task: str):
    if task == "mixture-4d":
        gmm = mixture()
        return gmm.sample, 4, gmm
    if task == "moons":
        return jf.data.get_sampler("moons"), 2, None
    raise ValueError(f"unknown task {task!r}; choose mixture-4d or moons")


def score_loss(score, sample_tgt, batch_size):
    """Denoising score matching on the linear path: E‖(1 − t) s(t, X_t) + X₀‖² (the (1 − t)²-weighted DSM)."""

    def loss(params, batch, key):
        x0, x1 = batch["x0"], batch["x1"]
        t = jax.random.uniform(key, (x0.shape[0],), x0.dtype, 0.0, 0.999)
        xt = (1 - t)[:, None] * x0 + t[:, None] * x1
        res = (1 - t)[:, None] * score(params, t, xt) + x0
        return jnp.mean(jnp.sum(res**2, axis=1)), {}

    return loss


def train(task, kind, cfg, key):
    sample_tgt, d, _ = target_sampler(task)
    model = MLPVelocity(out_dim=d, hidden=cfg.hidden)
    field = velocity_fn(model)
    if kind == "velocity":
        loss = jf.losses.cfm_loss(field, path=jf.paths.cond_ot_path(), coupling=jf.couplings.IndependentCoupling())
    else:
        loss = score_loss(field, sample_tgt, cfg.batch_size)
    optimizer = optax.adam(cfg.lr)

    def data_fn(k):
        k0, k1 = jax.random.split(k)
        return {"x0": jax.random.normal(k0, (cfg.batch_size, d)), "x1": sample_tgt(k1, cfg.batch_size)}

    kp, kt = jax.random.split(key)
    state = TrainState.create(init_mlp(kp, model, d), optimizer, kt)
    step = make_train_step(loss, optimizer, data_fn=data_fn)
    state, _ = fit(state, step, cfg.steps, steps_per_call=500, progress=cfg.progress, desc=f"{task} {kind}")
    return field, state.ema_params


def score_to_velocity(score_fn):
    """The linear path's velocity from a score, through the library's converter (v = (x + (1 − t) s) / t)."""
    return jf.sampling.score_to_drift(jf.paths.cond_ot_path(), score_fn)


def measure(fields: dict, sample_tgt, d, cfg, key):
    out = {name: {"asymmetry": [], "loop": []} for name in fields}
    for i, t in enumerate(TIMES):
        k0, k1, ka, kl = jax.random.split(jax.random.fold_in(key, i), 4)
        x = (1 - t) * jax.random.normal(k0, (cfg.n_points, d)) + t * sample_tgt(k1, cfg.n_points)
        for name, f in fields.items():
            fx = lambda y, f=f, t=t: f(jnp.asarray(t, y.dtype), y)  # noqa: E731
            out[name]["asymmetry"].append(float(jnp.mean(jf.metrics.jacobian_asymmetry(fx, x, ka))))
            out[name]["loop"].append(float(jnp.mean(jnp.abs(jf.metrics.loop_integrals(fx, x, kl, cfg.radius)))))
    return out


def quality(velocity, sample_tgt, d, cfg, key, t0=0.0):
    k0, k1 = jax.random.split(key)
    x0 = (1 - t0) * jax.random.normal(k0, (cfg.n_samples, d))
    xs = jf.sample(velocity, x0, solver="dopri5", t0=t0, t1=1.0, rtol=1e-4, atol=1e-4).x
    return jf.metrics.wasserstein(np.asarray(xs), np.asarray(sample_tgt(k1, cfg.n_samples)))


def _run_study(cfg: ConservativenessConfig) -> dict:
    if cfg.quick:
        cfg = quick_config(cfg)
    out_dir = results_dir(cfg.out_dir)
    key = jax.random.key(cfg.seed)
    results = {}
    for ti, task in enumerate(cfg.tasks):
        sample_tgt, d, gmm = target_sampler(task)
        kt = jax.random.fold_in(key, ti)
        vel_net, vel_params = train(task, "velocity", cfg, jax.random.fold_in(kt, 1))
        sco_net, sco_params = train(task, "score", cfg, jax.random.fold_in(kt, 2))
        fields = {
            "velocity network": lambda t, x, f=vel_net, p=vel_params: f(p, t, x),
            "score network": lambda t, x, f=sco_net, p=sco_params: f(p, t, x),
        }
        if gmm is not None:
            fields["closed-form score"] = gmm.score
            fields["closed-form velocity"] = gmm.velocity
        res = measure(fields, sample_tgt, d, cfg, jax.random.fold_in(kt, 3))
        kq = jax.random.fold_in(kt, 4)
        res["velocity network"]["w2"] = quality(fields["velocity network"], sample_tgt, d, cfg, kq)
        res["score network"]["w2"] = quality(
            score_to_velocity(fields["score network"]), sample_tgt, d, cfg, kq, cfg.t_start
        )
        if gmm is not None:
            res["closed-form velocity"]["w2"] = quality(gmm.velocity, sample_tgt, d, cfg, kq)
        results[task] = res
    rows = []
    for task, res in results.items():
        for name, r in res.items():
            rows.append(
                [task, name]
                + [f"{a:.3g} / {lp:.3g}" for a, lp in zip(r["asymmetry"], r["loop"], strict=True)]
                + [f"{r['w2']:.3f}" if "w2" in r else "–"]
            )
    header = ["task", "field"] + [f"t = {t}: asym / loop" for t in TIMES] + ["W2 of samples"]
    text = (
        "# Non-conservativeness of learned fields\n\n"
        f"{cfg.steps} training steps (batch {cfg.batch_size}, Adam {cfg.lr}, EMA weights), MLP {cfg.hidden}. "
        f"asym = mean relative Jacobian asymmetry ‖J − Jᵀ‖_F/‖J‖_F (16 Hutchinson probes) over {cfg.n_points} path "
        f"points; loop = mean |∮f·dl| / ∮|f||dl| over circles of radius {cfg.radius} in random planes. W2: exact, "
        f"{cfg.n_samples} samples.\n\n" + markdown_table(header, rows)
    )
    atomic_write_bytes(out_dir / "table.md", text.encode())
    write_json(
        out_dir / "metrics.json", {"config": dataclasses.asdict(cfg), "versions": versions(), "results": results}
    )
    fig, axes = plt.subplots(1, len(results), figsize=(4.5 * len(results), 3.3), squeeze=False)
    for ax, (task, res) in zip(axes[0], results.items(), strict=True):
        for name, r in res.items():
            ax.semilogy(TIMES, np.maximum(r["asymmetry"], 1e-17), "o-", ms=3, label=name)
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("t")
        ax.set_ylabel("‖J − Jᵀ‖_F / ‖J‖_F")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out_dir / "asymmetry.png", dpi=110)
    plt.close(fig)
    print(text)
    print(f"results written to {out_dir}/")
    return results


def claims(results: dict, cfg) -> list:
    """Trained score and velocity networks are measurably non-conservative; closed-form fields are not."""
    from experiments.common import Claim

    out = []
    for task, fields in results.items():
        learned = {k: v for k, v in fields.items() if "network" in k}
        exact = {k: v for k, v in fields.items() if "closed-form" in k}
        lo = min(float(np.min(v["asymmetry"])) for v in learned.values())
        hi_exact = max((float(np.max(v["asymmetry"])) for v in exact.values()), default=0.0)
        out.append(
            Claim(
                f"{task}: learned fields are non-conservative (Jacobian asymmetry well above the closed form's)",
                None,
                {"min learned": round(lo, 4), "max closed form": f"{hi_exact:.1e}"},
                lo > 100 * max(hi_exact, 1e-9),
            )
        )
    return out


run = study("conservativeness", quick=quick_config)(_run_study)


CONFIG = ConservativenessConfig


def main() -> None:
    run(tyro.cli(ConservativenessConfig))


if __name__ == "__main__":
    main()
