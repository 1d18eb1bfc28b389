"""Population-conditioned flow matching: encoders, the kNN graph, the loss's mask, letters and particles data."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxflow as jf
from jaxflow.nn import MLPVelocity, PopulationTable, SetEncoder, init_mlp, knn_indices, velocity_fn
from jaxflow.train import TrainState, make_train_step


@pytest.mark.parametrize("k", [0, 5, 50])
def test_set_encoder_is_permutation_invariant_and_ignores_padding(k):
    enc = SetEncoder(out_dim=6, features=16, k=k)
    x = jax.random.normal(jax.random.key(0), (40, 2))
    params = enc.init(jax.random.key(1), x)
    base = enc.apply(params, x)
    perm = jax.random.permutation(jax.random.key(2), 40)
    np.testing.assert_allclose(enc.apply(params, x[perm]), base, rtol=1e-5, atol=1e-6)
    # padding: 40 real points among 64 rows, padding rows anywhere and holding anything
    padded = jnp.concatenate([x, 100.0 * jax.random.normal(jax.random.key(3), (24, 2))])
    mask = jnp.arange(64) < 40
    shuffle = jax.random.permutation(jax.random.key(4), 64)
    np.testing.assert_allclose(enc.apply(params, padded[shuffle], mask[shuffle]), base, rtol=1e-5, atol=1e-6)
    # and the embedding does depend on the points
    assert np.abs(np.asarray(enc.apply(params, x + 0.5) - base)).max() > 1e-3


def test_knn_indices_against_brute_force_numpy():
    x = jax.random.normal(jax.random.key(0), (50, 3))
    mask = jnp.arange(50) < 45
    idx, valid = knn_indices(x, 7, mask)
    xn = np.asarray(x, np.float64)
    d = ((xn[:, None] - xn[None]) ** 2).sum(-1)
    d[:, 45:] = np.inf
    np.fill_diagonal(d, np.inf)
    for i in range(45):
        np.testing.assert_array_equal(np.sort(np.asarray(idx[i])), np.sort(np.argsort(d[i])[:7]))
    assert bool(valid[:45].all()) and not bool(valid[45:].any())
    # fewer real neighbours than k: the extra slots are flagged invalid
    _, few = knn_indices(x[:6], 10, jnp.arange(6) < 4)
    assert few.shape == (6, 5) and int(few[0].sum()) == 3
    with pytest.raises(ValueError, match="k must be"):
        knn_indices(x[:1], 3)


def test_population_table_gives_unseen_populations_the_mean_embedding():
    table = PopulationTable(num_populations=5, out_dim=3)
    params = table.init(jax.random.key(0), jnp.zeros((), jnp.int32))
    rows = params["params"]["table"]
    np.testing.assert_allclose(table.apply(params, jnp.asarray(2)), rows[2])
    np.testing.assert_allclose(table.apply(params, jnp.asarray(-1)), rows.mean(0), rtol=1e-6)


def _params(model, enc, dim):
    p = {"velocity": init_mlp(jax.random.key(0), model, 2, None if enc is None else jnp.zeros((1, dim)))}
    if enc is not None:
        p["encoder"] = enc.init(jax.random.key(1), jnp.zeros((8, 2)))
    return p


def test_population_loss_ignores_padded_rows_and_checks_its_batch():
    model, enc = MLPVelocity(out_dim=2, hidden=(16,)), SetEncoder(out_dim=4, features=8, k=3)
    plain = jf.losses.population_loss(velocity_fn(model), jf.losses.set_embedding(enc))
    loss = jax.jit(plain)
    params = _params(model, enc, 4)
    x0 = jax.random.normal(jax.random.key(5), (3, 20, 2))
    x1 = jax.random.normal(jax.random.key(6), (3, 20, 2))
    mask = jnp.arange(20)[None, :] < jnp.array([[20], [12], [7]])
    value, _ = loss(params, {"x0": x0, "x1": x1, "mask": mask}, jax.random.key(0))
    junk = jnp.where(mask[..., None], 0.0, 1e3)
    moved, _ = loss(params, {"x0": x0 + junk, "x1": x1 - junk, "mask": mask}, jax.random.key(0))
    np.testing.assert_allclose(moved, value, rtol=1e-6)
    unmasked, _ = loss(params, {"x0": x0 + junk, "x1": x1 - junk}, jax.random.key(0))
    assert unmasked > 100 * value  # without the mask the junk rows count
    with pytest.raises(ValueError, match=r"\[P, N, d\]"):
        plain(params, {"x0": x0[0], "x1": x1[0]}, jax.random.key(0))
    ot = jf.losses.population_loss(
        velocity_fn(model), jf.losses.set_embedding(enc), coupling=jf.couplings.ExactOTCoupling()
    )
    with pytest.raises(ValueError, match="equal-size"):
        ot(params, {"x0": x0, "x1": x1, "mask": mask}, jax.random.key(0))
    with pytest.raises(ValueError, match="encoder"):
        plain({"velocity": params["velocity"]}, {"x0": x0, "x1": x1}, jax.random.key(0))


def _reflected_mean(key, p, n):
    """Populations N(m, 0.3² I) with m uniform in [−1.5, 1.5]²; the target reflects the population's mean:
    x1 = x0 − 2m. A function of the whole population, invisible to a velocity that sees one point."""
    km, ke = jax.random.split(key)
    m = jax.random.uniform(km, (p, 1, 2), minval=-1.5, maxval=1.5)
    x0 = m + 0.3 * jax.random.normal(ke, (p, n, 2))
    return x0, x0 - 2 * m


@pytest.mark.slow  # notebook 06 (run in the fast suite) shows the same: MFM beats FM on new populations
def test_mfm_learns_a_population_dependent_map_that_fm_cannot():
    model = MLPVelocity(out_dim=2, hidden=(64, 64, 64))
    v = velocity_fn(model)
    errors = {}
    for name, enc in (("mfm", SetEncoder(out_dim=8, features=32, k=10)), ("fm", None)):
        embed = None if enc is None else jf.losses.set_embedding(enc)
        loss = jf.losses.population_loss(v, embed)
        opt = optax.adam(3e-3)
        step = make_train_step(loss, opt, data_fn=lambda key: dict(zip(("x0", "x1"), _reflected_mean(key, 16, 64))))
        state, _ = step(TrainState.create(jax.random.key(2), _params(model, enc, 8), opt), None, 600)
        x0, x1 = _reflected_mean(jax.random.key(99), 6, 200)  # unseen populations
        out = jf.losses.sample_populations(v, embed, state.params, x0, solver="rk4", steps=20)
        err = [jf.metrics.wasserstein(np.asarray(out.x[p]), np.asarray(x1[p])) for p in range(6)]
        errors[name] = float(np.mean(err))
    # the populations' means move by 2|m| ~ 2 on average; MFM lands within 0.2 (W2), FM cannot
    assert errors["mfm"] < 0.2, errors
    assert errors["fm"] > 1.0, errors


def test_glyph_samples_lie_inside_the_letter_and_avoid_its_holes():
    from jaxflow.data.populations import glyph_polygons, inside_glyph

    pts = np.asarray(jf.data.sample_glyph(jax.random.key(0), "O", 3000))
    assert inside_glyph(pts, "O").all()
    assert np.abs(pts).max() <= 1.0 + 1e-6
    # the hole of the O: no point within 0.2 of the centre; the ring is sampled on every side
    assert np.min(np.linalg.norm(pts, axis=1)) > 0.2
    assert all(np.any(np.sign(pts[:, i]) == s) for i in (0, 1) for s in (-1, 1))
    # uniform: the fraction of box points that land inside estimates the area (shoelace formula, holes signed)
    area = sum(0.5 * (p[:-1, 0] @ p[1:, 1] - p[1:, 0] @ p[:-1, 1]) for p in glyph_polygons("L"))
    box = np.asarray(jax.random.uniform(jax.random.key(1), (200_000, 2), minval=-1, maxval=1))
    assert abs(inside_glyph(box, "L").mean() * 4 - abs(area)) < 0.02
    # rotation by a quarter turn maps the cloud onto the rotated letter
    rot = np.asarray(jf.data.sample_glyph(jax.random.key(0), "L", 500, angle=np.pi / 2))
    back = rot @ np.array([[0.0, -1.0], [1.0, 0.0]]).T @ np.array([[0.0, 1.0], [-1.0, 0.0]])
    assert inside_glyph(rot @ np.array([[0.0, -1.0], [1.0, 0.0]]), "L").all() or inside_glyph(back, "L").all()
    with pytest.raises(ValueError, match="character"):
        jf.data.sample_glyph(jax.random.key(0), "AB", 10)


def test_letter_populations_protocol():
    pops = jf.data.letter_populations(jax.random.key(0), ["A", "T"], [0.0, 1.0], 128, noise=0.0)
    assert pops["x0"].shape == (4, 128, 2) and pops["letter"] == ["A", "A", "T", "T"]
    # with no noise source and target are two independent uniform draws of the same letter: close in W2, not equal
    w = jf.metrics.wasserstein(np.asarray(pops["x0"][0]), np.asarray(pops["x1"][0]))
    other = jf.metrics.wasserstein(np.asarray(pops["x0"][0]), np.asarray(pops["x1"][2]))
    assert 0 < w < 0.5 * other


def test_interacting_particles_against_small_step_euler():
    x0 = jf.data.random_mixture_populations(jax.random.key(0), 2, 60)
    x1 = jf.data.interacting_particles(x0, 0.5)

    def drift(p):  # the kernel written again in NumPy: (1/N) Σ_j (x_j − x_i)(1 − 1.5 exp(−‖x_i − x_j‖² / 0.25))
        diff = p[None, :, :] - p[:, None, :]
        r2 = (diff**2).sum(-1, keepdims=True)
        return (diff * (1.0 - 1.5 * np.exp(-r2 / 0.25))).mean(1)

    x = np.asarray(x0, np.float64)
    for _ in range(2000):  # explicit Euler, h = 2.5e-4: first order, error ~ 1e-4
        x = x + 2.5e-4 * np.stack([drift(p) for p in x])
    np.testing.assert_allclose(np.asarray(x1), x, atol=2e-3)
    # the forces are antisymmetric: every population keeps its mean
    np.testing.assert_allclose(np.asarray(x1.mean(1)), np.asarray(x0.mean(1)), atol=1e-5)
