"""CIFAR-10 flow matching at GPU scale, following the published recipe (TorchCFM's CIFAR-10 setup).

UNet with 128 channels, multipliers (1, 2, 2, 2), 2 residual blocks per level, attention at 16×16; batch 128;
Adam 2e-4 with a 5,000-step linear warm-up; EMA 0.9999; gradient clipping 1.0; I-CFM (or OT-CFM with
`--coupling exact`) on the Cond-OT path; 400,000 steps. Training is data-parallel over every device
(`jaxflow.train.data_mesh`), checkpointed with orbax every `checkpoint_every` steps and resumed automatically.
At the end, `n_samples` EMA samples (dopri5) are written as a grid.

The data are read from a local folder of the standard python-pickle batches (no download):
`python -m experiments run cifar10 --data-dir /path/to/cifar-10-batches-py`. It declares no claims: jaxflow has no
Inception network to score FID without a download, so it reproduces the recipe and reports its loss and samples.
Without an accelerator the run refuses to start (it would take weeks on a CPU) unless `--allow-cpu` is given, which
is how the tests exercise it on a tiny file with a tiny network (`--tiny`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np
import optax

import jaxflow as jf
from experiments.common import StudyConfig, figure, markdown_table, positive_float, positive_int, require
from experiments.pipeline import Output, Study
from jaxflow.train import TrainState, data_mesh, fit, make_train_step


@dataclass(frozen=True)
class CifarConfig(StudyConfig):
    data_dir: str = "data/cifar-10-batches-py"
    steps: int = 400_000
    batch_size: int = 128
    learning_rate: float = 2e-4
    warmup: int = 5000
    ema_decay: float = 0.9999
    grad_clip: float = 1.0
    coupling: str = "independent"
    """independent (I-CFM) or exact (OT-CFM, minibatch exact OT)."""
    steps_per_call: int = 100
    checkpoint_every: int = 20_000
    n_samples: int = 64
    seed: int = 0
    out_dir: str = "results/cifar10"
    allow_cpu: bool = False
    tiny: bool = False
    """a 16-channel, one-level network (for tests and smoke runs only)."""
    progress: bool = True


def model_for(cfg: CifarConfig) -> jf.nn.UNet:
    if cfg.tiny:
        return jf.nn.UNet(out_channels=3, channels=16, channel_mult=(1,), num_res_blocks=1, groups=8)
    return jf.nn.UNet.cifar10()


def validate(cfg: CifarConfig) -> None:
    require(cfg.coupling in ("independent", "exact"), "coupling", cfg.coupling, "choose 'independent' or 'exact'")
    require(
        jax.default_backend() != "cpu" or cfg.allow_cpu,
        "allow_cpu",
        cfg.allow_cpu,
        "the recipe needs a GPU or TPU (400k steps of a 36M-parameter UNet); pass --allow-cpu to run anyway",
    )
    require(Path(cfg.data_dir).is_dir(), "data_dir", cfg.data_dir, "no such folder (CIFAR-10's python batches)")
    positive_int(cfg, "steps", "batch_size", "steps_per_call", "checkpoint_every", "n_samples")
    positive_float(cfg, "learning_rate", "grad_clip")
    require(cfg.warmup >= 0, "warmup", cfg.warmup, "must be ≥ 0")
    require(0 <= cfg.ema_decay < 1, "ema_decay", cfg.ema_decay, "must lie in [0, 1)")


def run(cfg: CifarConfig, key: jax.Array) -> Output:
    data = jf.data.load_cifar10(cfg.data_dir, "train")
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)  # the checkpoints and the metrics log live there while training
    mesh = data_mesh()
    jf.train.check_divisible(cfg.batch_size, mesh)
    unet = model_for(cfg)
    v = jf.nn.velocity_fn(unet)
    params = jf.nn.init_unet(jax.random.fold_in(key, 0), unet, (32, 32, 3))
    schedule = optax.linear_schedule(0.0, cfg.learning_rate, max(cfg.warmup, 1))
    optimizer = optax.chain(optax.clip_by_global_norm(cfg.grad_clip), optax.adam(schedule))
    coupling = jf.couplings.ExactOTCoupling() if cfg.coupling == "exact" else jf.couplings.IndependentCoupling()
    loss = jf.losses.cfm_loss(v, coupling=coupling)
    state = TrainState.create(jax.random.fold_in(key, 1), params, optimizer)
    step_fn = make_train_step(loss, optimizer, ema_decay=cfg.ema_decay, mesh=mesh)
    images = np.asarray(data.images)

    # epoch permutations derived from the step: a resumed run sees exactly the batches of an uninterrupted one
    batches = jf.train.Prefetch(
        jf.train.ArraySource(jax.random.fold_in(key, 10), {"x1": images}, cfg.batch_size, mesh=mesh)
    )

    state, records = fit(
        state,
        step_fn,
        cfg.steps,
        steps_per_call=min(cfg.steps_per_call, cfg.steps),
        batches_fn=batches,
        checkpoint_dir=(out_dir / "checkpoints").resolve(),
        checkpoint_every=cfg.checkpoint_every,
        log_dir=out_dir,
        progress=cfg.progress,
        desc="cifar10",
    )
    x0 = jax.random.normal(jax.random.fold_in(key, 2), (cfg.n_samples, 32, 32, 3))
    out = jf.sample(v, x0, params=state.ema_params, solver="dopri5")
    samples = np.asarray(jf.data.from_unit_range(out.x, 1.0))
    side = int(np.ceil(np.sqrt(cfg.n_samples)))
    fig = figure(figsize=(side, side))
    axes = np.atleast_1d(fig.subplots(side, side))
    for i, ax in enumerate(axes.ravel()):
        if i < cfg.n_samples:
            ax.imshow(samples[i])
        ax.axis("off")
    result = dict(
        devices=[str(d) for d in jax.devices()],
        final_loss=records[-1]["loss"] if records else None,
        sample_nfe=int(out.nfe),
        n_params=int(sum(x.size for x in jax.tree.leaves(params))),
    )
    table = "# CIFAR-10 flow matching (TorchCFM's recipe)\n\n" + markdown_table(
        ["coupling", "steps", "final loss", "sample NFE (dopri5)", "parameters", "devices"],
        [
            [
                cfg.coupling,
                cfg.steps,
                f"{result['final_loss']:.4f}" if result["final_loss"] is not None else "—",
                result["sample_nfe"],
                f"{result['n_params']:,}",
                len(result["devices"]),
            ]
        ],
    )
    measurements = {"final_loss": result["final_loss"] if result["final_loss"] is not None else float("nan")}
    return Output(measurements, table, {"samples": fig}, result)


STUDY = Study(
    "cifar10",
    config=CifarConfig,
    run=run,
    claims=(),
    validate=validate,
    description="CIFAR-10 flow matching at GPU scale (TorchCFM's recipe), from a local folder; no claims.",
)
main = STUDY.main


if __name__ == "__main__":
    main()
