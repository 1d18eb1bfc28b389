"""Objectives: small `eqx.Module`s called as `loss(params, batch, key) -> (scalar, aux)` (see `Objective`)."""

from jaxflow._deprecation import deprecated_names
from jaxflow.losses.base import Objective, with_coupling
from jaxflow.losses.cfm import RegressionLoss, cfm_loss, regression_loss, squared_error
from jaxflow.losses.discrete import (
    DiscreteFlowLoss,
    discrete_cross_entropy_loss,
    generalized_kl,
    mixture_kl_loss,
    token_cross_entropy,
)
from jaxflow.losses.fewstep import (
    DistillationLoss,
    MeanFlowLoss,
    OFTSRLoss,
    ShortcutLoss,
    distillation_loss,
    meanflow_loss,
    oftsr_loss,
    oftsr_student,
    shortcut_loss,
)
from jaxflow.losses.pfgmpp import EDMDenoiser, PFGMPPLoss, edm_denoiser, pfgmpp_loss
from jaxflow.losses.population import (
    PopulationLoss,
    conditioned,
    embed_population,
    population_loss,
    sample_populations,
    set_embedding,
    table_embedding,
)
from jaxflow.losses.score import denoising_loss, interpolant_loss
from jaxflow.losses.time_samplers import (
    LogitNormalTime,
    TimeSampler,
    TruncatedUniformTime,
    UniformTime,
    get_time_sampler,
)
from jaxflow.paths.targets import (
    DataTarget,
    NoiseTarget,
    ScoreTarget,
    Target,
    VelocityTarget,
    resolve_target,
)

__all__ = [
    "DataTarget",
    "DiscreteFlowLoss",
    "DistillationLoss",
    "EDMDenoiser",
    "LogitNormalTime",
    "MeanFlowLoss",
    "NoiseTarget",
    "OFTSRLoss",
    "Objective",
    "PFGMPPLoss",
    "PopulationLoss",
    "RegressionLoss",
    "ScoreTarget",
    "ShortcutLoss",
    "Target",
    "TimeSampler",
    "TruncatedUniformTime",
    "UniformTime",
    "VelocityTarget",
    "cfm_loss",
    "conditioned",
    "denoising_loss",
    "discrete_cross_entropy_loss",
    "distillation_loss",
    "edm_denoiser",
    "embed_population",
    "generalized_kl",
    "get_time_sampler",
    "interpolant_loss",
    "meanflow_loss",
    "mixture_kl_loss",
    "oftsr_loss",
    "oftsr_student",
    "pfgmpp_loss",
    "population_loss",
    "regression_loss",
    "resolve_target",
    "sample_populations",
    "set_embedding",
    "shortcut_loss",
    "squared_error",
    "table_embedding",
    "token_cross_entropy",
    "with_coupling",
]

__getattr__ = deprecated_names(
    "jaxflow.losses",
    {
        "TARGETS": ("jaxflow.paths.targets", "_TARGETS"),
        "DENOISING_TARGETS": ("jaxflow.losses.score", "_DENOISING_TARGETS"),
        "INTERPOLANT_TARGETS": ("jaxflow.losses.score", "_INTERPOLANT_TARGETS"),
        "TIME_SAMPLERS": ("jaxflow.losses.time_samplers", "_TIME_SAMPLERS"),
    },
)
