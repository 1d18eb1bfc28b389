"""Minibatch optimal-transport couplings (OT-CFM, SB-CFM, conditional OT).

Tong et al. (2024), "Improving and generalizing flow-based generative models with minibatch optimal transport",
arXiv:2302.00482; Pooladian et al. (2023), "Multisample flow matching", arXiv:2304.14772.

Each OT coupling computes a plan on the batch and then either *resamples* B pairs from it with replacement (the
published OT-CFM default) or returns a one-to-one *permutation* of x1.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from ott.solvers.linear import acceleration
from ott.solvers.linear import sinkhorn as ott_sinkhorn

from jaxflow._checks import check_choice, check_positive
from jaxflow.couplings.base import CostCoupling, Coupling, Pairing, validate_coupling_inputs
from jaxflow.manifolds import Manifold, geodesic_cost
from jaxflow.ot.auction import auction_assignment
from jaxflow.ot.exact import exact_assignment, exact_assignment_sqeuclidean
from jaxflow.ot.sinkhorn import ON_NONCONVERGENCE, report_convergence, solve_sinkhorn, sqeuclidean_cost

MODES = ("resample", "permutation")


def greedy_permutation(plan: jax.Array) -> jax.Array:
    """Round a (fractional) plan [n, n] to a permutation: rows in order of their largest entry take their best free
    column. O(n²); exact when the plan already is a scaled permutation.

    Args:
        plan: a plan [n, n].

    Returns:
        The permutation [n] (row i takes column perm[i]).
    """
    n = plan.shape[0]
    order = jnp.argsort(-jnp.max(plan, axis=1))

    def take(used, i):
        j = jnp.argmax(jnp.where(used, -jnp.inf, plan[i]))
        return used.at[j].set(True), j

    _, cols = jax.lax.scan(take, jnp.zeros(n, bool), order)
    return jnp.zeros(n, jnp.int32).at[order].set(cols.astype(jnp.int32))


def sample_from_plan(key: jax.Array, plan: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
    """n index pairs (i, j) drawn with replacement from the plan [n0, n1] by inverse-CDF sampling.

    Args:
        key: the JAX key.
        plan: the plan [n0, n1] (non-negative, any total mass).
        n: the number of pairs.

    Returns:
        (row indices [n], column indices [n]).
    """
    n1 = plan.shape[1]
    flat = plan.reshape(-1)
    idx = jax.random.choice(key, flat.shape[0], shape=(n,), p=flat / jnp.sum(flat), replace=True)
    return idx // n1, idx % n1


def _take(pairing_inputs, i, j):
    x0, x1, labels = pairing_inputs
    return Pairing(x0[i], x1[j], jnp.ones(i.shape[0], x0.dtype), None if labels is None else labels[j])


def label_blocked_cost(cost: jax.Array, labels: jax.Array) -> jax.Array:
    """Forbid cross-label pairs: add a penalty far above any real cost where labels differ.

    Row i is treated as carrying labels[i] too, so each label block is square and the blocked problem is feasible.

    Args:
        cost: the cost [n, n].
        labels: labels [n] (of both sides).

    Returns:
        The blocked cost [n, n].
    """
    penalty = 1e3 * (jnp.max(jax.lax.stop_gradient(cost)) + 1.0)
    return cost + penalty * (labels[:, None] != labels[None, :])


class AssignmentSolver(eqx.Module):
    """An exact assignment solver: `solver(cost [B, B]) -> (perm [B], converged [])`, row i paired with perm[i].

    `on_host`: the solver runs on host threads through a callback (the step factory then pairs a whole chunk ahead
    of the device work); False for a solver that compiles onto the device.
    """

    on_host: ClassVar[bool] = False

    @abc.abstractmethod
    def __call__(self, cost: jax.Array) -> tuple[jax.Array, jax.Array]: ...

    def from_points(self, x0: jax.Array, x1: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The assignment for the squared-Euclidean cost of x0, x1 [B, ...]. A solver that can build the cost more
        cheaply where it solves (the host solver) overrides this."""
        return self(sqeuclidean_cost(x0, x1))


