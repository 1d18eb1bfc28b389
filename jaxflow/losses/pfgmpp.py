"""PFGM++ training (Xu et al. 2023, arXiv:2302.04265): EDM's denoiser objective with the PFGM++ perturbation kernel.

With the alignment r = σ√D, training is EDM's (Karras et al. 2022, arXiv:2206.00364) with one change: x is drawn
from the PFGM++ kernel around y instead of N(y, σ² I) (`jaxflow.paths.pfgmpp_perturb`; D = None is EDM itself).
    σ ~ exp(N(P_mean, P_std²)),  x ~ p_σ√D(· | y),  L = E λ(σ) ‖D_θ(x, σ) − y‖²,  λ(σ) = (σ² + σ_d²)/(σ σ_d)²,
and the denoiser is preconditioned, D_θ(x, σ) = c_skip x + c_out F_θ(c_in x, c_noise) with c_skip = σ_d²/(σ² + σ_d²),
c_out = σ σ_d/√(σ² + σ_d²), c_in = 1/√(σ² + σ_d²), c_noise = ln(σ)/4.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from jaxflow._checks import check_positive
from jaxflow.losses.base import Objective
from jaxflow.losses.cfm import squared_error
from jaxflow.paths.pfgmpp import pfgmpp_perturb


class EDMDenoiser(eqx.Module):
    """D(params, σ, x, cond) = c_skip x + c_out net(params, c_noise, c_in x, cond), EDM's preconditioning of a
    network with the model boundary net(params, t, x, cond) (t receives c_noise = ln(σ)/4).

    Attributes:
        net: the network boundary `net(params, t, x, cond)`.
        sigma_data: the data's standard deviation σ_data.
    """

    net: Callable = eqx.field(static=True)
    sigma_data: float = eqx.field(static=True, default=0.5)

    def __call__(self, params, sigma, x, cond=None):
        sigma_data = self.sigma_data
        sigma = jnp.broadcast_to(jnp.asarray(sigma, x.dtype), x.shape[:1])
        s = sigma.reshape((-1,) + (1,) * (x.ndim - 1))
        total = s**2 + sigma_data**2
        c_skip, c_out, c_in = sigma_data**2 / total, s * sigma_data / jnp.sqrt(total), 1 / jnp.sqrt(total)
        return c_skip * x + c_out * self.net(params, jnp.log(sigma) / 4, c_in * x, cond)


def edm_denoiser(net: Callable, sigma_data: float = 0.5) -> EDMDenoiser:
    """An `EDMDenoiser` of `net` (see there).

    Args:
        net: the network boundary `net(params, t, x, cond)`.
        sigma_data: the data's standard deviation σ_data > 0.

    Returns:
        The `EDMDenoiser`.
    """
    check_positive(sigma_data, "sigma_data")
    return EDMDenoiser(net, sigma_data)


class PFGMPPLoss(Objective):
    """PFGM++ with `D` extra dimensions (None: D = ∞, EDM): E λ(σ) ‖D_θ(x, σ) − y‖², x ~ p_σ√D(· | y),
    σ ~ exp(N(p_mean, p_std²)). batch = {"x1": [B, ...], "labels": [B] (optional)}.

    Attributes:
        denoiser: the denoiser `D(params, σ, x, cond)` (an `EDMDenoiser`).
        D: the number of extra dimensions (None: ∞).
        sigma_data: σ_data of the loss weight λ(σ).
        p_mean: the mean of ln σ.
        p_std: the standard deviation of ln σ.
    """

    denoiser: Callable = eqx.field(static=True)
    D: float | None = eqx.field(static=True)
    sigma_data: float = eqx.field(static=True, default=0.5)
    p_mean: float = eqx.field(static=True, default=-1.2)
    p_std: float = eqx.field(static=True, default=1.2)

    def __check_init__(self):
        if self.D is not None and not (isinstance(self.D, numbers.Real) and self.D > 0):
            raise ValueError(f"D must be a positive number or None (D = ∞), got {self.D!r}")
        check_positive(self.sigma_data, "sigma_data")
        check_positive(self.p_std, "p_std")

    def __call__(self, params, batch, key):
        y = batch["x1"]
        k_s, k_x = jax.random.split(key)
        sigma = jnp.exp(self.p_mean + self.p_std * jax.random.normal(k_s, y.shape[:1], y.dtype))
        x = pfgmpp_perturb(k_x, y, sigma, self.D)
        pred = self.denoiser(params, sigma, x, batch.get("labels"))
        weight = (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2
        value = jnp.mean(squared_error(pred, y, weight))
        return value, {"loss": value}


def pfgmpp_loss(
    denoiser: Callable,
    D: float | None,
    *,
    sigma_data: float = 0.5,
    p_mean: float = -1.2,
    p_std: float = 1.2,
) -> PFGMPPLoss:
    """A `PFGMPPLoss` (see there).

    Args:
        denoiser: the denoiser `D(params, σ, x, cond)` (an `EDMDenoiser`).
        D: the number of extra dimensions (None: ∞).
        sigma_data: σ_data of the loss weight λ(σ).
        p_mean: the mean of ln σ.
        p_std: the standard deviation of ln σ.

    Returns:
        The `PFGMPPLoss`.
    """
    return PFGMPPLoss(denoiser, D, sigma_data, p_mean, p_std)
