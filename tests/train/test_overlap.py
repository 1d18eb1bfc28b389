"""Pairing the next chunk while this one trains changes the schedule, not the training."""

import jax
import numpy as np
import optax
import pytest

import jaxflow as jf
from jaxflow.couplings import ExactOTCoupling
from jaxflow.train import TrainState, fit, make_train_step
from jaxflow.train.step import OverlappedStep


def setup(sweep=False):
    model = jf.nn.MLPVelocity(out_dim=2, hidden=(16, 16))
    loss = jf.losses.cfm_loss(jf.nn.velocity_fn(model), coupling=ExactOTCoupling())
    opt = optax.adam(1e-2)

    def data_fn(k):
        k0, k1 = jax.random.split(k)
        return {"x0": jf.data.sample_toy(k0, "8gaussians", 64), "x1": jf.data.sample_toy(k1, "moons", 64)}

    def init(k):
        return TrainState.create(jax.random.fold_in(k, 1), jf.nn.init_mlp(k, model, 2), opt)

    state = jax.vmap(init)(jax.random.split(jax.random.key(0), 2)) if sweep else init(jax.random.key(0))
    return loss, opt, data_fn, state


@pytest.mark.parametrize("sweep", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_overlapped_training_equals_the_plain_one(sweep):
    loss, opt, data_fn, state = setup(sweep)
    over = make_train_step(loss, opt, data_fn=data_fn, sweep=sweep, overlap=True)
    plain = make_train_step(loss, opt, data_fn=data_fn, sweep=sweep)  # CPU default: no overlap
    assert isinstance(over, OverlappedStep) and not isinstance(plain, OverlappedStep)
    a, _ = fit(state, over, 50, steps_per_call=20, progress=False)  # chunks 20, 20, 10: the last one is shorter
    b, _ = fit(state, plain, 50, steps_per_call=20, progress=False)
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_array_equal(x, y)
    assert over._next is None  # fit told it the length: nothing was paired past the end


def test_a_foreign_state_is_not_given_the_held_chunk():
    loss, opt, data_fn, state = setup()
    over = make_train_step(loss, opt, data_fn=data_fn, overlap=True)
    plain = make_train_step(loss, opt, data_fn=data_fn, overlap=False)
    s1, _ = over(state, None, 10)  # holds the chunk for step 10 of this key
    other = state.replace(key=jax.random.key_data(jax.random.key(5)))
    o1, _ = over(other, None, 10)  # another key at step 0: must draw its own
    p1, _ = plain(other, None, 10)
    for x, y in zip(jax.tree.leaves(o1.params), jax.tree.leaves(p1.params)):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="draws its own"):
        over(state, {"x1": None}, 10)
    over.lower(state, None, 10).compile()
