import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxflow as jf
from jaxflow.sampling import SolverError
from jaxflow.sampling.solvers import _SOLVER_NAMES


class RK4(diffrax.AbstractERK):
    """The classical 4-stage Runge–Kutta method, written as a user would in a fork: a Butcher tableau only."""

    tableau = diffrax.ButcherTableau(
        c=np.array([0.5, 0.5, 1.0]),
        b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
        b_error=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]) - np.array([0.0, 0.0, 0.0, 1.0]),
        a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
    )
    interpolation_cls = diffrax.ThirdOrderHermitePolynomialInterpolation.from_k

    def order(self, terms):
        return 4


def _linear(t, x):
    return -1.5 * x


def _error(solver, steps):
    x0 = jnp.array([[1.0, -2.0]])
    out = jf.sample(_linear, x0, solver=solver, steps=steps)
    return float(jnp.abs(out.x - x0 * np.exp(-1.5)).max())


@pytest.mark.parametrize(
    "solver,order",
    [("euler", 1), ("heun", 2), ("midpoint", 2), (diffrax.Ralston(), 2), (RK4(), 4), ("rk4", 4), (diffrax.Heun(), 2)],
)
def test_convergence_order(solver, order):
    with jax.enable_x64(True):
        steps = np.array([8, 16, 32, 64, 128]) if order < 4 else np.array([4, 8, 16, 32])
        errs = np.array([_error(solver, int(n)) for n in steps])
        slope = np.polyfit(np.log(steps), np.log(errs), 1)[0]
    assert abs(slope + order) < 0.15, slope


def _counted_pendulum():
    calls = [0]

    def v(t, x):
        jax.debug.callback(lambda: calls.__setitem__(0, calls[0] + 1))
        return jnp.stack([x[:, 1], -20.0 * jnp.sin(x[:, 0])], axis=1)

    return v, calls


@pytest.mark.parametrize("solver", [*sorted(_SOLVER_NAMES), diffrax.Ralston(), RK4(), diffrax.Tsit5()])
def test_nfe_matches_a_call_counter(solver):
    v, calls = _counted_pendulum()
    out = jf.sample(v, jnp.ones((3, 2)), solver=solver, steps=13, rtol=1e-6, atol=1e-6)
    jax.effects_barrier()
    assert int(out.nfe) == calls[0]


@pytest.mark.parametrize("solver", [diffrax.Tsit5(), diffrax.Dopri5(), RK4()])
def test_object_solver_with_a_pid_controller(solver):
    v, calls = _counted_pendulum()
    ctrl = diffrax.PIDController(rtol=1e-5, atol=1e-5)
    out = jf.sample(v, jnp.ones((3, 2)), solver=solver, stepsize_controller=ctrl)
    jax.effects_barrier()
    assert int(out.nfe) == calls[0]
    x0 = jnp.array([[1.0, -2.0]])
    out = jf.sample(_linear, x0, solver=solver, stepsize_controller=diffrax.PIDController(rtol=1e-7, atol=1e-7))
    np.testing.assert_allclose(out.x, x0 * np.exp(-1.5), rtol=2e-5)


