"""The two call forms of a velocity: `v(t, x)`, or the model boundary `v(params, t, x, cond=None)`."""

from __future__ import annotations

from collections.abc import Callable


def split_call(fn: Callable, args: tuple) -> tuple[Callable, object, object]:
    """(f(t, y), t, x) from the arguments of either call form of `fn`: a wrapper (a tangent projection, a schedule
    change) then evaluates the wrapped velocity at its own (t, y) and keeps the caller's form."""
    if len(args) == 2:
        t, x = args
        return fn, t, x
    if len(args) in (3, 4):
        params, t, x, cond = (*args, None)[:4]
        return (lambda s, y: fn(params, s, y, cond)), t, x
    raise TypeError(f"call with (t, x) or (params, t, x, cond), got {len(args)} arguments")
