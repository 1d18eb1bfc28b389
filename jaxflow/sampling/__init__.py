"""diffrax-based samplers: ODE (`sample`), SDE (`sample_sde`), likelihood (`log_likelihood`), guidance (`guided`)."""

from jaxflow.sampling.flowmap import sample_flow_map
from jaxflow.sampling.guidance import check_labels, drop_labels, guided
from jaxflow.sampling.invert import (
    InversionResult,
    StepSizeBound,
    flowopt,
    invert_gradient,
    invert_ode,
    step_size_bound,
)
from jaxflow.sampling.likelihood import (
    DivergenceEstimator,
    ExactDivergence,
    HutchinsonDivergence,
    LikelihoodOutput,
    bits_per_dim,
    exact_divergence,
    hutchinson_divergence,
    log_likelihood,
    resolve_divergence,
    standard_normal_log_prob,
)
from jaxflow.sampling.ode import SOLVERS, SampleOutput, sample
from jaxflow.sampling.pfgmpp import karras_sigmas, pfgmpp_prior, sample_pfgmpp
from jaxflow.sampling.sde import SDE_SOLVERS, diffusion_epsilon, sample_sde, score_to_drift
from jaxflow.sampling.solvers import (
    RK4,
    SDE_SOLVER_NAMES,
    SOLVER_NAMES,
    SolverError,
    evaluation_counts,
    resolve_solver,
)

__all__ = [
    "DivergenceEstimator",
    "ExactDivergence",
    "HutchinsonDivergence",
    "resolve_divergence",
    "InversionResult",
    "StepSizeBound",
    "flowopt",
    "invert_gradient",
    "invert_ode",
    "step_size_bound",
    "sample_flow_map",
    "karras_sigmas",
    "pfgmpp_prior",
    "sample_pfgmpp",
    "LikelihoodOutput",
    "RK4",
    "SDE_SOLVERS",
    "SDE_SOLVER_NAMES",
    "SOLVER_NAMES",
    "SOLVERS",
    "SampleOutput",
    "SolverError",
    "bits_per_dim",
    "check_labels",
    "diffusion_epsilon",
    "drop_labels",
    "evaluation_counts",
    "exact_divergence",
    "guided",
    "hutchinson_divergence",
    "log_likelihood",
    "resolve_solver",
    "sample",
    "sample_sde",
    "score_to_drift",
    "standard_normal_log_prob",
]
