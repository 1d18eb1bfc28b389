"""The k-rectified-flow pipeline: a killed run resumes without repeating or losing work, and reflow straightens."""

import jax
import numpy as np
import optax
import pytest

import jaxflow as jf


class Killed(Exception):
    pass


def moons(k, n):
    return jf.data.get_sampler("moons")(k, n)


def normal(k, n):
    return jax.random.normal(k, (n, 2))


class Counting(jf.train.RectifiedFlow):
    """Counts the steps it runs and the pairs it generates; with `kill_at=(round, calls)` raises mid-round."""

    def __init__(self, *args, kill_at=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.kill_at = kill_at
        self.ran = {}
        self.generated = 0
        self._round = 0

    def loss(self, round_k):
        self._round = round_k
        return super().loss(round_k)

    def make_step(self, loss, data_fn):
        step = super().make_step(loss, data_fn)
        k = self._round
        calls = [0]

        def counted(state, batches, n):
            if self.kill_at == (k, calls[0]):
                raise Killed
            calls[0] += 1
            self.ran[k] = self.ran.get(k, 0) + n
            return step(state, batches, n)

        return counted

    def generate_pairs(self, key, params):
        self.generated += 1
        return super().generate_pairs(key, params)


def pipeline(**kw):
    model = jf.nn.MLPVelocity(out_dim=2, hidden=(32, 32))
    return Counting(
        jf.nn.velocity_fn(model),
        lambda k: jf.nn.init_mlp(k, model, 2),
        optax.adam(1e-2),
        normal,
        moons,
        batch_size=128,
        steps=60,
        num_pairs=512,
        solver="euler",
        solver_steps=8,
        steps_per_call=20,
        progress=False,
        **kw,
    )


def test_killed_pipeline_resumes_without_repeating_work(tmp_path):
    key = jax.random.key(0)
    ref = pipeline().run(key, 3, tmp_path / "ref")
    killed = pipeline(kill_at=(3, 2))
    with pytest.raises(Killed):
        killed.run(key, 3, tmp_path / "run")
    assert killed.ran == {1: 60, 2: 60, 3: 40} and killed.generated == 2
    resumed = pipeline()
    out = resumed.run(key, 3, tmp_path / "run")
    # rounds 1-2 restored (no step, no new pairs), round 3 runs only its last 20 steps
    assert resumed.ran == {3: 20} and resumed.generated == 0
    for a, b in zip(ref, out):
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


def test_pairs_drawn_with_another_key_are_refused(tmp_path):
    p = pipeline()
    p.steps = 20
    p.run(jax.random.key(0), 2, tmp_path)
    other = pipeline()
    other.steps = 20
    with pytest.raises(ValueError, match="key"):  # the run's key is part of each round's stored configuration
        other.run(jax.random.key(1), 2, tmp_path)
    # pairs on disk are checked against their key too (here: round 1's checkpoints gone, pairs kept)
    import shutil

    shutil.rmtree(tmp_path / "round1")
    with pytest.raises(ValueError, match="another key"):
        other.run(jax.random.key(1), 2, tmp_path)


@pytest.mark.slow  # the few-step study measures this on every problem; the fast suite keeps the resume checks
def test_reflow_straightens_the_flow():
    """Straightness S of 2-RF is below 1-RF's (Liu et al. 2023), measured on the same noise."""
    p = pipeline()
    p.steps, p.num_pairs, p.solver_steps, p.steps_per_call = 600, 2048, 16, 200
    params = p.run(jax.random.key(1), 2)
    x0 = normal(jax.random.key(2), 512)
    s = []
    for prm in params:
        field = lambda t, x, prm=prm: p.velocity(prm, t, x)  # noqa: E731
        out = jf.sample(field, x0, solver="rk4", steps=32, save_trajectory=33)
        s.append(float(jf.metrics.straightness(field, out.trajectory, out.ts)))
    assert s[1] < 0.5 * s[0]
