"""The step factory: any loss `(params, batch, key) -> (loss, aux)` becomes a jitted multi-step program.

`steps` steps run inside one `lax.scan` per dispatch. Batches are either drawn on device inside the step by
`data_fn(key) -> batch` (no host round trip) or passed in stacked as [steps, B, ...]. A step whose loss or gradient
is not finite leaves the state untouched (so the state returned is the last good one) and is flagged in the metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from jax.sharding import PartitionSpec

from jaxflow._checks import check_count
from jaxflow.couplings.base import IndependentCoupling, pair_in_data
from jaxflow.losses.base import coupling_of, with_coupling
from jaxflow.train.sharding import DATA_AXIS, shard_batch
from jaxflow.train.state import EmaState, TrainState, ema


class NonFiniteLossError(FloatingPointError):
    """Raised when a training step produced a non-finite loss or gradient.

    Args:
        step: the step that produced it.
        value: the loss value.
    """

    def __init__(self, step: int, value: float):
        super().__init__(f"non-finite loss {value} at step {step}; training stopped, the state is the last good one")
        self.step = step
        self.value = value


def make_train_step(
    loss_fn: Callable,
    optimizer: optax.GradientTransformation,
    *,
    data_fn: Callable | None = None,
    ema_decay: float = 0.999,
    mesh: Any = None,
    sweep: bool = False,
    donate: bool = False,
    draw_ahead: bool | None = None,
    unroll: int | bool = 1,
    split: int | None = None,
    overlap: bool | None = None,
) -> Callable:
    """Return `run(state, batches, steps) -> (state, metrics)`, jitted with `steps` static.

    Composed from small pieces a fork can reuse or replace: `pair_ahead` (move a host pairing into the data
    function), `gradient_fn` (whole-batch or sharded gradients), `step_fn` (one update), `compile_step` (the chunk
    scan, sweep and overlap).

    Args:
        loss_fn: `loss(params, batch, key) -> (scalar, aux dict)`, any jaxflow loss or your own.
        optimizer: an optax `GradientTransformation`.
        data_fn: `data_fn(key) -> batch`, drawn on device inside the compiled chunk (then `batches` is None);
            without it, `run` takes stacked `batches` [steps, B, ...].
        ema_decay: decay of the exponential moving average of the parameters kept in `state.ema_params`.
        mesh: a `jax.sharding.Mesh` with a 'data' axis: shard the batch over it (the state stays replicated).
        sweep: vmap over a stacked TrainState (seeds or hyper-parameters trained in one compiled program).
        donate: donate the input state's buffers (saves memory on accelerators; the passed state is then unusable).
        draw_ahead: draw the whole chunk's batches with `vmap(data_fn)` before the scan instead of one per step
            (same batches; host pairing becomes one call per chunk). None: automatic (see below).
        unroll: passed to `lax.scan` (True compiles the chunk straight-line: faster conv gradients on CPU).
        split: data parallelism in the pmap style: the global batch is cut into `split` shards, each with its own
            loss key, and gradients are averaged (see below).
        overlap: draw and pair chunk k + 1 while chunk k trains (with `draw_ahead`). None: automatic.

    Returns:
        `run(state, batches, steps) -> (state, metrics)` with metrics {'loss': [steps], 'finite': [steps], ...aux}
        (a leading sweep axis when `sweep`).

    Details:
        mesh: shard the batch over the mesh's 'data' axis (state stays replicated).
        split: data parallelism in the pmap style. The global batch is cut into `split` equal shards; shard i's loss is
          evaluated with its own key `fold_in(k_loss, i)` and the gradients (and losses, aux) are averaged. With a mesh
          the shards are laid over the 'data' axis (default: one shard per device; `split` must be a multiple of the
          device count): each device differentiates its own shards and the averages travel as ONE flat buffer in one
          all-reduce per step. The result depends on `split`, not on the device count: one device with `split=8` trains
          exactly like eight devices. `split=1` (the default without a mesh): the loss sees the whole global batch (an
          OT pairing is then over the global batch); with a mesh the compiler partitions it and reduces every gradient
          leaf separately (XLA:CPU runs one rendezvous per leaf, ~4× slower on fake devices).
        sweep: vmap over a stacked TrainState (seeds or hyper-parameters trained in one compiled program).
        donate: donate the input state's buffers (saves memory on accelerators; the passed state is then unusable).
        draw_ahead: draw the whole chunk's batches with `vmap(data_fn)` before the scan instead of one per step. The
          batches are the same (same per-step keys); what changes is the schedule: host work in `data_fn` (an exact OT
          pairing through a callback, see `couplings.pair_in_data`) becomes one call for the chunk, solved in parallel.
          None (default): automatic. When the loss's coupling field solves on host threads (`pairs_on_host`, the exact
          network simplex), the loss is built with `data_fn` and pairs over the whole batch (`split=1`), the pairing is
          moved into the data function and the chunk is paired ahead in one call: the same objective with pairs drawn
          from the data key instead of the loss key, ×2-3 faster on a CPU. Pass False to keep it in the loss.
        overlap: with a drawn-ahead chunk (`draw_ahead`), draw and pair chunk k + 1 while chunk k trains: the chunk's
          batches come from a program of their own, dispatched asynchronously before the training program, so host
          pairing threads and XLA's training threads run at the same time. The batches are the same as without it (same
          per-step keys), so the training is identical. None (default): on when the pairing was moved ahead
          automatically (a host coupling) and the default backend is an accelerator (on a CPU the pairing threads and
          the training share the cores: measured ×0.92–0.98 of the serial schedule on 2 cores). The returned step then
          keeps one chunk of batches in hand; `fit` tells it the run's length so that no chunk past the end is paired.
        unroll: passed to `lax.scan`. On CPU, XLA runs the gradient of a convolution inside a while loop about 20×
          slower than outside one (a UNet training step on the 8×8 digits: 4.7 s in a scan, 0.22 s unrolled, jax 0.10.2;
          the forward pass alone is not affected); `unroll=True` compiles the chunk's steps straight-line (compile time
          grows with `steps`, so keep chunks short for conv nets).
    """
    n_dev = 1 if mesh is None else mesh.shape[DATA_AXIS]
    split = n_dev if split is None else int(split)
    if draw_ahead is None:
        loss_fn, data_fn, draw_ahead = pair_ahead(loss_fn, data_fn, split)
        if draw_ahead:
            # on an accelerator the host pairs while the device trains; on a CPU both share the same cores, and
            # overlapping measured ×0.92–0.98 of the serial schedule (2 cores, OT-CFM README form, make bench)
            overlap = jax.default_backend() != "cpu" if overlap is None else overlap
    if split < 1:
        raise ValueError(f"split must be a positive integer, got {split}")
    if mesh is not None and split > 1 and split % n_dev:
        raise ValueError(f"split={split} must be a multiple of the number of devices on the 'data' axis ({n_dev})")
    grad_fn = gradient_fn(loss_fn, split=split, mesh=mesh)
    one_step = step_fn(grad_fn, optimizer, ema_decay=ema_decay, data_fn=data_fn, mesh=mesh)
    return compile_step(
        one_step, data_fn, draw_ahead=draw_ahead, overlap=overlap, sweep=sweep, donate=donate, unroll=unroll
    )


def pair_ahead(loss_fn: Callable, data_fn: Callable | None, split: int) -> tuple[Callable, Callable | None, bool]:
    """Move a host-solved pairing out of the loss into the data function: `(loss, data_fn, moved)`.

    Applies when the loss is an `Objective` whose `coupling` field solves on host threads (`pairs_on_host`), the
    data function draws 'x0' and the loss sees the whole batch (`split == 1`): the loss gets `IndependentCoupling`
    (by `eqx.tree_at`) and the data function pairs with the coupling (`pair_in_data`), so a drawn-ahead chunk is
    paired in one call. Otherwise the loss and data function come back unchanged.
    """
    coupling = coupling_of(loss_fn)
    if coupling is None or data_fn is None or split != 1 or not coupling.pairs_on_host or not _draws_x0(data_fn):
        return loss_fn, data_fn, False
    return with_coupling(loss_fn, IndependentCoupling()), pair_in_data(data_fn, coupling), True


def gradient_fn(loss_fn: Callable, *, split: int = 1, mesh=None) -> Callable:
    """`grad_fn(params, batch, key) -> ((loss, aux), grads, finite)`: the loss's value and gradient, over the whole
    batch (`split == 1`, no mesh: one `value_and_grad`) or as the mean over `split` shards (pmap style; with a mesh
    the shards are laid over the 'data' axis and the averages travel as one flat all-reduce)."""
    value_and_grad = jax.value_and_grad(loss_fn, has_aux=True)
    if split == 1:

        def whole(params, batch, key):
            (loss, aux), grads = value_and_grad(params, batch, key)
            return (loss, aux), grads, jnp.isfinite(loss) & jnp.isfinite(optax.global_norm(grads))

        return whole
    n_dev = 1 if mesh is None else mesh.shape[DATA_AXIS]
    per_dev = split // n_dev

    def local(params, batch, key):
        first = 0 if mesh is None else jax.lax.axis_index(DATA_AXIS) * per_dev
        shards = jax.tree.map(lambda x: x.reshape(per_dev, x.shape[0] // per_dev, *x.shape[1:]), batch)
        keys = jax.vmap(lambda i: jax.random.fold_in(key, first + i))(jnp.arange(per_dev))
        (loss, aux), grads = jax.vmap(value_and_grad, in_axes=(None, 0, 0))(params, shards, keys)
        flat, unravel = ravel_pytree(jax.tree.map(lambda x: jnp.mean(x, axis=0), (grads, loss, aux)))
        if mesh is not None:
            flat = jax.lax.pmean(flat, DATA_AXIS)  # the step's only collective
        grads, loss, aux = unravel(flat)
        # ravel_pytree lays the leaves out in order: the gradients and the loss come before the aux
        n_checked = sum(x.size for x in jax.tree.leaves(grads)) + 1
        return (loss, aux), grads, jnp.all(jnp.isfinite(flat[:n_checked]))

    def sharded(params, batch, key):
        for x in jax.tree.leaves(batch):
            if x.shape[0] % split:
                raise ValueError(f"global batch size {x.shape[0]} must be divisible by split={split}")
        if mesh is None:
            return local(params, batch, key)
        # no automatic psum in the transpose (check_vma=False): the gradients are reduced by hand, once, flat
        return jax.shard_map(
            local,
            mesh=mesh,
            in_specs=(PartitionSpec(), PartitionSpec(DATA_AXIS), PartitionSpec()),
            out_specs=(PartitionSpec(), PartitionSpec(), PartitionSpec()),
            check_vma=False,
        )(params, batch, key)

    return sharded


def step_keys(state: TrainState, step) -> jax.Array:
    """The (data, loss) keys of global step `step`: a function of the run's key and the step only."""
    return jax.random.split(jax.random.fold_in(jax.random.wrap_key_data(state.key), step))