class NetworkSimplex(AssignmentSolver):
    """POT's network simplex on host threads, through a callback (exact; a batch of problems under vmap is solved in
    parallel threads). Fast on a CPU; on an accelerator every call round-trips to the host."""

    on_host: ClassVar[bool] = True

    def __call__(self, cost):
        return exact_assignment(cost), jnp.asarray(True)

    def from_points(self, x0, x1):
        # the points go to the host, where each worker thread builds its float64 cost next to the solver: no
        # [chunk, B, B] cost buffer on the device (about an eighth of the README-form step on a 2-core CPU)
        return exact_assignment_sqeuclidean(x0, x1), jnp.asarray(True)


class Auction(AssignmentSolver):
    """Bertsekas' auction with ε-scaling on the device (`jaxflow.ot.auction_assignment`): jit-able, vmappable and
    shardable; total cost within B·ε_final of the optimum (default: relative gap ≤ 1e-4, exact for integer costs).

    Attributes:
        epsilon_final: the last phase's ε (default: relative gap ≤ 1e-4).
        scale: ε's divisor between phases.
        max_rounds: cap on bidding rounds.
    """

    epsilon_final: float | None = None
    scale: float = eqx.field(default=5.0, static=True)
    max_rounds: int = eqx.field(default=100_000, static=True)

    def __call__(self, cost):
        out = auction_assignment(cost, epsilon_final=self.epsilon_final, scale=self.scale, max_rounds=self.max_rounds)
        return out.perm, out.converged


_ASSIGNMENT_SOLVERS = {"network_simplex": NetworkSimplex, "auction": Auction}


class ExactOTCoupling(CostCoupling):
    """Minibatch OT with an exact assignment solver on the squared-Euclidean cost (OT-CFM, Tong et al. 2024).

    Called as `coupling(key, x0 [B, ...], x1 [B, ...], labels=None) -> Pairing`: x1 (and its labels) reordered so
    that (x0_i, x1_i) is the optimal assignment of the batch.

    Args:
        mode: "resample" (draw pairs from the plan, as TorchCFM) or "permutation" (apply the assignment).
        solver: an `AssignmentSolver` object or a shorthand: `NetworkSimplex()` ("network_simplex", POT on host
            threads, the default) or `Auction()` ("auction", ε-scaling auction on the device).
        on_nonconvergence: "warn" (default), "raise" or "ignore" when the solver stops at its iteration cap (the
            pairs are then a valid permutation but not an optimal one).

    Raises:
        ValueError: an unknown mode, solver name or `on_nonconvergence`; at call time, empty or non-finite points.
    """

    mode: str = eqx.field(default="resample", static=True)
    solver: AssignmentSolver = NetworkSimplex()
    on_nonconvergence: str = eqx.field(default="warn", static=True)

    def __init__(
        self,
        mode: str = "resample",
        solver: AssignmentSolver | str = "network_simplex",
        on_nonconvergence: str = "warn",
    ):
        self.mode = mode
        if isinstance(solver, str):
            check_choice(solver, "assignment solver", _ASSIGNMENT_SOLVERS)
            solver = _ASSIGNMENT_SOLVERS[solver]()
        if not isinstance(solver, AssignmentSolver):
            raise TypeError(f"solver must be an AssignmentSolver or a name, got {type(solver).__name__}")
        self.solver = solver
        self.on_nonconvergence = on_nonconvergence

    def __check_init__(self):
        check_choice(self.mode, "mode", MODES)
        check_choice(self.on_nonconvergence, "on_nonconvergence", ON_NONCONVERGENCE)

    @property
    def pairs_on_host(self) -> bool:
        return self.solver.on_host

    def __call__(self, key, x0, x1, labels=None) -> Pairing:
        x0, x1, labels = validate_coupling_inputs(x0, x1, labels)
        perm, converged = self.solver.from_points(jax.lax.stop_gradient(x0), jax.lax.stop_gradient(x1))
        return self.pair_from_permutation(key, x0, x1, perm, converged, labels)

    def pair_from_cost(self, key, x0, x1, cost, labels=None, scale_cost=None) -> Pairing:
        del scale_cost  # no ε
        perm, converged = self.solver(jax.lax.stop_gradient(cost))
        return self.pair_from_permutation(key, x0, x1, perm, converged, labels)

    def pair_from_permutation(self, key, x0, x1, perm, converged, labels=None) -> Pairing:
        """Pairs from the optimal permutation (row i with column perm[i]): all of them, or resampled from P_σ / n."""
        report_convergence(converged, f"ExactOTCoupling({type(self.solver).__name__})", self.on_nonconvergence)
        n = x0.shape[0]
        if self.mode == "permutation":
            i = jnp.arange(n)
        else:  # the plan is P_σ / n: drawing (i, j) ~ π is drawing i uniformly and taking j = σ(i)
            i = jax.random.randint(key, (n,), 0, n)
        return _take((x0, x1, labels), i, perm[i])


