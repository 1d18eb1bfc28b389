"""Affine probability paths x_t = α_t x1 + σ_t x0 and converters between parametrisations.

Lipman et al. (2023), arXiv:2210.02747; Liu, Gong & Liu (2023), arXiv:2209.03003. The derivation of the converters
and their sign conventions is in docs/conventions.md.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxflow._checks import broadcast_time, check_time
from jaxflow.paths.base import PathSample, ProbabilityPath, validate_path_inputs
from jaxflow.paths.schedulers import CondOTScheduler, Scheduler, VPTrigScheduler
from jaxflow.paths.targets import _TARGETS, Target, resolve_target

PARAMETRISATIONS = ("velocity", "score", "epsilon", "x1")  # shorthand names of the convertible targets


class AffinePath(ProbabilityPath):
    """The affine probability path x_t = α_t x1 + σ_t x0 with target velocity u_t = α̇_t x1 + σ̇_t x0
    (Lipman et al. 2023; Lipman et al. 2024, "Flow Matching Guide and Code", §4).

    `sample(key, x0 [B, ...], x1 [B, ...], t [B] or scalar) -> PathSample` (t, x0, x1, x_t, u_t). `convert` moves a
    model output between the velocity, score (∇ log p_t), ε- (x0-) and x1-prediction parametrisations; the score
    conversions assume a standard Gaussian source, x0 ~ N(0, I).

    Attributes:
        scheduler: the (α_t, σ_t) schedule, any `Scheduler` object (`CondOTScheduler()`, `VPSDEScheduler()`,
            `VPTrigScheduler()`, `PolynomialConvexScheduler(n)`, `KineticOptimalScheduler(...)`, your own
            subclass); default Cond-OT (α_t = t, σ_t = 1 − t).

    Example:
        >>> import jax, jax.numpy as jnp, jaxflow as jf
        >>> path = jf.paths.AffinePath(jf.paths.CondOTScheduler())
        >>> s = path.sample(jax.random.key(0), jnp.zeros((1, 2)), jnp.ones((1, 2)), 0.25)
        >>> print(float(s.xt[0, 0]), float(s.ut[0, 0]))  # x_t = 0.25·x1 + 0.75·x0, u_t = x1 − x0
        0.25 1.0
    """

    scheduler: Scheduler = CondOTScheduler()

    def sample(self, key, x0, x1, t) -> PathSample:
        del key  # deterministic given the endpoints
        x0, x1, t = validate_path_inputs(x0, x1, t)
        t = jnp.broadcast_to(jnp.asarray(t, x0.dtype), x0.shape[:1])
        tb = broadcast_time(t, x0)
        s = self.scheduler
        xt = s.alpha(tb) * x1 + s.sigma(tb) * x0
        ut = s.d_alpha(tb) * x1 + s.d_sigma(tb) * x0
        return PathSample(t=t, x0=x0, x1=x1, xt=xt, ut=ut, z=None)

    def noise_scale(self, t):
        """The scale of the path's Gaussian noise (the source x0 ~ N(0, I)) at t: σ_t."""
        return self.scheduler.sigma(t)

    def convert(
        self, pred: jax.Array, t: float | jax.Array, x: jax.Array, *, source: Target | str, target: Target | str
    ) -> jax.Array:
        """Convert a prediction `pred` at (t, x) from the parametrisation `source` to `target`.

        source, target: `jaxflow.paths.targets` objects (`VelocityTarget()`, `ScoreTarget()`, `NoiseTarget()`,
        `DataTarget()`, or a subclass that defines `to_noise`/`from_noise`) or their names ("velocity", "score",
        "epsilon", "x1", ...). pred, x: [B, ...]; t: [] or [B]. Conversions divide by α_t and σ_t, so they are
        singular where those vanish (e.g. t = 0 for α = t): evaluate them in the open interval.
        """
        source = _parametrisation(source, "source")
        target = _parametrisation(target, "target")
        t = check_time(t)
        tb = broadcast_time(t, x)
        if type(source) is type(target):
            return pred
        s = self.scheduler
        coef = (s.alpha(tb), s.sigma(tb), s.d_alpha(tb), s.d_sigma(tb))
        return target.from_noise(coef, source.to_noise(coef, pred, x), x)


def _parametrisation(p, role: str) -> Target:
    if isinstance(p, str) and p not in _TARGETS:
        raise ValueError(f"unknown {role} parametrisation {p!r}; choose from {list(PARAMETRISATIONS)} or pass a Target")
    return resolve_target(p)


def cond_ot_path() -> AffinePath:
    """The rectified / Cond-OT path x_t = t·x1 + (1 − t)·x0, u_t = x1 − x0: `AffinePath(CondOTScheduler())`.

    Returns:
        The `AffinePath`.
    """
    return AffinePath(CondOTScheduler())


def vp_trig_path() -> AffinePath:
    """The trigonometric variance-preserving path x_t = sin(πt/2)·x1 + cos(πt/2)·x0: `AffinePath(VPTrigScheduler())`.

    Returns:
        The `AffinePath`.
    """
    return AffinePath(VPTrigScheduler())
