"""Log-likelihood through the augmented ODE: d log p_t(x_t)/dt = −∇·v(t, x_t).

Chen et al. (2018), "Neural ordinary differential equations", arXiv:1806.07366; Grathwohl et al. (2019), FFJORD,
arXiv:1810.01367.

From data x at t1 the state (x, Δ) is integrated backwards to t0 with dx/dt = v and dΔ/dt = ∇·v, so that
Δ(t0) = −∫_{t0}^{t1} ∇·v dt and log p_{t1}(x) = log p_{t0}(x(t0)) + Δ(t0).
The divergence is exact (trace of the Jacobian, d forward-mode products per sample: small d) or Hutchinson's
estimate E[εᵀ J ε] with Rademacher or Gaussian probes drawn once per sample and kept along the path (one product per
probe). Everything is differentiable (diffrax's checkpointed adjoint). Reported in nats and bits per dimension.
"""

from __future__ import annotations

import abc
import math
import warnings
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from jaxflow._checks import check_array, check_count
from jaxflow.sampling.ode import bind
from jaxflow.sampling.solvers import (
    check_field_output,
    check_interval,
    clean_solver_errors,
    evaluation_counts,
    finite_or_raise,
    resolve_controller,
    resolve_solver,
)

_PROBES = {"rademacher": jax.random.rademacher, "gaussian": jax.random.normal}


class LikelihoodOutput(NamedTuple):
    """log_prob [B] (nats), bits_per_dim [B], latent x(t0) [B, ...], nfe, num_steps.

    Attributes:
        log_prob: log-likelihood [B] (nats).
        bits_per_dim: the same in bits per dimension [B].
        latent: the prior point x(t0) [B, ...].
        nfe: evaluations of the augmented field.
        num_steps: solver steps.
    """

    log_prob: jax.Array
    bits_per_dim: jax.Array
    latent: jax.Array
    nfe: jax.Array
    num_steps: jax.Array


def standard_normal_log_prob(z: jax.Array) -> jax.Array:
    """log N(z; 0, I) per sample for z [B, ...].

    Args:
        z: points [B, ...].

    Returns:
        log N(z; 0, I) [B].
    """
    flat = z.reshape(z.shape[0], -1)
    return -0.5 * jnp.sum(flat**2, axis=1) - 0.5 * flat.shape[1] * math.log(2 * math.pi)


def bits_per_dim(log_prob: jax.Array, dim: int) -> jax.Array:
    """−log p / (d log 2).

    Args:
        log_prob: log-likelihoods [B] (nats).
        dim: d, the dimension of one sample.

    Returns:
        bits per dimension [B].
    """
    return -log_prob / (dim * math.log(2.0))


def exact_divergence(velocity: Callable, t: float | jax.Array, x: jax.Array) -> jax.Array:
    """∇·v(t, x) per sample by the trace of the Jacobian; x [B, ...].

    Args:
        velocity: `v(t, x)`.
        t: the time.
        x: points [B, ...].

    Returns:
        The divergence [B].
    """
    shape = x.shape[1:]

    def one(xi):
        f = lambda y: velocity(t, y.reshape((1, *shape))).reshape(-1)  # noqa: E731
        return jnp.trace(jax.jacfwd(f)(xi.reshape(-1)))

    return jax.vmap(one)(x)


def hutchinson_divergence(velocity: Callable, t: float | jax.Array, x: jax.Array, probes: jax.Array) -> jax.Array:
    """Hutchinson's estimate mean_k ε_kᵀ J ε_k per sample; probes [K, B, ...].

    Args:
        velocity: `v(t, x)`.
        t: the time.
        x: points [B, ...].
        probes: zero-mean, identity-covariance probes [K, B, ...].

    Returns:
        The estimate [B].
    """

    def one(eps):
        _, jv = jax.jvp(lambda y: velocity(t, y), (x,), (eps,))
        return jnp.sum((eps * jv).reshape(x.shape[0], -1), axis=1)

    return jnp.mean(jax.vmap(one)(probes), axis=0)


