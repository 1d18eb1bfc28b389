"""Toy 2-D samplers, Gaussian mixtures with closed-form velocity and score, shipped digits, local CIFAR-10."""

from jaxflow.data.gmm import GaussianMixture
from jaxflow.data.images import ImageData, from_unit_range, load_cifar10, load_digits, split, to_unit_range
from jaxflow.data.toy import TOY_2D, get_sampler, sample

__all__ = [
    "GaussianMixture",
    "ImageData",
    "TOY_2D",
    "from_unit_range",
    "get_sampler",
    "load_cifar10",
    "load_digits",
    "sample",
    "split",
    "to_unit_range",
]
