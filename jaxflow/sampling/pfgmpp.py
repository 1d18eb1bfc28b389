"""PFGM++ sampling: the prior at σ_max and the EDM ODE dx/dσ = (x − D(x, σ))/σ, through `jaxflow.sample`.

With the alignment r = σ√D the PFGM++ ODE in σ is EDM's (Xu et al. 2023, §4); only the prior differs: x_T is drawn
from the PFGM++ kernel around 0 at σ_max (heavier-tailed for small D). `step_noise` = α adds α·σ_i·ε after every
Euler step (the robustness protocol of the paper's code); with α = 0 any solver of `jaxflow.sample` is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxflow.paths.pfgmpp import pfgmpp_perturb
from jaxflow.sampling.ode import sample


def karras_sigmas(steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> jax.Array:
    """EDM's noise levels σ_0 = σ_max > … > σ_{steps} = σ_min (ρ-spaced), [steps + 1].

    Args:
        steps: the number of steps.
        sigma_min: the smallest level.
        sigma_max: the largest level.
        rho: the spacing exponent (7 in EDM).

    Returns:
        The levels [steps + 1], decreasing.
    """
    if steps < 1 or not 0 < sigma_min < sigma_max:
        raise ValueError(f"need steps >= 1 and 0 < sigma_min < sigma_max, got {steps}, {sigma_min}, {sigma_max}")
    i = jnp.arange(steps + 1) / steps
    return (sigma_max ** (1 / rho) + i * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho


def pfgmpp_prior(key: jax.Array, n: int, shape: tuple[int, ...], sigma_max: float, D: float | None) -> jax.Array:
    """Draws of PFGM++'s prior at r_max = σ_max·√D: the perturbation kernel around 0 (Xu et al. 2023).

    Args:
        key: the JAX key.
        n: the number of draws.
        shape: the shape of one sample (N = its size).
        sigma_max: the EDM-aligned largest noise level.
        D: the number of extra dimensions (None: D = ∞, the Gaussian of EDM).

    Returns:
        [n, *shape] draws.
    """
    return pfgmpp_perturb(key, jnp.zeros((n, *shape)), sigma_max, D)


def sample_pfgmpp(
    denoiser: Callable,
    x_max: jax.Array,
    sigmas: jax.Array,
    *,
    params: Any = None,
    cond: Any = None,
    solver: Any = "heun",
    step_noise: float = 0.0,
    key: jax.Array | None = None,
    final_denoise: bool = True,
) -> jax.Array:
    """Integrate from x_max at σ = sigmas[0] down to sigmas[-1]; then (by default) return D(x, σ_min).

    Args:
        denoiser: the EDM denoiser D(params, σ, x, cond) (`jaxflow.losses.edm_denoiser`).
        x_max: the prior draws at σ = sigmas[0] (`pfgmpp_prior`).
        sigmas: the decreasing noise levels (`karras_sigmas`).
        params: the denoiser's parameters.
        cond: the condition.
        solver: any solver of `jaxflow.sample` (object or shorthand; default Heun, EDM's second-order step);
            with step noise the steps are Euler steps.
        step_noise: α of the robustness probe x += α·t·ε after each step (0: none).
        key: the JAX key of the step noise.
        final_denoise: return D(x, σ_min) instead of x at σ_min.

    Returns:
        The samples, shaped like x_max.
    """

    def field(p, sigma, x, c):
        return (x - denoiser(p, sigma, x, c)) / sigma

    if step_noise == 0.0:
        grid = dict(solver=solver, grid=sigmas, t0=sigmas[0], t1=sigmas[-1])
        if params is None:  # a plain denoiser(params=None, σ, x, cond): integrate v(σ, x)
            x = sample(lambda sigma, x: field(None, sigma, x, cond), x_max, **grid).x
        else:
            x = sample(field, x_max, params=params, cond=cond, **grid).x
    else:
        if key is None:
            raise ValueError("step_noise > 0 needs a key")

        def step(x, inp):
            s0, s1, k = inp
            x = x + (s1 - s0) * field(params, s0, x, cond)
            return x + step_noise * s1 * jax.random.normal(k, x.shape, x.dtype), None

        keys = jax.random.split(key, sigmas.shape[0] - 1)
        x, _ = jax.lax.scan(step, x_max, (sigmas[:-1], sigmas[1:], keys))
    return denoiser(params, sigmas[-1], x, cond) if final_denoise else x
