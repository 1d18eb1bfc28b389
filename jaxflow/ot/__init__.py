"""Optimal-transport toolbox.

exact (POT network simplex) · sinkhorn (ott-jax) · sinkhorn_newton (Sinkhorn–Newton–Sparse) · sliced (SW with control
variates, Max-SW, vMF distributional SW) · gaussian (Bures–Wasserstein geometry) · maps (barycentric projection) ·
unfolding (Richardson–Lucy, Wasserstein unfolding).
"""

from jaxflow.ot import gaussian, maps, sinkhorn_newton, sliced, unfolding
from jaxflow.ot.auction import AuctionOutput, auction_assignment
from jaxflow.ot.exact import emd_plan_numpy, exact_assignment, exact_assignment_sqeuclidean, exact_plan
from jaxflow.ot.gaussian import bures_wasserstein, gaussian_map
from jaxflow.ot.maps import BarycentricMap, barycentric_map
from jaxflow.ot.sinkhorn import (
    NotConvergedError,
    NotConvergedWarning,
    report_convergence,
    solve_sinkhorn,
    sqeuclidean_cost,
)
from jaxflow.ot.sinkhorn_newton import SNSOutput, sinkhorn_newton_sparse, sinkhorn_to_precision
from jaxflow.ot.sliced import (
    SlicedEstimate,
    distributional_sliced_wasserstein,
    max_sliced_wasserstein,
    sample_vmf,
    sliced_wasserstein,
)
from jaxflow.ot.unfolding import richardson_lucy, wasserstein_unfolding

__all__ = [
    "AuctionOutput",
    "BarycentricMap",
    "NotConvergedError",
    "NotConvergedWarning",
    "SNSOutput",
    "SlicedEstimate",
    "auction_assignment",
    "barycentric_map",
    "bures_wasserstein",
    "distributional_sliced_wasserstein",
    "emd_plan_numpy",
    "exact_assignment",
    "exact_assignment_sqeuclidean",
    "exact_plan",
    "gaussian",
    "gaussian_map",
    "maps",
    "max_sliced_wasserstein",
    "report_convergence",
    "richardson_lucy",
    "sample_vmf",
    "sinkhorn_newton",
    "sinkhorn_newton_sparse",
    "sinkhorn_to_precision",
    "sliced",
    "sliced_wasserstein",
    "solve_sinkhorn",
    "sqeuclidean_cost",
    "unfolding",
    "wasserstein_unfolding",
]