def step_fn(grad_fn: Callable, optimizer, *, ema_decay: float, data_fn: Callable | None, mesh=None) -> Callable:
    """`one_step(state, batch, draw) -> (state, metrics)`: one optimizer and EMA update; a step whose loss or gradient
    is not finite leaves the state untouched. `draw`: the batch is drawn here by `data_fn` from the step's key."""
    ema_update = ema(ema_decay).update

    def one_step(state: TrainState, batch, draw: bool):
        k_data, k_loss = step_keys(state, state.step)
        if draw:
            batch = data_fn(k_data)
        if mesh is not None:
            batch = shard_batch(batch, mesh)
        (loss, aux), grads, finite = grad_fn(state.params, batch, k_loss)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema_params = ema_update(params, EmaState(state.ema_params)).params
        new = state.replace(step=state.step + 1, params=params, opt_state=opt_state, ema_params=ema_params)
        new = jax.lax.cond(finite, lambda: new, lambda: state)
        return new, {**aux, "loss": loss, "finite": finite}

    return one_step


def compile_step(
    one_step: Callable,
    data_fn: Callable | None,
    *,
    draw_ahead: bool,
    overlap: bool | None,
    sweep: bool,
    donate: bool,
    unroll: int | bool,
) -> Callable:
    """Scan `one_step` over a chunk and jit it (`steps` static); vmap over a stacked state when `sweep`; with a
    drawn-ahead chunk and `overlap`, an `OverlappedStep` that draws the next chunk while this one trains."""

    def draw_chunk(state, steps):
        offsets = state.step + jnp.arange(steps)
        return jax.vmap(lambda s: data_fn(step_keys(state, s)[0]))(offsets)

    draw_one = draw_chunk  # the single-state draw, bound now: the sweep below rebinds `draw_chunk`

    def run(state, batches, steps):
        _check_steps(steps)
        draw = data_fn is not None
        if draw and draw_ahead:
            batches = draw_one(state, steps)
            draw = False
        return jax.lax.scan(lambda s, b: one_step(s, b, draw), state, batches, length=steps, unroll=unroll)

    def train_chunk(state, batches, steps):
        _check_steps(steps)
        return jax.lax.scan(lambda s, b: one_step(s, b, False), state, batches, length=steps, unroll=unroll)

    if sweep:
        run, draw_chunk, train_chunk = _swept(run, draw_chunk, train_chunk)
    donate_args = 0 if donate else ()
    if overlap and draw_ahead and data_fn is not None:
        return OverlappedStep(
            jax.jit(draw_chunk, static_argnums=1), jax.jit(train_chunk, static_argnums=2, donate_argnums=donate_args)
        )
    return jax.jit(run, static_argnums=2, donate_argnums=donate_args)


