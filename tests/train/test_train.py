import json
import os
import subprocess
import sys
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxflow as jf
from jaxflow.nn import MLPVelocity, init_mlp, velocity_fn
from jaxflow.train import NonFiniteLossError, TrainState, checkpoint_manager, ema, fit, make_train_step, restore_latest

HERE = Path(__file__).parent


def _setup(data_fn=None, loss=None):
    mod = MLPVelocity(out_dim=2, hidden=(16, 16))
    loss = loss or jf.losses.cfm_loss(velocity_fn(mod))
    opt = optax.adam(1e-3)

    def default_data(k):
        k0, k1 = jax.random.split(k)
        return {"x0": jax.random.normal(k0, (32, 2)), "x1": 2.0 + jax.random.normal(k1, (32, 2))}

    state = TrainState.create(jax.random.key(1), init_mlp(jax.random.key(0), mod, 2), opt)
    return state, opt, loss, data_fn or default_data


def test_step_is_traced_once():
    state, opt, loss, data = _setup()
    # a loss is a module; chex counts the traces of a function, so wrap it in one (a plain function has no coupling
    # field: nothing is moved ahead)
    counted = chex.assert_max_traces(lambda params, batch, key: loss(params, batch, key), n=1)
    step = make_train_step(counted, opt, data_fn=data)
    for _ in range(3):
        state, m = step(state, None, 5)
    assert int(state.step) == 15 and m["loss"].shape == (5,)


def test_draw_ahead_gives_the_same_run():
    state, opt, loss, data = _setup()
    a, ma = make_train_step(loss, opt, data_fn=data)(state, None, 12)
    b, mb = make_train_step(loss, opt, data_fn=data, draw_ahead=True)(state, None, 12)
    np.testing.assert_allclose(ma["loss"], mb["loss"], rtol=1e-6)
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


def test_split_is_the_mean_over_shards():
    """A key-free mean loss: the mean of the shards' losses and gradients is the whole batch's, so the runs agree."""
    mod = MLPVelocity(out_dim=2, hidden=(16, 16))
    apply = velocity_fn(mod)

    def loss(params, batch, key):
        del key
        v = apply(params, batch["t"], batch["x0"])
        return jnp.mean(jnp.sum((v - batch["x1"]) ** 2, -1)), {"norm": jnp.mean(jnp.abs(v))}

    def data(k):
        k0, k1, k2 = jax.random.split(k, 3)
        t = jax.random.uniform(k0, (32,))
        return {"t": t, "x0": jax.random.normal(k1, (32, 2)), "x1": jax.random.normal(k2, (32, 2))}

    state, opt, _, _ = _setup()
    whole, mw = make_train_step(loss, opt, data_fn=data)(state, None, 15)
    parts, mp = make_train_step(loss, opt, data_fn=data, split=4)(state, None, 15)
    np.testing.assert_allclose(mw["loss"], mp["loss"], rtol=1e-5)
    np.testing.assert_allclose(mw["norm"], mp["norm"], rtol=1e-5)
    for x, y in zip(jax.tree.leaves(whole.params), jax.tree.leaves(parts.params)):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)


def test_split_shards_draw_their_own_keys():
    """Each shard's loss sees fold_in(key, shard): a loss that only reports its key's draw averages those draws."""

    def loss(params, batch, key):
        return jnp.sum(params["w"] ** 2) + 0.0 * batch["x"].sum(), {"u": jax.random.uniform(key)}

    opt = optax.sgd(0.1)
    state = TrainState.create(jax.random.key(3), {"w": jnp.ones(3)}, opt)
    _, m1 = make_train_step(loss, opt, data_fn=lambda k: {"x": jnp.zeros((8, 1))}, split=1)(state, None, 1)
    _, m4 = make_train_step(loss, opt, data_fn=lambda k: {"x": jnp.zeros((8, 1))}, split=4)(state, None, 1)
    # the same step key as split=1 reports (recomputed here the way the step derives it)
    k_loss = jax.random.split(jax.random.fold_in(jax.random.wrap_key_data(state.key), 0))[1]
    assert float(m1["u"][0]) == pytest.approx(float(jax.random.uniform(k_loss)))
    expected = np.mean([float(jax.random.uniform(jax.random.fold_in(k_loss, i))) for i in range(4)])
    assert float(m4["u"][0]) == pytest.approx(expected, rel=1e-6)