@pytest.mark.parametrize("name", sorted(_SOLVER_NAMES))
def test_a_shorthand_and_its_object_behave_alike(name):
    """The same step control for a name and its object: PID for a solver with an embedded error estimate (unless steps
    are given), uniform steps otherwise; same samples, same NFE."""
    v, calls = _counted_pendulum()
    x0 = jnp.ones((3, 2))
    by_name = jf.sample(v, x0, solver=name, rtol=1e-6, atol=1e-6)
    by_object = jf.sample(v, x0, solver=_SOLVER_NAMES[name](), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(by_name.x, by_object.x)
    assert int(by_name.nfe) == int(by_object.nfe)
    adaptive = isinstance(_SOLVER_NAMES[name](), diffrax.AbstractAdaptiveSolver)
    reference = jf.sample(v, x0, solver="dopri8", rtol=1e-10, atol=1e-10).x
    if adaptive:
        # the controller picks the steps: not the 100 uniform ones, and the tolerance is met (the pendulum is stiff
        # enough that 100 uniform steps of a low-order method miss it by far more)
        assert int(by_name.num_steps) != 100
        np.testing.assert_allclose(by_name.x, reference, atol=1e-3)
    else:
        assert int(by_name.num_steps) == 100
    fixed = jf.sample(v, x0, solver=_SOLVER_NAMES[name](), steps=17)
    assert int(fixed.num_steps) == 17  # explicit steps win over the error estimate


def test_adaptive_tolerances_must_be_positive():
    for bad in (-1e-5, 0.0, float("nan")):
        with pytest.raises(ValueError, match="rtol"):
            jf.sample(_linear, jnp.ones((1, 2)), solver="dopri5", rtol=bad)


@pytest.mark.parametrize("solver", ["tsit5", "dopri5", "dopri8"])
def test_adaptive_accuracy(solver):
    x0 = jnp.array([[1.0, -2.0]])
    out = jf.sample(_linear, x0, solver=solver, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(out.x, x0 * np.exp(-1.5), rtol=1e-5)


def test_adjoint_passes_through():
    """Gradients through the sampler agree between the default (checkpointed) and the backsolve adjoint."""

    def model(params, t, x, cond=None):
        return params * x

    def final(a, adjoint):
        out = jf.sample(model, jnp.ones((1, 2)), params=a, solver=diffrax.Tsit5(), steps=20, adjoint=adjoint)
        return jnp.sum(out.x)

    g_default = jax.grad(final)(-0.7, None)
    g_back = jax.grad(final)(-0.7, diffrax.BacksolveAdjoint())
    assert float(g_default) == pytest.approx(2 * np.exp(-0.7), rel=1e-4)  # d/da 2 e^a
    assert float(g_back) == pytest.approx(float(g_default), rel=1e-3)


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
    x = jax.random.normal(key, (5, 2))
    np.testing.assert_allclose(f(x), x * (1 - 0.15) ** 10, rtol=1e-5)


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown solver 'rk5'"):
        jf.sample(_linear, jnp.ones((1, 2)), solver="rk5")
    with pytest.raises(TypeError, match="instance|Expected type: diffrax"):  # ours, or the test-time type check
        jf.sample(_linear, jnp.ones((1, 2)), solver=diffrax.Tsit5)
    with pytest.raises(ValueError, match="steps"):
        jf.sample(_linear, jnp.ones((1, 2)), steps=0)
    with pytest.raises(ValueError, match="non-finite"):
        jf.sample(_linear, jnp.array([[jnp.nan, 0.0]]))
    with pytest.raises(ValueError, match="differ"):
        jf.sample(_linear, jnp.ones((1, 2)), t0=0.5, t1=0.5)
    with pytest.raises(ValueError, match="monotone"):
        jf.sample(_linear, jnp.ones((1, 2)), grid=jnp.array([0.0, 0.6, 0.4, 1.0]))


def test_wrong_velocity_shape_or_dtype_is_refused():
    with pytest.raises(ValueError, match=r"velocity returned shape \(4, 1\) for a state of shape \(4, 2\)"):
        jf.sample(lambda t, x: x[:, :1], jnp.ones((4, 2)))
    with pytest.raises(ValueError, match="dtype"):
        jf.sample(lambda t, x: x.astype(jnp.float16), jnp.ones((4, 2)))


@pytest.mark.parametrize("solver", ["euler", "dopri5"])
def test_non_finite_velocity_is_reported(solver):
    def v(t, x):
        return jnp.where(t > 0.5, jnp.nan, 1.0) * x

    with pytest.raises(SolverError, match="velocity is not finite"):
        jf.sample(v, jnp.ones((2, 2)), solver=solver, steps=8)
    out = jf.sample(v, jnp.ones((2, 2)), solver="euler", steps=8, throw=False)  # the caller asked to check
    assert not bool(jnp.all(jnp.isfinite(out.x)))


def test_top_level_entry_points():
    """The most used entry points at the top, as diffrax has them: the same objects as in their room."""
    assert jf.sample is jf.sampling.sample
    assert jf.sample_sde is jf.sampling.sample_sde
    assert jf.log_likelihood is jf.sampling.log_likelihood
    assert list(jf.__all__) == sorted(jf.__all__)
    x = jnp.zeros((4, 2))
    out = jf.log_likelihood(lambda t, y: jnp.zeros_like(y), x, solver="euler", steps=2)
    np.testing.assert_allclose(out.log_prob, -np.log(2 * np.pi), rtol=1e-6)  # N(0, I) at 0 in 2-D
