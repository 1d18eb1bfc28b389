"""Sliced Wasserstein family: Monte Carlo SW with control variates, Max-SW, vMF distributional SW.

Bonneel et al. (2015); Nguyen & Ho (2023), "Control variate sliced Wasserstein estimators", arXiv:2305.00402;
Deshpande et al. (2019), "Max-sliced Wasserstein distance and its use for GANs", arXiv:1904.05877.

Every estimator projects both point clouds on directions θ ∈ S^{d−1} and computes one-dimensional transport by sorting
(equal sizes, uniform weights) or by quantile functions (unequal sizes or general weights).

- `sliced_wasserstein`: SW_p = (E_θ W_p^p(θ#μ, θ#ν))^{1/p}, θ uniform, with optional control variates built from
  Gaussian fits of the two clouds ("lower" and "upper"), and a standard error for the estimate.
- `max_sliced_wasserstein`: max_θ W_p(θ#μ, θ#ν) by projected gradient ascent on the sphere with restarts.
- `distributional_sliced_wasserstein`: max over the vMF location ξ of (E_{θ∼vMF(ξ, κ)} W_p^p)^{1/p}; κ → 0 gives SW and
  κ → ∞ gives Max-SW. Directions come from Wood's vMF sampler (`sample_vmf`), reparametrised in ξ.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import ArrayLike, Float

from jaxflow._checks import check_array, check_point_clouds, check_positive, check_weights

CONTROL_VARIATES = (None, "lower", "upper")


class SlicedEstimate(NamedTuple):
    """A Monte Carlo sliced-Wasserstein estimate.

    `distance` is SW_p (not its p-th power); `stderr` its standard error by the delta method; `power` the estimate of
    SW_p^p (an average over directions, possibly control-variate corrected) and `power_stderr` its standard error.

    Attributes:
        distance: SW_p.
        stderr: its standard error.
        power: the estimate of SW_p^p.
        power_stderr: its standard error.
    """

    distance: jax.Array
    stderr: jax.Array
    power: jax.Array
    power_stderr: jax.Array


# ---------------------------------------------------------------------------------------------------------------------
# directions


def random_directions(key: jax.Array, n: int, d: int, dtype=jnp.float32) -> jax.Array:
    """n directions [n, d] uniform on the unit sphere S^{d−1}."""
    v = jax.random.normal(key, (n, d), dtype)
    return v / jnp.linalg.norm(v, axis=1, keepdims=True)


def _vmf_cosine(key: jax.Array, kappa: jax.Array, d: int, dtype) -> jax.Array:
    """One draw of w = ⟨θ, ξ⟩ for θ ∼ vMF(ξ, κ) on S^{d−1} by Wood's (1994) rejection sampler."""
    m1 = d - 1.0
    # b = (−2κ + √(4κ² + (d−1)²)) / (d−1), written without cancellation for large κ
    b = m1 / (2.0 * kappa + jnp.sqrt(4.0 * kappa**2 + m1**2))
    x0 = (1.0 - b) / (1.0 + b)
    c = kappa * x0 + m1 * jnp.log1p(-(x0**2))

    def propose(state):
        key, _, _ = state
        key, kz, ku = jax.random.split(key, 3)
        z = jax.random.beta(kz, m1 / 2.0, m1 / 2.0, dtype=dtype)
        w = (1.0 - (1.0 + b) * z) / (1.0 - (1.0 - b) * z)
        u = jax.random.uniform(ku, dtype=dtype, minval=jnp.finfo(dtype).tiny)
        accept = kappa * w + m1 * jnp.log1p(-x0 * w) - c >= jnp.log(u)
        return key, w, accept

    _, w, _ = jax.lax.while_loop(lambda s: ~s[2], propose, (key, jnp.zeros((), dtype), jnp.array(False)))
    return w


