"""Few-step objectives: one-step distillation, MeanFlow, shortcut models and the OFTSR one-step student.

Conventions (docs/few_step.md): t = 0 is the source (noise), t = 1 the data. A flow-map model is the pure function
`u(params, s, t, x, cond=None)`, the average velocity from time s (where x lives) to time t, so that
Ψ(x, s, t) = x + (t − s)·u(x, s, t); u(x, t, t) is the instantaneous velocity (`jaxflow.nn.flow_map_fn`).

- Distillation (Liu, Gong & Liu 2023, arXiv:2209.03003): T(z) = z + v(0, z) fitted to pairs (z, Φ(z)).
- MeanFlow (Geng et al. 2025, arXiv:2505.13447): u(x_s, s, t) = v(x_s, s) + (t − s)·d/ds u(x_s, s, t), with
  d/ds u = ∂_x u · v + ∂_s u computed by one `jax.jvp`; the right-hand side (with the conditional velocity) is the
  stop-gradient regression target.
- Shortcut models (Frans et al. 2024, arXiv:2410.12557): u(x, t, t + 2h) = ½ u(x, t, t + h) + ½ u(x′, t + h, t + 2h),
  x′ = x + h·u(x, t, t + h), plus flow matching at zero gap.
- OFTSR (Zhu et al. 2024, arXiv:2412.09465), as released: a student v(x0, t) that always sees the start x0 learns the
  teacher's average velocity from 0 to t by bootstrapping along the teacher's trajectory; one step x0 + v(x0, t)
  trades fidelity (small t) for realism (t near 1).

Each is a module called as `loss(params, batch, key) -> (scalar, aux)` like every loss in jaxflow (the lower-case
builders return them), so the step factory, sharding and the training loop take them unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from jaxflow._checks import broadcast_time, check_array, check_positive, check_probability
from jaxflow.couplings.base import Coupling, IndependentCoupling
from jaxflow.data.labels import drop_labels
from jaxflow.losses.base import Objective
from jaxflow.losses.cfm import _check_batch, squared_error
from jaxflow.losses.time_samplers import TimeSampler, UniformTime
from jaxflow.paths.affine import cond_ot_path
from jaxflow.paths.base import ProbabilityPath


def _pairs(coupling: Coupling, batch, key):
    _check_batch(batch)
    x1 = batch["x1"]
    x0 = batch["x0"] if "x0" in batch else jax.random.normal(jax.random.fold_in(key, 7), x1.shape, x1.dtype)
    return coupling(key, x0, x1, batch.get("labels"))


def _cond(pairing, conditional, label_dropout, null_label, key):
    if not conditional:
        return None
    if pairing.labels is None:
        raise ValueError("conditional training needs 'labels' in the batch")
    if label_dropout > 0:
        return drop_labels(key, pairing.labels, label_dropout, null_label)
    return pairing.labels


def _check_dropout(label_dropout, null_label):
    check_probability(label_dropout, "label_dropout")
    if label_dropout > 0 and null_label is None:
        raise ValueError("label_dropout > 0 needs the null_label index")


def _per_sample_mse(a, b):
    return jnp.mean(((a - b) ** 2).reshape(a.shape[0], -1), axis=1)


class DistillationLoss(Objective):
    """One-step distillation of a flow: E‖T(z) − Φ(z)‖² with T(z) = z + (1 − t0)·v(params, t0, z).

    batch = {"x0": z [B, ...], "x1": Φ(z) [B, ...]} (pairs from `ReflowCoupling` or `reflow_pairs`; with
    "labels" when `conditional`). `feature(x) -> [B, k]` replaces the pixel error by a feature-space error
    ‖feature(T(z)) − feature(Φ(z))‖² (the paper uses LPIPS on images; any fixed network works, e.g. the features of
    `jaxflow.metrics.DigitsMetric`). One Euler step of `jaxflow.sample` over [t0, 1] draws from T.

    Attributes:
        student: the model boundary `v(params, t, x, cond)` (usually initialised from the teacher).
        t0: the time the one step starts from.
        feature: `feature(x) -> [B, k]` for a feature-space error, or None for the squared error.
        conditional: pass batch["labels"] to the student as `cond`.
    """

    student: Callable = eqx.field(static=True)
    t0: float = eqx.field(static=True, default=0.0)
    feature: Callable | None = eqx.field(static=True, default=None)
    conditional: bool = eqx.field(static=True, default=False)

    def __call__(self, params, batch, key):
        _check_batch(batch)
        if "x0" not in batch:
            raise ValueError("distillation needs the pairs: batch['x0'] (noise) and batch['x1'] (its image under Φ)")
        z, target = batch["x0"], batch["x1"]
        cond = batch.get("labels") if self.conditional else None
        pred = z + (1.0 - self.t0) * self.student(params, jnp.full(z.shape[:1], self.t0, z.dtype), z, cond)
        if pred.shape != z.shape:
            raise ValueError(f"the model returned shape {pred.shape}, expected {z.shape}")
        if self.feature is None:
            per = _per_sample_mse(pred, target)
        else:
            per = _per_sample_mse(self.feature(pred), jax.lax.stop_gradient(self.feature(target)))
        value = jnp.mean(per)
        return value, {"loss": value}


def distillation_loss(
    student: Callable,
    *,
    t0: float = 0.0,
    feature: Callable | None = None,
    conditional: bool = False,
) -> DistillationLoss:
    """A `DistillationLoss` (see there).

    Args:
        student: the model boundary `v(params, t, x, cond)` (usually initialised from the teacher).
        t0: the time the one step starts from.
        feature: `feature(x) -> [B, k]` for a feature-space error, or None for the squared error.
        conditional: pass batch["labels"] to the student as `cond`.

    Returns:
        The `DistillationLoss`.
    """
    return DistillationLoss(student, t0, feature, conditional)


class MeanFlowLoss(Objective):
    """MeanFlow: regress u(x_s, s, t) on sg(v_s + (t − s)·(∂_x u · v_s + ∂_s u)) along the path.

    Two times are drawn from `time_sampler`; s = the smaller (where x_s is drawn from the path) and t = the larger
    (the destination, towards the data). A share 1 − `flow_map_fraction` of the rows has t = s (plain flow matching
    on u(x, s, s)). v_s is the path's conditional velocity (any affine path; default Cond-OT). The total derivative
    d/ds u(x_s, s, t) along the flow is ONE forward-mode `jax.jvp` of u in (x, s, t) with tangents (v_s, 1, 0).
    adaptive_power p: each row's squared error is divided by sg((err + adaptive_eps)^p) (the paper's adaptive
    weighting; p = 0 is the plain squared error).

    Args:
        u: the flow-map model `u(params, s, t, x, cond)`, the average velocity from s to t (`jaxflow.nn.FlowMapMLP`
            through `flow_map_fn`).
        path: the probability path (default Cond-OT).
        coupling: the pairing of x0 and x1 (default independent).
        time_sampler: draws the two times (default U[0, 1]).
        flow_map_fraction: the share of rows with s < t, in [0, 1] (the rest is flow matching at zero gap).
        adaptive_power: p ≥ 0 of the adaptive weight.
        adaptive_eps: the adaptive weight's offset, > 0.
        conditional: pass batch["labels"] to u as `cond`.
        label_dropout: probability of dropping a label (classifier-free guidance).
        null_label: the label meaning "no condition".

    Raises:
        ValueError: a fraction outside [0, 1], p < 0, adaptive_eps ≤ 0, label dropout without a null label.
    """

    u: Callable = eqx.field(static=True)
    path: ProbabilityPath
    coupling: Coupling
    time_sampler: TimeSampler
    flow_map_fraction: float = eqx.field(static=True)
    adaptive_power: float = eqx.field(static=True)
    adaptive_eps: float = eqx.field(static=True)
    conditional: bool = eqx.field(static=True)
    label_dropout: float = eqx.field(static=True)
    null_label: int | None = eqx.field(static=True)

    def __init__(
        self,
        u: Callable,
        path: ProbabilityPath | None = None,
        coupling: Coupling | None = None,
        time_sampler: TimeSampler | None = None,
        *,
        flow_map_fraction: float = 0.25,
        adaptive_power: float = 1.0,
        adaptive_eps: float = 1e-3,
        conditional: bool = False,
        label_dropout: float = 0.0,
        null_label: int | None = None,
    ):
        check_probability(flow_map_fraction, "flow_map_fraction")
        if adaptive_power < 0:
            raise ValueError(f"adaptive_power must be >= 0, got {adaptive_power}")
        check_positive(adaptive_eps, "adaptive_eps")
        _check_dropout(label_dropout, null_label)
        self.u = u
        self.path = cond_ot_path() if path is None else path
        self.coupling = IndependentCoupling() if coupling is None else coupling
        self.time_sampler = UniformTime() if time_sampler is None else time_sampler
        self.flow_map_fraction, self.adaptive_power, self.adaptive_eps = flow_map_fraction, adaptive_power, adaptive_eps
        self.conditional, self.label_dropout, self.null_label = conditional, label_dropout, null_label

    def __call__(self, params, batch, key):
        k_pair, k_a, k_b, k_m, k_path, k_drop = jax.random.split(key, 6)
        pairing = _pairs(self.coupling, batch, k_pair)
        n = pairing.x0.shape[0]
        dtype = pairing.x0.dtype
        a, b = self.time_sampler(k_a, n).astype(dtype), self.time_sampler(k_b, n).astype(dtype)
        s, t = jnp.minimum(a, b), jnp.maximum(a, b)
        t = jnp.where(jax.random.uniform(k_m, (n,)) < self.flow_map_fraction, t, s)
        ps = self.path.sample(k_path, pairing.x0, pairing.x1, s)
        if ps.xt.shape[0] != n:
            raise ValueError("MeanFlow needs a path that returns one row per pair")
        cond = _cond(pairing, self.conditional, self.label_dropout, self.null_label, k_drop)

        def f(x, s_, t_):
            return self.u(params, s_, t_, x, cond)

        value_u, dudt = jax.jvp(f, (ps.xt, ps.t, t), (ps.ut, jnp.ones_like(s), jnp.zeros_like(t)))
        if value_u.shape != ps.xt.shape:
            raise ValueError(f"the model returned shape {value_u.shape}, expected {ps.xt.shape}")
        target = jax.lax.stop_gradient(ps.ut + broadcast_time(t - ps.t, ps.xt) * dudt)
        err = _per_sample_mse(value_u, target)
        weight = 1.0 / jax.lax.stop_gradient(err + self.adaptive_eps) ** self.adaptive_power
        value = jnp.mean(pairing.weights * weight * err)
        return value, {"loss": value, "mse": jnp.mean(err)}


def meanflow_loss(
    u: Callable,
    path: ProbabilityPath | None = None,
    coupling: Coupling | None = None,
    time_sampler: TimeSampler | None = None,
    **options: Any,
) -> MeanFlowLoss:
    """A `MeanFlowLoss` (see there).

    Args:
        u: the flow-map model `u(params, s, t, x, cond)`.
        path: the probability path (default Cond-OT).
        coupling: the pairing of x0 and x1 (default independent).
        time_sampler: draws the two times (default U[0, 1]).
        **options: the other arguments of `MeanFlowLoss` (flow_map_fraction, adaptive_power, adaptive_eps,
            conditional, label_dropout, null_label).

    Returns:
        The `MeanFlowLoss`.
    """
    return MeanFlowLoss(u, path, coupling, time_sampler, **options)


class ShortcutLoss(Objective):
    """Shortcut model: flow matching at zero gap plus self-consistency of jumps on a dyadic ladder.

    Rows [k:] (k = ⌊consistency_fraction·B⌋): FM on u(x_t, t, t) with t ~ U[0, 1]. Rows [:k]: a jump of size
    2h = min_step·2^j (j uniform over the levels up to 2h = 1) from t ~ U[0, 1 − 2h] regresses on the stop-gradient
    average of two jumps of size h; on the finest level the half jumps are Euler steps of the zero-gap velocity
    u(·, t, t). The loss is the sum of both parts over the batch divided by B.

    Args:
        u: the flow-map model `u(params, s, t, x, cond)`.
        path: the probability path (default Cond-OT).
        coupling: the pairing of x0 and x1 (default independent).
        min_step: the finest jump, 1/2^m.
        consistency_fraction: the share of rows trained on self-consistency, in [0, 1].
        conditional: pass batch["labels"] to u as `cond`.
        label_dropout: probability of dropping a label.
        null_label: the label meaning "no condition".

    Raises:
        ValueError: `min_step` not a power of 1/2 in (0, 1/2], a fraction outside [0, 1], label dropout without a
            null label.
    """

    u: Callable = eqx.field(static=True)
    path: ProbabilityPath
    coupling: Coupling
    min_step: float = eqx.field(static=True)
    levels: int = eqx.field(static=True)
    consistency_fraction: float = eqx.field(static=True)
    conditional: bool = eqx.field(static=True)
    label_dropout: float = eqx.field(static=True)
    null_label: int | None = eqx.field(static=True)

    def __init__(
        self,
        u: Callable,
        path: ProbabilityPath | None = None,
        coupling: Coupling | None = None,
        *,
        min_step: float = 1.0 / 128,
        consistency_fraction: float = 0.25,
        conditional: bool = False,
        label_dropout: float = 0.0,
        null_label: int | None = None,
    ):
        check_positive(min_step, "min_step")
        levels = round(-math.log2(min_step))
        if levels < 1 or abs(2.0**-levels - min_step) > 1e-12:
            raise ValueError(f"min_step must be 1/2^m with m >= 1, got {min_step}")
        check_probability(consistency_fraction, "consistency_fraction")
        _check_dropout(label_dropout, null_label)
        self.u = u
        self.path = cond_ot_path() if path is None else path
        self.coupling = IndependentCoupling() if coupling is None else coupling
        self.min_step, self.levels, self.consistency_fraction = min_step, levels, consistency_fraction
        self.conditional, self.label_dropout, self.null_label = conditional, label_dropout, null_label

    def __call__(self, params, batch, key):
        u, path, min_step = self.u, self.path, self.min_step
        k_pair, k_t, k_tc, k_lvl, k_path, k_pc, k_drop = jax.random.split(key, 7)
        pairing = _pairs(self.coupling, batch, k_pair)
        n = pairing.x0.shape[0]
        k = int(self.consistency_fraction * n)
        dtype = pairing.x0.dtype
        cond = _cond(pairing, self.conditional, self.label_dropout, self.null_label, k_drop)
        # flow matching at zero gap
        t = jax.random.uniform(k_t, (n - k,), dtype)
        ps = path.sample(k_path, pairing.x0[k:], pairing.x1[k:], t)
        c_fm = None if cond is None else cond[k:]
        err_fm = _per_sample_mse(u(params, ps.t, ps.t, ps.xt, c_fm), ps.ut)
        total = jnp.sum(pairing.weights[k:] * err_fm)
        aux = {"fm": jnp.mean(err_fm)}
        if k > 0:
            j = jax.random.randint(k_lvl, (k,), 0, self.levels)  # full jump 2h = min_step·2^(j+1)·½ ... up to 1
            full = min_step * 2.0 ** (j + 1).astype(dtype)
            half = full / 2
            tc = jax.random.uniform(k_tc, (k,), dtype) * (1.0 - full)
            pc = path.sample(k_pc, pairing.x0[:k], pairing.x1[:k], tc)
            c_c = None if cond is None else cond[:k]
            model_half = jnp.where(j == 0, 0.0, half)  # finest level: Euler steps of the velocity
            sg = jax.lax.stop_gradient
            u1 = sg(u(params, tc, tc + model_half, pc.xt, c_c))
            x_mid = pc.xt + broadcast_time(half, pc.xt) * u1
            u2 = sg(u(params, tc + half, tc + half + model_half, x_mid, c_c))
            err_c = _per_sample_mse(u(params, tc, tc + full, pc.xt, c_c), (u1 + u2) / 2)
            total = total + jnp.sum(pairing.weights[:k] * err_c)
            aux["consistency"] = jnp.mean(err_c)
        value = total / n
        return value, {"loss": value, **aux}


def shortcut_loss(
    u: Callable, path: ProbabilityPath | None = None, coupling: Coupling | None = None, **options: Any
) -> ShortcutLoss:
    """A `ShortcutLoss` (see there).

    Args:
        u: the flow-map model `u(params, s, t, x, cond)`.
        path: the probability path (default Cond-OT).
        coupling: the pairing of x0 and x1 (default independent).
        **options: the other arguments of `ShortcutLoss` (min_step, consistency_fraction, conditional,
            label_dropout, null_label).

    Returns:
        The `ShortcutLoss`.
    """
    return ShortcutLoss(u, path, coupling, **options)


def oftsr_student(v: Callable, eps: float = 1e-3) -> Callable:
    """The one-step OFTSR sampler f(params, t, x0, cond) = x0 + (1 − ε)·v(params, t, x0, cond).

    `v` is the student trained by `OFTSRLoss`: its input is always the start x0, and its time input t is the knob
    (small t: the teacher's first velocity, the posterior mean, high PSNR; t near 1: the end of the teacher's ODE,
    realistic). ε is the released code's end-time gap (T − ε with T = 1).

    Args:
        v: the student `v(params, t, x0, cond)`.
        eps: ε in [0, 1].

    Returns:
        `f(params, t, x0, cond=None) -> [B, ...]`, one network evaluation.
    """
    check_probability(eps, "eps")

    def f(params, t, x0, cond=None):
        t = jnp.broadcast_to(jnp.asarray(t, x0.dtype), x0.shape[:1])
        return x0 + (1.0 - eps) * v(params, t, x0, cond)

    return f


class OFTSRLoss(Objective):
    """OFTSR (Zhu et al. 2024, arXiv:2412.09465) as its authors released it: a one-step student with a time input,
    distilled from a rectified-flow teacher without data pairs.

    The student v(params, t, x0, cond) always sees the start x0 (e.g. a noise-perturbed upsampled low-resolution
    image); v(x0, t) is trained to be the teacher's average velocity from 0 to t along the trajectory through x0, so
    x_t = x0 + t·v(x0, t) lies on that trajectory and x0 + v(x0, t) extrapolates it to the end. Per batch
    ({"x0": starts, "cond": optional}), with t ~ U[t_min, t_max], s = min(t + Δ, t_max) and h = s − t:

      x_t       = x0 + t·sg(v(x0, t))
      v_T       = one RK2 step of the teacher from (x_t, t) over h (r = 1 Heun, ½ midpoint, ⅔ Ralston)
      distill   ‖v(x0, s) − sg(v(x0, t) + (h/s)(v_T − v(x0, t)))‖²   (d/ds [s·v̄(s)] = v_teacher: "v_boot")
      boundary  ‖v(x0, t_min) − sg v_teacher(x0, t_min)‖²             (the posterior-mean end)
      align     (1 − t)²‖v(x0, t) − v_T‖²                             (predictions stay on the teacher's path)

    `weights` = (distill, boundary, align), the released (1, 0.1, 0.01); Δ = `dt` = 0.05, r = `rk2_r` = ½,
    [t_min, t_max] = [0.01, 0.99]. Sample with `oftsr_student(v)`. The student is usually initialised from the
    teacher's weights (same network).

    Args:
        v: the student `v(params, t, x0, cond)`.
        teacher: the teacher's velocity `v_T(teacher_params, t, x, cond)`.
        teacher_params: the teacher's parameters (fixed).
        dt: the bootstrap step Δ > 0.
        weights: (distill, boundary, align), each ≥ 0.
        t_min: the smallest time input, in (0, t_max).
        t_max: the largest, ≤ 1.
        rk2_r: the RK2 teacher step's r in (0, 1].
        time_sampler: draws u ∈ [0, 1], mapped to t = t_min + (t_max − t_min)·u (default uniform).

    Raises:
        ValueError: Δ ≤ 0, times out of order, r outside (0, 1], negative or missing weights; at call time, a batch
            without "x0".
    """

    v: Callable = eqx.field(static=True)
    teacher: Callable = eqx.field(static=True)
    teacher_params: object
    dt: float = eqx.field(static=True)
    weights: tuple[float, float, float] = eqx.field(static=True)
    t_min: float = eqx.field(static=True)
    t_max: float = eqx.field(static=True)
    rk2_r: float = eqx.field(static=True)
    time_sampler: TimeSampler

    def __init__(
        self,
        v: Callable,
        teacher: Callable,
        teacher_params: Any,
        *,
        dt: float = 0.05,
        weights: tuple[float, float, float] = (1.0, 0.1, 0.01),
        t_min: float = 0.01,
        t_max: float = 0.99,
        rk2_r: float = 0.5,
        time_sampler: TimeSampler | None = None,
    ):
        check_positive(dt, "dt")
        check_probability(t_min, "t_min")
        check_probability(t_max, "t_max")
        if not 0.0 < t_min < t_max <= 1.0:
            raise ValueError(f"need 0 < t_min < t_max <= 1, got t_min={t_min}, t_max={t_max}")
        if not 0.0 < rk2_r <= 1.0:
            raise ValueError(f"rk2_r must lie in (0, 1] (1 Heun, 0.5 midpoint, 2/3 Ralston), got {rk2_r}")
        weights = tuple(float(w) for w in weights)
        if len(weights) != 3 or min(weights) < 0:
            raise ValueError(f"weights must be three numbers >= 0 (distill, boundary, align), got {weights}")
        self.v, self.teacher, self.teacher_params = v, teacher, teacher_params
        self.dt, self.weights, self.t_min, self.t_max, self.rk2_r = float(dt), weights, t_min, t_max, rk2_r
        self.time_sampler = UniformTime() if time_sampler is None else time_sampler

    def __call__(self, params, batch, key):
        if not isinstance(batch, dict) or "x0" not in batch:
            got = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
            raise ValueError(f"OFTSR needs batch['x0'] (the starts; the student is distilled without data), got {got}")
        sg = jax.lax.stop_gradient
        x0, cond = check_array(batch["x0"], "batch['x0']"), batch.get("cond")
        n = x0.shape[0]
        if n == 0:
            raise ValueError("batch['x0'] is empty (batch size 0)")

        def teacher(t, x):
            return sg(self.teacher(self.teacher_params, t, x, cond))

        t = self.t_min + (self.t_max - self.t_min) * self.time_sampler(key, n).astype(x0.dtype)
        s = jnp.minimum(t + self.dt, self.t_max)
        h = s - t
        v_t = self.v(params, t, x0, cond)
        v_s = self.v(params, s, x0, cond)
        xt = x0 + broadcast_time(t, x0) * sg(v_t)
        r = self.rk2_r
        k1 = teacher(t, xt)
        k2 = teacher(r * s + (1 - r) * t, xt + r * broadcast_time(h, xt) * k1)
        v_T = k1 + (k2 - k1) / (2 * r)
        target = sg(v_t + broadcast_time(h / s, v_t) * (v_T - v_t))
        distill = jnp.mean(_per_sample_mse(v_s, target))
        t0 = jnp.full_like(t, self.t_min)
        boundary = jnp.mean(_per_sample_mse(self.v(params, t0, x0, cond), teacher(t0, x0)))
        align = jnp.mean((1 - t) ** 2 * _per_sample_mse(v_t, v_T))
        wd, wb, wa = self.weights
        value = wd * distill + wb * boundary + wa * align
        return value, {"loss": value, "distill": distill, "boundary": boundary, "align": align}


def oftsr_loss(v: Callable, teacher: Callable, teacher_params: Any, **options: Any) -> OFTSRLoss:
    """An `OFTSRLoss` (see there).

    Args:
        v: the student `v(params, t, x0, cond)`.
        teacher: the teacher's velocity `v_T(teacher_params, t, x, cond)`.
        teacher_params: the teacher's parameters (fixed).
        **options: the other arguments of `OFTSRLoss` (dt, weights, t_min, t_max, rk2_r, time_sampler).

    Returns:
        The `OFTSRLoss`.
    """
    return OFTSRLoss(v, teacher, teacher_params, **options)


__all__ = [
    "DistillationLoss",
    "MeanFlowLoss",
    "OFTSRLoss",
    "ShortcutLoss",
    "distillation_loss",
    "meanflow_loss",
    "oftsr_loss",
    "oftsr_student",
    "shortcut_loss",
    "squared_error",
]
