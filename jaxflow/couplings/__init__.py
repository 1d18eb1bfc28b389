"""How x0 and x1 are paired: independent, minibatch OT (exact / entropic), Schrödinger bridge, conditional, W-CFM."""

from jaxflow.couplings.base import CostCoupling, Coupling, IndependentCoupling, Pairing, pair_in_data
from jaxflow.couplings.ot import (
    ASSIGNMENT_SOLVERS,
    MODES,
    AssignmentSolver,
    Auction,
    ConditionalOTCoupling,
    ExactOTCoupling,
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
    "ReflowCoupling",
    "ReflowPairs",
    "load_pairs",
    "reflow_pairs",
    "save_pairs",
    "ASSIGNMENT_SOLVERS",
    "AssignmentSolver",
    "Auction",
    "NetworkSimplex",
    "ConditionalOTCoupling",
    "CostCoupling",
    "Coupling",
    "ExactOTCoupling",
    "GibbsWeightedCoupling",
    "IndependentCoupling",
    "MODES",
    "Pairing",
    "SinkhornCoupling",
    "effective_sample_size",
    "greedy_permutation",
    "label_blocked_cost",
    "pair_in_data",
    "sample_from_plan",
    "schrodinger_bridge_coupling",
]
