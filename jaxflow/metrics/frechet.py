"""Fréchet feature distance (the FID recipe with any feature extractor).

FD = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₂^½ Σ₁ Σ₂^½)^½, the squared 2-Wasserstein distance between the Gaussians
fitted to two feature clouds: it reuses `ot.gaussian.bures_wasserstein`. Like FID it is biased upwards at small
sample sizes, so compare values computed from equal sample sizes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxflow._checks import check_array
from jaxflow.ot.gaussian import bures_wasserstein


def feature_statistics(features: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean and unbiased covariance of a feature cloud.

    Args:
        features: [n, k], n ≥ 2.

    Returns:
        (mean [k], covariance [k, k]).

    Raises:
        ValueError: fewer than 2 rows, a non-2-D or non-finite array.
    """
    f = check_array(features, "features", ndim=2)
    if f.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors, got {f.shape[0]}")
    return jnp.mean(f, 0), jnp.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def frechet_distance(features_a: jax.Array, features_b: jax.Array) -> jax.Array:
    """Fréchet distance between the Gaussian fits of two feature clouds (FID's formula, Heusel et al. 2017): the
    squared Bures–Wasserstein distance between N(μ_a, Σ_a) and N(μ_b, Σ_b).

    Args:
        features_a: [n, k], n ≥ 2.
        features_b: [m, k], m ≥ 2, the same k.

    Returns:
        The distance as a scalar array.

    Raises:
        ValueError: different feature dimensions, fewer than 2 rows.
    """
    fa = check_array(features_a, "features_a", ndim=2)
    fb = check_array(features_b, "features_b", ndim=2)
    if fa.shape[1] != fb.shape[1]:
        raise ValueError(f"feature dimensions differ: {fa.shape[1]} and {fb.shape[1]}")
    (ma, ca), (mb, cb) = feature_statistics(fa), feature_statistics(fb)
    return bures_wasserstein(ma, ca, mb, cb) ** 2
