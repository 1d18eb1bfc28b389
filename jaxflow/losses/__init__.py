"""Pure objectives: `(params, batch, key) -> (scalar, aux)`."""

from jaxflow.losses.cfm import cfm_loss, regression_loss, squared_error
from jaxflow.losses.fewstep import distillation_loss, meanflow_loss, oftsr_loss, oftsr_student, shortcut_loss
from jaxflow.losses.pfgmpp import edm_denoiser, pfgmpp_loss
from jaxflow.losses.population import (
    conditioned,
    embed_population,
    population_loss,
    sample_populations,
    set_embedding,
    table_embedding,
)
from jaxflow.losses.score import DENOISING_TARGETS, INTERPOLANT_TARGETS, denoising_loss, interpolant_loss
from jaxflow.losses.time_samplers import (
    TIME_SAMPLERS,
    LogitNormalTime,
    TimeSampler,
    TruncatedUniformTime,
    UniformTime,
    get_time_sampler,
)
from jaxflow.paths.targets import (
    TARGETS,
    DataTarget,
    NoiseTarget,
    ScoreTarget,
    Target,
    VelocityTarget,
    resolve_target,
)

__all__ = [
    "distillation_loss",
    "meanflow_loss",
    "oftsr_loss",
    "oftsr_student",
    "shortcut_loss",
    "edm_denoiser",
    "pfgmpp_loss",
    "conditioned",
    "embed_population",
    "population_loss",
    "sample_populations",
    "set_embedding",
    "table_embedding",
    "DataTarget",
    "NoiseTarget",
    "ScoreTarget",
    "TARGETS",
    "Target",
    "VelocityTarget",
    "regression_loss",
    "resolve_target",
    "squared_error",
    "DENOISING_TARGETS",
    "INTERPOLANT_TARGETS",
    "denoising_loss",
    "interpolant_loss",
    "LogitNormalTime",
    "TIME_SAMPLERS",
    "TimeSampler",
    "TruncatedUniformTime",
    "UniformTime",
    "cfm_loss",
    "get_time_sampler",
]
