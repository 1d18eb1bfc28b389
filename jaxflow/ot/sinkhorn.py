"""Entropic OT through ott-jax. Thin wrappers: ott objects go in and come out unchanged."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from ott.geometry import geometry
from ott.problems.linear import linear_problem
from ott.solvers.linear import sinkhorn as ott_sinkhorn

from jaxflow._checks import check_positive


def sqeuclidean_cost(x: jax.Array, y: jax.Array) -> jax.Array:
    """C_ij = ‖x_i − y_j‖² for x [n, ...], y [m, ...] (trailing axes flattened).

    Args:
        x: points [n, ...].
        y: points [m, ...] (the same trailing shape).

    Returns:
        The cost matrix [n, m].
    """
    x = x.reshape(x.shape[0], -1)
    y = y.reshape(y.shape[0], -1)
    xx = jnp.sum(x * x, axis=1)[:, None]
    yy = jnp.sum(y * y, axis=1)[None, :]
    return jnp.maximum(xx + yy - 2.0 * x @ y.T, 0.0)


def solve_sinkhorn(
    cost: jax.Array,
    epsilon: float | jax.Array,
    *,
    a: jax.Array | None = None,
    b: jax.Array | None = None,
    solver: ott_sinkhorn.Sinkhorn | None = None,
) -> ott_sinkhorn.SinkhornOutput:
    """Balanced entropic OT on an explicit cost matrix with absolute ε (same units as the cost), by ott-jax.

    Stopping rule: ott's, i.e. the L1 marginal error of the plan ‖π1 − a‖₁ below `solver.threshold`
    (checked every `inner_iterations`).

    Args:
        cost: the cost matrix [n, m].
        epsilon: the entropic regularisation ε > 0, in the cost's units.
        a: source marginal [n] (default uniform).
        b: target marginal [m] (default uniform).
        solver: an ott-jax `Sinkhorn` solver object (any of its options); default `Sinkhorn()`.

    Returns:
        ott's `SinkhornOutput` (`matrix` the plan [n, m], `f`, `g` the potentials, `converged`, `errors`, ...).

    Raises:
        ValueError: ε ≤ 0.
    """
    check_positive(epsilon, "epsilon")
    geom = geometry.Geometry(cost_matrix=cost, epsilon=epsilon)
    prob = linear_problem.LinearProblem(geom, a=a, b=b)
    solver = ott_sinkhorn.Sinkhorn() if solver is None else solver
    return solver(prob)


class NotConvergedWarning(RuntimeWarning):
    """An iterative solver stopped before meeting its tolerance."""


class NotConvergedError(RuntimeError):
    """An iterative solver stopped before meeting its tolerance (raised when the caller asked for `raise`)."""


ON_NONCONVERGENCE = ("warn", "raise", "ignore")


def report_convergence(converged: jax.Array, what: str, policy: str = "warn") -> None:
    """Act on a solver's `converged` flag: warn (`NotConvergedWarning`), raise (`NotConvergedError`) or ignore.

    Works eagerly and under jit/vmap: inside a trace the report is a host callback run only when the flag is false
    (under jit `raise` surfaces as the callback's error at the jit boundary).

    Args:
        converged: the solver's flag (a boolean scalar array).
        what: the solver's name, for the message.
        policy: "warn", "raise" or "ignore".

    Raises:
        ValueError: an unknown policy.
        NotConvergedError: policy "raise" and the flag is false.
    """
    if policy not in ON_NONCONVERGENCE:
        raise ValueError(f"unknown on_nonconvergence {policy!r}; choose one of {ON_NONCONVERGENCE}")
    if policy == "ignore":
        return
    message = f"{what} did not converge (the tolerance was not met; try a larger epsilon or more iterations)"

    def act(ok):
        import numpy as np

        if not bool(np.all(ok)):
            if policy == "raise":
                raise NotConvergedError(message)
            import warnings

            warnings.warn(message, NotConvergedWarning, stacklevel=4)

    if isinstance(converged, jax.core.Tracer):
        jax.debug.callback(act, converged)
    else:
        act(converged)
