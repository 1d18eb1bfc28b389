"""Template deformation by a neural ODE (Le et al. 2023, "Diffeomorphic mesh deformation via efficient optimal
transport for cortical surface reconstruction"): a time-dependent velocity field in R³ (a Flax MLP) integrated by
diffrax moves the template's vertices; the loss compares samples of the deformed surface with the target's (any
sliced distance, or Chamfer). The flow of a Lipschitz field is a diffeomorphism, so the deformed mesh cannot fold:
its Jacobian determinant stays positive (`min_jacobian_determinant` measures it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import diffrax
import jax
import jax.numpy as jnp
import optax

from jaxflow.metrics.distances import chamfer
from jaxflow.nn.mlp import MLPVelocity, init_mlp, velocity_fn
from jaxflow.ot.sliced import projected_wasserstein, random_directions
from jaxflow.sampling.ode import sample
from jaxflow.shapes.meshes import Mesh, mesh_measure, sample_surface


def DeformationField(hidden: Sequence[int] = (128, 128, 128), activation: str = "tanh") -> MLPVelocity:  # noqa: N802 - a constructor
    """The velocity field v(t, x) in R³: an MLP with a smooth activation (tanh: a smooth, Lipschitz flow).

    Args:
        hidden: the hidden widths.
        activation: the activation's name.

    Returns:
        The `MLPVelocity` module (3-D out, identity time embedding).
    """
    return MLPVelocity(out_dim=3, hidden=tuple(hidden), activation=activation, time_embedding="identity")


def deform(
    module: MLPVelocity, params: Any, points: jax.Array, *, steps: int = 8, solver: Any = "rk4", adjoint: Any = None
) -> jax.Array:
    """Points [n, 3] moved by the flow of the field from t = 0 to 1 (`steps` fixed steps of `solver`).

    Args:
        module: the velocity field (`DeformationField()`).
        params: its parameters.
        points: points [n, 3].
        steps: fixed steps.
        solver: a diffrax solver object or shorthand.
        adjoint: a diffrax adjoint (e.g. `diffrax.ForwardMode()` for forward-mode derivatives).

    Returns:
        The moved points [n, 3].
    """
    return sample(velocity_fn(module), points, params=params, solver=solver, steps=steps, adjoint=adjoint).x


def min_jacobian_determinant(module: MLPVelocity, params: Any, points: jax.Array, *, steps: int = 8) -> jax.Array:
    """min over `points` of det ∂Φ/∂x of the flow map Φ (forward-mode through the solver); > 0 means no fold.

    Args:
        module: the velocity field.
        params: its parameters.
        points: the points [n, 3] where the Jacobian is taken.
        steps: fixed RK4 steps of the flow.

    Returns:
        The smallest determinant, a scalar array.
    """

    def flow(p):
        return deform(module, params, p[None], steps=steps, adjoint=diffrax.ForwardMode())[0]

    jac = jax.vmap(jax.jacfwd(flow))(points)
    return jnp.min(jnp.linalg.det(jac))


def sliced_loss(n_projections: int = 100, p: float = 2.0) -> Callable:
    """SW_p^p between two (weighted) clouds with fresh directions per call: loss(key, x, y, a=None, b=None), a and
    b the masses of x and y (uniform when None)."""

    def loss(key, x, y, a=None, b=None):
        theta = random_directions(key, n_projections, x.shape[1], x.dtype)
        return jnp.mean(projected_wasserstein(theta, x, y, p, a, b))

    return loss


def chamfer_loss(key, x, y):
    del key
    return chamfer(x, y)


def fit_deformation(
    key: jax.Array,
    template: Mesh,
    target: jax.Array | Mesh,
    *,
    loss: str | Callable = "sw",
    encoding: str = "points",
    module: MLPVelocity | None = None,
    iterations: int = 300,
    n_points: int = 1024,
    lr: float = 1e-3,
    ode_steps: int = 8,
    n_projections: int = 100,
    monitor: Callable | None = None,
    monitor_every: int = 25,
) -> tuple[Any, Any, dict]:
    """Fit a neural-ODE deformation of `template` to a target (Le et al. 2023).

    Args:
        key: the JAX key of the initialisation and of every iteration's samples and directions.
        template: the `Mesh` to deform.
        target: target points [m, 3], or a `Mesh` (sampled once, 4·`n_points` points, for "points"; used as a
            measure for "mesh").
        loss: "sw" (SW₂², `n_projections` fresh directions per iteration), "chamfer", or a callable
            loss(key, x, y[, a, b]).
        encoding: "points": each iteration compares `n_points` surface samples of the deformed template with as
            many target points; "mesh": both meshes as measures, triangle centroids with area masses
            (`mesh_measure`; the target must be a `Mesh` and the loss must take masses, as "sw" does).
        module: the velocity field (default `DeformationField()`), started at the identity map.
        iterations: optimiser steps.
        n_points: points per side and iteration ("points").
        lr: Adam's learning rate.
        ode_steps: RK4 steps of the flow.
        n_projections: directions of the "sw" loss.
        monitor: optional `params -> float`, evaluated every `monitor_every` iterations and at the end, outside
            the timed training (e.g. a quality score, to time the fit to a given quality).
        monitor_every: iterations between monitor calls.

    Returns:
        (module, params, {"loss": [iterations], "seconds_per_iteration": float (compile excluded), "monitor":
        [(iteration, training seconds so far, value)]}).

    Raises:
        ValueError: an unknown loss or encoding, the Chamfer loss with the mesh encoding.
        TypeError: the mesh encoding with a point target.
    """
    if encoding not in ("points", "mesh"):
        raise ValueError(f"unknown encoding {encoding!r}; use 'points' or 'mesh'")
    module = DeformationField() if module is None else module
    loss_fn = (
        {"sw": sliced_loss(n_projections), "chamfer": chamfer_loss}.get(loss, loss) if isinstance(loss, str) else loss
    )
    if isinstance(loss_fn, str):
        raise ValueError(f"unknown loss {loss!r}; use 'sw', 'chamfer' or a callable")
    if encoding == "mesh":
        if not isinstance(target, Mesh):
            raise TypeError("encoding='mesh' needs the target as a Mesh (its triangles carry the masses)")
        if loss_fn is chamfer_loss:
            raise ValueError("the Chamfer loss takes no masses: use encoding='points' with it")
        target_support, target_mass = mesh_measure(target)
    elif isinstance(target, Mesh):
        key, k_target = jax.random.split(key)
        target_points = sample_surface(k_target, target, 4 * n_points)[0]
    else:
        target_points = target
    k_init, k_loop = jax.random.split(key)
    params = init_mlp(k_init, module, 3)
    # start at the identity map: zero the last layer, so the initial field vanishes
    last = max(params["params"], key=lambda name: int(name.split("_")[-1]) if name.startswith("Dense_") else -1)
    params = {"params": {**params["params"], last: jax.tree.map(jnp.zeros_like, params["params"][last])}}
    opt = optax.adam(lr)
    state = opt.init(params)

    def objective(prm, k):
        k_s, k_t, k_l = jax.random.split(k, 3)
        moved = deform(module, prm, template.vertices, steps=ode_steps)
        if encoding == "mesh":
            support, mass = mesh_measure(Mesh(moved, template.faces))
            return loss_fn(k_l, support, target_support, mass, target_mass)
        pts, _ = sample_surface(k_s, Mesh(moved, template.faces), n_points)
        idx = jax.random.choice(k_t, target_points.shape[0], (n_points,), replace=n_points > target_points.shape[0])
        return loss_fn(k_l, pts, target_points[idx])

    @jax.jit
    def step(prm, st, k):
        value, grads = jax.value_and_grad(objective)(prm, k)
        updates, st = opt.update(grads, st, prm)
        return optax.apply_updates(prm, updates), st, value

    keys = jax.random.split(k_loop, iterations)
    params, state, v0 = step(params, state, keys[0])
    jax.block_until_ready(params)
    history = [float(v0)]
    watched = []
    trained = 0.0  # seconds of training after the first (compiling) step, monitor excluded
    t0 = time.perf_counter()
    for i, k in enumerate(keys[1:], start=1):
        params, state, v = step(params, state, k)
        history.append(v)
        if monitor is not None and (i % monitor_every == 0 or i == iterations - 1):
            jax.block_until_ready(params)
            trained += time.perf_counter() - t0
            watched.append((i, trained, float(monitor(params))))
            t0 = time.perf_counter()
    jax.block_until_ready(params)
    trained += time.perf_counter() - t0
    per_iter = trained / max(1, iterations - 1)
    return module, params, {"loss": [float(v) for v in history], "seconds_per_iteration": per_iter, "monitor": watched}
