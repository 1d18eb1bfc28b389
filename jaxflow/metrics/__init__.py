"""Distances and path metrics. NFE comes with every sampler output (`SampleOutput.nfe`)."""

from jaxflow.metrics.conservative import jacobian_asymmetry, loop_integrals
from jaxflow.metrics.digits import DigitsMetric
from jaxflow.metrics.distances import MAX_EXACT_POINTS, chamfer, energy_distance, mmd, sliced_wasserstein, wasserstein
from jaxflow.metrics.frechet import feature_statistics, frechet_distance
from jaxflow.metrics.paths import normalized_path_energy, path_energy, straightness

npe = normalized_path_energy

__all__ = [
    "DigitsMetric",
    "MAX_EXACT_POINTS",
    "chamfer",
    "energy_distance",
    "feature_statistics",
    "frechet_distance",
    "jacobian_asymmetry",
    "loop_integrals",
    "mmd",
    "normalized_path_energy",
    "npe",
    "path_energy",
    "sliced_wasserstein",
    "straightness",
    "wasserstein",
]
