"""The image studies run end to end on tiny configurations."""

import json
import pickle

import jax
import numpy as np
import pytest

from experiments import cifar10, digits


@pytest.mark.slow
def test_digits_tiny(tmp_path):
    cfg = digits.DigitsConfig(
        models=("fm_cond", "vp"),
        channels=8,
        steps=10,
        chunk=5,
        guidance_scales=(0.0, 1.0),
        ode_steps=3,
        sde_steps=6,
        vp_steps=(15, 20),  # the continued VP run, kept short (the default continues to 24,000 steps)
        eval_draws=1,
        seeds=1,
        out_dir=str(tmp_path),
        progress=False,
    )
    digits.STUDY.execute(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    res = metrics["data"]
    per = res["results"]["fm_cond"]["per_scale"]
    assert metrics["measurements"]["accuracy/fm_cond/w=1"] == [np.mean(per["1"]["accuracy"])]
    for name in ("table.md", "metrics.json", "samples.png", "guidance.png", "loss.png"):
        assert (tmp_path / name).exists()
    assert res["classifier_accuracy"] >= 0.97  # DigitsMetric refuses a weaker classifier
    # the evaluation separates data from noise by a wide margin (held-out halves against uniform noise images)
    assert res["fd_real_halves"] < 0.05 * res["fd_uniform_noise"]
    # every reported Fréchet distance is a finite, non-negative number
    per = res["results"]["fm_cond"]["per_scale"]
    values = [v for p in per.values() for v in np.ravel(p["fd"])] + list(np.ravel(res["results"]["vp"]["fd_sde"]))
    assert all(np.isfinite(v) and v >= 0 for v in values)
    # the continued VP run is scored at every budget, by both samplers
    for budget in (15, 20):
        for k in ("fd_sde", "fd_ode_adaptive"):
            (v,) = metrics["measurements"][f"{k}/vp@{budget}"]
            assert np.isfinite(v) and v >= 0


def _cifar_folder(path):
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(path / name, "wb") as f:
            pickle.dump(
                {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, 4))}, f
            )


def test_cifar10_refuses_cpu_and_has_the_published_size(tmp_path):
    _cifar_folder(tmp_path)
    if jax.default_backend() == "cpu":
        with pytest.raises(ValueError, match="--allow-cpu.*GPU"):
            cifar10.STUDY.execute(cifar10.CifarConfig(data_dir=str(tmp_path), out_dir=str(tmp_path / "out")))
        assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="--data-dir"):
        cifar10.STUDY.execute(cifar10.CifarConfig(data_dir=str(tmp_path / "nowhere"), allow_cpu=True))
    # the full recipe's network has the published size (about 36M parameters)
    full = jax.eval_shape(lambda: cifar10.jf.nn.init_unet(jax.random.key(0), cifar10.jf.nn.UNet.cifar10(), (32, 32, 3)))
    n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(full))
    assert 30e6 < n < 40e6


@pytest.mark.slow
def test_cifar10_tiny_run(tmp_path):
    _cifar_folder(tmp_path)
    cfg = cifar10.CifarConfig(
        data_dir=str(tmp_path),
        steps=4,
        batch_size=4,
        warmup=2,
        steps_per_call=2,
        checkpoint_every=2,
        n_samples=4,
        out_dir=str(tmp_path / "out"),
        allow_cpu=True,
        tiny=True,
        progress=False,
    )
    cifar10.STUDY.execute(cfg)
    res = json.loads((tmp_path / "out" / "metrics.json").read_text())["data"]
    assert (tmp_path / "out" / "samples.png").exists() and np.isfinite(res["final_loss"])
    # a restart resumes from the final checkpoint: nothing is trained again, the metrics log has each step once
    cifar10.STUDY.execute(cfg)
    lines = (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in lines]
    assert steps == sorted(set(steps)) and steps[-1] == 4
