"""Guards on the wave-2 entry points: each bad input below used to run (or clip) silently; now it is refused with a
message naming the argument."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxflow as jf


def test_pfgmpp_perturb_takes_numpy_integers_and_refuses_bad_input():
    key, y = jax.random.key(0), jnp.ones((4, 3))
    a = jf.paths.pfgmpp_perturb(key, y, 1.0, np.int64(128))
    b = jf.paths.pfgmpp_perturb(key, y, 1.0, 128)
    np.testing.assert_array_equal(a, b)  # the same draw as a Python int
    for bad in (0, -3, float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="D must be"):
            jf.paths.pfgmpp_perturb(key, y, 1.0, bad)
    with pytest.raises(ValueError, match="non-finite"):
        jf.paths.pfgmpp_perturb(key, y.at[0, 0].set(jnp.nan), 1.0, 16)
    with pytest.raises(ValueError, match="empty"):
        jf.paths.pfgmpp_perturb(key, jnp.ones((0, 3)), 1.0, 16)


def test_kinetic_optimal_scheduler_refuses_a_separation_curve_outside_zero_one():
    s = np.linspace(0.0, 5.0, 20)
    lam = s**2 / (1 + s**2)
    jf.paths.KineticOptimalScheduler.from_separation(s, lam)  # a valid curve
    with pytest.raises(ValueError, match="lam must lie in"):
        jf.paths.KineticOptimalScheduler.from_separation(s, 1.4 * lam)


def test_auction_refuses_a_non_positive_epsilon():
    cost = jax.random.uniform(jax.random.key(0), (5, 5))
    for bad in (-0.1, 0.0, float("nan")):
        with pytest.raises(ValueError, match="epsilon_final"):
            jf.ot.auction_assignment(cost, epsilon_final=bad)
    out = jf.ot.auction_assignment(cost, epsilon_final=1e-4)
    assert bool(out.converged)


def test_flowopt_refuses_zero_patience_and_proximity():
    y = jnp.zeros((2, 3))
    for kw in ({"patience": 0}, {"proximity": 0}, {"patience": -1}):
        with pytest.raises(ValueError, match=next(iter(kw))):
            jf.sampling.flowopt(lambda z: z, y, y, **kw)


def test_oftsr_refuses_non_finite_or_empty_starts_eagerly_and_under_jit():
    v = lambda p, t, x, c=None: -x  # noqa: E731
    loss = jf.losses.oftsr_loss(v, v, None)
    good = jnp.ones((4, 2))
    assert np.isfinite(float(loss(None, {"x0": good}, jax.random.key(0))[0]))
    with pytest.raises(ValueError, match="x0'\\] contains non-finite"):
        loss(None, {"x0": good.at[1, 0].set(jnp.nan)}, jax.random.key(0))
    with pytest.raises(ValueError, match="empty"):
        loss(None, {"x0": jnp.ones((0, 2))}, jax.random.key(0))
    with pytest.raises(ValueError, match="floating"):
        loss(None, {"x0": jnp.ones((4, 2), jnp.int32)}, jax.random.key(0))
    compiled = jax.jit(lambda x: loss(None, {"x0": x}, jax.random.key(0))[0])
    _raises_under_jit(compiled, good.at[0, 1].set(jnp.inf), match="non-finite")


def test_inversion_refuses_non_positive_tolerances():
    with pytest.raises(ValueError, match="rtol"):
        jf.sampling.invert_ode(lambda t, x: -x, jnp.ones((2, 2)), rtol=-1e-5)
    with pytest.raises(ValueError, match="atol"):
        jf.sample(lambda t, x: -x, jnp.ones((2, 2)), solver=jf.sampling.RK4(), atol=0.0)


def _raises_under_jit(fn, *args, match):
    with pytest.raises(Exception, match=match):  # equinox's run-time error, raised when the program runs
        jax.block_until_ready(fn(*args))


def test_value_checks_hold_under_jit_and_vmap():
    """t outside [0, 1] and non-finite inputs are refused inside compiled programs too (they passed silently)."""
    path = jf.paths.cond_ot_path()
    x0, x1 = jnp.zeros((3, 2)), jnp.ones((3, 2))
    sample = jax.jit(lambda t: path.sample(None, x0, x1, t).xt)
    np.testing.assert_allclose(sample(jnp.array(0.5)), 0.5)
    _raises_under_jit(sample, jnp.array(1.3), match=r"t must lie in \[0, 1\]")
    loss = jf.losses.cfm_loss(lambda p, t, x, c: x)
    per_row = jax.jit(jax.vmap(lambda x: loss(None, {"x1": x[None]}, jax.random.key(0))[0]))
    assert np.all(np.isfinite(per_row(jnp.ones((2, 2)))))
    _raises_under_jit(per_row, jnp.array([[0.0, jnp.nan], [1.0, 1.0]]), match="x1 contains non-finite")
    sw = jax.jit(lambda x: jf.ot.sliced_wasserstein(jax.random.key(0), x, jnp.ones((5, 2)), 8).distance)
    _raises_under_jit(sw, jnp.ones((5, 2)).at[2, 1].set(jnp.inf), match="non-finite")


def test_the_compiled_checks_are_what_catches_it(monkeypatch):
    """With the mechanism switched off the same jitted call extrapolates t = 1.3 silently (the old behaviour)."""
    import jaxflow._checks as checks

    monkeypatch.setattr(checks, "TRACED_CHECKS", False)
    path = jf.paths.cond_ot_path()
    xt = jax.jit(lambda t: path.sample(None, jnp.zeros((3, 2)), jnp.ones((3, 2)), t).xt)(jnp.array(1.3))
    np.testing.assert_allclose(xt, 1.3)


def test_sample_flow_map_refuses_a_grid_that_turns_back_and_a_wrong_model_output():
    u = lambda s, t, x: -x  # noqa: E731
    x = jnp.ones((4, 2))
    for grid in (jnp.array([0.0, 0.5, 0.3, 1.0]), jnp.array([0.0, 0.5, 0.5, 1.0]), jnp.array([0.0, jnp.nan, 1.0])):
        with pytest.raises(ValueError, match="strictly monotone"):
            jf.sampling.sample_flow_map(u, x, grid=grid)
    # under jit the grid is only known when the program runs: a run-time error, not a silent answer
    with pytest.raises(Exception, match="strictly monotone"):
        jax.jit(lambda g: jf.sampling.sample_flow_map(u, x, grid=g).x)(
            jnp.array([0.0, 0.5, 0.3, 1.0])
        ).block_until_ready()
    with pytest.raises(ValueError, match=r"returned \(4, 1\)"):
        jf.sampling.sample_flow_map(lambda s, t, y: y[:, :1], x, steps=2)
    # a decreasing grid is a valid (backward) grid; exact for this linear flow map's Euler jumps
    back = jf.sampling.sample_flow_map(u, x, grid=jnp.array([1.0, 0.5, 0.0])).x
    np.testing.assert_allclose(back, 2.25 * x)
