"""The unit sphere S^{d−1} ⊂ R^d with the round metric."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxflow.manifolds.base import Manifold

_SMALL = 1e-12  # below this squared norm the series forms are exact to round-off in float64


def _cos_sinc(sq):
    """cos(√s) and sin(√s)/√s of s = |u|², smooth at s = 0 (the series there), so jvp/grad stay finite."""
    small = sq < _SMALL
    safe = jnp.where(small, 1.0, sq)
    n = jnp.sqrt(safe)
    cos = jnp.where(small, 1.0 - sq / 2.0, jnp.cos(n))
    sinc = jnp.where(small, 1.0 - sq / 6.0, jnp.sin(n) / n)
    return cos, sinc


class Sphere(Manifold):
    """Points are unit vectors (last axis); expmap(x, u) = cos|u| x + sin|u| u/|u|; logmap(x, y) is the tangent vector
    of length arccos⟨x, y⟩ pointing at y (undefined for antipodal pairs, where every direction is a shortest one).
    Takes no arguments: the dimension is the last axis of the points.

    Its projections are projx(x) = x/|x| and proju(x, u) = u − ⟨x, u⟩x, its distance arccos⟨x, y⟩, and
    `uniform(key, n, d)` draws n uniform points [n, d].

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxflow.manifolds import Sphere
        >>> s = Sphere()
        >>> x, y = jnp.array([[1.0, 0.0, 0.0]]), jnp.array([[0.0, 1.0, 0.0]])
        >>> print(round(float(s.dist(x, y)[0]), 4), [round(float(v), 4) + 0.0 for v in s.expmap(x, s.logmap(x, y))[0]])
        1.5708 [0.0, 1.0, 0.0]"""

    def expmap(self, x, u):
        cos, sinc = _cos_sinc(jnp.sum(u * u, axis=-1, keepdims=True))
        return cos * x + sinc * u

    def logmap(self, x, y):
        c = jnp.clip(jnp.sum(x * y, axis=-1, keepdims=True), -1.0, 1.0)
        v = y - c * x  # tangent at x, of length sin θ
        theta = jnp.arccos(c)
        sin = jnp.sqrt(jnp.maximum(1.0 - c * c, 0.0))
        small = sin < 1e-7
        ratio = jnp.where(small, 1.0 + (1.0 - c) / 3.0, theta / jnp.where(small, 1.0, sin))  # θ / sin θ
        return ratio * v

    def dist(self, x, y):
        # atan2 of |x × y|-like and ⟨x, y⟩ is accurate at both small and large angles
        c = jnp.sum(x * y, axis=-1)
        s = jnp.linalg.norm(y - c[..., None] * x, axis=-1)
        return jnp.arctan2(s, c)

    def projx(self, x):
        return x / jnp.linalg.norm(x, axis=-1, keepdims=True)

    def proju(self, x, u):
        return u - jnp.sum(x * u, axis=-1, keepdims=True) * x

    def uniform(self, key, n, dim):
        return self.projx(jax.random.normal(key, (n, dim)))
