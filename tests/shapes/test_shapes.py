"""Meshes, surface sampling, Chamfer, neural-ODE deformation and the slice amortizer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxflow as jf
from jaxflow import shapes as S


def test_chamfer_against_brute_force_numpy():
    x = np.asarray(jax.random.normal(jax.random.key(0), (70, 3)), np.float64)
    y = np.asarray(jax.random.normal(jax.random.key(1), (50, 3)), np.float64) + 0.3
    d = ((x[:, None] - y[None]) ** 2).sum(-1)
    expected = d.min(1).mean() + d.min(0).mean()
    assert float(jf.metrics.chamfer(x.astype(np.float32), y.astype(np.float32))) == pytest.approx(expected, rel=1e-5)
    assert float(jf.metrics.chamfer(x, x)) == pytest.approx(0.0, abs=1e-5)


def test_area_weighted_sampling_is_uniform_on_the_sphere():
    """Archimedes: the height of a uniform point on the unit sphere is uniform in [−1, 1]; normals point outwards."""
    sphere = S.icosphere(4)
    assert float(S.face_areas(sphere).sum()) == pytest.approx(4 * np.pi, rel=2e-3)
    pts, normals = S.sample_surface(jax.random.key(2), sphere, 20_000)
    # the icosphere's faces are chords: heights of its surface are uniform up to the faceting
    assert stats.kstest(np.asarray(pts[:, 2]), stats.uniform(-1, 2).cdf).pvalue > 1e-3
    assert float(jnp.min(jnp.sum(pts * normals, axis=1))) > 0.9
    # area-weighted, not face-uniform: on a stretched ellipsoid the share of samples per face tracks its area
    ell = S.superquadric((1.0, 1.0), (2.0, 0.5, 0.5), subdivisions=2)
    p2, _ = S.sample_surface(jax.random.key(3), ell, 40_000)
    far = float(jnp.mean(jnp.abs(p2[:, 0]) > 1.0))
    areas, centres = S.face_areas(ell), ell.vertices[ell.faces].mean(1)
    expected = float(jnp.sum(areas * (jnp.abs(centres[:, 0]) > 1.0)) / jnp.sum(areas))
    assert abs(far - expected) < 0.02


def test_shape_family_and_bad_meshes():
    for kind in ("ellipsoid", "superquadric", "rounded_box", "torus"):
        name, mesh = S.random_shape(jax.random.key(4), kind)
        assert name == kind and bool(jnp.all(jnp.isfinite(mesh.vertices))) and float(S.face_areas(mesh).min()) >= 0
    with pytest.raises(ValueError, match="unknown shape"):
        S.random_shape(jax.random.key(0), "cube")
    with pytest.raises(ValueError, match="faces"):
        S.face_areas(S.Mesh(jnp.zeros((3, 3)), jnp.zeros((1, 3))))


def test_flow_map_jacobian_against_finite_differences():
    module = S.DeformationField(hidden=(16, 16))
    params = jf.nn.init_mlp(jax.random.key(5), module, 3)
    pts = jax.random.normal(jax.random.key(6), (4, 3)) * 0.5
    det = S.min_jacobian_determinant(module, params, pts, steps=8)
    h = 1e-3
    # every point of every central difference in one solve (the field acts point by point)
    shifts = np.concatenate([np.eye(3), -np.eye(3)]) * h  # [6, 3]
    probes = (np.asarray(pts, np.float64)[:, None, :] + shifts[None]).reshape(-1, 3)
    moved = np.asarray(S.deform(module, params, jnp.asarray(probes, jnp.float32), steps=8), np.float64).reshape(4, 6, 3)
    jac = (moved[:, :3] - moved[:, 3:]).transpose(0, 2, 1) / (2 * h)  # [4, out, in]
    dets = np.linalg.det(jac)
    assert float(det) == pytest.approx(min(dets), rel=2e-2)


def test_amortizer_is_permutation_invariant_and_symmetric():
    for linear in (False, True):
        g = S.SliceAmortizer(features=32, heads=4, linear=linear)
        x = jax.random.normal(jax.random.key(7), (60, 3))
        y = jax.random.normal(jax.random.key(8), (45, 3)) + 1.0
        params = g.init(jax.random.key(9), x, y)
        base = g.apply(params, x, y)
        assert float(jnp.linalg.norm(base)) == pytest.approx(1.0, abs=1e-5)
        px, py = jax.random.permutation(jax.random.key(10), 60), jax.random.permutation(jax.random.key(11), 45)
        np.testing.assert_allclose(g.apply(params, x[px], y[py]), base, atol=1e-5)
        np.testing.assert_allclose(g.apply(params, y, x), base, atol=1e-5)


def test_linear_amortizer_is_the_normalised_weighted_sum_of_the_point_slots():
    g = S.LinearSliceAmortizer()
    x = jax.random.normal(jax.random.key(7), (20, 3))
    y = jax.random.normal(jax.random.key(8), (12, 3)) + 1.0
    params = g.init(jax.random.key(9), x, y)
    w, b = np.asarray(params["params"]["weight"], np.float64), float(params["params"]["bias"])
    assert w.shape == (32,) and np.all(np.abs(w) <= 1 / np.sqrt(32)) and abs(b) <= 1 / np.sqrt(32)
    z = np.concatenate([np.asarray(x, np.float64), np.asarray(y, np.float64)])
    s = np.einsum("n,nd->d", w, z) + b
    np.testing.assert_allclose(np.asarray(g.apply(params, x, y)), s / np.linalg.norm(s), atol=1e-5)
    # a slot's weight follows the point in it: reordering the points moves the direction (no invariance)
    perm = jax.random.permutation(jax.random.key(10), 20)
    assert float(jnp.linalg.norm(g.apply(params, x[perm], y) - g.apply(params, x, y))) > 1e-3
    with pytest.raises(ValueError, match="point clouds"):
        g.apply(params, x, y[:, :2])


def test_amortized_distance_at_infinite_kappa_is_max_sw_at_the_maximiser():
    """Two Gaussians that differ by a shift of 2 along e1: the maximising direction is e1 and Max-SW₂ = 2."""
    x = jax.random.normal(jax.random.key(12), (2000, 3))
    y = jax.random.normal(jax.random.key(13), (2000, 3)) + jnp.array([2.0, 0.0, 0.0])
    e1 = jnp.array([1.0, 0.0, 0.0])
    at_max = float(S.amortized_vmf_sw(jax.random.key(0), x, y, e1, kappa=None))
    max_sw = float(jf.ot.max_sliced_wasserstein(jax.random.key(1), x, y).distance)
    assert at_max == pytest.approx(max_sw, rel=0.02) and at_max == pytest.approx(2.0, rel=0.05)
    # large κ concentrates the vMF directions at the location; small κ averages over directions (smaller value)
    big = float(S.amortized_vmf_sw(jax.random.key(0), x, y, e1, kappa=1e4))
    small = float(S.amortized_vmf_sw(jax.random.key(0), x, y, e1, kappa=1.0))
    assert big == pytest.approx(at_max, rel=0.01) and small < 0.9 * at_max


def test_mesh_measure_against_surface_sampling():
    """The centroid measure (area masses) has the surface's mean and second moments up to the triangles' size:
    compare with many uniform surface samples (a second, Monte Carlo, route)."""
    _, mesh = S.random_shape(jax.random.key(3), "superquadric", subdivisions=4)
    support, mass = S.mesh_measure(mesh)
    assert support.shape == (mesh.faces.shape[0], 3) and np.isclose(float(mass.sum()), 1.0, atol=1e-6)
    pts = np.asarray(S.sample_surface(jax.random.key(4), mesh, 400_000)[0], np.float64)
    mean = np.asarray(mass) @ np.asarray(support, np.float64)
    np.testing.assert_allclose(mean, pts.mean(0), atol=5e-3)
    cov = (np.asarray(support) - mean).T @ ((np.asarray(support) - mean) * np.asarray(mass)[:, None])
    np.testing.assert_allclose(cov, np.cov(pts.T), atol=5e-3)


@pytest.mark.slow
def test_deformation_of_a_sphere_onto_a_larger_sphere_under_both_encodings():
    """Closed form: the fitted flow must move the unit icosphere onto the sphere of radius 1.3 (mean radius of the
    moved vertices), whether the meshes are compared as point samples or as measures (centroids with area masses)."""
    template = target = S.icosphere(2)  # the same mesh: scaling by 1.3 matches exactly
    target = S.Mesh(1.3 * target.vertices, target.faces)
    for encoding in ("points", "mesh"):
        module, params, hist = S.fit_deformation(
            jax.random.key(0),
            template,
            target,
            encoding=encoding,
            iterations=100,
            n_points=256,
            lr=3e-3,
            monitor=lambda p: 0.0,
            monitor_every=50,
        )
        r = jnp.linalg.norm(S.deform(module, params, template.vertices), axis=1)
        assert abs(float(r.mean()) - 1.3) < 0.03, (encoding, float(r.mean()))
        assert [i for i, _, _ in hist["monitor"]] == [50, 99]
        times = [t for _, t, _ in hist["monitor"]]
        assert times == sorted(times) and times[0] > 0


def test_deformation_encodings_refuse_what_they_cannot_do():
    template = S.icosphere(1)
    pts = S.sample_surface(jax.random.key(0), template, 64)[0]
    with pytest.raises(TypeError, match="Mesh"):
        S.fit_deformation(jax.random.key(0), template, pts, encoding="mesh", iterations=2)
    with pytest.raises(ValueError, match="Chamfer"):
        S.fit_deformation(jax.random.key(0), template, template, encoding="mesh", loss="chamfer", iterations=2)
    with pytest.raises(ValueError, match="encoding"):
        S.fit_deformation(jax.random.key(0), template, pts, encoding="voxels", iterations=2)
