"""Manifolds, the geodesic path, sampling with projection and Riemannian minibatch OT, against closed forms
(rotations of the sphere, straight lines on the torus), brute force (all permutations) and invariances."""

import itertools

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxflow as jf
from jaxflow.couplings import ExactOTCoupling, ManifoldOTCoupling, SinkhornCoupling
from jaxflow.manifolds import Euclidean, FlatTorus, Manifold, Sphere, TangentField, geodesic_cost
from jaxflow.paths import AffinePath, CondOTScheduler, GeodesicPath, PolynomialConvexScheduler

jax.config.update("jax_numpy_rank_promotion", "allow")


def points(manifold, key, n, d):
    if isinstance(manifold, Euclidean):
        return jax.random.normal(key, (n, d))
    return manifold.uniform(key, n, d)


CASES = [(Sphere(), 3), (Sphere(), 6), (FlatTorus(), 2), (FlatTorus(), 4), (Euclidean(), 3)]


@pytest.mark.parametrize("manifold, d", CASES)
def test_exp_inverts_log_and_the_metric_axioms(manifold, d):
    x, y, z = (points(manifold, jax.random.key(i), 200, d) for i in range(3))
    u = manifold.logmap(x, y)
    np.testing.assert_allclose(manifold.proju(x, u), u, atol=1e-5)  # tangent at x
    back = manifold.expmap(x, u)
    np.testing.assert_allclose(manifold.dist(back, y), 0.0, atol=2e-3)
    assert float(jnp.max(manifold.check(manifold.expmap(x, 3.0 * u)))) < 1e-5  # stays on the manifold
    dxy, dyx = manifold.dist(x, y), manifold.dist(y, x)
    np.testing.assert_allclose(dxy, dyx, atol=1e-5)
    assert bool(jnp.all(manifold.dist(x, z) <= dxy + manifold.dist(y, z) + 1e-5))
    np.testing.assert_allclose(manifold.dist(x, x), 0.0, atol=2e-3)
    np.testing.assert_allclose(manifold.projx(manifold.projx(x)), manifold.projx(x), atol=1e-6)


def test_sphere_and_torus_distances_match_their_closed_forms():
    s = Sphere()
    x, y = s.uniform(jax.random.key(0), 100, 3), s.uniform(jax.random.key(1), 100, 3)
    np.testing.assert_allclose(
        s.dist(x, y), np.arccos(np.clip(np.sum(np.asarray(x) * np.asarray(y), -1), -1, 1)), atol=1e-3
    )
    t = FlatTorus()
    a, b = jnp.array([[0.1, 3.0]]), jnp.array([[2 * np.pi - 0.1, 3.5]])
    np.testing.assert_allclose(t.logmap(a, b), [[-0.2, 0.5]], atol=1e-5)  # the short way round
    np.testing.assert_allclose(t.dist(a, b), [np.hypot(0.2, 0.5)], atol=1e-5)


