"""The geodesic path of Riemannian flow matching (Chen & Lipman 2024, "Flow matching on general geometries",
arXiv:2302.03660): x_t = exp_{x0}(κ_t log_{x0}(x1)), the point a fraction κ_t of the way along the shortest geodesic
from x0 to x1, and its conditional velocity u_t = d/dt x_t (by `jax.jvp`, tangent at x_t). With the Euclidean manifold
and κ_t = t it is the Cond-OT path. docs/manifolds.md.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from jaxflow._checks import check_array, check_time
from jaxflow.manifolds import Euclidean, Manifold
from jaxflow.paths.base import PathSample, ProbabilityPath
from jaxflow.paths.schedulers import CondOTScheduler, Scheduler


class GeodesicPath(ProbabilityPath):
    """x_t = expmap(x0, κ_t logmap(x0, x1)) with κ = the scheduler's α (0 at t = 0, 1 at t = 1).

    `sample(key, x0, x1, t)`: x0, x1 [B, d] points of the manifold, t [B] or a scalar. The key is unused (the path is
    deterministic given its ends) and kept for the path contract. The target u_t = d/dt x_t comes from one `jax.jvp`
    (Chen & Lipman 2024, Riemannian flow matching).

    Attributes:
        scheduler: κ_t as the scheduler's α (default Cond-OT: κ_t = t).
        manifold: the `Manifold` (default `Euclidean()`, where the path is the straight line).

    Raises:
        TypeError: a manifold that is not a `jaxflow.manifolds.Manifold`.
    """

    scheduler: Scheduler = eqx.field(default_factory=CondOTScheduler)
    manifold: Manifold = eqx.field(default_factory=Euclidean)

    def __check_init__(self):
        if not isinstance(self.manifold, Manifold):
            raise TypeError(f"manifold must be a jaxflow.manifolds.Manifold, got {type(self.manifold).__name__}")
        if not isinstance(self.scheduler, Scheduler):
            raise TypeError(f"scheduler must be a Scheduler, got {type(self.scheduler).__name__}")

    def sample(self, key: jax.Array | None, x0: jax.Array, x1: jax.Array, t: float | jax.Array) -> PathSample:
        """A draw of the path.

        Args:
            key: unused (the path is deterministic given its ends); kept for the path contract.
            x0: [B, d] source points on the manifold.
            x1: [B, d] data points on the manifold.
            t: [B] times in [0, 1], or a scalar.

        Returns:
            `PathSample(t, x0, x1, xt, ut)` with x_t on the manifold and u_t tangent at x_t.
        """
        del key
        x0 = check_array(x0, "x0", ndim=2)
        x1 = check_array(x1, "x1", ndim=2)
        if x0.shape != x1.shape:
            raise ValueError(f"x0 and x1 must have the same shape [B, d], got {x0.shape} and {x1.shape}")
        t = check_time(t)
        if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != x0.shape[0]):
            raise ValueError(f"t must be a scalar or of shape [B]={x0.shape[:1]}, got {t.shape}")
        t = jnp.broadcast_to(t, x0.shape[:1]).astype(x0.dtype)
        direction = self.manifold.logmap(x0, x1)

        def point(s):
            return self.manifold.expmap(x0, self.scheduler.alpha(s)[:, None] * direction)

        xt, ut = jax.jvp(point, (t,), (jnp.ones_like(t),))
        return PathSample(t, x0, x1, xt, ut)
