"""Discrete flow matching: mixture paths over a finite vocabulary (Gat et al. 2024, "Discrete flow matching",
arXiv:2407.15595; Campbell et al. 2024, "Generative flows on discrete state-spaces", arXiv:2402.04997).

A sequence x ∈ [V]^L moves, token by token and independently, from a source draw x0 to a data draw x1: at time t each
token shows x1 with probability κ_t and x0 otherwise, with κ_0 = 0 and κ_1 = 1 (`PolynomialConvexScheduler` gives
κ_t = tⁿ; any `Scheduler` whose α runs from 0 to 1 serves, α being κ). The model learns the posterior
p_{1|t}(x1^i | x_t) per token; the probability velocity that generates the marginal path is, per token,

    u_t(y | x_t) = κ̇_t / (1 − κ_t) · (p_{1|t}(y | x_t) − δ_{x_t}(y)),

a rate matrix of a continuous-time Markov chain (`posterior_to_velocity`). The derivation is in docs/discrete_flows.md.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxflow._checks import check_count, check_time, is_concrete, traced_check
from jaxflow.paths.base import ProbabilityPath
from jaxflow.paths.schedulers import PolynomialConvexScheduler, Scheduler


def check_tokens(x: ArrayLike, name: str, vocab_size: int | None = None) -> jax.Array:
    """An integer array of token ids; with `vocab_size`, every id in [0, vocab_size) (eagerly, or compiled in).

    Args:
        x: token ids of any shape.
        name: the argument's name, for the error message.
        vocab_size: V; when given, every id must lie in [0, V).

    Returns:
        x as a jax array.

    Raises:
        TypeError: a non-integer dtype.
        ValueError: an id outside [0, V) (at trace time for concrete x; under jit through a compiled check).
    """
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.integer):
        raise TypeError(f"{name} must hold integer token ids, got dtype {x.dtype}")
    if vocab_size is None:
        return x
    bad_msg = f"{name} holds token ids outside [0, {vocab_size})"
    if is_concrete(x):
        values = np.asarray(x)  # numpy: inside a jit trace jnp ops on a constant are staged too
        if values.size and (values.min() < 0 or values.max() >= vocab_size):
            raise ValueError(bad_msg)
        return x
    return traced_check(x, jnp.any((x < 0) | (x >= vocab_size)), bad_msg)


class DiscreteSource(eqx.Module):
    """A source law over the vocabulary, the same for every token: `sample(key, shape)` and its `probs` [V].

    Subclass it with `probs()` (and, where a faster sampler exists, `sample`) for another source law.

    Attributes:
        vocab_size: V, the vocabulary size (static).
    """

    vocab_size: int = eqx.field(static=True)

    @abc.abstractmethod
    def probs(self) -> jax.Array: ...

    def sample(self, key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
        logits = jnp.log(self.probs())
        return jax.random.categorical(key, logits, shape=tuple(shape)).astype(jnp.int32)


class UniformSource(DiscreteSource):
    """Every token uniform over the vocabulary [0, vocab_size).

    Attributes:
        vocab_size: V, a positive int.
    """

    def __check_init__(self):
        check_count(self.vocab_size, "vocab_size")

    def probs(self):
        return jnp.full((self.vocab_size,), 1.0 / self.vocab_size)

    def sample(self, key, shape):
        return jax.random.randint(key, tuple(shape), 0, self.vocab_size, dtype=jnp.int32)


class MaskSource(DiscreteSource):
    """Every token the mask id (default: the last id, vocab_size − 1, which the data never uses): the "absorbing"
    source of masked discrete diffusion.

    Attributes:
        vocab_size: V, including the mask id.
        mask_token: the mask id (negative ids count from the end; default the last id).
    """

    mask_token: int = eqx.field(static=True, default=-1)

    def __check_init__(self):
        check_count(self.vocab_size, "vocab_size")
        if not -self.vocab_size <= self.mask_token < self.vocab_size:
            raise ValueError(f"mask_token must lie in [0, {self.vocab_size}), got {self.mask_token}")

    @property
    def token(self) -> int:
        return self.mask_token % self.vocab_size

    def probs(self):
        return jax.nn.one_hot(self.token, self.vocab_size)

    def sample(self, key, shape):
        del key
        return jnp.full(tuple(shape), self.token, jnp.int32)


class DiscretePathSample(NamedTuple):
    """A draw from a mixture path: t [B]; x0, x1, xt: [B, ...] integer tokens.

    Attributes:
        t: times [B].
        x0: source tokens [B, ...].
        x1: data tokens [B, ...].
        xt: the tokens at t [B, ...].
    """

    t: jax.Array
    x0: jax.Array
    x1: jax.Array
    xt: jax.Array


class MixtureDiscretePath(ProbabilityPath):
    """x_t = x1 with probability κ_t, else x0, independently per token (κ = the scheduler's α).

    `sample(key, x0, x1, t)` takes integer arrays [B, ...] and t [B] (or a scalar) and returns `DiscretePathSample`.
    `posterior_to_velocity(probs, xt, t)` turns a posterior p_{1|t} [..., V] into the probability velocity (the
    CTMC's rates) [..., V]; `jump_coefficient(t)` is κ̇_t / (1 − κ_t). (Gat et al. 2024, arXiv:2407.15595.)

    Attributes:
        scheduler: κ_t as the scheduler's α (default Cond-OT; `PolynomialConvexScheduler(n)` gives κ = tⁿ).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from jaxflow.paths import MixtureDiscretePath
        >>> path = MixtureDiscretePath()  # κ = t
        >>> x0, x1 = jnp.zeros((2, 5), jnp.int32), jnp.ones((2, 5), jnp.int32)
        >>> print(path.sample(jax.random.key(0), x0, x1, jnp.array([0.0, 1.0])).xt)
        [[0 0 0 0 0]
         [1 1 1 1 1]]
    """

    scheduler: Scheduler = eqx.field(default_factory=PolynomialConvexScheduler)

    def kappa(self, t):
        return self.scheduler.alpha(t)

    def d_kappa(self, t):
        return self.scheduler.d_alpha(t)

    def jump_coefficient(self, t):
        """κ̇_t / (1 − κ_t): the rate at which a token still at its source value jumps (∞ at t = 1)."""
        return self.d_kappa(t) / (1.0 - self.kappa(t))

    def sample(self, key, x0, x1, t) -> DiscretePathSample:
        x0 = check_tokens(x0, "x0")
        x1 = check_tokens(x1, "x1")
        if x0.shape != x1.shape:
            raise ValueError(f"x0 and x1 must have the same shape, got {x0.shape} and {x1.shape}")
        if x0.ndim < 2:
            raise ValueError(f"x0 and x1 must be batched token arrays [B, L, ...], got shape {x0.shape}")
        t = check_time(t)
        if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != x0.shape[0]):
            raise ValueError(f"t must be a scalar or of shape [B]={x0.shape[:1]}, got {t.shape}")
        t = jnp.broadcast_to(t, x0.shape[:1])
        kappa = self.kappa(t).reshape((-1,) + (1,) * (x0.ndim - 1))
        take_data = jax.random.uniform(key, x0.shape, dtype=kappa.dtype) < kappa
        return DiscretePathSample(t, x0, x1, jnp.where(take_data, x1, x0))

    def posterior_to_velocity(self, probs, xt, t) -> jax.Array:
        """u_t(·| x_t) = κ̇/(1 − κ) (p_{1|t} − δ_{x_t}) per token: rows sum to zero, off-diagonal entries ≥ 0."""
        xt = check_tokens(xt, "xt")
        probs = jnp.asarray(probs)
        if probs.shape[:-1] != xt.shape:
            raise ValueError(f"probs must have shape [*xt.shape, V]={(*xt.shape, 'V')}, got {probs.shape}")
        t = jnp.broadcast_to(jnp.asarray(t, probs.dtype), xt.shape[:1])
        coef = self.jump_coefficient(t).reshape((-1,) + (1,) * xt.ndim)
        return coef * (probs - jax.nn.one_hot(xt, probs.shape[-1], dtype=probs.dtype))


def exact_posterior(
    probs_data: ArrayLike, source: DiscreteSource, path: MixtureDiscretePath
) -> Callable[[ArrayLike, jax.Array], jax.Array]:
    """The exact per-token posterior p_{1|t}(x1^i | x_t) for a data law given as a full table `probs_data` over
    [V]^L (L small): the reference "model" that tests and studies compare a learned one against.

    Returns `posterior(t, xt) -> [B, L, V]` for xt [B, L]. Bayes per sequence: p(x1 | x_t) ∝ q(x1) Π_i
    (κ δ(x_t^i = x1^i) + (1 − κ) p0(x_t^i)), marginalised to each token.

    Args:
        probs_data: the data law, a table of shape [V] * L summing to one.
        source: the source law p0.
        path: the mixture path (its κ(t)).

    Returns:
        `posterior(t, xt)`: t scalar or [B], xt integer [B, L] → probabilities [B, L, V].

    Raises:
        ValueError: probs_data is not a [V] * L table.
    """
    q = jnp.asarray(probs_data)
    length, vocab = q.ndim, q.shape[0]
    if any(s != vocab for s in q.shape):
        raise ValueError(f"probs_data must be a [V]*L table, got shape {q.shape}")
    p0 = source.probs()
    log_q = jnp.log(q)

    def one(t, x):  # x [L]
        kappa = path.kappa(t)
        logw = log_q
        for i in range(length):
            lik = kappa * (jnp.arange(vocab) == x[i]) + (1.0 - kappa) * p0[x[i]]  # over x1^i
            shape = [1] * length
            shape[i] = vocab
            logw = logw + jnp.log(lik).reshape(shape)
        w = jax.nn.softmax(logw.reshape(-1)).reshape(q.shape)
        return jnp.stack([jnp.sum(w, axis=tuple(j for j in range(length) if j != i)) for i in range(length)])

    def posterior(t, xt):
        t = jnp.broadcast_to(jnp.asarray(t, float), xt.shape[:1])
        return jax.vmap(one)(t, xt)

    return posterior
