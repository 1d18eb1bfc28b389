"""Data parallelism over a device mesh (the modern form of pmap) and multi-host start-up."""

from __future__ import annotations

import os
from typing import Any

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def data_mesh(devices: Any = None) -> Mesh:
    """A 1-D mesh over every device (all hosts' devices after `jax.distributed.initialize()`), axis 'data'.

    Args:
        devices: the devices (default: all of them).

    Returns:
        A `jax.sharding.Mesh` with one axis, 'data'.
    """
    devices = jax.devices() if devices is None else devices
    # Auto axes: the compiler propagates shardings from the constraints we place (GSPMD style).
    return jax.make_mesh((len(devices),), (DATA_AXIS,), devices=devices, axis_types=(AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
    """The sharding that keeps a full copy on every device of `mesh` (the state's).

    Args:
        mesh: the device mesh.

    Returns:
        The `NamedSharding` with an empty partition spec.
    """
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh, leading: int = 0) -> NamedSharding:
    """Shard the batch axis (after `leading` unsharded axes, e.g. the scan axis) over the 'data' axis.

    Args:
        mesh: the device mesh.
        leading: unsharded leading axes.

    Returns:
        The `NamedSharding`.
    """
    return NamedSharding(mesh, PartitionSpec(*([None] * leading), DATA_AXIS))


def check_divisible(batch_size: int, mesh: Mesh) -> None:
    """Raise a ValueError unless the global batch splits evenly over the mesh's devices.

    Args:
        batch_size: the global batch size.
        mesh: the device mesh.

    Raises:
        ValueError: batch_size is not a multiple of the number of devices.
    """
    n = mesh.devices.size
    if batch_size % n:
        raise ValueError(f"global batch size {batch_size} must be divisible by the number of devices {n}")


def shard_batch(batch: Any, mesh: Mesh, leading: int = 0) -> Any:
    """Constrain every leaf [.., B, ...] of a batch to be split over devices along its batch axis (inside jit).

    Args:
        batch: a pytree of arrays.
        mesh: the device mesh (axis 'data').
        leading: unsharded leading axes (e.g. the scan axis).

    Returns:
        The batch with sharding constraints.
    """
    return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, batch_sharding(mesh, leading)), batch)


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    cpu_collectives: str | None = "gloo",
    **kwargs: Any,
) -> None:
    """Start multi-process JAX (`jax.distributed.initialize`) before building the mesh.

    Arguments left out are read from JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID (and, when those
    are unset too, detected by jax from the cluster: SLURM, Open MPI, TPU pods). `cpu_collectives`: the CPU
    backend's cross-process collectives ('gloo'), needed when the devices are CPUs; harmless on accelerators.

    Args:
        coordinator_address: host:port of process 0.
        num_processes: the number of processes.
        process_id: this process's index.
        cpu_collectives: the CPU collectives implementation, or None to leave jax's setting.
        **kwargs: passed to `jax.distributed.initialize`.
    """
    env = os.environ
    if coordinator_address is None:
        coordinator_address = env.get("JAX_COORDINATOR_ADDRESS")
    if num_processes is None and "JAX_NUM_PROCESSES" in env:
        num_processes = int(env["JAX_NUM_PROCESSES"])
    if process_id is None and "JAX_PROCESS_ID" in env:
        process_id = int(env["JAX_PROCESS_ID"])
    if cpu_collectives:
        jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    jax.distributed.initialize(coordinator_address, num_processes, process_id, **kwargs)


def limit_cpu_threads(n: int) -> None:
    """Start JAX's CPU backend with a worker pool of `n` threads.

    XLA:CPU sizes its pool from the process's CPU affinity when the backend starts (jax has no other switch for
    it; `--xla_cpu_multi_thread_eigen=false` does not shrink the pool). For small models the pool's hand-offs
    between cores cost more than they give: the 2-D flow-matching step (MLP 3×64, batch 256) runs ~35% faster
    with one worker on a 2-core machine (BENCHMARKS.md). This narrows the affinity to `n` cores, starts the
    backend, then gives every thread of the process (XLA's included) its cores back: the pool keeps its size, and
    threads started later from anywhere (host OT solvers in a callback, data loaders) may use every core. Call it
    before anything touches a JAX device. Linux only.

    Args:
        n: the number of worker threads (a positive int).

    Raises:
        ValueError: n not a positive int.
        OSError: a platform without CPU affinity.
        RuntimeError: the backend has already started.
    """
    from jax._src import xla_bridge  # no public query for "has the backend started" in jax 0.10

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"limit_cpu_threads needs a positive integer, got {n!r}")
    if not hasattr(os, "sched_setaffinity"):
        raise OSError("limit_cpu_threads sets the CPU affinity, which this platform does not offer (Linux only)")
    if xla_bridge.backends_are_initialized():
        raise RuntimeError("limit_cpu_threads must run before JAX starts its backend (before the first device use)")
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, sorted(allowed)[:n])
    try:
        jax.devices("cpu")
    finally:
        for tid in os.listdir("/proc/self/task"):
            try:
                os.sched_setaffinity(int(tid), allowed)
            except ProcessLookupError:  # a thread that ended meanwhile
                pass
