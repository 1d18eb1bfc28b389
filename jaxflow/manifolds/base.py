"""The manifold contract (docs/manifolds.md).

A `Manifold` is a small immutable object whose methods act on the last axis of ambient coordinates:

    expmap(x, u)  the point reached from x along the geodesic with initial velocity u (u tangent at x)
    logmap(x, y)  the tangent vector at x whose expmap is y (the shortest one)
    projx(x)      the nearest point of the manifold (a retraction of ambient points)
    proju(x, u)   the orthogonal projection of an ambient vector onto the tangent space at x
    dist(x, y)    the geodesic distance, |logmap(x, y)| by default
    check(x)      how far x lies from the manifold, |x − projx(x)| per point

Subclass it and implement the first four (a fork might add SPD matrices with the Bures–Wasserstein geometry of
`jaxflow.ot.gaussian`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from jaxflow._boundary import split_call


class Manifold(eqx.Module):
    """Abstract Riemannian manifold embedded in ambient coordinates (the last axis); every operation broadcasts over
    the leading axes. A subclass implements the four abstract methods below (and `uniform` when it has a uniform law);
    `inner`, `dist` and `check` have ambient defaults.

    The abstract methods: `expmap(x, u)`, the point reached from x along the geodesic with initial velocity u
    (tangent at x); `logmap(x, y)`, the tangent vector at x whose geodesic reaches y at time 1 (the inverse of
    expmap); `projx(x)`, the nearest point of the manifold; `proju(x, u)`, the projection of an ambient vector onto
    the tangent space at x.
    """

    @abc.abstractmethod
    def expmap(self, x: jax.Array, u: jax.Array) -> jax.Array: ...

    @abc.abstractmethod
    def logmap(self, x: jax.Array, y: jax.Array) -> jax.Array: ...

    @abc.abstractmethod
    def projx(self, x: jax.Array) -> jax.Array: ...

    @abc.abstractmethod
    def proju(self, x: jax.Array, u: jax.Array) -> jax.Array: ...

    def inner(self, x: jax.Array, u: jax.Array, v: jax.Array) -> jax.Array:
        """The metric at x (the ambient Euclidean one unless overridden): ⟨u, v⟩_x over the last axis."""
        del x
        return jnp.sum(u * v, axis=-1)

    def dist(self, x: jax.Array, y: jax.Array) -> jax.Array:
        """Geodesic distance over the last axis."""
        u = self.logmap(x, y)
        return jnp.sqrt(jnp.maximum(self.inner(x, u, u), 0.0))

    def check(self, x: jax.Array) -> jax.Array:
        """Distance of each point from the manifold (0 up to round-off for a point on it)."""
        return jnp.linalg.norm(x - self.projx(x), axis=-1)

    def uniform(self, key: jax.Array, n: int, dim: int) -> jax.Array:
        """n points of the manifold's uniform law, for compact manifolds that define one."""
        raise NotImplementedError(f"{type(self).__name__} has no uniform law")


class Euclidean(Manifold):
    """Flat R^d: expmap is x + u, logmap y − x; the projections are identities."""

    def expmap(self, x, u):
        return x + u

    def logmap(self, x, y):
        return y - x

    def projx(self, x):
        return x

    def proju(self, x, u):
        return u


def geodesic_cost(manifold: Manifold, x0: jax.Array, x1: jax.Array) -> jax.Array:
    """Squared geodesic distances between two batches of points: the cost of Riemannian OT-CFM.

    Args:
        manifold: the `Manifold`.
        x0: points [B0, d].
        x1: points [B1, d].

    Returns:
        The cost matrix [B0, B1].
    """
    return jax.vmap(lambda a: manifold.dist(a[None, :], x1) ** 2)(x0)


class TangentField(eqx.Module):
    """A velocity made tangent: `proju(projx(x), v(t, projx(x)))`, with the wrapped velocity's boundary ((t, x) or
    (params, t, x, cond)). Wrap a network with it for training and sampling on a manifold, as Meta's flow_matching
    projects its models' outputs.

    Attributes:
        velocity: `v(t, x)` or the model boundary `v(params, t, x, cond)` (the wrapper keeps the same boundary).
        manifold: the `Manifold` to be tangent to.
    """

    velocity: Callable
    manifold: Manifold

    def __call__(self, *args):
        call, t, x = split_call(self.velocity, args)
        y = self.manifold.projx(x)
        return self.manifold.proju(y, call(t, y))
