"""What is interpolated: affine schedules, the Brownian bridge, stochastic interpolants."""

from jaxflow.paths.affine import PARAMETRISATIONS, AffinePath, cond_ot_path, vp_trig_path
from jaxflow.paths.base import PathSample, ProbabilityPath
from jaxflow.paths.bridge import BrownianBridgePath
from jaxflow.paths.interpolant import GAMMAS, INTERPOLANTS, StochasticInterpolant, gamma_and_derivative
from jaxflow.paths.schedulers import (
    SCHEDULERS,
    CondOTScheduler,
    LipmanScheduler,
    Scheduler,
    VEScheduler,
    VPSDEScheduler,
    VPTrigScheduler,
    get_scheduler,
)

__all__ = [
    "AffinePath",
    "BrownianBridgePath",
    "CondOTScheduler",
    "GAMMAS",
    "INTERPOLANTS",
    "LipmanScheduler",
    "PARAMETRISATIONS",
    "PathSample",
    "ProbabilityPath",
    "SCHEDULERS",
    "Scheduler",
    "StochasticInterpolant",
    "VEScheduler",
    "VPSDEScheduler",
    "VPTrigScheduler",
    "cond_ot_path",
    "gamma_and_derivative",
    "get_scheduler",
    "vp_trig_path",
]
