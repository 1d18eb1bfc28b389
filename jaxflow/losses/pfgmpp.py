"""PFGM++ training (Xu et al. 2023, arXiv:2302.04265): EDM's denoiser objective with the PFGM++ perturbation kernel.

With the alignment r = σ√D, training is EDM's (Karras et al. 2022, arXiv:2206.00364) with one change: x is drawn
from the PFGM++ kernel around y instead of N(y, σ² I) (`jaxflow.paths.pfgmpp_perturb`; D = None is EDM itself).
    σ ~ exp(N(P_mean, P_std²)),  x ~ p_σ√D(· | y),  L = E λ(σ) ‖D_θ(x, σ) − y‖²,  λ(σ) = (σ² + σ_d²)/(σ σ_d)²,
and the denoiser is preconditioned, D_θ(x, σ) = c_skip x + c_out F_θ(c_in x, c_noise) with c_skip = σ_d²/(σ² + σ_d²),
c_out = σ σ_d/√(σ² + σ_d²), c_in = 1/√(σ² + σ_d²), c_noise = ln(σ)/4.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxflow.losses.cfm import squared_error
from jaxflow.paths.pfgmpp import pfgmpp_perturb


def edm_denoiser(net: Callable, sigma_data: float = 0.5) -> Callable:
    """D(params, σ, x, cond) from a network with the model boundary net(params, t, x, cond) (t receives c_noise)."""

    def denoiser(params, sigma, x, cond=None):
        sigma = jnp.broadcast_to(jnp.asarray(sigma, x.dtype), x.shape[:1])
        s = sigma.reshape((-1,) + (1,) * (x.ndim - 1))
        total = s**2 + sigma_data**2
        c_skip, c_out, c_in = sigma_data**2 / total, s * sigma_data / jnp.sqrt(total), 1 / jnp.sqrt(total)
        return c_skip * x + c_out * net(params, jnp.log(sigma) / 4, c_in * x, cond)

    denoiser.sigma_data = sigma_data
    return denoiser


def pfgmpp_loss(
    denoiser: Callable,
    D: float | None,
    *,
    sigma_data: float = 0.5,
    p_mean: float = -1.2,
    p_std: float = 1.2,
) -> Callable:
    """`loss(params, batch, key)` of PFGM++ with `D` extra dimensions (None: D = ∞, EDM). batch = {"x1": [B, ...]}."""
    if D is not None and not (isinstance(D, int | float) and D > 0):
        raise ValueError(f"D must be a positive number or None (D = ∞), got {D!r}")

    def loss(params, batch, key):
        y = batch["x1"]
        k_s, k_x = jax.random.split(key)
        sigma = jnp.exp(p_mean + p_std * jax.random.normal(k_s, y.shape[:1], y.dtype))
        x = pfgmpp_perturb(k_x, y, sigma, D)
        pred = denoiser(params, sigma, x, batch.get("labels"))
        weight = (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2
        value = jnp.mean(squared_error(pred, y, weight))
        return value, {"loss": value}

    return loss
