"""Accelerated (Hamiltonian) attention flows: forces against autodiff, energy decay, reductions."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxflow.dynamics as dy


def _linear(key, d=3):
    k1, k2 = jax.random.split(key)
    g = jax.random.normal(k1, (d, d))
    w = jax.random.normal(k2, (d, d))
    return dy.LinearAttentionSystem(g @ g.T / d + 0.1 * jnp.eye(d), -(w @ w.T / d + 0.1 * jnp.eye(d)))


def _softmax(key, d=3, sphere=True):
    k1, k2, k3 = jax.random.split(key, 3)
    b = jax.random.normal(k3, (d, d))
    return dy.SoftmaxAttentionSystem(
        jax.random.normal(k1, (2, 2, d)), jax.random.normal(k2, (2, 2, d)), b @ b.T / d + 0.1 * jnp.eye(d), sphere
    )


SYSTEMS = {"linear": _linear, "softmax": _softmax, "softmax-flat": lambda k: _softmax(k, sphere=False)}


@pytest.mark.parametrize("name", SYSTEMS)
def test_forces_and_velocities_match_autodiff(name):
    with jax.enable_x64(True):
        system = SYSTEMS[name](jax.random.key(0))
        kx, kp = jax.random.split(jax.random.key(1))
        x = 0.7 * jax.random.normal(kx, (6, 3))
        p = jax.random.normal(kp, (6, 3))
        dh_dx, dh_dp = jax.grad(lambda a, b: dy.hamiltonian(system, a, b), argnums=(0, 1))(x, p)
        np.testing.assert_allclose(system.force(x, p), -dh_dx, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(system.velocity(x, p), dh_dp, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(system.potential_grad(x), jax.grad(system.potential)(x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", SYSTEMS)
def test_energy_rate_closed_form_matches_jvp(name):
    """dH/dt along the damped flow, −α ⟨P, F⟩, against the directional derivative of H by jvp."""
    with jax.enable_x64(True):
        system = SYSTEMS[name](jax.random.key(2))
        kx, kp = jax.random.split(jax.random.key(3))
        x, p, t = 0.7 * jax.random.normal(kx, (5, 3)), jax.random.normal(kp, (5, 3)), 0.8
        damping = dy.Damping(3.0, 0.5)
        dx, dp = dy.continuous_field(system, damping)(t, (x, p))
        _, rate = jax.jvp(lambda a, b: dy.hamiltonian(system, a, b), (x, p), (dx, dp))
        np.testing.assert_allclose(dy.energy_rate(system, x, p, t, damping), rate, rtol=1e-10)
        assert float(rate) < 0


def test_continuous_flow_dissipates_energy():
    """The damped Hamiltonian flow (diffrax, Tsit5) never increases H; the drop equals ∫ dH/dt."""
    with jax.enable_x64(True):
        system = _linear(jax.random.key(4))
        x0 = jax.random.normal(jax.random.key(5), (8, 3))
        field = dy.continuous_field(system, dy.Damping(3.0, 0.0))
        ts = jnp.linspace(0.5, 4.0, 40)
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field),
            diffrax.Tsit5(),
            0.5,
            4.0,
            0.01,
            (x0, jnp.zeros_like(x0)),
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=diffrax.PIDController(rtol=1e-9, atol=1e-9),
        )
        ham = jax.vmap(lambda a, b: dy.hamiltonian(system, a, b))(*sol.ys)
        assert np.all(np.diff(np.asarray(ham)) <= 1e-9)
        rates = jax.vmap(lambda a, b, t: dy.energy_rate(system, a, b, t))(sol.ys[0], sol.ys[1], ts)
        integral = float(jnp.trapezoid(rates, ts))
        np.testing.assert_allclose(ham[-1] - ham[0], integral, rtol=2e-3)


def test_zero_momentum_no_damping_step_is_classical_step():
    with jax.enable_x64(True):
        system = _linear(jax.random.key(6))
        x = jax.random.normal(jax.random.key(7), (7, 3))
        h = 0.3
        x1, _ = dy.step(system, "symplectic", x, jnp.zeros_like(x), 1.0, h, dy.Damping(0.0, 0.0))
        xc, _ = dy.step(system, "classical", x, jnp.zeros_like(x), 1.0, h * h)
        np.testing.assert_allclose(x1, xc, rtol=1e-12)


def test_linear_flows_keep_tokens_a_linear_image_of_the_start():
    """Under the linear system every scheme maps X0 to X0 Φ, one d×d matrix Φ (so elliptical laws stay elliptical)."""
    with jax.enable_x64(True):
        system = _linear(jax.random.key(8), d=3)
        x0 = jax.random.normal(jax.random.key(9), (40, 3))
        for scheme in ("euler", "symplectic", "exponential", "classical"):
            x = dy.integrate(system, x0, scheme=scheme, steps=30, h=0.2).x
            phi, *_ = jnp.linalg.lstsq(x0, x)
            np.testing.assert_allclose(x0 @ phi, x, atol=1e-10)


def test_acceleration_reaches_lower_energy_on_linear_attention():
    with jax.enable_x64(True):
        system = _linear(jax.random.key(10), d=3)
        x0 = jax.random.normal(jax.random.key(11), (32, 3))
        classical = dy.integrate(system, x0, scheme="classical", steps=200, h=0.3).energy
        accel = dy.integrate(system, x0, scheme="symplectic", steps=200, h=0.3).energy
        assert float(accel[-1]) < 0.2 * float(classical[-1])
        assert dy.calls_to_reach(accel, float(classical[-1])) < 150


def test_softmax_minimum_closed_form():
    """On the sphere with M ⪰ 0 the energy is bounded below by −½ N² exp(λ_max), attained by one cluster."""
    with jax.enable_x64(True):
        wq = jax.random.normal(jax.random.key(12), (2, 2, 3))
        system = dy.SoftmaxAttentionSystem(wq, wq, jnp.eye(3))
        u = jnp.linalg.eigh(0.5 * (system.m + system.m.T))[1][:, -1]
        cluster = jnp.tile(u, (5, 1)) * jnp.arange(1.0, 6.0)[:, None]  # radii do not matter on the sphere
        np.testing.assert_allclose(system.potential(cluster), system.min_potential(5), rtol=1e-12)
        x = jax.random.normal(jax.random.key(13), (5, 3))
        assert float(system.potential(x)) > float(system.min_potential(5))


def test_bad_input():
    system = _linear(jax.random.key(0))
    x = jnp.ones((4, 3))
    with pytest.raises(ValueError, match="scheme"):
        dy.integrate(system, x, scheme="leapfrog")
    with pytest.raises(ValueError, match="h must"):
        dy.integrate(system, x, h=0.0)
    with pytest.raises(ValueError, match="p0"):
        dy.integrate(system, x, p0=jnp.ones((3, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        dy.integrate(system, x.at[0, 0].set(jnp.nan))


def test_schemes_are_objects_shared_by_flows_and_blocks():
    """One implementation per scheme: a name and its object agree in the particle flow and in the transformer
    block; a fork's scheme plugs into both; the block form of a scheme is the flow's update with F(X, P) = P."""
    import numpy as np

    from jaxflow.nn import AcceleratedBlock

    system = dy.LinearAttentionSystem(0.5 * jnp.eye(2), -jnp.eye(2))
    x0 = jax.random.normal(jax.random.key(2), (8, 2))
    for name, cls in [
        ("euler", dy.ExplicitEuler),
        ("symplectic", dy.SymplecticEuler),
        ("exponential", dy.ExponentialEuler),
    ]:
        by_name = dy.integrate(system, x0, scheme=name, steps=20, h=0.1).energy
        by_obj = dy.integrate(system, x0, scheme=cls(), steps=20, h=0.1).energy
        np.testing.assert_array_equal(by_name, by_obj)

    class HalfStepSymplectic(dy.Scheme):
        """a fork's scheme: Störmer–Verlet-like half kicks (for a test, not a recommendation)"""

        def update(self, x, p, g, velocity, h, alpha, delta):
            sigma = jnp.exp(-delta)
            p = sigma * (p + h * g)
            return x + h * velocity(p), p

    np.testing.assert_allclose(
        dy.integrate(system, x0, scheme=HalfStepSymplectic(), steps=20, h=0.1).energy,
        dy.integrate(system, x0, scheme="symplectic", steps=20, h=0.1).energy,
        rtol=1e-6,
    )
    x = jax.random.normal(jax.random.key(3), (2, 5, 8))
    p = jax.random.normal(jax.random.key(4), (2, 5, 8))
    outs = {}
    for scheme in ("symplectic", dy.SymplecticEuler(), HalfStepSymplectic()):
        block = AcceleratedBlock(2, layer=1, scheme=scheme)
        params = block.init(jax.random.key(0), x, p)
        outs[repr(scheme)] = block.apply(params, x, p)
    first, *rest = outs.values()
    for other in rest:
        np.testing.assert_allclose(first[0], other[0], rtol=1e-6)
        np.testing.assert_allclose(first[1], other[1], rtol=1e-6)
    with pytest.raises(ValueError, match="ClassicalBlock"):
        AcceleratedBlock(2, scheme=dy.Classical()).init(jax.random.key(0), x, p)
    with pytest.raises(ValueError, match="unknown scheme"):
        dy.integrate(system, x0, scheme="leapfrog")