class DivergenceEstimator(eqx.Module):
    """How `log_likelihood` computes ∇·v(t, x) per sample along the path; subclass it for another estimator.

    `prepare(key, x)` draws what the estimate keeps fixed along the path (probes; None when nothing), once per call;
    `__call__(velocity, t, x, state)` returns the divergence [B] of `velocity(t, x)` at x [B, ...].
    `needs_key`: whether `prepare` uses its key (log_likelihood then refuses key=None).
    """

    needs_key: ClassVar[bool] = False

    def prepare(self, key: jax.Array | None, x: jax.Array):
        return None

    @abc.abstractmethod
    def __call__(self, velocity: Callable, t, x: jax.Array, state) -> jax.Array: ...


class ExactDivergence(DivergenceEstimator):
    """The trace of the Jacobian: d forward-mode products per sample (exact; for small d)."""

    def __call__(self, velocity, t, x, state):
        return exact_divergence(velocity, t, x)


class HutchinsonDivergence(DivergenceEstimator):
    """Hutchinson's unbiased estimate mean_k ε_kᵀ J ε_k with `n_probes` probes per sample, drawn once per call and
    kept along the path (Grathwohl et al. 2019). `probe`: "rademacher", "gaussian", or a sampler
    `probe(key, shape, dtype)` of zero-mean, identity-covariance probes.

    Args:
        n_probes: probes per sample, ≥ 1.
        probe: "rademacher", "gaussian" or a sampler `probe(key, shape, dtype)`.
    """

    needs_key: ClassVar[bool] = True
    n_probes: int = eqx.field(static=True, default=1)
    probe: Callable = eqx.field(static=True, default=jax.random.rademacher)

    def __init__(self, n_probes: int = 1, probe: str | Callable = "rademacher"):
        check_count(n_probes, "n_probes")
        if isinstance(probe, str):
            if probe not in _PROBES:
                raise ValueError(f"unknown probe {probe!r}; choose from {sorted(_PROBES)} or pass a sampler")
            probe = _PROBES[probe]
        elif not callable(probe):
            raise TypeError(f"probe must be a name or a sampler probe(key, shape, dtype), got {type(probe).__name__}")
        self.n_probes, self.probe = int(n_probes), probe

    def prepare(self, key, x):
        return self.probe(key, (self.n_probes, *x.shape), x.dtype)

    def __call__(self, velocity, t, x, state):
        return hutchinson_divergence(velocity, t, x, state)


_DIVERGENCES = {"exact": ExactDivergence, "hutchinson": HutchinsonDivergence}


def resolve_divergence(divergence: DivergenceEstimator | str) -> DivergenceEstimator:
    """A divergence estimator object, or its shorthand name ("exact", "hutchinson" with one Rademacher probe).

    Args:
        divergence: a `DivergenceEstimator` or "exact" / "hutchinson".

    Returns:
        The estimator object.

    Raises:
        ValueError: an unknown name.
    """
    if isinstance(divergence, DivergenceEstimator):
        return divergence
    if isinstance(divergence, str) and divergence in _DIVERGENCES:
        return _DIVERGENCES[divergence]()
    raise ValueError(
        f"unknown divergence estimator {divergence!r}; pass a DivergenceEstimator or one of {sorted(_DIVERGENCES)}"
    )