def _check_steps(steps) -> None:
    check_count(steps, "steps (the chunk length)")


def _swept(run_one, draw_one, train_one):
    """The three chunk programs vmapped over a stacked TrainState (the batches of `run` are shared)."""

    def run(state, batches, steps):
        return jax.vmap(lambda s: run_one(s, batches, steps))(state)

    def draw_chunk(state, steps):
        return jax.vmap(lambda s: draw_one(s, steps))(state)

    def train_chunk(state, batches, steps):
        return jax.vmap(lambda s, b: train_one(s, b, steps))(state, batches)

    return run, draw_chunk, train_chunk


class OverlappedStep:
    """`run(state, None, steps)` that pairs the next chunk while this one trains (see `make_train_step(overlap=)`).

    The next chunk's batches depend only on the state's key and step counter, so they are drawn from
    `state.replace(step=step + steps)` before the current chunk's training is dispatched; JAX's asynchronous dispatch
    runs both programs at once. A call whose state does not match the chunk in hand (another key or step, another
    chunk length) draws its own.
    """

    def __init__(self, draw, train):
        self.draw, self.train = draw, train
        self.total: int | None = None  # set by `fit`: no chunk past the end is drawn
        self._next = None  # (signature, batches)

    @staticmethod
    def _signature(step, key, steps):
        return (steps, np.asarray(step).tobytes(), np.asarray(key).tobytes())

    def __call__(self, state, batches, steps):
        if batches is not None:
            raise ValueError("this step draws its own batches (data_fn); pass batches=None")
        step, key = (np.asarray(a) for a in jax.device_get((state.step, state.key)))
        held, self._next = self._next, None
        mine = held is not None and held[0] == self._signature(step, key, steps)
        batches = held[1] if mine else self.draw(state, steps)
        start = int(step.max())
        nxt = steps if self.total is None else min(steps, self.total - start - steps)
        if nxt > 0:
            ahead = state.replace(step=state.step + steps)
            self._next = (self._signature((step + steps).astype(step.dtype), key, nxt), self.draw(ahead, nxt))
        return self.train(state, batches, steps)

    def lower(self, state, batches, steps):
        """Compile both programs ahead (`.lower(...).compile()`, as for a jitted step)."""
        shapes = jax.eval_shape(self.draw, state, steps)
        return _Lowered([self.draw.lower(state, steps), self.train.lower(state, shapes, steps)])


class _Lowered:
    def __init__(self, parts):
        self.parts = parts

    def compile(self):
        return [p.compile() for p in self.parts]


def _draws_x0(data_fn) -> bool:
    """Whether `data_fn(key)` returns a batch with 'x0' (checked abstractly: nothing is computed)."""
    try:
        batch = jax.eval_shape(data_fn, jax.random.key(0))
    except Exception:  # noqa: BLE001 - a data function that cannot be traced alone: leave the pairing in the loss
        return False
    return isinstance(batch, dict) and "x0" in batch


def first_non_finite(metrics, start_step: int):
    """(step, value) of the first non-finite step in a chunk's metrics, or None."""
    finite = jax.device_get(metrics["finite"])
    if finite.all():
        return None
    import numpy as np

    finite = np.asarray(finite)
    losses = np.asarray(jax.device_get(metrics["loss"]))
    # with a sweep axis, a step is bad if any member is bad
    flat_finite = finite.reshape(-1, finite.shape[-1]).all(axis=0)
    idx = int(np.argmin(flat_finite))
    return start_step + idx, float(losses.reshape(-1, losses.shape[-1])[:, idx][0])
