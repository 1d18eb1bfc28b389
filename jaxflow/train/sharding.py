"""Data parallelism over a device mesh (the modern form of pmap) and multi-host start-up."""

from __future__ import annotations

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def data_mesh(devices=None) -> Mesh:
    """A 1-D mesh over every device (all hosts' devices after `jax.distributed.initialize()`), axis 'data'."""
    devices = jax.devices() if devices is None else devices
    # Auto axes: the compiler propagates shardings from the constraints we place (GSPMD style).
    return jax.make_mesh((len(devices),), (DATA_AXIS,), devices=devices, axis_types=(AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh, leading: int = 0) -> NamedSharding:
    """Shard the batch axis (after `leading` unsharded axes, e.g. the scan axis) over the 'data' axis."""
    return NamedSharding(mesh, PartitionSpec(*([None] * leading), DATA_AXIS))


def check_divisible(batch_size: int, mesh: Mesh) -> None:
    n = mesh.devices.size
    if batch_size % n:
        raise ValueError(f"global batch size {batch_size} must be divisible by the number of devices {n}")


def shard_batch(batch, mesh: Mesh, leading: int = 0):
    """Constrain every leaf [.., B, ...] of a batch to be split over devices along its batch axis (inside jit)."""
    return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, batch_sharding(mesh, leading)), batch)


def initialize_distributed(**kwargs) -> None:
    """Start multi-host JAX (`jax.distributed.initialize`); arguments come from the environment when omitted."""
    jax.distributed.initialize(**kwargs)
