"""Toy 2-D samplers and Gaussian mixtures with closed-form velocity and score."""

from jaxflow.data.gmm import GaussianMixture
from jaxflow.data.toy import TOY_2D, get_sampler, sample

__all__ = ["GaussianMixture", "TOY_2D", "get_sampler", "sample"]
