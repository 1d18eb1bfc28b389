"""What is interpolated: affine schedules, the Brownian bridge, stochastic interpolants."""

from jaxflow.paths.affine import PARAMETRISATIONS, AffinePath, cond_ot_path, vp_trig_path
from jaxflow.paths.base import PathSample, ProbabilityPath
from jaxflow.paths.bridge import BrownianBridgePath
from jaxflow.paths.empirical import EmpiricalDistribution
from jaxflow.paths.interpolant import (
    GAMMAS,
    INTERPOLANTS,
    Gamma,
    QuadraticGamma,
    Sin2Gamma,
    SqrtGamma,
    StochasticInterpolant,
    ZeroGamma,
    gamma_and_derivative,
    resolve_gamma,
)
from jaxflow.paths.kinetic import KineticOptimalScheduler, kinetic_energy_of
from jaxflow.paths.pfgmpp import pfgmpp_perturb
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
from jaxflow.paths.separation import data_separation, kinetic_energy, normalise

__all__ = [
    "EmpiricalDistribution",
    "KineticOptimalScheduler",
    "kinetic_energy_of",
    "data_separation",
    "kinetic_energy",
    "normalise",
    "pfgmpp_perturb",
    "AffinePath",
    "BrownianBridgePath",
    "CondOTScheduler",
    "GAMMAS",
    "Gamma",
    "INTERPOLANTS",
    "LipmanScheduler",
    "PARAMETRISATIONS",
    "PathSample",
    "QuadraticGamma",
    "ProbabilityPath",
    "SCHEDULERS",
    "Scheduler",
    "Sin2Gamma",
    "SqrtGamma",
    "StochasticInterpolant",
    "VEScheduler",
    "VPSDEScheduler",
    "VPTrigScheduler",
    "ZeroGamma",
    "cond_ot_path",
    "gamma_and_derivative",
    "get_scheduler",
    "resolve_gamma",
    "vp_trig_path",
]
