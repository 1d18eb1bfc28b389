"""The flat torus [0, 2π)^d: angles, each coordinate wrapped; geodesics are straight lines mod 2π."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxflow.manifolds.base import Manifold

TWO_PI = 2.0 * jnp.pi


def wrap(a):
    """Angles into [−π, π)."""
    return jnp.mod(a + jnp.pi, TWO_PI) - jnp.pi


class FlatTorus(Manifold):
    """Points are angle vectors in [0, 2π)^d; tangent vectors are any vectors of R^d; logmap takes the shorter way
    round each circle."""

    def expmap(self, x, u):
        return jnp.mod(x + u, TWO_PI)

    def logmap(self, x, y):
        return wrap(y - x)

    def projx(self, x):
        return jnp.mod(x, TWO_PI)

    def proju(self, x, u):
        return u

    def check(self, x):
        """0 for every finite point: any angle vector names a point (projx only chooses the representative)."""
        return jnp.zeros(x.shape[:-1], x.dtype)

    def uniform(self, key, n, dim):
        return jax.random.uniform(key, (n, dim), minval=0.0, maxval=TWO_PI)
