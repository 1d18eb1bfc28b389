"""Deep random multi-head attention on the sphere and its homogenised limits.

Tokens as interacting particles: Geshkovski, Letrouit, Polyanskiy & Rigollet (2023), "A mathematical perspective on
transformers", arXiv:2312.10794. The scalings derived below are collected in docs/attention.md.

Finite depth. n tokens x_i on the unit sphere S^{d-1}; one layer with H heads and step η is

    x_i ← normalise(x_i + η Σ_{h ≤ H} V_h a_h(x)_i),   a_h(x)_i = Σ_j softmax_j(β ⟨Q_h x_i, K_h x_j⟩) x_j,

with (Q_h, K_h, V_h) drawn afresh for every layer and head. The law of one head (`HeadLaw`):
Q, K with i.i.d. N(0, qk_scale²/d) entries, V = value_mean · I + value_scale · G/√d, G standard Gaussian.

Scalings. Write ξ(x) = V a(x) for one random head, μ(x) = E ξ and Σ(x) = Cov ξ (covariances across tokens: the
same head acts on every token, so the noise is common). One layer moves x by ηH μ on average with covariance
η²H Σ. In the time t = ℓ η H (ℓ the layer index) the drift is μ per unit time and the covariance η Σ, so

    L η H = T fixed, L η² H = η T → 0      →  deterministic flow  ẋ = P_x μ(x),
    η > 0 kept (temperature τ = η)          →  SDE with common noise (below), time horizon T = L η H.

With value_mean = 0 the drift μ vanishes and the natural clock is s = L η² H (= τ T): holding s fixed while
η → 0 gives a driftless-but-for-curvature SDE on the sphere; pass horizon = s/η, temperature = η.
(The paper's own parametrisation of the head law is not available here; this one is ours and is documented so
the limits can be checked against simulation.)

Limit SDE (Itô, per token i, P_i = I − x_i x_iᵀ), from expanding the normalisation to second order,
normalise(x + δ) = x + P δ − (x·δ) P δ − ½ |P δ|² x + O(δ³):

    dx_i = [P_i μ_i − τ (P_i Σ_ii x_i + ½ tr(P_i Σ_ii P_i) x_i)] dt + √τ P_i dM_i,   d⟨M_i, M_j⟩ = Σ_ij dt.

Expectations over the head law are taken over a fixed bank of M heads (`sample_bank`): μ is the bank mean and the
noise is (1/√M) Σ_r (ξ_r − μ) dW_r with an M-dimensional Brownian motion, whose covariance is the bank covariance.
`random_attention(..., bank=bank)` draws each layer's heads uniformly from the same bank, so the finite-depth model
and the simulated limit share one head law exactly and their difference is the depth error alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jaxflow._checks import check_array, check_positive, is_concrete


class HeadLaw(NamedTuple):
    """The law of one random head: Q, K ~ N(0, qk_scale²/d), V = value_mean · I + value_scale · N(0, 1/d).

    Attributes:
        value_mean: the mean of V's diagonal.
        value_scale: the spread of V.
        qk_scale: the spread of Q and K.
    """

    value_mean: float = 1.0
    value_scale: float = 1.0
    qk_scale: float = 1.0


DEFAULT_LAW = HeadLaw()


class Heads(NamedTuple):
    """Stacked heads: q, k, v of shape [..., d, d].

    Attributes:
        q: queries [..., d, d].
        k: keys [..., d, d].
        v: values [..., d, d].
    """

    q: jax.Array
    k: jax.Array
    v: jax.Array


def sample_heads(key: jax.Array, n: int, d: int, law: HeadLaw = DEFAULT_LAW, dtype: DTypeLike = jnp.float32) -> Heads:
    """n independent heads from `law`.

    Args:
        key: a JAX PRNG key.
        n: the number of heads.
        d: the token dimension.
        law: the `HeadLaw`.
        dtype: the floating dtype of the matrices.

    Returns:
        `Heads` with q, k, v of shape [n, d, d].
    """
    kq, kk, kv = jax.random.split(key, 3)
    s = 1.0 / jnp.sqrt(d)
    q = law.qk_scale * s * jax.random.normal(kq, (n, d, d), dtype)
    k = law.qk_scale * s * jax.random.normal(kk, (n, d, d), dtype)
    v = law.value_mean * jnp.eye(d, dtype=dtype) + law.value_scale * s * jax.random.normal(kv, (n, d, d), dtype)
    return Heads(q, k, v)


def sample_bank(
    key: jax.Array,
    size: int,
    d: int,
    law: HeadLaw = DEFAULT_LAW,
    dtype: DTypeLike = jnp.float32,
    antithetic: bool = True,
) -> Heads:
    """A bank of `size` heads; its empirical law is the head law shared by finite-depth runs and the limit.

    antithetic: the second half reflects the first half's value noise (V' = 2 value_mean · I − V, same Q, K), so the
    bank's mean value matrix is exactly value_mean · I; with value_mean = 0 the bank's drift μ is then exactly zero.

    Args:
        key: a JAX PRNG key.
        size: the number of heads M (even when antithetic).
        d: the token dimension.
        law: the `HeadLaw`.
        dtype: the floating dtype of the matrices.
        antithetic: whether to reflect the value noise of the first half.

    Returns:
        `Heads` with q, k, v of shape [size, d, d].

    Raises:
        ValueError: size < 2, or odd with antithetic=True.
    """
    if size < 2 or (antithetic and size % 2):
        raise ValueError(f"a head bank needs an even size >= 2 (antithetic) or >= 2 heads, got {size}")
    if not antithetic:
        return sample_heads(key, size, d, law, dtype)
    half = sample_heads(key, size // 2, d, law, dtype)
    mirror = 2.0 * law.value_mean * jnp.eye(d, dtype=dtype) - half.v
    return Heads(*(jnp.concatenate([a, b]) for a, b in zip(half, (half.q, half.k, mirror))))


def check_tokens(x: jax.Array, name: str = "x") -> jax.Array:
    """Tokens: [n, d] with d ≥ 2, finite, on the unit sphere (checked when concrete)."""
    x = check_array(x, name, ndim=2)
    if x.shape[1] < 2:
        raise ValueError(f"{name} must have dimension d >= 2, got shape {x.shape}")
    if is_concrete(x):
        err = float(np.max(np.abs(np.linalg.norm(np.asarray(x), axis=-1) - 1.0)))
        if err > 1e-3:
            raise ValueError(f"{name} must lie on the unit sphere (max | |x_i| - 1 | = {err:.3g}); use normalize()")
    return x


def normalize(x: jax.Array) -> jax.Array:
    """Project rows onto the unit sphere.

    Args:
        x: tokens [..., n, d].

    Returns:
        The rows divided by their norms.
    """
    return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


def uniform_sphere(key: jax.Array, n: int, d: int, dtype: DTypeLike = jnp.float32) -> jax.Array:
    """n i.i.d. uniform points on S^{d-1}.

    Args:
        key: a JAX PRNG key.
        n: the number of points.
        d: the dimension of the ambient space.
        dtype: the floating dtype.

    Returns:
        Points [n, d] of unit norm.
    """
    return normalize(jax.random.normal(key, (n, d), dtype))


def head_output(x: jax.Array, q: jax.Array, k: jax.Array, v: jax.Array, beta: float) -> jax.Array:
    """ξ(x)_i = V Σ_j softmax_j(β ⟨Q x_i, K x_j⟩) x_j for one head; x [n, d] → [n, d].

    Args:
        x: tokens [n, d].
        q: the query matrix [d, d].
        k: the key matrix [d, d].
        v: the value matrix [d, d].
        beta: the inverse temperature β.

    Returns:
        ξ(x) [n, d].
    """
    logits = beta * (x @ q.T) @ (x @ k.T).T
    return jax.nn.softmax(logits, axis=-1) @ x @ v.T


def attention_layer(x: jax.Array, heads: Heads, eta: float, beta: float) -> jax.Array:
    """One layer: x ← normalise(x + η Σ_h ξ_h(x)), heads stacked on the leading axis.

    Args:
        x: tokens [n, d] on the unit sphere.
        heads: the `Heads` of the layer (stacked on the leading axis).
        eta: the step size η.
        beta: the inverse temperature β.

    Returns:
        The next tokens [n, d].
    """
    out = jax.vmap(head_output, in_axes=(None, 0, 0, 0, None))(x, heads.q, heads.k, heads.v, beta)
    return normalize(x + eta * out.sum(0))


# ---------------------------------------------------------------------------------------------------------------
# clustering measures


def mean_pairwise_cosine(x: jax.Array) -> jax.Array:
    """Mean of ⟨x_i, x_j⟩ over i ≠ j for unit tokens: 1 when all tokens coincide, ≈ 0 for uniform tokens.

    Args:
        x: unit tokens [n, d].

    Returns:
        A scalar array.
    """
    n = x.shape[-2]
    s = jnp.sum(x, axis=-2)
    return (jnp.sum(s * s, axis=-1) - n) / (n * (n - 1))


def mean_token_norm2(x: jax.Array) -> jax.Array:
    """|mean token|²: 1 for one cluster, ≈ 1/n for uniform tokens, 0 for antipodal pairs.

    Args:
        x: unit tokens [n, d].

    Returns:
        A scalar array.
    """
    m = jnp.mean(x, axis=-2)
    return jnp.sum(m * m, axis=-1)


def effective_rank(x: jax.Array) -> jax.Array:
    """exp(entropy) of the normalised eigenvalues of the Gram matrix X Xᵀ (= those of Xᵀ X): 1 for one direction
    (one cluster or two antipodal ones), up to min(n, d) for spread tokens.

    Args:
        x: tokens [n, d].

    Returns:
        A scalar array in [1, min(n, d)].
    """
    s = jnp.linalg.svd(x, compute_uv=False) ** 2
    p = s / jnp.sum(s, axis=-1, keepdims=True)
    return jnp.exp(-jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0), axis=-1))


_ORDER_PARAMETERS: dict[str, Callable] = {
    "cosine": mean_pairwise_cosine,
    "mean_norm2": mean_token_norm2,
    "effective_rank": effective_rank,
}


def order_parameters(x: jax.Array) -> dict[str, jax.Array]:
    """The order parameters of one token configuration.

    Args:
        x: tokens [n, d] (or with leading batch axes).

    Returns:
        {"cosine": mean pairwise cosine, "mean_norm2": |mean token|², "effective_rank": the Gram matrix's effective
        rank}, scalar arrays (batched like x).
    """
    return {name: f(x) for name, f in _ORDER_PARAMETERS.items()}


# ---------------------------------------------------------------------------------------------------------------
# finite depth


class Trajectory(NamedTuple):
    """x: final tokens [n, d]; measures: order parameters per layer, each [depth + 1] (layer 0 = input).

    Attributes:
        x: the final tokens [n, d].
        measures: the order parameters per layer, each [depth + 1].
    """

    x: jax.Array
    measures: dict


def _check_scalars(depth: int, eta: float, n_heads: int, beta: float) -> None:
    if int(depth) < 1 or int(n_heads) < 1:
        raise ValueError(f"depth and n_heads must be >= 1, got depth={depth}, n_heads={n_heads}")
    check_positive(eta, "eta")
    check_positive(beta, "beta", allow_zero=True)


def random_attention(
    key: jax.Array,
    x0: jax.Array,
    *,
    depth: int,
    eta: float,
    n_heads: int = 1,
    beta: float = 1.0,
    law: HeadLaw = DEFAULT_LAW,
    bank: Heads | None = None,
) -> Trajectory:
    """`depth` layers of random attention from x0 [n, d]; heads drawn from `law`, or uniformly from `bank`.

    Layer ℓ uses the key fold_in(key, ℓ), so a deeper run shares its first layers with a shallower one.

    Args:
        key: the JAX key (layer ℓ uses fold_in(key, ℓ)).
        x0: tokens [n, d] on the unit sphere.
        depth: the number of layers.
        eta: the step size of each layer.
        n_heads: heads per layer.
        beta: the attention's inverse temperature.
        law: the `HeadLaw` of the random heads.
        bank: a fixed `Heads` bank to draw the heads from uniformly, or None.

    Returns:
        `Trajectory`: the final tokens and the order parameters after every layer.
    """
    x0 = check_tokens(x0, "x0")
    _check_scalars(depth, eta, n_heads, beta)
    n, d = x0.shape

    def heads_for(ell):
        k = jax.random.fold_in(key, ell)
        if bank is None:
            return sample_heads(k, n_heads, d, law, x0.dtype)
        idx = jax.random.randint(k, (n_heads,), 0, bank.q.shape[0])
        return jax.tree.map(lambda a: a[idx], bank)

    def body(x, ell):
        x = attention_layer(x, heads_for(ell), eta, beta)
        return x, order_parameters(x)

    x, measures = jax.lax.scan(body, x0, jnp.arange(depth))
    first = order_parameters(x0)
    measures = {k: jnp.concatenate([first[k][None], v]) for k, v in measures.items()}
    return Trajectory(x, measures)


# ---------------------------------------------------------------------------------------------------------------
# homogenised limit


def bank_moments(x: jax.Array, bank: Heads, beta: float) -> tuple[jax.Array, jax.Array]:
    """(μ [n, d], centred head outputs e = ξ_r − μ [M, n, d]) of the bank's head law at tokens x.

    Args:
        x: tokens [n, d] on the sphere.
        bank: the `Heads` bank (M heads).
        beta: the inverse temperature β of the softmax.

    Returns:
        (μ [n, d], e [M, n, d]).
    """
    xi = jax.vmap(head_output, in_axes=(None, 0, 0, 0, None))(x, bank.q, bank.k, bank.v, beta)
    mu = xi.mean(0)
    return mu, xi - mu


def _project(x, v):
    """P_x v row-wise."""
    return v - jnp.sum(v * x, axis=-1, keepdims=True) * x


def limit_drift(x: jax.Array, bank: Heads, beta: float, temperature: float = 0.0) -> jax.Array:
    """Itô drift of the homogenised dynamics per unit of t = ℓ η H (see the module docstring).

    Args:
        x: tokens [n, d].
        bank: the `Heads` bank the layers draw from.
        beta: the inverse temperature β.
        temperature: the extra noise temperature.

    Returns:
        The drift [n, d].
    """
    mu, e = bank_moments(x, bank, beta)
    drift = _project(x, mu)
    pe = jax.vmap(_project, in_axes=(None, 0))(x, e)  # [M, n, d]
    m = e.shape[0]
    p_sigma_x = jnp.einsum("rnd,rn->nd", pe, jnp.sum(e * x, axis=-1)) / m
    tr = jnp.sum(pe * pe, axis=(0, 2)) / m
    return drift - temperature * (p_sigma_x + 0.5 * tr[:, None] * x)


def limit_diffusion(x: jax.Array, bank: Heads, beta: float) -> jax.Array:
    """Diffusion matrix [n, d, M] of the common noise: column r is P (ξ_r − μ)/√M.

    Args:
        x: tokens [n, d].
        bank: the `Heads` bank (M heads).
        beta: the inverse temperature β.

    Returns:
        The diffusion matrix [n, d, M].
    """
    _, e = bank_moments(x, bank, beta)
    pe = jax.vmap(_project, in_axes=(None, 0))(x, e)
    return jnp.moveaxis(pe, 0, -1) / jnp.sqrt(e.shape[0])


def homogenized_limit(
    x0: jax.Array,
    bank: Heads,
    *,
    beta: float,
    horizon: float,
    temperature: float = 0.0,
    n_steps: int = 200,
    key: jax.Array | None = None,
    save_every: int | None = None,
) -> Trajectory:
    """Solve the homogenised dynamics on t ∈ [0, horizon] with diffrax.

    temperature = 0: the deterministic flow ẋ = P_x μ(x) (Heun, `n_steps` fixed steps).
    temperature = τ > 0: the Itô SDE with common noise of variance τ per unit time (Euler–Maruyama on a virtual
    Brownian tree; `key` required; passing a key selects the SDE solver, so τ may then be traced, e.g. vmapped).
    Tokens are renormalised at the saved times (the SDE leaves the sphere by O(dt)).
    measures are recorded at `save_every` steps (default: 50 points).

    Args:
        x0: initial tokens [n, d] on the unit sphere.
        bank: the `Heads` bank (M heads) whose empirical law is the head law.
        beta: the inverse temperature β.
        horizon: the time horizon T = L η H (> 0).
        temperature: the noise temperature τ ≥ 0 (τ = η for the SDE limit).
        n_steps: the number of solver steps.
        key: a JAX PRNG key for the Brownian motion (required when temperature > 0).
        save_every: record the order parameters every this many steps.

    Returns:
        `Trajectory`: the final tokens and the order parameters (`cosine`, `mean_norm2`, `effective_rank`) with the
        saved times `t`.

    Raises:
        ValueError: tokens off the sphere, horizon ≤ 0, temperature < 0, n_steps < 1, or temperature > 0 without a key.
    """
    x0 = check_tokens(x0, "x0")
    check_positive(horizon, "horizon")
    check_positive(temperature, "temperature", allow_zero=True)
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    save_every = save_every or max(1, n_steps // 50)
    ts = jnp.linspace(0.0, horizon, n_steps + 1)[::save_every]
    dt = horizon / n_steps
    stochastic = key is not None
    if not stochastic and (not is_concrete(temperature) or float(temperature) > 0):
        raise ValueError("a stochastic limit (temperature > 0) needs a key")

    drift = diffrax.ODETerm(lambda t, x, args: limit_drift(x, bank, beta, temperature))
    if stochastic:
        bm = diffrax.VirtualBrownianTree(0.0, horizon, tol=dt / 4, shape=(bank.q.shape[0],), key=key)
        diff = diffrax.ControlTerm(lambda t, x, args: jnp.sqrt(temperature) * limit_diffusion(x, bank, beta), bm)
        terms, solver = diffrax.MultiTerm(drift, diff), diffrax.Euler()
    else:
        terms, solver = drift, diffrax.Heun()
    sol = diffrax.diffeqsolve(
        terms,
        solver,
        0.0,
        horizon,
        dt,
        x0,
        stepsize_controller=diffrax.ConstantStepSize(),
        saveat=diffrax.SaveAt(ts=ts),
        max_steps=n_steps + 1,
    )
    xs = normalize(sol.ys)
    measures = jax.vmap(order_parameters)(xs)
    return Trajectory(xs[-1], {**measures, "t": ts})


def wasserstein_1d(a: jax.Array, b: jax.Array) -> jax.Array:
    """W1 between two empirical laws on the line (equal sizes): mean |sorted a − sorted b|.

    Args:
        a: samples [n].
        b: samples [n].

    Returns:
        W1 as a scalar array.
    """
    a, b = jnp.ravel(a), jnp.ravel(b)
    if a.shape != b.shape:
        raise ValueError(f"wasserstein_1d needs equal sample sizes, got {a.shape} and {b.shape}")
    return jnp.mean(jnp.abs(jnp.sort(a) - jnp.sort(b)))