def sample_vmf(key: jax.Array, mu: jax.Array, kappa: float | jax.Array, n: int) -> jax.Array:
    """n draws [n, d] from the von Mises–Fisher law on S^{d−1} with mean direction `mu` [d] and concentration κ ≥ 0.

    Works in any dimension d ≥ 2 (Wood's sampler for the cosine to `mu`, a uniform direction on the orthogonal sphere,
    then a Householder reflection e₁ ↦ mu). Differentiable in `mu` (the reflection is), not in κ.

    Args:
        key: the JAX key.
        mu: the mean direction [d] (unit norm).
        kappa: κ ≥ 0 (0 is uniform on the sphere).
        n: the number of draws.

    Returns:
        Unit vectors [n, d].
    """
    mu = check_array(mu, "mu", ndim=1)
    d = mu.shape[0]
    if d < 2:
        raise ValueError(f"the vMF law needs dimension d >= 2, got {d}")
    check_positive(kappa, "kappa", allow_zero=True)
    dtype = mu.dtype
    mu = mu / jnp.linalg.norm(mu)
    kappa = jnp.asarray(kappa, dtype)
    kw, kv = jax.random.split(key)
    w = jax.vmap(lambda k: _vmf_cosine(k, kappa, d, dtype))(jax.random.split(kw, n))
    v = random_directions(kv, n, d - 1, dtype)
    x = jnp.concatenate([w[:, None], jnp.sqrt(jnp.clip(1.0 - w**2, 0.0))[:, None] * v], axis=1)  # about e₁
    e1 = jnp.zeros(d, dtype).at[0].set(1.0)
    u = e1 - mu
    unorm2 = jnp.sum(u * u)
    safe = unorm2 > 1e-12
    u = jnp.where(safe, u, jnp.zeros_like(u)) / jnp.sqrt(jnp.where(safe, unorm2, 1.0))
    return x - 2.0 * (x @ u)[:, None] * u[None, :]


# ---------------------------------------------------------------------------------------------------------------------
# one-dimensional transport


def _w1d_uniform(px: jax.Array, py: jax.Array, p: float) -> jax.Array:
    """W_p^p between columns of px [n, L] and py [n, L] (uniform weights, equal sizes) by sorting: returns [L]."""
    return jnp.mean(jnp.abs(jnp.sort(px, axis=0) - jnp.sort(py, axis=0)) ** p, axis=0)


def _w1d_quantile(u: jax.Array, v: jax.Array, a: jax.Array, b: jax.Array, p: float) -> jax.Array:
    """W_p^p = ∫₀¹ |F⁻¹(s) − G⁻¹(s)|^p ds between Σ a_i δ_{u_i} and Σ b_j δ_{v_j} (one direction)."""
    iu, iv = jnp.argsort(u), jnp.argsort(v)
    us, vs = u[iu], v[iv]
    ca, cb = jnp.cumsum(a[iu]), jnp.cumsum(b[iv])
    ca, cb = ca / ca[-1], cb / cb[-1]
    s = jnp.sort(jnp.concatenate([ca, cb]))
    ds = jnp.diff(jnp.concatenate([jnp.zeros(1, s.dtype), s]))
    mid = s - 0.5 * ds  # a point inside each interval where both quantile functions are constant
    qa = us[jnp.clip(jnp.searchsorted(ca, mid), 0, us.shape[0] - 1)]
    qb = vs[jnp.clip(jnp.searchsorted(cb, mid), 0, vs.shape[0] - 1)]
    return jnp.sum(ds * jnp.abs(qa - qb) ** p)


def projected_wasserstein(
    theta: jax.Array, x: jax.Array, y: jax.Array, p: float = 2.0, a: jax.Array | None = None, b: jax.Array | None = None
) -> jax.Array:
    """W_p^p(θ_l#μ, θ_l#ν) for every direction θ_l in theta [L, d]: returns [L].

    μ = Σ a_i δ_{x_i}, ν = Σ b_j δ_{y_j}; uniform when a, b are None. Sorting when sizes match and weights are uniform,
    quantile functions otherwise.
    """
    px, py = x @ theta.T, y @ theta.T
    if a is None and b is None and x.shape[0] == y.shape[0]:
        return _w1d_uniform(px, py, p)
    a = jnp.full(x.shape[0], 1.0 / x.shape[0], x.dtype) if a is None else a
    b = jnp.full(y.shape[0], 1.0 / y.shape[0], y.dtype) if b is None else b
    return jax.vmap(lambda u, v: _w1d_quantile(u, v, a, b, p), in_axes=(1, 1))(px, py)


# ---------------------------------------------------------------------------------------------------------------------
# checks


def _check_inputs(x, y, p, weights):
    x, y = check_point_clouds(x, y)
    if not (isinstance(p, (int, float)) and p >= 1):
        raise ValueError(f"p must be a number >= 1, got {p!r}")
    a, b = (None, None) if weights is None else weights
    a = None if a is None else check_weights(a, x.shape[0], "weights[0]")
    b = None if b is None else check_weights(b, y.shape[0], "weights[1]")
    return x, y, a, b


def _weighted_moments(x, w):
    w = jnp.full(x.shape[0], 1.0 / x.shape[0], x.dtype) if w is None else w
    m = w @ x
    xc = x - m
    return m, (xc * w[:, None]).T @ xc