def test_split_rejects_bad_sizes():
    state, opt, loss, data = _setup()  # batch of 32
    with pytest.raises(ValueError, match="divisible by split=5"):
        make_train_step(loss, opt, data_fn=data, split=5)(state, None, 2)
    with pytest.raises(ValueError, match="positive"):
        make_train_step(loss, opt, data_fn=data, split=0)


def test_split_non_finite_step_keeps_the_last_good_state():
    state, opt, _, data = _setup()
    mod = MLPVelocity(out_dim=2, hidden=(16, 16))
    base = jf.losses.cfm_loss(velocity_fn(mod))

    def loss(params, batch, key):
        value, aux = base(params, batch, key)
        return jnp.where(batch["x0"][0, 0] > 2.5, jnp.nan, value), aux

    def bad_data(k):
        b = data(k)
        return {**b, "x0": b["x0"].at[0, 0].set(jnp.where(jax.random.uniform(k) < 0.3, 3.0, 0.0))}

    step = make_train_step(loss, opt, data_fn=bad_data, split=2)
    new, m = step(state, None, 10)
    bad = int(np.argmin(np.asarray(m["finite"])))
    assert not bool(m["finite"][bad]) and bool(np.all(m["finite"][:bad]))
    assert int(new.step) == int(np.sum(m["finite"]))
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(new.params))


def test_ema_pair_matches_recursion():
    e = ema(0.9)
    s = e.init({"w": jnp.array(0.0)})
    for v in (1.0, 2.0, 3.0):
        s = e.update({"w": jnp.array(v)}, s)
    expected = 0.0
    for v in (1.0, 2.0, 3.0):
        expected = 0.9 * expected + 0.1 * v
    assert float(s.params["w"]) == pytest.approx(expected)
    with pytest.raises(ValueError, match="decay"):
        ema(1.0)


def test_sweep_equals_separate_runs():
    state, opt, loss, data = _setup()
    states = jax.tree.map(lambda a: jnp.stack([a, a]), state)
    states = states.replace(key=jnp.stack([state.key, jax.random.key_data(jax.random.key(5))]))
    swept, _ = make_train_step(loss, opt, data_fn=data, sweep=True)(states, None, 20)
    single, _ = make_train_step(loss, opt, data_fn=data)(state.replace(key=states.key[1]), None, 20)
    for a, b in zip(jax.tree.leaves(swept.params), jax.tree.leaves(single.params)):
        np.testing.assert_allclose(a[1], b, rtol=1e-5, atol=1e-6)


def test_resume_equals_uninterrupted_run(tmp_path):
    state, opt, loss, data = _setup()
    step = make_train_step(loss, opt, data_fn=data)
    full, _ = fit(state, step, 120, steps_per_call=20, progress=False)
    ck, logs = tmp_path / "ck", tmp_path / "logs"
    # the "killed" run stopped after 60 steps, with checkpoints every 40 (the last at 40)
    fit(state, step, 60, steps_per_call=20, checkpoint_dir=ck, checkpoint_every=40, log_dir=logs, progress=False)
    mngr = checkpoint_manager(ck)
    assert mngr.latest_step() == 60  # a final checkpoint is written at the end of every fit
    mngr.close()
    executed = []

    def counted(s, b, n):
        executed.append(n)
        return step(s, b, n)

    resumed, records = fit(
        state, counted, 120, steps_per_call=20, checkpoint_dir=ck, checkpoint_every=40, log_dir=logs, progress=False
    )
    assert int(resumed.step) == 120
    assert sum(executed) == 60  # steps 61..120 only: the first 60 were not redone
    for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(resumed.params)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    steps = [r["step"] for r in records]
    assert steps == sorted(set(steps)) == list(range(20, 121, 20))
    assert (logs / "loss.png").exists()


