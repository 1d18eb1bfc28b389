"""Optimal-transport toolbox: exact OT (POT network simplex), Sinkhorn (ott-jax), sliced Wasserstein."""

from jaxflow.ot.exact import emd_plan_numpy, exact_assignment, exact_plan
from jaxflow.ot.sinkhorn import solve_sinkhorn, sqeuclidean_cost
from jaxflow.ot.sliced import sliced_wasserstein

__all__ = [
    "emd_plan_numpy",
    "exact_assignment",
    "exact_plan",
    "sliced_wasserstein",
    "solve_sinkhorn",
    "sqeuclidean_cost",
]