def _root(power, power_se, p):
    """SW_p = max(power, 0)^{1/p} and its delta-method standard error; a negative estimate maps to 0, never NaN."""
    power_c = jnp.maximum(power, 0.0)
    dist = power_c ** (1.0 / p)
    safe = jnp.where(dist > 0, dist, 1.0)
    se = jnp.where(dist > 0, power_se / (p * safe ** (p - 1.0)), power_se ** (1.0 / p))
    return dist, se


# ---------------------------------------------------------------------------------------------------------------------
# estimators


def sliced_wasserstein(
    key: jax.Array,
    x: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, "m d"],
    n_projections: int = 256,
    p: float = 2.0,
    control_variate: str | None = None,
    weights: tuple[jax.Array | None, jax.Array | None] | None = None,
) -> SlicedEstimate:
    """Monte Carlo sliced Wasserstein SW_p between point clouds x [n, d] and y [m, d].

    Args:
      key: draws the `n_projections` = L directions, uniform on S^{d−1}.
      x: the first point cloud [n, d].
      y: the second point cloud [m, d], the same d.
      n_projections: the number L of directions.
      p: order (≥ 1). The result is SW_p, not its p-th power.
      control_variate: None (plain Monte Carlo), "lower" or "upper". Fit Gaussians (m₁, Σ₁), (m₂, Σ₂) to the two clouds;
        per direction C_l = (θᵀΔm)² ("lower") or (θᵀΔm)² + θᵀΣ₁θ + θᵀΣ₂θ ("upper"), with known means ‖Δm‖²/d and
        (‖Δm‖² + tr Σ₁ + tr Σ₂)/d. The estimate is mean(W) − γ̂ (mean(C) − E C), γ̂ = Cov(W, C)/Var(C) from the same L
        draws. The bounds are those of W₂² between projected Gaussians; for p ≠ 2 they remain valid control variates
        (known mean, correlated with W_p^p), only less effective.
      weights: optional (a, b) of non-negative weights [n], [m] (either may be None for uniform); normalised here.

    Returns:
      `SlicedEstimate(distance, stderr, power, power_stderr)`.
    """
    x, y, a, b = _check_inputs(x, y, p, weights)
    if control_variate not in CONTROL_VARIATES:
        raise ValueError(f"unknown control_variate {control_variate!r}; choose None, 'lower' or 'upper'")
    if n_projections < 2:
        raise ValueError(f"n_projections must be >= 2 (the standard error needs two draws), got {n_projections}")
    d = x.shape[1]
    theta = random_directions(key, n_projections, d, x.dtype)
    w = projected_wasserstein(theta, x, y, p, a, b)
    L = n_projections
    if control_variate is None:
        power = jnp.mean(w)
        power_se = jnp.std(w, ddof=1) / jnp.sqrt(L)
    else:
        m1, s1 = _weighted_moments(x, a)
        m2, s2 = _weighted_moments(y, b)
        dm = m1 - m2
        c = (theta @ dm) ** 2
        mean_c = jnp.sum(dm**2) / d
        if control_variate == "upper":
            c = c + jnp.einsum("li,ij,lj->l", theta, s1 + s2, theta)
            mean_c = mean_c + (jnp.trace(s1) + jnp.trace(s2)) / d
        cc = c - jnp.mean(c)
        var_c = jnp.mean(cc**2)
        gamma = jnp.where(var_c > 0, jnp.mean((w - jnp.mean(w)) * cc) / jnp.where(var_c > 0, var_c, 1.0), 0.0)
        corrected = w - gamma * (c - mean_c)
        power = jnp.mean(corrected)
        power_se = jnp.std(corrected, ddof=1) / jnp.sqrt(L)
    dist, se = _root(power, power_se, p)
    return SlicedEstimate(dist, se, power, power_se)


class MaxSlicedOutput(NamedTuple):
    distance: jax.Array  # max_θ W_p(θ#μ, θ#ν) found
    direction: jax.Array  # the maximising θ [d]
    history: jax.Array  # W_p at the best restart after each ascent step [n_steps]


def _ascent(objective, theta0, n_steps, step_size, keys=None):
    """Projected gradient ascent on the sphere: θ ← normalise(θ + η_k ∇f(θ)/‖∇f(θ)‖), η_k = η/√(1+k).

    `objective(θ)` or, with `keys` [n_steps], `objective(θ, key_k)` (a fresh Monte Carlo draw per step).
    Returns the final θ and the objective value before each step."""

    def step(theta, inputs):
        k, key = inputs
        f = objective if keys is None else (lambda th: objective(th, key))
        val, g = jax.value_and_grad(f)(theta)
        g = g - (g @ theta) * theta  # Riemannian gradient
        g = g / (jnp.linalg.norm(g) + 1e-20)
        new = theta + step_size / jnp.sqrt(1.0 + k) * g
        return new / jnp.linalg.norm(new), val

    ks = jnp.arange(n_steps, dtype=theta0.dtype)
    return jax.lax.scan(step, theta0, (ks, keys if keys is not None else ks))


