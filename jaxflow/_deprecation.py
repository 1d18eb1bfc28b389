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
    alias.__doc__ = f"Deprecated alias of `{new.__name__}` (old argument order)."
    return alias
