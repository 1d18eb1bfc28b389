"""diffrax-based samplers: ODE (`sample`), SDE (`sample_sde`), likelihood (`log_likelihood`), guidance (`guided`)."""

from jaxflow._deprecation import deprecated_names
from jaxflow.sampling.discrete import DiscreteSampleOutput, sample_discrete
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
from jaxflow.sampling.manifold import ProjectedSolver
from jaxflow.sampling.ode import SampleOutput, sample
from jaxflow.sampling.pfgmpp import karras_sigmas, pfgmpp_prior, sample_pfgmpp
from jaxflow.sampling.schedule import ScheduleTransformed, schedule_transform
from jaxflow.sampling.sde import diffusion_epsilon, sample_sde, score_to_drift
from jaxflow.sampling.solvers import (
    RK4,
    SolverError,
    evaluation_counts,
    resolve_solver,
)

__all__ = [
    "DiscreteSampleOutput",
    "DivergenceEstimator",
    "ExactDivergence",
    "HutchinsonDivergence",
    "InversionResult",
    "LikelihoodOutput",
    "ProjectedSolver",
    "RK4",
    "SampleOutput",
    "ScheduleTransformed",
    "SolverError",
    "StepSizeBound",
    "bits_per_dim",
    "check_labels",
    "diffusion_epsilon",
    "drop_labels",
    "evaluation_counts",
    "exact_divergence",
    "flowopt",
    "guided",
    "hutchinson_divergence",
    "invert_gradient",
    "invert_ode",
    "karras_sigmas",
    "log_likelihood",
    "pfgmpp_prior",
    "resolve_divergence",
    "resolve_solver",
    "sample",
    "sample_discrete",
    "sample_flow_map",
    "sample_pfgmpp",
    "sample_sde",
    "schedule_transform",
    "score_to_drift",
    "standard_normal_log_prob",
    "step_size_bound",
]

__getattr__ = deprecated_names(
    "jaxflow.sampling",
    {
        "SOLVERS": ("jaxflow.sampling.ode", "_SOLVERS"),
        "SDE_SOLVERS": ("jaxflow.sampling.sde", "_SDE_SOLVERS"),
        "SOLVER_NAMES": ("jaxflow.sampling.solvers", "_SOLVER_NAMES"),
        "SDE_SOLVER_NAMES": ("jaxflow.sampling.solvers", "_SDE_SOLVER_NAMES"),
    },
)
