"""Few-step objectives and samplers against closed forms: the Gaussian → Gaussian flow (its flow map is known), a
straight affine flow, and the Gaussian-mixture velocity of `jf.data.GaussianMixture`."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxflow as jf
from jaxflow.paths.base import PathSample, ProbabilityPath

MU = jnp.array([1.5, -0.5])
SIG = jnp.array([0.6, 1.4])
GAUSS = jf.data.GaussianMixture(jnp.ones(1), MU[None], jnp.diag(SIG**2)[None])


def sd(t):
    return jnp.sqrt((1 - t) ** 2 + t**2 * SIG**2)


def flow_map(x, s, t):
    """Exact Ψ(x, s, t) of the independent-coupling Cond-OT flow from N(0, I) to N(μ, diag σ²)."""
    s, t = s[:, None], t[:, None]
    return t * MU + sd(t) / sd(s) * (x - s * MU)


def exact_u(params, s, t, x, cond=None):
    gap = (t - s)[:, None]
    safe = jnp.where(jnp.abs(gap) < 1e-6, 1.0, gap)
    inst = jax.vmap(lambda si, xi: GAUSS.velocity(si, xi))(s, x)
    return jnp.where(jnp.abs(gap) < 1e-6, inst, (flow_map(x, s, t) - x) / safe)


class MarginalPath(ProbabilityPath):
    """Cond-OT interpolation whose target is the MARGINAL velocity (so the exact model has zero loss)."""

    def sample(self, key, x0, x1, t):
        xt = (1 - t)[:, None] * x0 + t[:, None] * x1
        ut = jax.vmap(lambda ti, xi: GAUSS.velocity(ti, xi))(t, xt)
        return PathSample(t, x0, x1, xt, ut)


def gaussian_batch(key, n=512):
    k0, k1 = jax.random.split(key)
    return {"x0": jax.random.normal(k0, (n, 2)), "x1": GAUSS.sample(k1, n)}


def test_meanflow_identity_holds_for_the_exact_average_velocity():
    key = jax.random.key(0)
    x = jax.random.normal(key, (64, 2)) * 1.5
    s = jax.random.uniform(jax.random.fold_in(key, 1), (64,)) * 0.5
    t = s + 0.1 + jax.random.uniform(jax.random.fold_in(key, 2), (64,)) * 0.4
    v = jax.vmap(lambda si, xi: GAUSS.velocity(si, xi))(s, x)
    u, dudt = jax.jvp(lambda xx, ss, tt: exact_u(None, ss, tt, xx), (x, s, t), (v, jnp.ones_like(s), jnp.zeros_like(t)))
    target = v + (t - s)[:, None] * dudt
    np.testing.assert_allclose(target, u, atol=2e-5)
    # the correction is far from zero here: dropping it (plain FM target) is wrong by a margin
    assert float(jnp.max(jnp.abs(v - u))) > 0.05
    # and the exact average velocity matches accurate integration of the closed-form velocity
    traj = jf.sample(
        lambda tt, xx: jax.vmap(lambda ti, xi: GAUSS.velocity(ti, xi))(jnp.broadcast_to(tt, xx.shape[:1]), xx),
        x[:1],
        solver="tsit5",
        t0=float(s[0]),
        t1=float(t[0]),
        rtol=1e-7,
        atol=1e-7,
    ).x
    np.testing.assert_allclose((traj - x[:1]) / (t[0] - s[0]), u[:1], atol=1e-4)


def test_meanflow_loss_is_zero_at_the_exact_model_and_not_at_the_velocity():
    loss = jf.losses.meanflow_loss(exact_u, MarginalPath(), flow_map_fraction=0.75, adaptive_power=0.0)
    batch = gaussian_batch(jax.random.key(1))
    value, aux = loss(None, batch, jax.random.key(2))
    assert float(value) < 1e-9
    inst = jf.nn.as_velocity(exact_u)
    wrong, _ = jf.losses.meanflow_loss(
        lambda p, s, t, x, c=None: inst(p, s, x), MarginalPath(), flow_map_fraction=0.75, adaptive_power=0.0
    )(None, batch, jax.random.key(2))
    assert float(wrong) > 1e-3


def test_flow_map_composes_and_few_step_sampler_is_exact():
    x = jax.random.normal(jax.random.key(3), (128, 2))
    z, h, o = jnp.zeros(128), jnp.full(128, 0.5), jnp.ones(128)
    np.testing.assert_allclose(flow_map(flow_map(x, z, h), h, o), flow_map(x, z, o), atol=1e-5)
    ref = flow_map(x, z, o)
    for steps in (1, 2, 4):
        out = jf.sampling.sample_flow_map(exact_u, x, params={}, steps=steps)
        assert int(out.nfe) == steps
        np.testing.assert_allclose(out.x, ref, atol=1e-4)
    # a velocity used as a flow map (Euler) is not exact at one step: the check can fail
    euler = jf.sampling.sample_flow_map(lambda p, s, t, xx, c=None: exact_u(p, s, s, xx), x, params={}, steps=1).x
    assert float(jnp.max(jnp.abs(euler - ref))) > 0.05


def test_shortcut_loss_vanishes_for_the_exact_flow_map_only():
    batch = gaussian_batch(jax.random.key(4))
    loss = jf.losses.shortcut_loss(exact_u, MarginalPath(), min_step=1 / 64, consistency_fraction=0.5)
    value, aux = loss(None, batch, jax.random.key(5))
    # the finest level compares with two Euler steps of the velocity (error O(h²)): small, not zero
    assert float(aux["fm"]) < 1e-9 and float(aux["consistency"]) < 2e-4
    inst = lambda p, s, t, x, c=None: exact_u(p, s, s, x)  # noqa: E731
    _, bad = jf.losses.shortcut_loss(inst, MarginalPath(), min_step=1 / 64, consistency_fraction=0.5)(
        None, batch, jax.random.key(5)
    )
    assert float(bad["consistency"]) > 100 * float(aux["consistency"])


def straight_teacher(params, t, x, cond=None):
    """Velocity of the straight flow x_t = x0 + t(A x0 + b − x0), A = diag(σ), b = μ: non-crossing, exact in RK2."""
    t = jnp.broadcast_to(t, x.shape[:1])[:, None]
    x0 = (x - t * MU) / (1 - t + t * SIG)
    return MU + (SIG - 1) * x0


def test_oftsr_loss_vanishes_for_the_exact_student_of_a_straight_teacher():
    """On a straight teacher the average velocity from 0 to t is the start velocity: the distill and align terms
    vanish; the boundary term, which evaluates the teacher at x0 but at time t_min (as released), is O(t_min²)."""
    x0 = jax.random.normal(jax.random.key(6), (256, 2))
    exact = lambda p, t, x, c=None: straight_teacher(p, 0.0, x)  # noqa: E731  v(x0, t) = the start velocity
    _, aux = jf.losses.oftsr_loss(exact, straight_teacher, None)(None, {"x0": x0}, jax.random.key(7))
    assert float(aux["distill"]) < 1e-10 and float(aux["align"]) < 1e-10
    _, aux0 = jf.losses.oftsr_loss(exact, straight_teacher, None, t_min=1e-4)(None, {"x0": x0}, jax.random.key(7))
    assert float(aux0["boundary"]) < 1e-3 * float(aux["boundary"])
    off = lambda p, t, x, c=None: (1 + 0.1 * t[:, None]) * exact(p, t, x)  # noqa: E731
    _, bad = jf.losses.oftsr_loss(off, straight_teacher, None)(None, {"x0": x0}, jax.random.key(7))
    assert min(float(bad["distill"]), float(bad["align"])) > 1e-5
    f = jf.losses.oftsr_student(exact, eps=0.0)
    np.testing.assert_allclose(f(None, 0.5, x0), MU + SIG * x0, atol=1e-5)  # the teacher's endpoint in one step


def test_oftsr_student_learns_the_average_velocity_of_a_curved_teacher():
    """Teacher v(x, t) = x (x_t = x0·eᵗ): the student v(x0, t) = x0·g(t) must learn g(t) = (eᵗ − 1)/t, the average
    velocity from 0 to t, by bootstrapping alone (the distill and boundary terms; no data, no pairs)."""
    teacher = lambda p, t, x, c=None: x  # noqa: E731
    ts = jnp.linspace(0.0, 1.0, 6)

    def g(p, t):
        return 1.0 + jnp.stack([((t - 0.5) ** k) for k in range(6)], -1) @ p

    student = lambda p, t, x, c=None: x * g(p, t)[:, None]  # noqa: E731
    loss = jf.losses.oftsr_loss(student, teacher, None, dt=0.02, weights=(1.0, 0.1, 0.0))
    x0 = jax.random.normal(jax.random.key(1), (256, 3))
    opt = optax.adam(3e-3)
    params = jnp.zeros(6)
    state = opt.init(params)

    @jax.jit
    def step(params, state, key):
        grad = jax.grad(lambda p: loss(p, {"x0": x0}, key)[0])(params)
        updates, state = opt.update(grad, state)
        return optax.apply_updates(params, updates), state

    for i in range(3000):
        params, state = step(params, state, jax.random.key(i))
    t = jnp.linspace(0.05, 0.99, 20)
    np.testing.assert_allclose(g(params, t), jnp.expm1(t) / t, atol=2e-2)
    # the one-step sampler then lands on the teacher's endpoint e·x0 at t → 1
    f = jf.losses.oftsr_student(student, eps=0.0)
    np.testing.assert_allclose(f(params, 0.99, x0), x0 * (1 + jnp.expm1(0.99) / 0.99), rtol=2e-2, atol=1e-6)
    del ts


def test_distillation_fits_the_least_squares_map():
    """A linear student z + Wz + c trained on pairs (z, Φ(z)) converges to the least-squares affine fit."""
    key = jax.random.key(8)
    z = jax.random.normal(key, (512, 2))
    target = jnp.tanh(z) * 2 + 0.3  # any map
    student = lambda p, t, x, c=None: x @ p["W"] + p["c"]  # noqa: E731
    loss = jf.losses.distillation_loss(student)
    params = {"W": jnp.zeros((2, 2)), "c": jnp.zeros(2)}
    opt = optax.adam(0.05)
    state = opt.init(params)
    grad = jax.jit(jax.grad(lambda p: loss(p, {"x0": z, "x1": target}, key)[0]))
    for _ in range(600):
        g = grad(params)
        upd, state = opt.update(g, state)
        params = optax.apply_updates(params, upd)
    design = np.concatenate([np.asarray(z), np.ones((512, 1))], 1)
    coef, *_ = np.linalg.lstsq(design, np.asarray(target - z), rcond=None)
    np.testing.assert_allclose(params["W"], coef[:2], atol=2e-3)
    np.testing.assert_allclose(params["c"], coef[2], atol=2e-3)
    # the one-step sampler of the student is T
    out = jf.sample(student, z, params=params, solver="euler", steps=1).x
    np.testing.assert_allclose(out, z + student(params, 0.0, z), atol=1e-6)


def gmm_velocity(gmm):
    return lambda t, x: gmm.velocity(t, x)


def test_reflow_pairs_do_not_increase_the_transport_cost():
    gmm = jf.data.GaussianMixture(
        jnp.ones(3), jnp.array([[3.0, 0.0], [-2.0, 2.0], [-1.0, -3.0]]), jnp.tile(0.1 * jnp.eye(2), (3, 1, 1))
    )
    key = jax.random.key(9)
    k0, k1 = jax.random.split(key)
    x0 = jax.random.normal(k0, (2000, 2))
    x1 = gmm.sample(k1, 2000)
    pairing = jf.couplings.ReflowCoupling(lambda p, t, x, c=None: gmm.velocity(t, x), {}, solver="tsit5")(k0, x0, x1)
    before = float(jnp.mean(jnp.sum((x1 - x0) ** 2, 1)))
    after = float(jnp.mean(jnp.sum((pairing.x1 - x0) ** 2, 1)))
    assert after < before
    # the pushed points follow the mixture: mean and log-likelihood agree with fresh mixture draws
    np.testing.assert_allclose(jnp.mean(pairing.x1, 0), jnp.mean(x1, 0), atol=0.15)
    assert abs(float(jnp.mean(gmm.log_prob(pairing.x1)) - jnp.mean(gmm.log_prob(x1)))) < 0.1
    # offline pairs: same map, key recorded, and the file round-trips
    pairs = jf.couplings.reflow_pairs(
        k0,
        lambda p, t, x, c=None: gmm.velocity(t, x),
        {},
        lambda k, n: jax.random.normal(k, (n, 2)),
        2000,
        solver="tsit5",
        chunk=700,
    )
    # chunks of 700 take their own adaptive steps: equal to the solver's tolerance
    np.testing.assert_allclose(pairs.x1, pairing.x1, atol=2e-2)
    assert float(np.mean(np.abs(pairs.x1 - pairing.x1))) < 1e-3
    np.testing.assert_array_equal(pairs.key, jax.random.key_data(k0))


def test_reflow_pairs_round_trip(tmp_path):
    pairs = jf.couplings.ReflowPairs(np.ones((4, 2)), np.zeros((4, 2)), np.arange(4), np.array([0, 7], np.uint32))
    jf.couplings.save_pairs(tmp_path / "p.npz", pairs)
    back = jf.couplings.load_pairs(tmp_path / "p.npz")
    for a, b in zip(pairs, back):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: jf.losses.meanflow_loss(exact_u, flow_map_fraction=1.5), "flow_map_fraction"),
        (lambda: jf.losses.shortcut_loss(exact_u, min_step=0.3), "min_step"),
        (lambda: jf.losses.meanflow_loss(exact_u, label_dropout=0.1), "null_label"),
        (lambda: jf.losses.oftsr_loss(exact_u, exact_u, None, dt=0.0), "dt"),
        (lambda: jf.losses.oftsr_loss(exact_u, exact_u, None, t_min=0.5, t_max=0.4), "t_min"),
        (lambda: jf.losses.oftsr_loss(exact_u, exact_u, None, rk2_r=0.0), "rk2_r"),
        (lambda: jf.losses.oftsr_loss(exact_u, exact_u, None, weights=(1.0, -1.0, 0.0)), "weights"),
    ],
)
def test_bad_settings_raise(build, message):
    with pytest.raises(ValueError, match=message):
        build()
