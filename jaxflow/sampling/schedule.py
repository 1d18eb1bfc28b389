"""Changing the schedule after training: the velocity of the scale–time transformed flow.

Two affine paths with the same source and data, x_t = α_t x1 + σ_t x0 (the original) and x̄_r = ᾱ_r x1 + σ̄_r x0 (the
new), are one path seen at another time and scale: x̄_r = s_r x_{t_r}, where t_r matches the signal-to-noise ratio,
α_{t_r}/σ_{t_r} = ᾱ_r/σ̄_r, and s_r = σ̄_r/σ_{t_r} (= ᾱ_r/α_{t_r}). The marginal velocity therefore transforms as

    ū_r(x) = (ṡ_r / s_r) x + s_r ṫ_r u_{t_r}(x / s_r)

(Lipman et al. 2024, "Flow matching guide and code", arXiv:2412.06264, §4.10; Meta's `ScheduleTransformedModel`).
So a model trained under Cond-OT samples under a VP or a polynomial schedule without retraining; its samples at
r = 1 have the same law (the ODEs differ, so individual trajectories and discretisation errors differ).

Here t_r comes from `original.snr_inverse`, and s_r, ṫ_r, ṡ_r are written through q = α/(α + σ) (finite at both ends:
at r = 1 the ratio α/σ is infinite but q = 1): s = (ᾱ + σ̄)/(α + σ), ṫ = q̄'(r)/q'(t). docs/schedule_transform.md.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp

from jaxflow._boundary import split_call
from jaxflow.paths.schedulers import Scheduler


class ScheduleTransformed(eqx.Module):
    """The velocity of a model trained under `original`, re-expressed for sampling under `new`.

    Called with the wrapped velocity's boundary: `(t, x)` or `(params, t, x, cond)`; t a scalar or [B].
    `time_and_scale(r)` returns (t_r, s_r, ṫ_r, ṡ_r).

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxflow.paths import CondOTScheduler, VPTrigScheduler
        >>> from jaxflow.sampling import schedule_transform
        >>> moved = schedule_transform(lambda t, x: -x, CondOTScheduler(), VPTrigScheduler())
        >>> t, s, dt, ds = moved.time_and_scale(jnp.asarray(1.0))  # both schedules end at the data
        >>> print(round(float(t), 4), round(float(s), 4))
        1.0 1.0

    Attributes:
        velocity: the model's velocity, `(t, x)` or `(params, t, x, cond)`.
        original: the `Scheduler` it was trained under.
        new: the `Scheduler` to sample under.
    """

    velocity: Callable  # a field, not static: a model's bound method carries arrays
    original: Scheduler
    new: Scheduler

    def __check_init__(self):
        for name in ("original", "new"):
            if not isinstance(getattr(self, name), Scheduler):
                raise TypeError(f"{name} must be a Scheduler, got {type(getattr(self, name)).__name__}")

    def time_and_scale(self, r):
        r = jnp.asarray(r, jnp.result_type(float, r))
        a_new, s_new = self.new.alpha(r), self.new.sigma(r)
        da_new, ds_new = self.new.d_alpha(r), self.new.d_sigma(r)
        tiny = jnp.finfo(r.dtype).tiny
        snr = jnp.clip(a_new / jnp.maximum(s_new, tiny), 0.0, jnp.finfo(r.dtype).max)
        t = jnp.clip(self.original.snr_inverse(snr), 0.0, 1.0).astype(r.dtype)
        a, s = self.original.alpha(t), self.original.sigma(t)
        da, ds = self.original.d_alpha(t), self.original.d_sigma(t)
        total_new, total = a_new + s_new, a + s
        scale = total_new / total
        dq_new = (da_new * s_new - a_new * ds_new) / total_new**2
        dq = (da * s - a * ds) / total**2
        dt = dq_new / dq
        dscale = ((da_new + ds_new) * total - total_new * (da + ds) * dt) / total**2
        return t, scale, dt, dscale

    def __call__(self, *args):
        call, r, x = split_call(self.velocity, args)
        t, s, dt, ds = self.time_and_scale(r)
        shape = (-1,) + (1,) * (x.ndim - 1) if jnp.ndim(r) == 1 else ()
        s_, dt_, ds_ = (jnp.reshape(v, shape) for v in (s, dt, ds))
        u = call(t, x / s_)
        return (ds_ / s_) * x + s_ * dt_ * u


def schedule_transform(velocity: Callable, original: Scheduler, new: Scheduler) -> ScheduleTransformed:
    """Sample a model trained under one affine schedule along another (Lipman et al. 2024, §4.8).

    Args:
        velocity: the trained velocity, `v(t, x)` or the model boundary `v(params, t, x, cond)`; x is [B, ...].
        original: the `Scheduler` the model was trained under.
        new: the `Scheduler` to sample under (same source and data ends).

    Returns:
        `ScheduleTransformed`, called with the wrapped velocity's boundary; pass it to `jf.sample` as the model.
    """
    return ScheduleTransformed(velocity, original, new)
