"""How x0 and x1 are paired: independent, minibatch OT (exact / entropic), Schrödinger bridge, conditional, W-CFM."""

from jaxflow._deprecation import deprecated_names
from jaxflow.couplings.base import CostCoupling, Coupling, IndependentCoupling, Pairing, pair_in_data
from jaxflow.couplings.ot import (
    MODES,
    AssignmentSolver,
    Auction,
    ConditionalOTCoupling,
    ExactOTCoupling,
    ManifoldOTCoupling,
    NetworkSimplex,
    SinkhornCoupling,
    greedy_permutation,
    label_blocked_cost,
    sample_from_plan,
    schrodinger_bridge_coupling,
)
from jaxflow.couplings.reflow import ReflowCoupling, ReflowPairs, load_pairs, reflow_pairs, save_pairs
from jaxflow.couplings.weighted import GibbsWeightedCoupling, effective_sample_size

__all__ = [
    "AssignmentSolver",
    "Auction",
    "ConditionalOTCoupling",
    "CostCoupling",
    "Coupling",
    "ExactOTCoupling",
    "GibbsWeightedCoupling",
    "IndependentCoupling",
    "MODES",
    "ManifoldOTCoupling",
    "NetworkSimplex",
    "Pairing",
    "ReflowCoupling",
    "ReflowPairs",
    "SinkhornCoupling",
    "effective_sample_size",
    "greedy_permutation",
    "label_blocked_cost",
    "load_pairs",
    "pair_in_data",
    "reflow_pairs",
    "sample_from_plan",
    "save_pairs",
    "schrodinger_bridge_coupling",
]

__getattr__ = deprecated_names(
    "jaxflow.couplings",
    {
        "ASSIGNMENT_SOLVERS": ("jaxflow.couplings.ot", "_ASSIGNMENT_SOLVERS"),
    },
)
