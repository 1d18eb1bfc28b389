"""Batch normalisation for SPD-matrix inputs under the (generalised) Bures–Wasserstein metric.

For a batch X_1..X_B of SPD matrices [B, d, d] and a power θ > 0 (θ = 1 is the plain BW metric):
  1. Y_b = X_b^θ;
  2. centre: M = BW Fréchet mean of the Y_b (running mean at inference), Z_b = M^{-½} Y_b M^{-½} (the OT map M → I,
     which is M^{-½}, applied to Y_b);
  3. scale: ν² = mean_b d_BW(Z_b, I)² (running value at inference); along the BW geodesic from I,
     Exp_I(s/√(ν²+δ) · Log_I Z) = (I + (s/√(ν²+δ))(Z^½ − I))² with a learned s > 0 (a geodesic while
     s/√(ν²+δ) ≤ 1; larger factors extrapolate and the square keeps the output SPD but no longer on the geodesic);
  4. bias: G^½ (·) G^½ with a learned SPD G = expm(S), S symmetric (the OT map I → G).
For commuting inputs this makes the batch's Fréchet mean G and its dispersion s²; in general step 2 is the standard
"centre by the mean's transport map" approximation (exact BW centring has no single linear map).
Running statistics: M ← geodesic(M, M_batch, 1 − momentum), ν² ← momentum ν² + (1 − momentum) ν²_batch.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxflow.ot import gaussian as bw


def _expm_sym(s):
    return bw._eig_apply(s, jnp.exp)


class BuresWassersteinBatchNorm(nn.Module):
    """Batch normalisation of SPD matrices [B, d, d] under the (generalised) Bures–Wasserstein metric: power,
    centre by the Fréchet mean's transport map, scale along the geodesic from I, learned SPD bias (the module
    docstring), with running statistics at inference.

    Attributes:
        momentum: the running statistics' momentum.
        power: θ of the generalised metric X ↦ X^θ.
        epsilon: δ, added to the dispersion.
        mean_iterations: fixed-point iterations of the Fréchet mean.
    """

    momentum: float = 0.9
    power: float = 1.0  # θ of the generalised metric X ↦ X^θ
    epsilon: float = 1e-5
    mean_iterations: int = 20

    @nn.compact
    def __call__(self, x: jax.Array, use_running_average: bool = False) -> jax.Array:
        if x.ndim != 3 or x.shape[1] != x.shape[2]:
            raise ValueError(f"BuresWassersteinBatchNorm expects SPD inputs [B, d, d], got {x.shape}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum}")
        if self.power <= 0:
            raise ValueError(f"power must be > 0, got {self.power}")
        d = x.shape[-1]
        eye = jnp.eye(d, dtype=x.dtype)
        bw.check_spd(x, "x")
        ra_mean = self.variable("batch_stats", "mean", lambda: eye)
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((), x.dtype))
        log_scale = self.param("log_scale", nn.initializers.zeros, (), x.dtype)
        bias_log = self.param("bias", nn.initializers.zeros, (d, d), x.dtype)

        y = x if self.power == 1.0 else bw.powm_psd(x, self.power)
        mean = ra_mean.value if use_running_average else bw.frechet_mean(y, n_iter=self.mean_iterations)
        im = bw.inv_sqrtm_psd(mean)
        z = im @ y @ im
        if use_running_average:
            var = ra_var.value
        else:
            var = jnp.mean(jax.vmap(lambda c: bw.bures_distance_squared(c, eye))(z))
            if not self.is_initializing():
                zero = jnp.zeros(d, x.dtype)
                ra_mean.value = bw._geodesic(zero, ra_mean.value, zero, mean, 1.0 - self.momentum)[1]
                ra_var.value = self.momentum * ra_var.value + (1.0 - self.momentum) * var
        factor = jnp.exp(log_scale) / jnp.sqrt(var + self.epsilon)
        m = eye + factor * (bw.sqrtm_psd(z) - eye)
        z = m @ m  # (I + c(Z^½ − I))², m symmetric
        g_half = _expm_sym(0.5 * bw._sym(bias_log))
        return bw._sym(g_half @ z @ g_half)
