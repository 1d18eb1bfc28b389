"""`EmpiricalDistribution` lives in `jaxflow.paths.empirical` (its exact fields are fields of a path); it is
re-exported here because a finite data set is where users look for it."""

from jaxflow.paths.empirical import EmpiricalDistribution

__all__ = ["EmpiricalDistribution"]
