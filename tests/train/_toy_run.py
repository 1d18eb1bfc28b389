"""Train a small model with the library loop; used by the tests in subprocesses (device count set by XLA_FLAGS).

Prints the JSON list of per-step losses and the sum of the final parameters.
"""

import json
import sys

import jax
import jax.numpy as jnp
import optax

import jaxflow as jf
from jaxflow.nn import MLPVelocity, init_mlp, velocity_fn
from jaxflow.train import TrainState, data_mesh, make_train_step, replicated


def main(steps: int, use_mesh: bool):
    mod = MLPVelocity(out_dim=2, hidden=(32, 32))
    loss = jf.losses.cfm_loss(velocity_fn(mod))
    opt = optax.adam(1e-3)

    def data_fn(k):
        k0, k1 = jax.random.split(k)
        return {"x0": jax.random.normal(k0, (64, 2)), "x1": jf.data.sample("moons", k1, 64)}

    mesh = data_mesh() if use_mesh else None
    state = TrainState.create(init_mlp(jax.random.key(0), mod, 2), opt, jax.random.key(1))
    if mesh is not None:
        state = jax.device_put(state, replicated(mesh))
    step = make_train_step(loss, opt, data_fn=data_fn, mesh=mesh)
    state, metrics = step(state, None, steps)
    total = float(sum(jnp.sum(p) for p in jax.tree.leaves(state.params)))
    print(json.dumps({"devices": jax.device_count(), "losses": [float(v) for v in metrics["loss"]], "psum": total}))


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2] == "mesh")
