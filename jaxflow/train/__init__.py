"""TrainState, the step factory, data-parallel sharding, EMA, checkpoints and the training loop."""

from jaxflow.train.data import ArraySource, IteratorSource, Prefetch
from jaxflow.train.evaluate import flow_quality, make_evaluator
from jaxflow.train.loop import (
    CheckpointMismatchError,
    ConfigMismatchError,
    MetricsLog,
    checkpoint_manager,
    fit,
    plot_loss_curve,
    read_jsonl,
    restore_latest,
    save_checkpoint,
)
from jaxflow.train.reflow import RectifiedFlow
from jaxflow.train.sharding import (
    DATA_AXIS,
    batch_sharding,
    check_divisible,
    data_mesh,
    initialize_distributed,
    limit_cpu_threads,
    replicated,
    shard_batch,
)
from jaxflow.train.state import Ema, EmaState, TrainState, ema
from jaxflow.train.step import NonFiniteLossError, make_train_step

__all__ = [
    "ArraySource",
    "CheckpointMismatchError",
    "ConfigMismatchError",
    "DATA_AXIS",
    "Ema",
    "EmaState",
    "IteratorSource",
    "MetricsLog",
    "NonFiniteLossError",
    "Prefetch",
    "RectifiedFlow",
    "TrainState",
    "batch_sharding",
    "check_divisible",
    "checkpoint_manager",
    "data_mesh",
    "ema",
    "fit",
    "flow_quality",
    "initialize_distributed",
    "limit_cpu_threads",
    "make_evaluator",
    "make_train_step",
    "plot_loss_curve",
    "read_jsonl",
    "replicated",
    "restore_latest",
    "save_checkpoint",
    "shard_batch",
]
