"""Run `fit` with checkpoints in a subprocess (for the SIGKILL resume test).

`python _fit_run.py RUN_DIR STEPS SLEEP_PER_CHUNK`: trains with checkpoints every 20 steps under RUN_DIR/ckpt and
metrics in RUN_DIR/logs, sleeping between chunks so that a test can kill it part way; writes RUN_DIR/final.npz.
"""

import sys
import time
from pathlib import Path

import jax
import numpy as np
import optax

import jaxflow as jf
from jaxflow.nn import MLPVelocity, init_mlp, velocity_fn
from jaxflow.train import TrainState, fit, make_train_step


def build():
    mod = MLPVelocity(out_dim=2, hidden=(16, 16))
    loss = jf.losses.cfm_loss(velocity_fn(mod))
    opt = optax.adam(1e-3)

    def data_fn(k):
        k0, k1 = jax.random.split(k)
        return {"x0": jax.random.normal(k0, (32, 2)), "x1": jf.data.sample("moons", k1, 32)}

    state = TrainState.create(init_mlp(jax.random.key(0), mod, 2), opt, jax.random.key(1))
    return state, make_train_step(loss, opt, data_fn=data_fn)


def main(run_dir: Path, steps: int, pause: float) -> None:
    state, step = build()

    def slow_step(s, b, n):
        time.sleep(pause)
        return step(s, b, n)

    state, _ = fit(
        state,
        slow_step,
        steps,
        steps_per_call=10,
        checkpoint_dir=run_dir / "ckpt",
        checkpoint_every=20,
        log_dir=run_dir / "logs",
        progress=False,
    )
    np.savez(run_dir / "final.npz", *[np.asarray(a) for a in jax.tree.leaves(state.params)])


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