def test_non_finite_loss_stops_at_the_named_step(tmp_path):
    state, opt, _, _ = _setup()
    mod = MLPVelocity(out_dim=2, hidden=(16, 16))
    base = jf.losses.cfm_loss(velocity_fn(mod))

    def loss(params, batch, key):
        value, aux = base(params, batch, key)
        return jnp.where(batch["bad"], jnp.nan, value), aux

    def batches_fn(step, n):
        idx = np.arange(step, step + n)
        k = jax.random.key(step)
        return {
            "x0": jax.random.normal(k, (n, 16, 2)),
            "x1": 1 + jax.random.normal(jax.random.fold_in(k, 1), (n, 16, 2)),
            "bad": jnp.asarray(idx >= 37),
        }

    step = make_train_step(loss, opt)
    with pytest.raises(NonFiniteLossError, match="step 37") as info:
        fit(
            state,
            step,
            100,
            steps_per_call=10,
            batches_fn=batches_fn,
            checkpoint_dir=tmp_path / "ck",
            checkpoint_every=10,
            progress=False,
        )
    assert info.value.step == 37
    mngr = checkpoint_manager(tmp_path / "ck")
    assert mngr.latest_step() == 30
    restored = restore_latest(mngr, state)
    mngr.close()
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(restored.params))


