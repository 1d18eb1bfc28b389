"""Run `fit` with checkpoints in a subprocess (for the SIGKILL resume tests).

`python _fit_run.py RUN_DIR STEPS [KILL_MODE KILL_STEP]`: trains with checkpoints every 20 steps under RUN_DIR/ckpt
and metrics in RUN_DIR/logs, then writes RUN_DIR/final.npz and the number of steps this process executed to
RUN_DIR/executed.json. KILL_MODE makes the process SIGKILL itself at KILL_STEP:
- `checkpoint`: right after the checkpoint of KILL_STEP has started writing (orbax saves asynchronously);
- `log`: half-way through writing the metrics line of KILL_STEP (the bytes of the first half are on disk).
"""

import json
import os
import signal
import sys
from pathlib import Path

import jax
import numpy as np
import optax

import jaxflow as jf
import jaxflow.train.loop as loop
from jaxflow.nn import MLPVelocity, init_mlp, velocity_fn
from jaxflow.train import TrainState, fit, make_train_step


def build():
    mod = MLPVelocity(out_dim=2, hidden=(16, 16))
    loss = jf.losses.cfm_loss(velocity_fn(mod))
    opt = optax.adam(1e-3)

    def data_fn(k):
        k0, k1 = jax.random.split(k)
        return {"x0": jax.random.normal(k0, (32, 2)), "x1": jf.data.sample_toy(k1, "moons", 32)}

    state = TrainState.create(jax.random.key(1), init_mlp(jax.random.key(0), mod, 2), opt)
    return state, make_train_step(loss, opt, data_fn=data_fn)


def _kill():
    os.kill(os.getpid(), signal.SIGKILL)


def arm(mode: str, at: int) -> None:
    if mode == "checkpoint":
        save = loop.save_checkpoint

        def save_then_die(manager, step, state, config=None):
            save(manager, step, state, config)
            if step == at:
                _kill()

        loop.save_checkpoint = save_then_die
    elif mode == "log":
        write = loop.MetricsLog.write

        def torn_write(self, record):
            if record["step"] != at:
                return write(self, record)
            data = (json.dumps(record) + "\n").encode()
            with open(self.path, "ab") as f:
                f.write(data[: len(data) // 2])
                f.flush()
                os.fsync(f.fileno())
            _kill()

        loop.MetricsLog.write = torn_write
    else:
        raise ValueError(mode)


def main(run_dir: Path, steps: int) -> None:
    state, step = build()
    executed = []

    def counted(s, b, n):
        executed.append(n)
        return step(s, b, n)

    state, _ = fit(
        state,
        counted,
        steps,
        steps_per_call=10,
        checkpoint_dir=run_dir / "ckpt",
        checkpoint_every=20,
        log_dir=run_dir / "logs",
        progress=False,
    )
    np.savez(run_dir / "final.npz", *[np.asarray(a) for a in jax.tree.leaves(state.params)])
    (run_dir / "executed.json").write_text(json.dumps(sum(executed)))


if __name__ == "__main__":
    if len(sys.argv) > 3:
        arm(sys.argv[3], int(sys.argv[4]))
    main(Path(sys.argv[1]), int(sys.argv[2]))
