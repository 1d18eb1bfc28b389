"""PFGM++ perturbation (Xu et al. 2023, "PFGM++: unlocking the potential of physics-inspired generative models",
arXiv:2302.04265; derivation in docs/paths.md).

Data y ∈ R^N are embedded in N + D dimensions; the perturbation kernel on the data coordinates is
p_r(x | y) ∝ (‖x − y‖² + r²)^{−(N+D)/2}. Its radius R = ‖x − y‖ satisfies R²/r² ~ BetaPrime(N/2, D/2), so a draw is
    B ~ Beta(N/2, D/2),  R = r √(B / (1 − B)),  u uniform on the unit sphere of R^N,  x = y + R u.
With r = σ√D (the alignment with diffusion) the kernel tends to N(y, σ² I) as D → ∞; D = 1 is PFGM. Training and
sampling then follow EDM in σ: the denoiser D_θ(x, σ) regresses y, and the sampler integrates
dx/dσ = (x − D_θ(x, σ))/σ from σ_max to σ_min; the prior at σ_max is this same kernel around 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxflow._checks import is_concrete


def pfgmpp_perturb(key: jax.Array, y: jax.Array, sigma: float | jax.Array, D: float | np.integer | None) -> jax.Array:
    """x = y + R u for each row of y [B, ...] (N = the size of one row); σ scalar or [B]; D=None is D = ∞ (Gaussian).

    The radius R follows the PFGM++ perturbation kernel (Xu et al. 2023, arXiv:2302.04265): R = σ √D · √(b/(1 − b)),
    b ~ Beta(N/2, D/2), u uniform on the unit sphere of the row (r = σ√D); R concentrates at σ√N as D → ∞.

    Args:
        key: a JAX PRNG key.
        y: clean data [B, ...].
        sigma: the noise level σ > 0, scalar or [B].
        D: the augmentation dimension D > 0, or None for D = ∞.

    Returns:
        The perturbed batch, shaped like y.

    Raises:
        ValueError: y with fewer than two axes, empty or non-finite; σ ≤ 0; D not a positive finite number or None.
    """
    if y.ndim < 2:
        raise ValueError(f"y must be [B, ...], got shape {y.shape}")
    if y.shape[0] == 0 or jnp.size(y[0]) == 0:
        raise ValueError(f"y is empty (shape {y.shape})")
    if is_concrete(y) and not bool(jnp.all(jnp.isfinite(y))):
        raise ValueError("y contains non-finite values (NaN or inf)")
    sigma = jnp.asarray(sigma, y.dtype)
    if is_concrete(sigma) and bool(jnp.any(sigma <= 0)):
        raise ValueError("sigma must be > 0")
    b = y.shape[0]
    n = int(jnp.size(y[0]))
    sig = jnp.broadcast_to(sigma, (b,)).reshape((b,) + (1,) * (y.ndim - 1))
    k_r, k_u = jax.random.split(key)
    g = jax.random.normal(k_u, y.shape, y.dtype)
    if D is None:
        return y + sig * g
    if isinstance(D, bool) or not (isinstance(D, int | float | np.integer | np.floating) and np.isfinite(D) and D > 0):
        raise ValueError(f"D must be a positive finite number (or None for D = ∞), got {D!r}")
    D = float(D)
    beta = jax.random.beta(k_r, n / 2.0, D / 2.0, (b,), dtype=y.dtype)
    beta = jnp.clip(beta, 0.0, 1.0 - jnp.finfo(y.dtype).eps)
    radius = jnp.sqrt(D) * jnp.sqrt(beta / (1.0 - beta))
    u = g / jnp.linalg.norm(g.reshape(b, -1), axis=1).reshape((b,) + (1,) * (y.ndim - 1))
    return y + sig * radius.reshape(sig.shape) * u