def test_geodesic_path_on_the_sphere_moves_at_constant_speed_along_the_great_circle():
    s = Sphere()
    x0, x1 = s.uniform(jax.random.key(0), 64, 3), s.uniform(jax.random.key(1), 64, 3)
    sched = PolynomialConvexScheduler(2.0)
    path = GeodesicPath(sched, s)
    t = jax.random.uniform(jax.random.key(2), (64,))
    ps = path.sample(None, x0, x1, t)
    d = s.dist(x0, x1)
    k, dk = sched.alpha(t), sched.d_alpha(t)
    np.testing.assert_allclose(s.dist(x0, ps.xt), k * d, atol=1e-4)
    np.testing.assert_allclose(s.dist(ps.xt, x1), (1 - k) * d, atol=1e-4)
    np.testing.assert_allclose(jnp.linalg.norm(ps.ut, axis=-1), dk * d, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(jnp.sum(ps.ut * ps.xt, -1), 0.0, atol=1e-5)  # tangent at x_t
    h = 1e-3  # the velocity is the time derivative of the point
    fd = (path.sample(None, x0, x1, t + h).xt - path.sample(None, x0, x1, t - h).xt) / (2 * h)
    inside = (t > h) & (t < 1 - h)
    np.testing.assert_allclose(fd[inside], ps.ut[inside], atol=5e-3)


def test_geodesic_path_in_euclidean_space_is_cond_ot():
    x0, x1 = jax.random.normal(jax.random.key(0), (32, 4)), jax.random.normal(jax.random.key(1), (32, 4))
    t = jax.random.uniform(jax.random.key(2), (32,))
    a = GeodesicPath(CondOTScheduler(), Euclidean()).sample(None, x0, x1, t)
    b = AffinePath(CondOTScheduler()).sample(jax.random.key(0), x0, x1, t)
    np.testing.assert_allclose(a.xt, b.xt, atol=1e-6)
    np.testing.assert_allclose(a.ut, b.ut, atol=1e-6)


def _rotation(omega, angle):
    """The rotation by `angle` about the unit axis omega (Rodrigues)."""
    k = np.array([[0, -omega[2], omega[1]], [omega[2], 0, -omega[0]], [-omega[1], omega[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


@pytest.mark.parametrize("solver", ["euler", "midpoint", "rk4", diffrax.Tsit5()])
def test_sampling_on_the_sphere_follows_a_rotation_and_stays_on_it(solver):
    s = Sphere()
    omega = np.array([1.0, 2.0, 2.0]) / 3.0
    rate = 2.5

    def v(t, x):  # rotation about omega at angular speed rate
        return rate * jnp.cross(jnp.asarray(omega, x.dtype), x)

    x0 = s.uniform(jax.random.key(0), 500, 3)
    kwargs = {} if isinstance(solver, diffrax.AbstractSolver) else {"steps": 400}
    out = jf.sample(v, x0, solver=solver, manifold=s, save_trajectory=5, **kwargs)
    assert float(jnp.max(jnp.abs(jnp.linalg.norm(out.trajectory, axis=-1) - 1.0))) < 1e-6
    want = np.asarray(x0) @ _rotation(omega, rate).T
    tol = 2e-2 if solver == "euler" else 1e-3
    np.testing.assert_allclose(out.x, want, atol=tol)


def test_without_projection_euler_leaves_the_sphere():
    """The control for the test above: the same Euler solve without manifold= drifts off the sphere."""
    s = Sphere()
    x0 = s.uniform(jax.random.key(0), 100, 3)
    out = jf.sample(lambda t, x: 2.5 * jnp.cross(jnp.array([0.0, 0.0, 1.0]), x), x0, solver="euler", steps=50)
    assert float(jnp.max(jnp.abs(jnp.linalg.norm(out.x, axis=-1) - 1.0))) > 1e-3


def test_sampling_on_the_torus_wraps_straight_lines():
    t = FlatTorus()
    x0 = t.uniform(jax.random.key(0), 100, 2)
    c = jnp.array([4.0, -7.5])
    out = jf.sample(lambda s, x: jnp.broadcast_to(c, x.shape), x0, solver="rk4", steps=10, manifold=t)
    np.testing.assert_allclose(t.dist(out.x, jnp.mod(x0 + c, 2 * np.pi)), 0.0, atol=1e-4)
    assert bool(jnp.all((out.x >= 0) & (out.x < 2 * np.pi)))


def test_tangent_field_keeps_the_model_boundary():
    s = Sphere()

    def model(params, t, x, cond):
        return params * x + jnp.array([1.0, 0.0, 0.0])  # a radial part that the projection removes

    f = TangentField(model, s)
    x = s.uniform(jax.random.key(0), 10, 3)
    u = f(2.0, 0.5, x, None)
    np.testing.assert_allclose(jnp.sum(u * x, -1), 0.0, atol=1e-6)
    out = jf.sample(model, x, params=2.0, manifold=s, solver="midpoint", steps=20)
    assert float(jnp.max(jnp.abs(jnp.linalg.norm(out.x, axis=-1) - 1.0))) < 1e-6


@pytest.mark.parametrize("manifold, d", [(Sphere(), 3), (FlatTorus(), 2)])
def test_manifold_ot_coupling_finds_the_best_permutation(manifold, d):
    n = 6
    x0, x1 = points(manifold, jax.random.key(0), n, d), points(manifold, jax.random.key(1), n, d)
    cost = np.asarray(geodesic_cost(manifold, x0, x1))
    np.testing.assert_allclose(cost, np.asarray(manifold.dist(x0[:, None], x1[None])) ** 2, atol=1e-5)
    best = min(sum(cost[i, p[i]] for i in range(n)) for p in itertools.permutations(range(n)))
    pairing = ManifoldOTCoupling(manifold, ExactOTCoupling(mode="permutation"))(jax.random.key(2), x0, x1)
    got = float(jnp.sum(manifold.dist(pairing.x0, pairing.x1) ** 2))
    np.testing.assert_allclose(got, best, rtol=1e-5)
    ident = float(np.trace(cost))
    assert got <= ident + 1e-6
    # the Euclidean chord cost gives a different pairing on the torus's wrapped coordinates in general; the
    # Sinkhorn solver composes through the same method
    sk = ManifoldOTCoupling(manifold, SinkhornCoupling(epsilon=0.01))(jax.random.key(3), x0, x1)
    assert sk.x0.shape == x0.shape


def test_riemannian_ot_cfm_trains_a_tangent_velocity_and_samples_on_the_sphere():
    """A tiny end-to-end run: uniform source on S², data concentrated near the north pole, geodesic path, geodesic
    OT pairs; after training, samples sit on the sphere and near the pole far more than the source does."""
    import optax

    s = Sphere()
    mlp = jf.nn.MLPVelocity(out_dim=3, hidden=(64, 64))
    params = jf.nn.init_mlp(jax.random.key(0), mlp, 3)
    v = TangentField(jf.nn.velocity_fn(mlp), s)
    pole = jnp.array([0.0, 0.0, 1.0])
    loss = jf.losses.cfm_loss(v, path=GeodesicPath(CondOTScheduler(), s), coupling=ManifoldOTCoupling(s))
    opt = optax.adam(3e-3)
    state = opt.init(params)

    @jax.jit
    def step(params, state, key):
        k0, k1, k2 = jax.random.split(key, 3)
        x1 = s.projx(pole + 0.25 * jax.random.normal(k1, (128, 3)))
        batch = {"x0": s.uniform(k0, 128, 3), "x1": x1}
        (value, _), g = jax.value_and_grad(loss, has_aux=True)(params, batch, k2)
        upd, state = opt.update(g, state)
        return optax.apply_updates(params, upd), state

    for i in range(400):
        params, state = step(params, state, jax.random.key(100 + i))
    z = s.uniform(jax.random.key(9), 512, 3)
    x = jf.sample(v, z, params=params, solver="rk4", steps=20, manifold=s).x
    assert float(jnp.max(jnp.abs(jnp.linalg.norm(x, axis=-1) - 1.0))) < 1e-6
    assert float(jnp.mean(s.dist(x, pole))) < 0.5 * float(jnp.mean(s.dist(z, pole)))


def test_bad_inputs_are_refused_clearly():
    s = Sphere()
    with pytest.raises(ValueError, match="does not lie on the manifold"):
        jf.sample(lambda t, x: x, jnp.ones((4, 3)), manifold=s, steps=2)
    with pytest.raises(TypeError, match="Manifold"):
        jf.sample(lambda t, x: x, jnp.ones((4, 3)), manifold="sphere", steps=2)
    with pytest.raises(TypeError, match="Manifold"):
        GeodesicPath(CondOTScheduler(), "sphere")
    with pytest.raises(TypeError, match="CostCoupling"):
        ManifoldOTCoupling(s, jf.couplings.IndependentCoupling())
    with pytest.raises(ValueError, match="same shape"):
        GeodesicPath(CondOTScheduler(), s).sample(None, jnp.ones((4, 3)), jnp.ones((5, 3)), 0.5)
    assert issubclass(Sphere, Manifold)
    with pytest.raises(NotImplementedError, match="Euclidean has no uniform law"):  # R^d is not compact
        Euclidean().uniform(jax.random.key(0), 4, 3)


def test_projected_solver_projects_every_step_of_any_diffrax_solver():
    """The solver object on its own (no tangent field): every accepted step ends on the sphere; the bare solver's
    steps leave it."""
    from jaxflow.sampling import ProjectedSolver

    s = Sphere()
    term = diffrax.ODETerm(lambda t, y, args: 2.5 * jnp.cross(jnp.array([0.0, 0.0, 1.0]), y))
    y0 = s.uniform(jax.random.key(0), 16, 3)
    for inner in (diffrax.Euler(), diffrax.Heun(), diffrax.Tsit5()):
        kw = (
            {"stepsize_controller": diffrax.PIDController(rtol=1e-3, atol=1e-3)}
            if inner.__class__ is diffrax.Tsit5
            else {}
        )

        def run(solver, kw=kw):
            return diffrax.diffeqsolve(term, solver, 0.0, 1.0, 0.1, y0, saveat=diffrax.SaveAt(steps=True), **kw)

        def off(ys):  # unused save slots hold inf
            ys = ys[jnp.all(jnp.isfinite(ys), axis=(-1, -2))]
            return float(jnp.max(jnp.abs(jnp.linalg.norm(ys, axis=-1) - 1.0)))

        assert off(run(ProjectedSolver(inner, s)).ys) < 1e-6
        assert off(run(inner).ys) > 1e-6
    assert isinstance(ProjectedSolver(diffrax.Tsit5(), s), diffrax.AbstractAdaptiveSolver)


@pytest.mark.slow  # 10 s: three concentrations compiled in turn, 100,000 draws each
def test_manifold_data_match_their_laws():
    """vMF mixture of one component on S²: E⟨x, μ⟩ = coth κ − 1/κ and the orthogonal part averages to 0; wrapped
    normals: on [0, 2π), with the circular mean of each coordinate at the component mean."""
    for kappa in (2.0, 10.0, 40.0):
        mu = jnp.array([1.0, 2.0, -2.0]) / 3.0
        x = jf.data.sample_vmf_mixture(jax.random.key(0), 100_000, mu[None], kappa)
        np.testing.assert_allclose(jnp.linalg.norm(x, axis=-1), 1.0, atol=1e-5)
        np.testing.assert_allclose(float(jnp.mean(x @ mu)), 1 / np.tanh(kappa) - 1 / kappa, atol=4e-3)
        np.testing.assert_allclose(jnp.mean(x - (x @ mu)[:, None] * mu, 0), 0.0, atol=5e-3)
    y = jf.data.sample_wrapped_normal_mixture(jax.random.key(1), 50_000, jnp.array([[0.1, 6.0]]), 0.3)
    assert bool(jnp.all((y >= 0) & (y < 2 * np.pi)))
    circ = jnp.angle(jnp.mean(jnp.exp(1j * y), 0)) % (2 * np.pi)
    np.testing.assert_allclose(circ, [0.1, 6.0], atol=1e-2)
    np.testing.assert_allclose(jnp.abs(jnp.mean(jnp.exp(1j * y), 0)), np.exp(-(0.3**2) / 2), atol=1e-2)