class SinkhornCoupling(CostCoupling):
    """Minibatch entropic OT with ott-jax Sinkhorn on the squared-Euclidean cost; pairs drawn from the plan.

    Called as `coupling(key, x0 [B, ...], x1 [B, ...], labels=None) -> Pairing`.

    Attributes:
        epsilon: the entropic regularisation: ε = `epsilon` × mean(C) when `relative`, else ε = `epsilon`.
        relative: scale ε by the batch's mean cost (default True).
        mode: "resample" (draw pairs from the plan) or "permutation".
        threshold: stop once ott's L1 marginal error is below it.
        max_iterations: the most Sinkhorn iterations.
        anderson: Anderson acceleration memory (> 1; about 3× fewer iterations on the 2-D benchmark at the same
            plan); 0 gives plain Sinkhorn.
        on_nonconvergence: "warn" (default), "raise" or "ignore" when Sinkhorn stops at `max_iterations` before
            the threshold (the plan is then not the entropic optimum; under jit the report is a host callback run
            only then).
        sinkhorn: an ott-jax `Sinkhorn` solver object to use as it is (momentum, initializers, another
            acceleration, implicit differentiation, ...); `threshold`, `max_iterations` and `anderson` are then not
            used (passing both is refused). Its convergence is reported as above.

    Raises:
        ValueError: ε ≤ 0, an unknown mode or `on_nonconvergence`, an Anderson memory of 1, options given beside
            a `sinkhorn` object.
        TypeError: `sinkhorn` that is not an ott-jax `Sinkhorn`.
    """

    epsilon: float = 0.01
    relative: bool = eqx.field(default=True, static=True)
    mode: str = eqx.field(default="resample", static=True)
    threshold: float = eqx.field(default=1e-3, static=True)
    max_iterations: int = eqx.field(default=2000, static=True)
    anderson: int = eqx.field(default=5, static=True)
    on_nonconvergence: str = eqx.field(default="warn", static=True)
    sinkhorn: ott_sinkhorn.Sinkhorn | None = eqx.field(default=None, static=True)

    def __check_init__(self):
        check_choice(self.mode, "mode", MODES)
        check_choice(self.on_nonconvergence, "on_nonconvergence", ON_NONCONVERGENCE)
        check_positive(self.epsilon, "epsilon")
        if self.anderson < 0 or self.anderson == 1:
            raise ValueError(f"anderson memory must be 0 (off) or >= 2, got {self.anderson}")
        if self.sinkhorn is not None:
            if not isinstance(self.sinkhorn, ott_sinkhorn.Sinkhorn):
                raise TypeError(f"sinkhorn must be an ott-jax Sinkhorn solver, got {type(self.sinkhorn).__name__}")
            if (self.threshold, self.max_iterations, self.anderson) != (1e-3, 2000, 5):
                raise ValueError("pass either an ott Sinkhorn object or threshold/max_iterations/anderson, not both")

    def solver(self) -> ott_sinkhorn.Sinkhorn:
        """The ott-jax solver: the one passed as `sinkhorn`, else one configured from the fields."""
        if self.sinkhorn is not None:
            return self.sinkhorn
        accel = acceleration.AndersonAcceleration(memory=self.anderson) if self.anderson else None
        return ott_sinkhorn.Sinkhorn(threshold=self.threshold, max_iterations=self.max_iterations, anderson=accel)

    def plan(self, cost: jax.Array, scale_cost: jax.Array | None = None) -> jax.Array:
        cost = jax.lax.stop_gradient(cost)
        scale = jnp.mean(cost) if scale_cost is None else scale_cost
        eps = self.epsilon * scale if self.relative else self.epsilon
        out = solve_sinkhorn(cost, eps, solver=self.solver())
        report_convergence(out.converged, "SinkhornCoupling", self.on_nonconvergence)
        return out.matrix

    def pair_from_cost(self, key, x0, x1, cost, labels=None, scale_cost=None) -> Pairing:
        plan = self.plan(cost, scale_cost)
        n = x0.shape[0]
        if self.mode == "permutation":
            i, j = jnp.arange(n), greedy_permutation(plan)
        else:
            i, j = sample_from_plan(key, plan, n)
        return _take((x0, x1, labels), i, j)


