"""The run-time type checker of the test suite (as diffrax's: jaxtyping's pytest hook instruments every function and
class of `jaxflow` at import, see `addopts` in pyproject.toml), with a switch: bad-input tests turn it off to check
jaxflow's own errors, the ones a user without the checker gets (the `unchecked` fixture)."""

from __future__ import annotations

import functools
import inspect

import jax
import numpy as np
from beartype import BeartypeConf, BeartypeHintOverrides, beartype

ENABLED = [True]
INSTRUMENTED: list = []  # every function the hook decorated, for tests/test_typing.py
# `jax.Array` in a signature means "an array": jaxflow converts its inputs with jnp.asarray, so NumPy arrays are
# accepted where a jax.Array is (as in jax's own API). `float` means a real number: an int (PEP 484's numeric tower),
# a NumPy scalar, or a scalar array, which is what arrives under jit, vmap and grad. Shape-annotated hints
# (Float[Array, "n d"]) stay strict.
_REAL = float | int | np.integer | np.floating | jax.Array | np.ndarray
_OVERRIDES = {jax.Array: jax.Array | np.ndarray, float: _REAL, complex: complex | _REAL}
_BEARTYPE = beartype(conf=BeartypeConf(hint_overrides=BeartypeHintOverrides(_OVERRIDES)))


def switchable(fn, *args, **kwargs):
    """beartype(fn), skipped while ENABLED[0] is False (classes are checked through their methods)."""
    checked = _BEARTYPE(fn)
    if inspect.isclass(fn) or checked is fn:
        return checked
    INSTRUMENTED.append(fn)

    @functools.wraps(fn)
    def call(*a, **k):
        return checked(*a, **k) if ENABLED[0] else fn(*a, **k)

    return call