def _run(devices: int, mesh: bool, steps: int = 30, split: int | None = None, threads: int | None = None) -> dict:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    if threads is not None:
        env["TOY_CPU_THREADS"] = str(threads)
    extra = [] if split is None else [str(split)]
    out = subprocess.run(
        [sys.executable, str(HERE / "_toy_run.py"), str(steps), "mesh" if mesh else "single", *extra],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=300,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # in `make test-all`; tests/couplings' mesh test checks mesh = split training in the fast suite
def test_same_loss_curve_on_one_and_four_devices():
    """pmap-style (one shard per device, the default with a mesh) against one device running the same 4 shards."""
    one = _run(1, mesh=False, split=4)
    four = _run(4, mesh=True)
    assert four["devices"] == 4
    np.testing.assert_allclose(one["losses"], four["losses"], rtol=2e-4, atol=1e-6)
    assert one["psum"] == pytest.approx(four["psum"], rel=1e-4)
    # split=1 with a mesh: the loss sees the global batch and the compiler partitions it; same as no mesh
    whole = _run(1, mesh=False)
    partitioned = _run(4, mesh=True, split=1)
    np.testing.assert_allclose(whole["losses"], partitioned["losses"], rtol=2e-4, atol=1e-6)
    assert whole["psum"] == pytest.approx(partitioned["psum"], rel=1e-4)
    # sharded evaluation draws the same samples as one device (these two runs end with the same parameters to the
    # last bit; the split pair differs by ~2e-7, enough to change the adaptive solver's accepted steps, so the
    # evaluation there agrees only to the solver's tolerance)
    assert whole["eval"]["nfe"] == partitioned["eval"]["nfe"]
    assert whole["eval"]["w2"] == pytest.approx(partitioned["eval"]["w2"], rel=1e-4)
    assert one["eval"]["w2"] == pytest.approx(four["eval"]["w2"], rel=1e-2)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # in `make test-all`
def test_two_processes_train_like_one_process_with_four_devices():
    """jax.distributed on localhost: 2 processes x 2 CPU devices against 1 process x 4 devices."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    env.update(JAX_COORDINATOR_ADDRESS=f"localhost:{_free_port()}", JAX_NUM_PROCESSES="2")
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE / "_toy_run.py"), "30", "mesh"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(env, JAX_PROCESS_ID=str(i)),
        )
        for i in range(2)
    ]
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-2000:]
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    single = _run(4, mesh=True)
    for out in outs:
        assert out["processes"] == 2 and out["devices"] == 4
        np.testing.assert_allclose(out["losses"], single["losses"], rtol=2e-4, atol=1e-6)
        assert out["psum"] == pytest.approx(single["psum"], rel=1e-4)
        assert out["eval"]["w2"] == pytest.approx(single["eval"]["w2"], rel=1e-4)


@pytest.mark.parametrize("mode", ["checkpoint", pytest.param("log", marks=pytest.mark.slow)])
def test_sigkill_then_restart_equals_uninterrupted_run(tmp_path, mode):
    """SIGKILL lands while the checkpoint of step 60 is being written, or half-way through the log line of step 60.
    The restart resumes from the last complete checkpoint, executes only the steps after it, logs each step once
    and ends with the parameters of an uninterrupted run."""
    import signal

    sys.path.insert(0, str(HERE))
    from _fit_run import build

    state, step = build()
    full, _ = fit(state, step, 200, steps_per_call=10, progress=False)

    script = [sys.executable, str(HERE / "_fit_run.py"), str(tmp_path), "200"]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    killed = subprocess.run([*script, mode, "60"], env=env, capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (tmp_path / "final.npz").exists()
    if mode == "log":
        assert not (tmp_path / "logs" / "metrics.jsonl").read_text().endswith("\n")  # the line is torn
    # orbax finalises a checkpoint by renaming its folder to the step: the newest complete one when the kill landed
    # (40, or 20 when the asynchronous save of 40 had not finished either)
    complete = [int(p.name) for p in (tmp_path / "ckpt").iterdir() if p.name.isdigit()]
    assert 60 not in complete and max(complete) in (20, 40)
    subprocess.run(script, env=env, check=True, capture_output=True, timeout=300)
    assert json.loads((tmp_path / "executed.json").read_text()) == 200 - max(complete)
    final = np.load(tmp_path / "final.npz")
    for i, leaf in enumerate(jax.tree.leaves(full.params)):
        np.testing.assert_allclose(final[f"arr_{i}"], leaf, rtol=1e-6, atol=1e-7)
    steps = [json.loads(line)["step"] for line in (tmp_path / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(10, 201, 10))


@pytest.mark.slow  # in `make test-all`; the library pieces it composes have fast tests
def test_limit_cpu_threads_trains_the_same_and_checks_its_input():
    """One XLA worker changes the schedule, not the numbers: the same losses as the default pool."""
    default = _run(1, mesh=False)
    one = _run(1, mesh=False, threads=1)
    np.testing.assert_allclose(one["losses"], default["losses"], rtol=1e-5, atol=1e-7)
    assert one["psum"] == pytest.approx(default["psum"], rel=1e-5)
    if len(os.sched_getaffinity(0)) > 1:  # the pool was started smaller
        assert one["threads_at_start"] < default["threads_at_start"]
    with pytest.raises(ValueError, match="positive integer"):
        jf.train.limit_cpu_threads(0)
    jax.devices()  # this process's backend is running: too late to size its pool
    with pytest.raises(RuntimeError, match="before JAX starts"):
        jf.train.limit_cpu_threads(1)


def test_host_pairing_is_moved_ahead_automatically():
    """The README's form (exact coupling in the loss) trains exactly like the explicit pair-in-data, draw-ahead form,
    because the step factory moves the host-solved pairing into the data function by itself."""
    from jaxflow.couplings import ExactOTCoupling, IndependentCoupling, pair_in_data

    mod = MLPVelocity(out_dim=2, hidden=(16, 16))
    opt = optax.adam(1e-3)

    def data(k):
        k0, k1 = jax.random.split(k)
        return {"x0": jax.random.normal(k0, (32, 2)), "x1": 2.0 + jax.random.normal(k1, (32, 2))}

    state = TrainState.create(jax.random.key(1), init_mlp(jax.random.key(0), mod, 2), opt)
    readme = make_train_step(jf.losses.cfm_loss(velocity_fn(mod), coupling=ExactOTCoupling()), opt, data_fn=data)
    explicit = make_train_step(
        jf.losses.cfm_loss(velocity_fn(mod), coupling=IndependentCoupling()),
        opt,
        data_fn=pair_in_data(data, ExactOTCoupling()),
        draw_ahead=True,
    )
    in_loss = make_train_step(
        jf.losses.cfm_loss(velocity_fn(mod), coupling=ExactOTCoupling()), opt, data_fn=data, draw_ahead=False
    )
    a, ma = readme(state, None, 20)
    b, mb = explicit(state, None, 20)
    c, mc = in_loss(state, None, 20)
    np.testing.assert_allclose(ma["loss"], mb["loss"], rtol=1e-6)
    assert not np.allclose(ma["loss"], mc["loss"])  # the in-loss pairing draws from the loss key: another run
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


def test_a_users_objective_module_trains_with_its_pairing_moved_ahead():
    """A loss written by a user as an `Objective` module (its own regression, not the library's) with a host
    coupling as a field: the step factory reads the field, swaps it with eqx.tree_at and pairs ahead, which trains
    exactly like the explicit pair-in-data form; the user's module itself is left unchanged."""
    from collections.abc import Callable

    import equinox as eqx

    from jaxflow.couplings import Coupling, ExactOTCoupling, IndependentCoupling, pair_in_data

    class StraightLineLoss(jf.losses.Objective):
        """‖v(t, x_t) − (x1 − x0)‖² on the straight line, written from scratch"""

        velocity: Callable = eqx.field(static=True)
        coupling: Coupling

        def __call__(self, params, batch, key):
            k_pair, k_t = jax.random.split(key)
            pairing = self.coupling(k_pair, batch["x0"], batch["x1"])
            t = jax.random.uniform(k_t, (pairing.x0.shape[0],))
            xt = t[:, None] * pairing.x1 + (1 - t[:, None]) * pairing.x0
            value = jnp.mean((self.velocity(params, t, xt) - (pairing.x1 - pairing.x0)) ** 2)
            return value, {}

    mod = MLPVelocity(out_dim=2, hidden=(16, 16))
    opt = optax.adam(1e-3)

    def data(k):
        k0, k1 = jax.random.split(k)
        return {"x0": jax.random.normal(k0, (32, 2)), "x1": 2.0 + jax.random.normal(k1, (32, 2))}

    state = TrainState.create(jax.random.key(1), init_mlp(jax.random.key(0), mod, 2), opt)
    mine = StraightLineLoss(velocity_fn(mod), ExactOTCoupling())
    auto = make_train_step(mine, opt, data_fn=data)
    explicit = make_train_step(
        StraightLineLoss(velocity_fn(mod), IndependentCoupling()),
        opt,
        data_fn=pair_in_data(data, ExactOTCoupling()),
        draw_ahead=True,
    )
    in_loss = make_train_step(mine, opt, data_fn=data, draw_ahead=False)
    a, ma = auto(state, None, 15)
    b, mb = explicit(state, None, 15)
    c, mc = in_loss(state, None, 15)
    np.testing.assert_allclose(ma["loss"], mb["loss"], rtol=1e-6)
    assert not np.allclose(ma["loss"], mc["loss"])  # pairing from the loss key: another run
    assert isinstance(mine.coupling, ExactOTCoupling)
    swapped = jf.losses.with_coupling(mine, IndependentCoupling())
    assert isinstance(swapped.coupling, IndependentCoupling) and swapped.velocity is mine.velocity
