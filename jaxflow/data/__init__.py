"""Toy 2-D samplers, Gaussian mixtures with closed-form velocity and score, shipped digits, local CIFAR-10."""

from jaxflow._deprecation import deprecated_names
from jaxflow.data import language
from jaxflow.data.empirical import EmpiricalDistribution
from jaxflow.data.gmm import GaussianMixture
from jaxflow.data.images import (
    ImageData,
    from_unit_range,
    load_cifar10,
    load_digits,
    split,
    to_unit_range,
    train_test_split,
)
from jaxflow.data.labels import check_labels, drop_labels
from jaxflow.data.manifold_data import (
    sample_vmf_mixture,
    sample_wrapped_normal_mixture,
)
from jaxflow.data.populations import (
    LETTERS,
    interacting_particles,
    letter_populations,
    random_mixture_populations,
    sample_glyph,
)
from jaxflow.data.toy import get_sampler, sample, sample_toy

__all__ = [
    "EmpiricalDistribution",
    "GaussianMixture",
    "ImageData",
    "LETTERS",
    "check_labels",
    "drop_labels",
    "from_unit_range",
    "get_sampler",
    "interacting_particles",
    "language",
    "letter_populations",
    "load_cifar10",
    "load_digits",
    "random_mixture_populations",
    "sample",
    "sample_glyph",
    "sample_toy",
    "sample_vmf_mixture",
    "sample_wrapped_normal_mixture",
    "split",
    "to_unit_range",
    "train_test_split",
]

__getattr__ = deprecated_names("jaxflow.data", {"TOY_2D": ("jaxflow.data.toy", "_TOY_2D")})
