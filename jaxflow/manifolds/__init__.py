"""Manifolds for Riemannian flow matching: `Euclidean`, `Sphere`, `FlatTorus`, and the `Manifold` base a fork
subclasses (expmap, logmap, projx, proju; dist from logmap). Points and tangent vectors are ambient coordinates with
the manifold along the last axis; every operation broadcasts over the leading axes."""

from jaxflow.manifolds.base import Euclidean, Manifold, TangentField, geodesic_cost
from jaxflow.manifolds.sphere import Sphere
from jaxflow.manifolds.torus import FlatTorus

__all__ = ["Euclidean", "FlatTorus", "Manifold", "Sphere", "TangentField", "geodesic_cost"]
