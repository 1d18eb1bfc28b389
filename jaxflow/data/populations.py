"""Populations (point clouds) for population-conditioned flows, made without downloads.

Letters: point clouds sampled uniformly inside glyphs of a font that ships with matplotlib (DejaVu Sans, through
`TextPath`), normalised so the glyph's bounding box is centred at 0 with its longer side 2. Protocol of one
population (letter L, rotation angle a): the target is n points uniform in the glyph; the source is n further
points uniform in the glyph (an independent draw) plus N(0, noise² I); both rotated by a. Source and target are
independent within the population, so the model must learn to move a noisy cloud onto the clean letter.

Interacting particles: initial populations drawn from random 2-D Gaussian mixtures, moved by an aggregation
dynamics with an attraction–repulsion kernel,
    dx_i/dt = (1/N) Σ_j (x_j − x_i) · (a − b · exp(−‖x_i − x_j‖² / ℓ²)),
integrated by diffrax (Tsit5, rtol = atol = 1e-6) to time T. Each particle's final position is the target of its
initial one; the final population depends on the whole initial population (its mean, spread and clusters).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from functools import lru_cache

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxflow._checks import check_count

LETTERS = tuple(string.ascii_uppercase)


@lru_cache(maxsize=64)
def glyph_polygons(letter: str, font: str = "DejaVu Sans") -> tuple[np.ndarray, ...]:
    """The closed outlines of a glyph (outer contours and holes), normalised to a box centred at 0, longer side 2."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    if not isinstance(letter, str) or len(letter) != 1 or letter.isspace():
        raise ValueError(f"letter must be one visible character, got {letter!r}")
    polys = TextPath((0, 0), letter, size=1, prop=FontProperties(family=font)).to_polygons()
    if not polys:
        raise ValueError(f"the font {font!r} has no outline for {letter!r}")
    pts = np.concatenate(polys)
    lo, hi = pts.min(0), pts.max(0)
    centre, half = (lo + hi) / 2, (hi - lo).max() / 2
    return tuple((p - centre) / half for p in polys)


def inside_glyph(points: np.ndarray, letter: str, font: str = "DejaVu Sans") -> np.ndarray:
    """Even-odd rule over the glyph's outlines (a hole's outline flips the parity back): bool [n]."""
    from matplotlib.path import Path

    inside = np.zeros(len(points), bool)
    for poly in glyph_polygons(letter, font):
        inside ^= Path(poly).contains_points(points)
    return inside


def sample_glyph(key: jax.Array, letter: str, n: int, *, angle: float = 0.0, font: str = "DejaVu Sans") -> jax.Array:
    """n points uniform inside the glyph (rejection from its box), rotated by `angle` radians: [n, 2] float32.

    Args:
        key: the JAX key.
        letter: one character of the font.
        n: the number of points.
        angle: the rotation in radians.
        font: a font shipped with matplotlib.

    Returns:
        [n, 2] float32 points.
    """
    check_count(n, "n")
    out, filled, i = np.empty((n, 2)), 0, 0
    while filled < n:
        cand = np.asarray(jax.random.uniform(jax.random.fold_in(key, i), (4 * n + 64, 2), minval=-1.0, maxval=1.0))
        keep = cand[inside_glyph(cand, letter, font)][: n - filled]
        out[filled : filled + len(keep)] = keep
        filled, i = filled + len(keep), i + 1
    c, s = np.cos(angle), np.sin(angle)
    return jnp.asarray(out @ np.array([[c, s], [-s, c]]), jnp.float32)


