"""The kinetic-optimal (KO) Gaussian path of a data set (Shaul et al. 2023, arXiv:2306.06626; derivation in
docs/paths.md).

Paths x_t = α_t x1 + σ_t x0 with x0 ~ N(0, I) and data normalised to E‖x1‖²/d = 1. Writing (α, σ) = r (sin θ, cos θ),
the kinetic energy per dimension of the marginal velocity is
    KE = ∫ ṙ² + r² θ̇² γ(θ) dt,     γ(θ) = 1 − (1 − λ(tan θ)) / cos² θ ∈ [0, 1],
with λ the data separation. The minimiser with r(0) = r(1) = 1, θ(0) = 0, θ(1) = π/2 (α_0 = 0, σ_0 = 1, α_1 = 1,
σ_1 = 0) has r_t = √(1 − bt + bt²) and θ̇ = √(c / γ(θ)) / r_t², c = b − b²/4. The θ equation separates,
    Γ(θ) := ∫_0^θ √γ = √c ∫_0^t dτ / r_τ² = arctan(k (t − ½)) + arctan(k / 2),   k = √(b / (1 − b/4)),
so t(θ) = ½ + tan(Γ(θ) − arctan(k/2)) / k in closed form, and the end condition θ(1) = π/2 fixes b = 4 sin²(G/2)
with G = Γ(π/2). λ ≡ 1 gives γ ≡ 1, b = 2: Cond-OT (α = t, σ = 1 − t).

The scheduler tabulates t(θ) once on a fine θ grid and inverts it by interpolation; θ̇ and ṙ are exact.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxflow.paths.schedulers import Scheduler

GAMMA_FLOOR = 1e-6


def gamma_of_lambda(theta, lam):
    """γ(θ) = 1 − (1 − λ(tan θ))/cos²θ, floored at GAMMA_FLOOR (γ = 0 only for isotropic Gaussian data)."""
    return np.maximum(1.0 - (1.0 - lam) / np.cos(theta) ** 2, GAMMA_FLOOR)


class KineticOptimalScheduler(Scheduler):
    """The KO scheduler of a fitted data separation λ.

    Build it with `KineticOptimalScheduler.from_separation(snr, lam)` (λ measured at signal-to-noise ratios `snr`,
    e.g. by `jaxflow.paths.data_separation`) or `KineticOptimalScheduler.from_lambda(fn)` with a callable λ(s).
    `b` is the radius parameter the end conditions fix; `theta_grid`/`t_grid` the tabulated inverse map.

    Attributes:
        b: the radius parameter.
        theta_grid: the angle θ on the time grid.
        t_grid: the time grid.
        gamma_grid: γ(θ) on the grid.
    """

    b: float
    theta_grid: jax.Array
    t_grid: jax.Array
    gamma_grid: jax.Array

    @classmethod
    def from_lambda(cls, lam_fn, num: int = 4097) -> KineticOptimalScheduler:
        theta = np.linspace(0.0, np.pi / 2, num)
        s = np.tan(np.minimum(theta, np.pi / 2 - 1e-9))
        lam = np.clip(np.asarray(lam_fn(s), np.float64), 0.0, 1.0)
        lam[-1] = 1.0  # s = ∞
        return cls._build(theta, gamma_of_lambda(theta, lam))

    @classmethod
    def from_separation(cls, snr, lam, num: int = 4097) -> KineticOptimalScheduler:
        """λ measured at `snr` (any order); fitted monotone (running maximum) and interpolated in θ = arctan(s),
        with λ(∞) = 1 appended."""
        snr, lam = np.asarray(snr, np.float64), np.asarray(lam, np.float64)
        if snr.shape != lam.shape or snr.ndim != 1 or snr.size < 2:
            raise ValueError("snr and lam must be 1-D arrays of the same length (at least 2)")
        if np.any(snr < 0) or not np.all(np.isfinite(lam)):
            raise ValueError("snr must be >= 0 and lam finite")
        # a Monte-Carlo estimate of λ strays past [0, 1] by its noise (seen: 1.0003 in float32); that is clipped below,
        # a curve farther out comes from data that was not normalised
        if np.any(lam < -0.01) or np.any(lam > 1.01):
            raise ValueError(
                f"lam must lie in [0, 1] (a separation curve λ(s) = E‖E[x1 | s x1 + ε]‖²/d of normalised data), got "
                f"values in [{lam.min():.4g}, {lam.max():.4g}]: normalise the data to E‖x1‖²/d = 1 first"
            )
        order = np.argsort(snr)
        th = np.append(np.arctan(snr[order]), np.pi / 2)
        lv = np.maximum.accumulate(np.clip(np.append(lam[order], 1.0), 0.0, 1.0))
        theta = np.linspace(0.0, np.pi / 2, num)
        return cls._build(theta, gamma_of_lambda(theta, np.interp(theta, th, lv)))

    @classmethod
    def _build(cls, theta, gamma):
        root = np.sqrt(gamma)
        big_gamma = np.concatenate([[0.0], np.cumsum(0.5 * (root[1:] + root[:-1]) * np.diff(theta))])
        g_total = big_gamma[-1]
        b = 4.0 * np.sin(g_total / 2) ** 2
        k = np.sqrt(b / (1 - b / 4))
        t = 0.5 + np.tan(big_gamma - np.arctan(k / 2)) / k
        t[0], t[-1] = 0.0, 1.0
        t = np.maximum.accumulate(np.clip(t, 0.0, 1.0))
        return cls(float(b), jnp.asarray(theta), jnp.asarray(t), jnp.asarray(gamma))

    # ---- the path ----
    def theta(self, t):
        return jnp.interp(
            t, self.t_grid.astype(jnp.result_type(t, float)), self.theta_grid.astype(jnp.result_type(t, float))
        )

    def radius(self, t):
        return jnp.sqrt(1.0 - self.b * t + self.b * t * t)

    def alpha(self, t):
        return self.radius(t) * jnp.sin(self.theta(t))

    def sigma(self, t):
        return self.radius(t) * jnp.cos(self.theta(t))

    def _rates(self, t):
        th, r = self.theta(t), self.radius(t)
        gamma = jnp.interp(th, self.theta_grid.astype(th.dtype), self.gamma_grid.astype(th.dtype))
        c = self.b - self.b**2 / 4
        d_theta = jnp.sqrt(c / gamma) / r**2
        d_r = (2 * self.b * t - self.b) / (2 * r)
        return th, r, d_theta, d_r

    def d_alpha(self, t):
        th, r, d_theta, d_r = self._rates(t)
        return d_r * jnp.sin(th) + r * d_theta * jnp.cos(th)

    def d_sigma(self, t):
        th, r, d_theta, d_r = self._rates(t)
        return d_r * jnp.cos(th) - r * d_theta * jnp.sin(th)


def kinetic_energy_of(
    scheduler: Scheduler,
    lam_fn: Callable[[np.ndarray], np.ndarray],
    num: int = 2001,
    t_range: tuple[float, float] = (1e-4, 1 - 1e-4),
) -> float:
    """KE per dimension of a scheduler from λ alone (no data): ∫ ṙ² + r²θ̇²γ(θ) dt written in (α, σ):
    ȧ² + σ̇² − β²(1 − λ(α/σ)), β = α̇ − α σ̇/σ (trapezoid rule on `num` times). λ is clipped below at its bound
    s²/(1 + s²).

    Args:
        scheduler: the (α, σ) scheduler.
        lam_fn: λ as a function of the signal-to-noise ratio α/σ (NumPy arrays in and out).
        num: the number of quadrature times.
        t_range: the integration interval inside (0, 1) (both ends avoid σ = 0 or α = 0).

    Returns:
        The kinetic energy per dimension, a float.
    """
    t = np.linspace(*t_range, num)
    a, s = np.asarray(scheduler.alpha(jnp.asarray(t))), np.asarray(scheduler.sigma(jnp.asarray(t)))
    da, ds = np.asarray(scheduler.d_alpha(jnp.asarray(t))), np.asarray(scheduler.d_sigma(jnp.asarray(t)))
    beta = da - a * ds / s
    snr = a / s
    # λ(s) ≥ s²/(1 + s²) for normalised data (the Gaussian has the largest MMSE): an estimated λ is clipped there,
    # so that estimation noise cannot make the energy negative
    lam = np.maximum(np.asarray(lam_fn(snr)), snr**2 / (1 + snr**2))
    integrand = da**2 + ds**2 - beta**2 * (1 - lam)
    return float(np.trapezoid(integrand, t))