def log_likelihood(
    velocity: Callable,
    x: Float[Array, "B ..."],
    *,
    params: Any = None,
    cond: Any = None,
    divergence: DivergenceEstimator | str = "exact",
    key: jax.Array | None = None,
    solver: diffrax.AbstractSolver | str = "tsit5",
    steps: int | None = None,
    t0: float | jax.Array = 0.0,
    t1: float | jax.Array = 1.0,
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    adjoint: diffrax.AbstractAdjoint | None = None,
    throw: bool = True,
    prior_log_prob: Callable = standard_normal_log_prob,
    max_steps: int = 16_384,
    method: str | None = None,
    n_probes: int | None = None,
    probe: str | None = None,
) -> LikelihoodOutput:
    """log p_{t1}(x) of the flow of `velocity` started from the prior at t0, by the instantaneous change of
    variables (Chen et al. 2018): integrate x and ∫ div v backwards from t1 to t0, then add the prior's log density.

    Args:
        velocity: `v(t, x)` or, with `params`, the model boundary `v(params, t, x, cond)`.
        x: the points whose log-likelihood is wanted, float [B, ...].
        params: the model's parameters.
        cond: the condition passed to the model boundary.
        divergence: a `DivergenceEstimator` (`ExactDivergence()`, `HutchinsonDivergence(n_probes, probe)`, your own
            subclass) or its name ("exact", "hutchinson"); an estimator that draws probes needs `key`.
        key: the JAX key of the divergence probes.
        solver: any diffrax solver object or a shorthand, as in `jaxflow.sample`.
        steps: uniform steps (otherwise adaptive, for a solver with an error estimate).
        t0: the prior's time.
        t1: the data's time.
        stepsize_controller: as in `jaxflow.sample`.
        rtol: relative tolerance of the adaptive controller.
        atol: absolute tolerance.
        adjoint: as in `jaxflow.sample`.
        throw: as in `jaxflow.sample`.
        prior_log_prob: log density of the prior at t0, `f(z [B, ...]) -> [B]`; default the standard normal.
        max_steps: the most solver steps.
        method: the former spelling of `divergence` (deprecated for one release, with a FutureWarning).
        n_probes: former spelling (deprecated).
        probe: former spelling (deprecated).

    Returns:
        `LikelihoodOutput`: `log_prob` [B] (nats), `bits_per_dim` [B], the prior point `latent` [B, ...], `nfe`
        (evaluations of the augmented field) and `num_steps`.

    Raises:
        ValueError: a probing estimator without `key`, an unknown estimator name, bad times or steps.
    """
    if method is not None or n_probes is not None or probe is not None:
        warnings.warn(
            "log_likelihood(method=, n_probes=, probe=) is deprecated; pass divergence=ExactDivergence() or "
            "divergence=HutchinsonDivergence(n_probes, probe)",
            FutureWarning,
            stacklevel=2,
        )
        if (method or "exact") == "hutchinson":
            divergence = HutchinsonDivergence(1 if n_probes is None else n_probes, probe or "rademacher")
        else:
            divergence = method or divergence
    divergence = resolve_divergence(divergence)
    if divergence.needs_key and key is None:
        raise ValueError(f"{type(divergence).__name__} draws probes: pass key=")
    solver, adaptive = resolve_solver(solver)
    x = check_array(x, "x")
    if x.ndim < 2:
        raise ValueError(f"x must be a batch [B, ...], got shape {x.shape}")
    if steps is not None:
        check_count(steps, "steps")
    check_interval(t0, t1)
    velocity = bind(velocity, params, cond)
    check_field_output(velocity, t1, x, "velocity")

    div_state = divergence.prepare(key, x)

    def div(t, y):
        return divergence(velocity, t, y, div_state)

    def field(t, state, args):
        y, _ = state
        v, d = velocity(t, y), div(t, y)
        if throw:
            v = finite_or_raise(v, "the velocity")
        return v, d

    controller, dt0 = resolve_controller(
        adaptive, stepsize_controller, steps=steps, grid=None, t0=t1, t1=t0, rtol=rtol, atol=atol
    )
    state0 = (x, jnp.zeros(x.shape[0], x.dtype))
    kwargs = {} if adjoint is None else {"adjoint": adjoint}
    with clean_solver_errors("jaxflow.sampling.log_likelihood"):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field),
            solver,
            t1,
            t0,
            dt0,
            state0,
            stepsize_controller=controller,
            max_steps=max_steps,
            throw=throw,
            **kwargs,
        )
        z, delta = sol.ys[0][-1], sol.ys[1][-1]
        log_prob = prior_log_prob(z) + delta
        if throw:
            log_prob = _final(log_prob, "the log-likelihood")
        dim = math.prod(x.shape[1:])
    num_steps = sol.stats["num_steps"]
    a, b = evaluation_counts(solver, adaptive=isinstance(controller, diffrax.AbstractAdaptiveStepSizeController))
    return LikelihoodOutput(log_prob, bits_per_dim(log_prob, dim), z, a + b * num_steps, num_steps)


def _final(value, what: str = "the final state"):
    with clean_solver_errors("jaxflow.sampling.log_likelihood"):
        return finite_or_raise(value, what)
