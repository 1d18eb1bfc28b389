"""What is interpolated: affine schedules, the Brownian bridge, stochastic interpolants."""

from jaxflow._deprecation import deprecated_names
from jaxflow.paths.affine import PARAMETRISATIONS, AffinePath, cond_ot_path, vp_trig_path
from jaxflow.paths.base import PathSample, ProbabilityPath
from jaxflow.paths.bridge import BrownianBridgePath
from jaxflow.paths.discrete import (
    DiscretePathSample,
    DiscreteSource,
    MaskSource,
    MixtureDiscretePath,
    UniformSource,
    check_tokens,
    exact_posterior,
)
from jaxflow.paths.empirical import EmpiricalDistribution
from jaxflow.paths.geodesic import GeodesicPath
from jaxflow.paths.interpolant import (
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
    CondOTScheduler,
    LipmanScheduler,
    PolynomialConvexScheduler,
    Scheduler,
    VEScheduler,
    VPSDEScheduler,
    VPTrigScheduler,
    get_scheduler,
)
from jaxflow.paths.separation import data_separation, kinetic_energy, normalise

__all__ = [
    "AffinePath",
    "BrownianBridgePath",
    "CondOTScheduler",
    "DiscretePathSample",
    "DiscreteSource",
    "EmpiricalDistribution",
    "Gamma",
    "GeodesicPath",
    "KineticOptimalScheduler",
    "LipmanScheduler",
    "MaskSource",
    "MixtureDiscretePath",
    "PARAMETRISATIONS",
    "PathSample",
    "PolynomialConvexScheduler",
    "ProbabilityPath",
    "QuadraticGamma",
    "Scheduler",
    "Sin2Gamma",
    "SqrtGamma",
    "StochasticInterpolant",
    "UniformSource",
    "VEScheduler",
    "VPSDEScheduler",
    "VPTrigScheduler",
    "ZeroGamma",
    "check_tokens",
    "cond_ot_path",
    "data_separation",
    "exact_posterior",
    "gamma_and_derivative",
    "get_scheduler",
    "kinetic_energy",
    "kinetic_energy_of",
    "normalise",
    "pfgmpp_perturb",
    "resolve_gamma",
    "vp_trig_path",
]

__getattr__ = deprecated_names(
    "jaxflow.paths",
    {
        "GAMMAS": ("jaxflow.paths.interpolant", "_GAMMAS"),
        "INTERPOLANTS": ("jaxflow.paths.interpolant", "_INTERPOLANTS"),
        "SCHEDULERS": ("jaxflow.paths.schedulers", "_SCHEDULERS"),
    },
)