def schrodinger_bridge_coupling(sigma: float, **kwargs: Any) -> SinkhornCoupling:
    """SB-CFM coupling: entropic OT with absolute ε = 2σ², pairs resampled from the plan (Tong et al. 2024).

    Args:
        sigma: the bridge's noise σ > 0.
        **kwargs: other `SinkhornCoupling` fields (threshold, max_iterations, ...).

    Returns:
        The `SinkhornCoupling`.
    """
    check_positive(sigma, "sigma")
    return SinkhornCoupling(epsilon=2.0 * sigma**2, relative=False, mode="resample", **kwargs)


class ConditionalOTCoupling(Coupling):
    """Label-blocked minibatch OT: x0[i] may only pair with x1[j] when labels[i] == labels[j].

    Called as `coupling(key, x0 [B, ...], x1 [B, ...], labels [B]) -> Pairing`.

    Attributes:
        base: any `CostCoupling` (`ExactOTCoupling()` by default, `SinkhornCoupling(...)`, or your own); a relative
            ε refers to the unblocked cost.

    Raises:
        TypeError: a base that is not a `CostCoupling`.
        ValueError: at call time, missing or non-finite labels.
    """

    base: CostCoupling = ExactOTCoupling()

    @property
    def pairs_on_host(self) -> bool:
        return self.base.pairs_on_host

    def __check_init__(self):
        if not isinstance(self.base, CostCoupling):
            raise TypeError(f"base must be a CostCoupling (one that pairs from a cost), got {type(self.base).__name__}")

    def __call__(self, key, x0, x1, labels=None) -> Pairing:
        if labels is None:
            raise ValueError("ConditionalOTCoupling needs labels")
        x0, x1, labels = validate_coupling_inputs(x0, x1, labels)
        if labels.ndim != 1:
            raise ValueError(f"ConditionalOTCoupling blocks by class: labels must have shape [B], got {labels.shape}")
        cost = sqeuclidean_cost(x0, x1)
        blocked = label_blocked_cost(cost, labels)
        return self.base.pair_from_cost(key, x0, x1, blocked, labels, scale_cost=jnp.mean(cost))


class ManifoldOTCoupling(Coupling):
    """Minibatch OT on a manifold: the squared geodesic distance as the cost, solved by any `CostCoupling`
    (`ExactOTCoupling()` by default, or `SinkhornCoupling(...)`): Riemannian OT-CFM, the pairing of OT-CFM (Tong et
    al. 2024) with the cost of Riemannian flow matching's geodesic paths (Chen & Lipman 2024).

    Attributes:
        manifold: a `jaxflow.manifolds.Manifold` (`Sphere()`, `FlatTorus()`, ...).
        coupling: the `CostCoupling` that solves the assignment from the geodesic cost.

    Raises:
        TypeError: a manifold or coupling of the wrong kind.
    """

    manifold: Manifold
    coupling: CostCoupling = eqx.field(default_factory=lambda: ExactOTCoupling())

    def __check_init__(self):
        if not isinstance(self.manifold, Manifold):
            raise TypeError(f"manifold must be a jaxflow.manifolds.Manifold, got {type(self.manifold).__name__}")
        if not isinstance(self.coupling, CostCoupling):
            raise TypeError(
                f"coupling must be a CostCoupling (it solves from a cost), got {type(self.coupling).__name__}"
            )

    @property
    def pairs_on_host(self) -> bool:
        return self.coupling.pairs_on_host

    def __call__(self, key, x0, x1, labels=None) -> Pairing:
        x0, x1, labels = validate_coupling_inputs(x0, x1, labels)
        if x0.ndim != 2:
            raise ValueError(f"points on a manifold are [B, d], got {x0.shape}")
        cost = geodesic_cost(self.manifold, jax.lax.stop_gradient(x0), jax.lax.stop_gradient(x1))
        return self.coupling.pair_from_cost(key, x0, x1, cost, labels)
