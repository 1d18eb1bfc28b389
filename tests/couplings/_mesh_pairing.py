"""Exact pairing under a 4-device mesh (run in a subprocess: the device count is fixed by XLA_FLAGS at start-up).

Prints one JSON line: for each solver, the shards' inputs and the pairs each device returned inside `shard_map`, and
the per-step losses of a short training run with the coupling in the loss under the mesh and on one device with the
same four shards (`split=4`).
"""

import json
import sys

import jax
import numpy as np
import optax
from jax.sharding import PartitionSpec as P

import jaxflow as jf
from jaxflow.couplings import ExactOTCoupling
from jaxflow.nn import MLPVelocity, init_mlp, velocity_fn
from jaxflow.train import TrainState, data_mesh, make_train_step, replicated


def main(solver: str) -> dict:
    mesh = data_mesh()
    assert mesh.shape["data"] == 4, mesh.shape
    coupling = ExactOTCoupling(mode="permutation", solver=solver)
    k0, k1, kc = jax.random.split(jax.random.key(0), 3)
    x0 = jax.random.normal(k0, (128, 2))
    x1 = jf.data.sample_toy(k1, "moons", 128)

    def local(a, b, k):
        pairing = coupling(jax.random.fold_in(k, jax.lax.axis_index("data")), a, b)
        return pairing.x0, pairing.x1

    paired = jax.jit(
        jax.shard_map(local, mesh=mesh, in_specs=(P("data"), P("data"), P()), out_specs=(P("data"), P("data")))
    )(x0, x1, kc)

    model = MLPVelocity(out_dim=2, hidden=(16, 16))
    loss = jf.losses.cfm_loss(velocity_fn(model), coupling=coupling)
    opt = optax.adam(1e-3)

    def data_fn(k):
        ka, kb = jax.random.split(k)
        return {"x0": jax.random.normal(ka, (64, 2)), "x1": jf.data.sample_toy(kb, "moons", 64)}

    state = TrainState.create(jax.random.key(2), init_mlp(jax.random.key(1), model, 2), opt)
    _, on_mesh = make_train_step(loss, opt, data_fn=data_fn, mesh=mesh)(
        jax.device_put(state, replicated(mesh)), None, 5
    )
    _, one = make_train_step(loss, opt, data_fn=data_fn, split=4)(state, None, 5)
    return {
        "x0": np.asarray(x0).tolist(),
        "x1": np.asarray(x1).tolist(),
        "p0": np.asarray(paired[0]).tolist(),
        "p1": np.asarray(paired[1]).tolist(),
        "loss_mesh": np.asarray(on_mesh["loss"]).tolist(),
        "loss_split": np.asarray(one["loss"]).tolist(),
    }


if __name__ == "__main__":
    print(json.dumps({s: main(s) for s in sys.argv[1:]}))
