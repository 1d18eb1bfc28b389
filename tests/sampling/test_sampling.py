import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxflow as jf
from jaxflow.sampling import SOLVERS


def _linear(t, x):
    return -1.5 * x


def _error(solver, steps):
    x0 = jnp.array([[1.0, -2.0]])
    out = jf.sample(_linear, x0, solver=solver, steps=steps)
    return float(jnp.abs(out.x - x0 * np.exp(-1.5)).max())


@pytest.mark.parametrize("solver,order", [("euler", 1), ("heun", 2), ("midpoint", 2)])
def test_convergence_order(solver, order):
    with jax.enable_x64(True):
        steps = np.array([8, 16, 32, 64, 128])
        errs = np.array([_error(solver, int(n)) for n in steps])
        slope = np.polyfit(np.log(steps), np.log(errs), 1)[0]
    assert abs(slope + order) < 0.1, slope


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_nfe_matches_a_call_counter(solver):
    calls = [0]

    def v(t, x):
        jax.debug.callback(lambda: calls.__setitem__(0, calls[0] + 1))
        return jnp.stack([x[:, 1], -20.0 * jnp.sin(x[:, 0])], axis=1)

    out = jf.sample(v, jnp.ones((3, 2)), solver=solver, steps=13, rtol=1e-6, atol=1e-6)
    jax.effects_barrier()
    assert int(out.nfe) == calls[0]


@pytest.mark.parametrize("solver", ["tsit5", "dopri5"])
def test_adaptive_accuracy(solver):
    x0 = jnp.array([[1.0, -2.0]])
    out = jf.sample(_linear, x0, solver=solver, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(out.x, x0 * np.exp(-1.5), rtol=1e-5)


def test_reverse_time_and_trajectory():
    x0 = jnp.array([[0.3, 0.7]])
    fwd = jf.sample(_linear, x0, solver="dopri5", rtol=1e-8, atol=1e-8, save_trajectory=11)
    assert fwd.trajectory.shape == (11, 1, 2)
    np.testing.assert_allclose(fwd.trajectory[0], x0, rtol=1e-6)
    back = jf.sample(_linear, fwd.x, solver="dopri5", t0=1.0, t1=0.0, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(back.x, x0, rtol=1e-5)


def test_model_boundary_and_grid(key):
    def model(params, t, x, cond=None):
        return params * x

    x0 = jnp.ones((2, 2))
    out = jf.sample(model, x0, params=-1.5, solver="heun", grid=jnp.linspace(0, 1, 65) ** 2)
    np.testing.assert_allclose(out.x, x0 * np.exp(-1.5), rtol=1e-3)
    assert int(out.nfe) == 2 * 64


def test_jit_and_vmap_over_starts(key):
    f = jax.jit(jax.vmap(lambda x: jf.sample(_linear, x[None], solver="euler", steps=10).x[0]))
    out = f(jax.random.normal(key, (5, 2)))
    assert out.shape == (5, 2)


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown solver"):
        jf.sample(_linear, jnp.ones((1, 2)), solver="rk4")
    with pytest.raises(ValueError, match="steps"):
        jf.sample(_linear, jnp.ones((1, 2)), steps=0)
    with pytest.raises(ValueError, match="non-finite"):
        jf.sample(_linear, jnp.array([[jnp.nan, 0.0]]))
