"""Procedural triangle meshes and exact area-weighted surface sampling.

A mesh is `Mesh(vertices [V, 3], faces [F, 3] int)` with faces oriented outwards (counter-clockwise seen from
outside). Sampling: a face is chosen with probability proportional to its area, then a point uniform in the
triangle, p = (1 − √u) a + √u (1 − v) b + √u v c with u, v ~ U(0, 1) (Osada et al. 2002); the points are differentiable
in the vertices (the face choice is not), so a loss on samples of a deformed mesh trains the deformation.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxflow._checks import check_count
from jaxflow.ot.sinkhorn import sqeuclidean_cost


class Mesh(NamedTuple):
    """A triangle mesh.

    Attributes:
        vertices: float [V, 3].
        faces: int [F, 3], vertex indices of each triangle (counter-clockwise seen from outside).
    """

    vertices: jax.Array
    faces: jax.Array


def _check_mesh(mesh: Mesh) -> Mesh:
    v, f = jnp.asarray(mesh.vertices), jnp.asarray(mesh.faces)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"a mesh is vertices [V, 3] and faces [F, 3], got {v.shape} and {f.shape}")
    if not jnp.issubdtype(f.dtype, jnp.integer):
        raise ValueError(f"faces must be integer indices, got {f.dtype}")
    return Mesh(v, f)


def _check_int(value, name: str, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low or (high and value > high):
        bound = f"in [{low}, {high}]" if high else f">= {low}"
        raise ValueError(f"{name} must be an integer {bound}, got {value!r}")


def icosphere(subdivisions: int = 3) -> Mesh:
    """The unit sphere as a subdivided icosahedron (10·4^k + 2 vertices), vertices projected onto the sphere.

    Args:
        subdivisions: k ≥ 0.

    Returns:
        The `Mesh`.
    """
    _check_int(subdivisions, "subdivisions", 0, 8)
    t = (1 + 5**0.5) / 2
    verts = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
             (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]  # fmt: skip
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
             (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11),
             (6, 2, 10), (8, 6, 7), (9, 8, 1)]  # fmt: skip
    v = [np.asarray(p, float) / np.linalg.norm(p) for p in verts]
    for _ in range(int(subdivisions)):
        cache, new = {}, []

        def mid(i, j, cache=cache):
            key = (min(i, j), max(i, j))
            if key not in cache:
                m = v[i] + v[j]
                v.append(m / np.linalg.norm(m))
                cache[key] = len(v) - 1
            return cache[key]

        for a, b, c in faces:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    return Mesh(jnp.asarray(np.stack(v), jnp.float32), jnp.asarray(np.asarray(faces), jnp.int32))


def superquadric(
    exponents: tuple[float, float] = (1.0, 1.0),
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0),
    subdivisions: int = 3,
) -> Mesh:
    """A superquadric as a radial map of the icosphere: each unit direction u goes to s ⊙ sign(u)|u|^e (e_1 for x and
    y, e_2 for z). e = 1 is an ellipsoid; small e a box with rounded edges.

    Args:
        exponents: (e_1, e_2) > 0.
        scale: the semi-axes s [3].
        subdivisions: the icosphere's subdivision level (20 · 4^subdivisions faces).

    Returns:
        The `Mesh`.
    """
    ex, sc = np.asarray(exponents, float), np.asarray(scale, float)
    if ex.shape != (2,) or not np.all(np.isfinite(ex)) or np.any(ex <= 0):
        raise ValueError(f"exponents must be two positive numbers (e_xy, e_z), got {exponents!r}")
    if sc.shape != (3,) or not np.all(np.isfinite(sc)) or np.any(sc <= 0):
        raise ValueError(f"scale must be three positive numbers, got {scale!r}")
    base = icosphere(subdivisions)
    u = base.vertices
    e = jnp.asarray([exponents[0], exponents[0], exponents[1]], u.dtype)
    v = jnp.asarray(scale, u.dtype) * jnp.sign(u) * jnp.abs(u) ** e
    return Mesh(v, base.faces)


def torus(major: float = 1.0, minor: float = 0.35, n_major: int = 48, n_minor: int = 24) -> Mesh:
    """A torus around the z axis as a periodic (u, v) grid.

    Args:
        major: the major radius.
        minor: the tube radius.
        n_major: grid points around the z axis.
        n_minor: grid points around the tube.

    Returns:
        The `Mesh`.
    """
    _check_int(n_major, "n_major", 3)
    _check_int(n_minor, "n_minor", 3)
    if not (np.isfinite(major) and np.isfinite(minor) and 0 < minor < major):
        raise ValueError(f"a torus needs 0 < minor < major, got minor={minor}, major={major}")
    u = np.linspace(0, 2 * np.pi, n_major, endpoint=False)
    v = np.linspace(0, 2 * np.pi, n_minor, endpoint=False)
    uu, vv = np.meshgrid(u, v, indexing="ij")
    pts = np.stack(
        [(major + minor * np.cos(vv)) * np.cos(uu), (major + minor * np.cos(vv)) * np.sin(uu), minor * np.sin(vv)], -1
    ).reshape(-1, 3)
    faces = []
    for i in range(n_major):
        for j in range(n_minor):
            a, b = i * n_minor + j, ((i + 1) % n_major) * n_minor + j
            c, d = ((i + 1) % n_major) * n_minor + (j + 1) % n_minor, i * n_minor + (j + 1) % n_minor
            faces += [(a, b, c), (a, c, d)]
    return Mesh(jnp.asarray(pts, jnp.float32), jnp.asarray(faces, jnp.int32))


def random_deformation(key: jax.Array, mesh: Mesh, amplitude: float = 0.15, modes: int = 4) -> Mesh:
    """A smooth random displacement v + amplitude · Σ_k a_k sin(ω_k·v + φ_k), ω_k ~ N(0, 2² I) (same faces).

    Args:
        key: the JAX key of the modes.
        mesh: the `Mesh` to displace.
        amplitude: the displacement's scale.
        modes: the number of sine modes.

    Returns:
        The displaced `Mesh` (same faces).
    """
    mesh = _check_mesh(mesh)
    _check_int(modes, "modes", 1)
    if not np.isfinite(amplitude) or amplitude < 0:
        raise ValueError(f"amplitude must be a finite number >= 0, got {amplitude}")
    k1, k2, k3 = jax.random.split(key, 3)
    omega = 2.0 * jax.random.normal(k1, (modes, 3))
    phase = jax.random.uniform(k2, (modes,), maxval=2 * jnp.pi)
    amp = jax.random.normal(k3, (modes, 3)) / jnp.sqrt(modes)
    disp = jnp.sin(mesh.vertices @ omega.T + phase) @ amp
    return Mesh(mesh.vertices + amplitude * disp, mesh.faces)


def random_shape(key: jax.Array, kind: str | None = None, subdivisions: int = 3) -> tuple[str, Mesh]:
    """One shape of the procedural family: ("ellipsoid" | "superquadric" | "rounded_box" | "torus", mesh), with random
    proportions and a random smooth deformation. `kind=None` picks one of the four.

    Args:
        key: the JAX key of the kind, proportions and deformation.
        kind: "ellipsoid", "superquadric", "rounded_box", "torus", or None (random).
        subdivisions: the icosphere subdivisions of the non-torus kinds.

    Returns:
        (kind, `Mesh`).

    Raises:
        ValueError: an unknown kind.
    """
    kinds = ("ellipsoid", "superquadric", "rounded_box", "torus")
    k_kind, k_scale, k_exp, k_def = jax.random.split(key, 4)
    if kind is None:
        kind = kinds[int(jax.random.randint(k_kind, (), 0, len(kinds)))]
    if kind not in kinds:
        raise ValueError(f"unknown shape kind {kind!r}; choose from {list(kinds)}")
    scale = tuple(float(s) for s in jax.random.uniform(k_scale, (3,), minval=0.6, maxval=1.0))
    if kind == "torus":
        mesh = torus(0.7, float(jax.random.uniform(k_exp, (), minval=0.2, maxval=0.35)))
        mesh = Mesh(mesh.vertices * jnp.asarray(scale), mesh.faces)
    elif kind == "ellipsoid":
        mesh = superquadric((1.0, 1.0), scale, subdivisions)
    elif kind == "superquadric":
        e = tuple(float(x) for x in jax.random.uniform(k_exp, (2,), minval=0.4, maxval=1.6))
        mesh = superquadric(e, scale, subdivisions)
    else:
        mesh = superquadric((0.25, 0.25), scale, subdivisions)
    return kind, random_deformation(k_def, mesh, amplitude=0.08)


def face_areas(mesh: Mesh) -> jax.Array:
    """The area of every triangle, [F].

    Args:
        mesh: the `Mesh`.

    Returns:
        The areas [F].
    """
    v, f = _check_mesh(mesh)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    return 0.5 * jnp.linalg.norm(jnp.cross(b - a, c - a), axis=1)


def mesh_measure(mesh: Mesh) -> tuple[jax.Array, jax.Array]:
    """The mesh as a probability measure: its triangle centroids [F, 3] with masses proportional to their areas [F]
    (summing to 1), the encoding Le et al. (2023) use for a mesh under sliced Wasserstein. Differentiable in the
    vertices (both the support and the masses move with them).

    Args:
        mesh: the `Mesh`.

    Returns:
        (centroids [F, 3], masses [F]).
    """
    v, f = _check_mesh(mesh)
    areas = face_areas(Mesh(v, f))
    return v[f].mean(axis=1), areas / jnp.sum(areas)


def face_normals(mesh: Mesh) -> jax.Array:
    """The unit normal of every triangle, [F, 3].

    Args:
        mesh: the `Mesh`.

    Returns:
        The unit normals [F, 3] (orientation from the vertex order).
    """
    v, f = _check_mesh(mesh)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    n = jnp.cross(b - a, c - a)
    return n / jnp.maximum(jnp.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def sample_surface(key: jax.Array, mesh: Mesh, n: int) -> tuple[jax.Array, jax.Array]:
    """n points uniform on the surface (area-weighted) and the unit normals of their faces: ([n, 3], [n, 3]).

    Args:
        key: the JAX key.
        mesh: the `Mesh`.
        n: the number of points.

    Returns:
        (points [n, 3], normals [n, 3]).
    """
    check_count(n, "n")
    v, f = _check_mesh(mesh)
    k_face, k_uv = jax.random.split(key)
    areas = jax.lax.stop_gradient(face_areas(Mesh(v, f)))
    face = jax.random.choice(k_face, f.shape[0], (n,), p=areas / jnp.sum(areas))
    uv = jax.random.uniform(k_uv, (n, 2), v.dtype)
    su = jnp.sqrt(uv[:, :1])
    tri = v[f[face]]
    pts = (1 - su) * tri[:, 0] + su * (1 - uv[:, 1:]) * tri[:, 1] + su * uv[:, 1:] * tri[:, 2]
    return pts, face_normals(Mesh(v, f))[face]


def normal_consistency(
    points: jax.Array, normals: jax.Array, ref_points: jax.Array, ref_normals: jax.Array
) -> jax.Array:
    """Mean |n · n_ref| over each point's nearest reference point, averaged both ways (1 is perfect).

    Args:
        points: points [n, 3].
        normals: their unit normals [n, 3].
        ref_points: reference points [m, 3].
        ref_normals: their unit normals [m, 3].

    Returns:
        The consistency in [0, 1], a scalar array.
    """

    def one_way(p, n, q, m):
        return jnp.mean(jnp.abs(jnp.sum(n * m[jnp.argmin(sqeuclidean_cost(p, q), axis=1)], axis=1)))

    return 0.5 * (one_way(points, normals, ref_points, ref_normals) + one_way(ref_points, ref_normals, points, normals))
