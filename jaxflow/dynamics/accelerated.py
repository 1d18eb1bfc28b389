"""Accelerated (SympFormer-type) attention particle flows.

Tokens carry positions X [N, d] and momenta P [N, d]. A system is a Hamiltonian H(X, P) = K(X, P) + U(X) with a
position-dependent kinetic metric; the accelerated flow is the conformal Hamiltonian system

    Ẋ = ∂H/∂P =: F(X, P),    Ṗ = −∂H/∂X − α(t) P =: G(X, P) − α(t) P,    α(t) = c_log / t + c_lin,

(c_log = 3 is Nesterov's damping), and the classical flow is its over-damped limit, the preconditioned gradient flow
Ẋ = F(X, −∇U(X)). Along the accelerated flow dH/dt = −α ⟨P, F(X, P)⟩ ≤ 0.

Two systems, with forces written out by hand (and checked against autodiff in the tests):

`LinearAttentionSystem(A, V)`: kernel (1/N) X A Xᵀ, K = (1/2N) tr(Pᵀ X A Xᵀ P), U = −½ tr(X V Xᵀ); A, V symmetric.
  F = (1/N) X A Xᵀ P, G = −(1/N) P Pᵀ X A + X V, classical Ẋ = (1/N) X A Xᵀ X V — linear attention with query-key
  matrix A and values V, i.e. a Stein variational flow with the bilinear kernel xᵀ A y towards N(0, −V⁻¹).
  With V ≺ 0 the energy U ≥ 0 has its minimiser at X = 0.
`SoftmaxAttentionSystem(wq, wk, B)`: E_ij = exp(mean_h ⟨q_i^h, k_j^h⟩ / √d_h) = exp(x̂_iᵀ M x̂_j) (x̂ = x/|x|),
  z_i = (1/N) Σ_j E_ij, K = ½ Σ_i ⟨B P_i, P_i⟩ / z_i, U = −½ Σ_ij E_ij; F_i = B P_i / z_i. For symmetric M the
  classical flow is softmax attention, Ẋ_i = N Σ_j softmax_j(x_iᵀ M x_j) B M x_j.

Discretisations (`Scheme` objects, shared with `jaxflow.nn.AcceleratedBlock`; `integrate`), each one kernel
evaluation (one "oracle call") per step, since the force and the velocity of one step are taken at the same positions:
  euler:        X ← X + h F(X, P),  P ← P + h (G(X, P) − α P)
  symplectic:   P ← σ (P + h G(X, P)),  X ← X + h F(X, P)   (conformal symplectic Euler, σ = exp(−∫ α dt))
  exponential:  P ← σ P + (1 − σ)/Δ · h G(X, P),  X ← X + h F(X, P)   (Δ = ∫ α dt over the step; exact for constant G)
  classical:    X ← X + h F(X, −∇U(X))   (the classical flow by Euler)
For non-separable H the symplectic step takes G at the old momentum (semi-explicit); it is exactly the conformal
symplectic Euler method when K does not depend on X.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from jaxflow._checks import check_array, check_positive


def _sym(a):
    return 0.5 * (a + a.T)


class LinearAttentionSystem(NamedTuple):
    """Linear attention as a Hamiltonian particle system; a [d, d] and v [d, d] symmetric.

    Attributes:
        a: the query-key matrix A [d, d], symmetric.
        v: the value matrix V [d, d], symmetric (V ≺ 0 makes U ≥ 0 with its minimiser at X = 0).

    Every method takes positions x [N, d] (and momenta p [N, d]) and returns a scalar (`kinetic`, `potential`) or an
    [N, d] array (`velocity` F, `force` G = −∂H/∂X, `potential_grad` ∇U).

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxflow.dynamics import LinearAttentionSystem, hamiltonian
        >>> system = LinearAttentionSystem(jnp.eye(2), -jnp.eye(2))
        >>> float(hamiltonian(system, jnp.ones((3, 2)), jnp.zeros((3, 2))))
        3.0
    """

    a: jax.Array
    v: jax.Array

    def kinetic(self, x, p):
        n = x.shape[0]
        xp = x.T @ p  # [d, d]
        return 0.5 * jnp.sum((self.a @ xp) * xp) / n

    def potential(self, x):
        return -0.5 * jnp.sum((x @ self.v) * x)

    def velocity(self, x, p):
        n = x.shape[0]
        return x @ (self.a @ (x.T @ p)) / n

    def force(self, x, p):
        n = x.shape[0]
        return -p @ (p.T @ x) @ self.a / n + x @ self.v

    def potential_grad(self, x):
        return -x @ self.v


class SoftmaxAttentionSystem(NamedTuple):
    """Softmax attention as a Hamiltonian particle system: wq, wk [heads, d_h, d]; b [d, d] symmetric PSD.

    sphere (default True): the kernel sees the normalised tokens x̂ = x/|x| (as attention after a normalisation
    layer does), so U is bounded below; for M ⪰ 0 its minimum is −½ N² exp(λ_max(M_sym)), every token along the
    top eigenvector (`min_potential`). With sphere=False the kernel sees x itself and U is unbounded below.

    Attributes:
        wq: the query weights [heads, d_h, d].
        wk: the key weights [heads, d_h, d].
        b: the value/metric matrix B [d, d], symmetric positive semi-definite.
        sphere: whether the kernel sees x/|x| (True) or x itself.

    The methods have the signatures of `LinearAttentionSystem`'s; `kernel(x)` is E [N, N], `m` is M [d, d] and
    `min_potential(n)` the infimum of U for n tokens on the sphere.
    """

    wq: jax.Array
    wk: jax.Array
    b: jax.Array
    sphere: bool = True

    @property
    def m(self):
        dh = self.wq.shape[1]
        return jnp.einsum("hkd,hke->de", self.wq, self.wk) / (self.wq.shape[0] * jnp.sqrt(dh))

    def _hat(self, x):
        return x / jnp.linalg.norm(x, axis=1, keepdims=True) if self.sphere else x

    def _chain(self, x, g):
        """Gradient with respect to x from the gradient g with respect to x̂."""
        if not self.sphere:
            return g
        r = jnp.linalg.norm(x, axis=1, keepdims=True)
        xh = x / r
        return (g - jnp.sum(g * xh, axis=1, keepdims=True) * xh) / r

    def kernel(self, x):
        xh = self._hat(x)
        return jnp.exp(xh @ self.m @ xh.T)

    def min_potential(self, n: int):
        """inf U for N tokens on the sphere when M_sym ⪰ 0: −½ N² exp(λ_max(M_sym))."""
        return -0.5 * n**2 * jnp.exp(jnp.linalg.eigvalsh(_sym(self.m))[-1])

    def kinetic(self, x, p):
        z = jnp.mean(self.kernel(x), axis=1)
        return 0.5 * jnp.sum(jnp.sum((p @ self.b) * p, axis=1) / z)

    def potential(self, x):
        return -0.5 * jnp.sum(self.kernel(x))

    def velocity(self, x, p):
        z = jnp.mean(self.kernel(x), axis=1)
        return (p @ self.b) / z[:, None]

    def force(self, x, p):
        m, e, xh = self.m, self.kernel(x), self._hat(x)
        n = x.shape[0]
        z = jnp.mean(e, axis=1)
        c = jnp.sum((p @ self.b) * p, axis=1) / z**2
        exm = e @ xh @ m.T  # row k: Σ_j E_kj M x̂_j
        etxm = e.T @ xh @ m  # row k: Σ_i E_ik Mᵀ x̂_i
        from_kinetic = 0.5 / n * (c[:, None] * exm + e.T @ (c[:, None] * xh) @ m)
        return self._chain(x, from_kinetic + 0.5 * (exm + etxm))

    def potential_grad(self, x):
        m, e, xh = self.m, self.kernel(x), self._hat(x)
        return self._chain(x, -0.5 * (e @ xh @ m.T + e.T @ xh @ m))


def hamiltonian(system: Any, x: jax.Array, p: jax.Array) -> jax.Array:
    """The Hamiltonian H = K + U of a particle system.

    Args:
        system: a particle system (`LinearAttentionSystem`, `SoftmaxAttentionSystem` or anything with `kinetic` and
            `potential`).
        x: positions [N, d].
        p: momenta [N, d].

    Returns:
        H(X, P) = K(X, P) + U(X), a scalar array.
    """
    return system.kinetic(x, p) + system.potential(x)


def classical_velocity(system: Any, x: jax.Array) -> jax.Array:
    """Ẋ of the classical (over-damped) flow: F(X, −∇U(X)).

    Args:
        system: a particle system with `velocity` and `potential_grad`.
        x: positions [N, d].

    Returns:
        The velocity [N, d].
    """
    return system.velocity(x, -system.potential_grad(x))


class Damping(NamedTuple):
    """α(t) = c_log / t + c_lin; c_log = 3 is Nesterov's choice.

    Attributes:
        c_log: the coefficient of 1/t.
        c_lin: the constant part.
    """

    c_log: float = 3.0
    c_lin: float = 0.0

    def integral(self, t0, t1):
        """The integral of α(t) over [t0, t1]."""
        return self.c_log * jnp.log(t1 / t0) + self.c_lin * (t1 - t0)

    def __call__(self, t):
        return self.c_log / t + self.c_lin


NESTEROV = Damping(3.0, 0.0)


class FlowRecord(NamedTuple):
    """x, p: final state; energy [steps + 1] (potential U), hamiltonian [steps + 1]; oracle_calls [steps + 1].

    Attributes:
        x: the final particles [n, d].
        p: the final momentum [n, d].
        energy: the potential U after every call [steps + 1].
        hamiltonian: the Hamiltonian after every call [steps + 1].
        oracle_calls: the call counts [steps + 1].
    """

    x: jax.Array
    p: jax.Array
    energy: jax.Array
    hamiltonian: jax.Array
    oracle_calls: jax.Array


class Scheme(eqx.Module):
    """A discretisation of the damped Hamiltonian flow, shared by the particle flows (`integrate`) and the
    accelerated attention blocks (`jaxflow.nn.AcceleratedBlock`), so both run the same update.

    `update(x, p, g, velocity, h, alpha, delta) -> (x, p)`: one step of size h, given the force g = G(X, P) at the
    current state, `velocity(p)` = F(X, p) at the current positions (p ↦ p in a transformer block), the damping
    α(t) at the step's start and its integral Δ over the step. Subclass it for another scheme.
    `step(system, x, p, t, h, damping)` evaluates g, α(t) and Δ = ∫_t^{t+h} α for a particle system first.

    Attributes:
        (none: a scheme is a stateless module; subclasses may carry parameters as equinox fields.)

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxflow.dynamics import ExplicitEuler
        >>> x, p = ExplicitEuler().update(jnp.zeros(2), jnp.ones(2), jnp.zeros(2), lambda q: q, 0.5, 0.0, 0.0)
        >>> x.tolist(), p.tolist()
        ([0.5, 0.5], [1.0, 1.0])
    """

    @abc.abstractmethod
    def update(self, x, p, g, velocity: Callable, h, alpha, delta): ...

    def step(self, system, x, p, t, h, damping: Damping):
        g = system.force(x, p)
        return self.update(x, p, g, lambda q: system.velocity(x, q), h, damping(t), damping.integral(t, t + h))


class ExplicitEuler(Scheme):
    """X ← X + h F(X, P), P ← P + h (G − α(t) P)."""

    def update(self, x, p, g, velocity, h, alpha, delta):
        return x + h * velocity(p), p + h * (g - alpha * p)


class SymplecticEuler(Scheme):
    """P ← σ (P + h G), X ← X + h F(X, P_new): conformal symplectic Euler, σ = exp(−Δ)."""

    def update(self, x, p, g, velocity, h, alpha, delta):
        p = jnp.exp(-delta) * (p + h * g)
        return x + h * velocity(p), p


class ExponentialEuler(Scheme):
    """P ← σ P + (1 − σ)/Δ · h G, X ← X + h F(X, P_new), σ = exp(−Δ) (exact for a constant force)."""

    def update(self, x, p, g, velocity, h, alpha, delta):
        delta = jnp.asarray(delta)
        phi = jnp.where(delta > 1e-12, -jnp.expm1(-delta) / jnp.where(delta > 1e-12, delta, 1.0), 1.0)
        p = jnp.exp(-delta) * p + phi * h * g
        return x + h * velocity(p), p


class Classical(Scheme):
    """The over-damped (classical) flow by Euler: X ← X + h F(X, −∇U(X)); the momentum is left as it is. It needs
    the potential, so it has no `update` from a force alone (no transformer block form)."""

    def update(self, x, p, g, velocity, h, alpha, delta):
        raise TypeError("the classical scheme steps a system (it needs ∇U), not a force; use step()")

    def step(self, system, x, p, t, h, damping):
        return x + h * classical_velocity(system, x), p


_SCHEMES = {
    "euler": ExplicitEuler,
    "symplectic": SymplecticEuler,
    "exponential": ExponentialEuler,
    "classical": Classical,
}


def resolve_scheme(scheme: Scheme | str) -> Scheme:
    """A scheme object, or the one a shorthand name stands for (`_SCHEMES`).

    Args:
        scheme: a `Scheme` or one of "euler", "symplectic", "exponential", "classical".

    Returns:
        The `Scheme` object.

    Raises:
        ValueError: an unknown name.
    """
    if isinstance(scheme, Scheme):
        return scheme
    if isinstance(scheme, str) and scheme in _SCHEMES:
        return _SCHEMES[scheme]()
    raise ValueError(f"unknown scheme {scheme!r}; pass a Scheme or one of {list(_SCHEMES)}")


def step(
    system: Any,
    scheme: Scheme | str,
    x: jax.Array,
    p: jax.Array,
    t: float | jax.Array,
    h: float | jax.Array,
    damping: Damping = NESTEROV,
) -> tuple[jax.Array, jax.Array]:
    """One step of `scheme` from time t with step h; returns (x, p).

    Args:
        system: a particle system.
        scheme: a `Scheme` or its name.
        x: positions [N, d].
        p: momenta [N, d].
        t: the step's start time (> 0 with logarithmic damping).
        h: the step size.
        damping: the damping α(t).

    Returns:
        (x, p) after the step, each [N, d].
    """
    return resolve_scheme(scheme).step(system, x, p, t, h, damping)


def integrate(
    system: Any,
    x0: jax.Array,
    *,
    scheme: Scheme | str = "symplectic",
    steps: int = 100,
    h: float = 0.1,
    damping: Damping = NESTEROV,
    p0: jax.Array | None = None,
    t0: float | None = None,
) -> FlowRecord:
    """Run `steps` steps of `scheme` from X = x0, P = p0 (zero by default), time t0 (default h, so that the
    logarithmic damping is finite). Records the potential and the Hamiltonian after every step.

    Args:
        system: a `LinearAttentionSystem` or `SoftmaxAttentionSystem` (anything with `potential` and `gradient`).
        x0: the particles [n, d].
        scheme: a `Scheme` object (`Classical()`, `ExplicitEuler()`, `SymplecticEuler()`, `ExponentialEuler()`) or
            its name.
        steps: the number of steps (one oracle call each).
        h: the step size > 0.
        damping: the `Damping` γ(t) = c_log/t + c_lin (Nesterov's 3/t by default).
        p0: the initial momentum [n, d] (zero by default).
        t0: the start time (default h).

    Returns:
        `FlowRecord`: the final particles and momentum, the potential and the Hamiltonian after every step, and the
        oracle-call counts.

    Raises:
        ValueError: bad shapes, h ≤ 0, steps < 1, t0 ≤ 0.
    """
    scheme = resolve_scheme(scheme)
    x0 = check_array(x0, "x0", ndim=2)
    check_positive(h, "h")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    p0 = jnp.zeros_like(x0) if p0 is None else check_array(p0, "p0", ndim=2)
    if p0.shape != x0.shape:
        raise ValueError(f"p0 must have the shape of x0 {x0.shape}, got {p0.shape}")
    t0 = h if t0 is None else t0
    check_positive(t0, "t0")

    def body(carry, k):
        x, p = carry
        x, p = scheme.step(system, x, p, t0 + k * h, h, damping)
        return (x, p), (system.potential(x), hamiltonian(system, x, p))

    (x, p), (u, ham) = jax.lax.scan(body, (x0, p0), jnp.arange(steps))
    u = jnp.concatenate([system.potential(x0)[None], u])
    ham = jnp.concatenate([hamiltonian(system, x0, p0)[None], ham])
    return FlowRecord(x, p, u, ham, jnp.arange(steps + 1))


def calls_to_reach(energy: jax.Array, level: float) -> int | None:
    """The first oracle-call count at which `energy` is at or below `level` (None if never).

    Args:
        energy: the potential after each call [T].
        level: the target level.

    Returns:
        The call count, or None.
    """
    hit = jnp.nonzero(jnp.asarray(energy) <= level, size=1, fill_value=-1)[0][0]
    hit = int(hit)
    return None if hit < 0 else hit


def continuous_field(system: Any, damping: Damping = NESTEROV) -> Callable:
    """The accelerated vector field (t, (X, P)) ↦ (Ẋ, Ṗ), e.g. for diffrax.

    Args:
        system: a particle system.
        damping: the damping α(t).

    Returns:
        `field(t, (x, p), args=None) -> (ẋ, ṗ)`, the signature of a `diffrax.ODETerm` vector field.
    """

    def field(t, state, args=None):
        x, p = state
        return system.velocity(x, p), system.force(x, p) - damping(t) * p

    return field


def energy_rate(
    system: Any, x: jax.Array, p: jax.Array, t: float | jax.Array, damping: Damping = NESTEROV
) -> jax.Array:
    """dH/dt along the accelerated flow in closed form: −α(t) ⟨P, F(X, P)⟩.

    Args:
        system: a particle system.
        x: positions [N, d].
        p: momenta [N, d].
        t: the time (> 0 with logarithmic damping).
        damping: the damping α(t).

    Returns:
        dH/dt, a scalar array (≤ 0 for a positive semi-definite kinetic metric).
    """
    return -damping(t) * jnp.sum(p * system.velocity(x, p))