def letter_populations(
    key: jax.Array,
    letters: Sequence[str],
    angles: Sequence[float] | ArrayLike,
    n: int,
    *,
    noise: float = 0.25,
    font: str = "DejaVu Sans",
) -> dict:
    """One population per (letter, angle), in that order: {"x0", "x1": [P, n, 2], "letter": [P] str, "angle": [P]}.

    Args:
        key: the JAX key.
        letters: the characters.
        angles: the rotations (radians).
        n: points per population.
        noise: the source population's noise scale (source = target + N(0, noise² I)).
        font: a font shipped with matplotlib.

    Returns:
        {"x0": [P, n, 2], "x1": [P, n, 2], "letter": [P], "angle": [P]} with P = len(letters)·len(angles).
    """
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    x0, x1, names, angs = [], [], [], []
    for li, letter in enumerate(letters):
        for ai, angle in enumerate(angles):
            k = jax.random.fold_in(jax.random.fold_in(key, LETTERS.index(letter) if letter in LETTERS else li), ai)
            k_src, k_tgt, k_noise = jax.random.split(k, 3)
            clean_src = sample_glyph(k_src, letter, n, angle=angle, font=font)
            x0.append(clean_src + noise * jax.random.normal(k_noise, clean_src.shape))
            x1.append(sample_glyph(k_tgt, letter, n, angle=angle, font=font))
            names.append(letter)
            angs.append(float(angle))
    return {"x0": jnp.stack(x0), "x1": jnp.stack(x1), "letter": names, "angle": np.asarray(angs)}


def aggregation_velocity(x: jax.Array, attraction: float = 1.0, repulsion: float = 1.5, length: float = 0.5):
    """The interacting-particle drift (1/N) Σ_j (x_j − x_i)(a − b exp(−‖x_i − x_j‖²/ℓ²)) of a population [N, d]."""
    diff = x[None, :, :] - x[:, None, :]
    r2 = jnp.sum(diff * diff, axis=-1, keepdims=True)
    return jnp.mean(diff * (attraction - repulsion * jnp.exp(-r2 / length**2)), axis=1)


def interacting_particles(
    x0: jax.Array, time: float = 1.0, *, attraction: float = 1.0, repulsion: float = 1.5, length: float = 0.5
) -> jax.Array:
    """Final positions [N, d] (or [P, N, d], populations evolved separately) of the aggregation dynamics at `time`.

    Args:
        x0: initial positions [N, d] or [P, N, d].
        time: the integration time.
        attraction: the attraction strength.
        repulsion: the repulsion strength.
        length: the repulsion's length scale.

    Returns:
        Final positions, shaped like x0.
    """
    if x0.ndim == 3:
        return jax.vmap(
            lambda x: interacting_particles(x, time, attraction=attraction, repulsion=repulsion, length=length)
        )(x0)
    term = diffrax.ODETerm(lambda t, x, args: aggregation_velocity(x, attraction, repulsion, length))
    sol = diffrax.diffeqsolve(
        term,
        diffrax.Tsit5(),
        0.0,
        time,
        0.05,
        x0,
        stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-6),
        max_steps=10_000,
    )
    return sol.ys[-1]


def random_mixture_populations(key: jax.Array, count: int, n: int, *, max_components: int = 3) -> jax.Array:
    """`count` initial populations [count, n, 2]: each from its own Gaussian mixture with 1…`max_components`
    components (means uniform in [−2, 2]², isotropic scales uniform in [0.15, 0.6], equal weights).

    Args:
        key: the JAX key.
        count: the number of populations.
        n: points per population.
        max_components: the most mixture components.

    Returns:
        [count, n, 2] points.
    """
    check_count(count, "count")
    check_count(n, "n")

    def one(k):
        k_k, k_mu, k_sd, k_z, k_e = jax.random.split(k, 5)
        comps = jax.random.randint(k_k, (), 1, max_components + 1)
        mu = jax.random.uniform(k_mu, (max_components, 2), minval=-2.0, maxval=2.0)
        sd = jax.random.uniform(k_sd, (max_components,), minval=0.15, maxval=0.6)
        z = jax.random.randint(k_z, (n,), 0, comps)
        return mu[z] + sd[z][:, None] * jax.random.normal(k_e, (n, 2))

    return jax.vmap(one)(jax.random.split(key, count))