def max_sliced_wasserstein(
    key: jax.Array,
    x: jax.Array,
    y: jax.Array,
    p: float = 2.0,
    n_steps: int = 200,
    step_size: float = 0.1,
    n_restarts: int = 8,
    weights: tuple[jax.Array | None, jax.Array | None] | None = None,
) -> MaxSlicedOutput:
    """Max-SW_p = max_{θ ∈ S^{d−1}} W_p(θ#μ, θ#ν) by normalised projected gradient ascent from `n_restarts` random
    starts (step size η/√(1+k) at step k). A lower bound on the true maximum; restarts guard against local maxima.

    Args:
        key: draws the restarts' initial directions.
        x: points [n, d].
        y: points [m, d].
        p: the order.
        n_steps: ascent steps per restart.
        step_size: η.
        n_restarts: random starts.
        weights: (a, b) point weights, or None for uniform.

    Returns:
        `MaxSlicedOutput`: the distance, the maximising direction [d] and the ascent's history [n_steps].
    """
    x, y, a, b = _check_inputs(x, y, p, weights)
    check_positive(step_size, "step_size")
    if n_steps < 1 or n_restarts < 1:
        raise ValueError(f"n_steps and n_restarts must be >= 1, got {n_steps} and {n_restarts}")

    def objective(theta):
        return projected_wasserstein(theta[None], x, y, p, a, b)[0]

    def run(theta0):
        theta, vals = _ascent(objective, theta0, n_steps, step_size)
        return theta, jnp.concatenate([vals[1:], objective(theta)[None]])

    theta0 = random_directions(key, n_restarts, x.shape[1], x.dtype)
    thetas, hist = jax.vmap(run)(theta0)
    best = jnp.argmax(hist[:, -1])
    return MaxSlicedOutput(hist[best, -1] ** (1.0 / p), thetas[best], hist[best] ** (1.0 / p))


class DistributionalSlicedOutput(NamedTuple):
    distance: jax.Array  # (E_{θ∼vMF(ξ*, κ)} W_p^p)^{1/p} at the found location, on fresh directions
    location: jax.Array  # ξ* [d]
    history: jax.Array  # objective per ascent step [n_steps]


def distributional_sliced_wasserstein(
    key: jax.Array,
    x: jax.Array,
    y: jax.Array,
    kappa: float = 10.0,
    n_projections: int = 64,
    p: float = 2.0,
    n_steps: int = 100,
    step_size: float = 0.1,
    weights: tuple[jax.Array | None, jax.Array | None] | None = None,
) -> DistributionalSlicedOutput:
    """vMF distributional SW: max_ξ (E_{θ∼vMF(ξ, κ)} W_p^p(θ#μ, θ#ν))^{1/p}.

    The expectation is estimated with `n_projections` vMF directions per step (new draws each step, reparametrised
    through the Householder reflection so the gradient in ξ is unbiased); the final value uses fresh directions.

    Args:
        key: draws the directions.
        x: points [n, d].
        y: points [m, d].
        kappa: the vMF concentration κ ≥ 0.
        n_projections: vMF directions per step.
        p: the order.
        n_steps: ascent steps on the location ξ.
        step_size: the ascent's step.
        weights: (a, b) point weights, or None for uniform.

    Returns:
        `DistributionalSlicedOutput`: the distance (on fresh directions), the location ξ* [d] and the history.
    """
    x, y, a, b = _check_inputs(x, y, p, weights)
    check_positive(kappa, "kappa", allow_zero=True)
    check_positive(step_size, "step_size")
    k0, kloop, kfinal = jax.random.split(key, 3)
    xi0 = random_directions(k0, 1, x.shape[1], x.dtype)[0]

    def objective(xi, k):
        theta = sample_vmf(k, xi, kappa, n_projections)
        return jnp.mean(projected_wasserstein(theta, x, y, p, a, b))

    xi, hist = _ascent(objective, xi0, n_steps, step_size, keys=jax.random.split(kloop, n_steps))
    value = objective(xi, kfinal)
    return DistributionalSlicedOutput(jnp.maximum(value, 0.0) ** (1.0 / p), xi, jnp.maximum(hist, 0.0) ** (1.0 / p))
