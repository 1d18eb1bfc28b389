"""Deprecated aliases kept for one release after a rename."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable


def deprecated_alias(new: Callable, old_name: str, adapt: Callable | None = None) -> Callable:
    """A function named `old_name` that warns (FutureWarning, shown by default) and forwards to `new`.

    `adapt(*args, **kwargs) -> (args, kwargs)` maps the old argument order onto the new one.
    """

    @functools.wraps(new)
    def alias(*args, **kwargs):
        warnings.warn(
            f"{old_name} is deprecated and will be removed in the next release; use {new.__module__}.{new.__name__}",
            FutureWarning,
            stacklevel=2,
        )
        if adapt is not None:
            args, kwargs = adapt(*args, **kwargs)
        return new(*args, **kwargs)

    alias.__name__ = old_name.rsplit(".", 1)[-1]
    alias.__doc__ = (
        f"Deprecated alias of `{new.__name__}` (old argument order); it warns once per call site.\n\n"
        f"Returns:\n    What `{new.__name__}` returns.\n"
    )
    return alias


def is_key(x) -> bool:
    """A JAX PRNG key: a typed key array, or a raw uint32 key (`jax.random.PRNGKey`)."""
    import jax
    import jax.numpy as jnp

    if not isinstance(x, jax.Array):
        return False
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        return True
    return x.dtype == jnp.uint32 and x.ndim >= 1 and x.shape[-1] == 2


def key_first(old_index: int, *, method: bool = False) -> Callable:
    """Decorate a function whose key moved to the front (the key rule of docs/conventions.md).

    A call in the old order (the key at positional `old_index`, or passed as `key=` after positional arguments that
    are not a key) is mapped onto the new one with a FutureWarning, for one release. `method`: the first argument is
    `self` (or `cls`) and is left in place.
    """

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            head, args = (args[:1], args[1:]) if method else ((), args)
            if args and not is_key(args[0]):
                if "key" in kwargs:
                    args = (kwargs.pop("key"), *args)
                elif len(args) > old_index and is_key(args[old_index]):
                    args = (args[old_index], *args[:old_index], *args[old_index + 1 :])
                else:
                    return fn(*head, *args, **kwargs)
                warnings.warn(
                    f"{fn.__qualname__}: the key is now the first argument ({fn.__qualname__}(key, ...)); "
                    "the old order is accepted for one release",
                    FutureWarning,
                    stacklevel=2,
                )
            return fn(*head, *args, **kwargs)

        return wrapper

    return wrap


def deprecated_names(module_name: str, names: dict[str, tuple[str, str]]) -> Callable:
    """A module `__getattr__` serving names that became private: `names[old] = (module, private attribute)`.

    Each access warns (FutureWarning) for one release; an unknown name raises the usual AttributeError.
    """
    import importlib

    def __getattr__(name: str):
        if name in names:
            module, attr = names[name]
            warnings.warn(
                f"{module_name}.{name} is private now and will be removed in the next release; pass an object "
                "(names are shorthands resolved where they are accepted)",
                FutureWarning,
                stacklevel=2,
            )
            return getattr(importlib.import_module(module), attr)
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")

    return __getattr__
