"""The key rule over jaxflow's whole public API (docs/conventions.md, "Keys"): a random function takes its key as
the first argument; an optional key (default None, used by some options only) may instead be keyword-only. The
exceptions are listed here with their reasons."""

import inspect
import types
import warnings

import jax
import jax.numpy as jnp
import pytest

import jaxflow as jf

EXCEPTIONS = {
    # the SDE sampler keeps diffrax's order: the fields it integrates, the state, then the Brownian motion's key
    "jf.sample_sde": "diffrax order",
    # the discrete sampler follows the SDE sampler (the and Meta's order): model, state, then the chain's key
    "jf.sampling.sample_discrete": "sampler order",
    # a pytree's constructor lists its fields in order; users build one with TrainState.create(key, ...)
    "jf.train.TrainState": "pytree fields",
}
KEY_NAMES = {"key", "rng", "prng_key"}


def public_callables():
    seen, out = set(), []

    def visit(mod, prefix):
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name, None)
            if obj is None or id(obj) in seen:
                continue
            seen.add(id(obj))
            if isinstance(obj, types.ModuleType):
                visit(obj, f"{prefix}{name}.")
            elif inspect.isclass(obj):
                out.append((f"{prefix}{name}", obj.__init__))
                for m, f in vars(obj).items():
                    if not m.startswith("_") and (inspect.isfunction(f) or isinstance(f, (classmethod, staticmethod))):
                        out.append((f"{prefix}{name}.{m}", getattr(obj, m)))
            elif callable(obj):
                out.append((f"{prefix}{name}", obj))

    visit(jf, "jf.")
    return out


def key_parameters():
    for name, fn in public_callables():
        try:
            params = [p for p in inspect.signature(fn).parameters.values() if p.name not in ("self", "cls")]
        except (TypeError, ValueError):
            continue
        for i, p in enumerate(params):
            if p.name in KEY_NAMES or p.name.endswith("_key"):
                yield name, i, p


def test_every_public_key_follows_the_rule():
    found = list(key_parameters())
    assert len(found) > 40  # the walk sees the API (a walk that finds nothing would pass vacuously)
    broken = []
    for name, i, p in found:
        if name in EXCEPTIONS:
            continue
        optional = p.default is None
        if i == 0 or (optional and p.kind is inspect.Parameter.KEYWORD_ONLY):
            continue
        broken.append(f"{name}: {p.name} is parameter {i} ({p.kind.name}, default {p.default!r})")
    assert broken == [], "keys out of place:\n" + "\n".join(broken)


def test_every_exception_still_exists():
    names = {name for name, _, _ in key_parameters()}
    assert set(EXCEPTIONS) <= names


@pytest.mark.parametrize("old_form", ["positional", "keyword"])
def test_old_argument_order_works_for_one_release_with_a_warning(old_form):
    key = jax.random.key(0)
    x = jax.random.normal(jax.random.key(1), (64, 2))
    snr = jnp.array([0.5, 2.0])
    new = jf.paths.data_separation(key, x, snr, num_samples=32)
    with pytest.warns(FutureWarning, match="key is now the first argument"):
        old = jf.paths.data_separation(x, snr, key=key, num_samples=32)
    assert jnp.array_equal(new, old)
    field = lambda y: jnp.stack([-y[:, 1], y[:, 0]], -1)  # noqa: E731
    new = jf.metrics.jacobian_asymmetry(key, field, x, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jf.metrics.jacobian_asymmetry(key, field, x, 8)  # the new order does not warn
    with pytest.warns(FutureWarning):
        old = (
            jf.metrics.jacobian_asymmetry(field, x, key, 8)
            if old_form == "positional"
            else jf.metrics.jacobian_asymmetry(field, x, key=key)
        )
    assert jnp.allclose(new, old) if old_form == "positional" else old.shape == new.shape


def test_public_lists_are_sorted_complete_and_hold_no_registries():
    """Every room's __all__ is sorted and names what the room has; name → factory registries are private (names
    are shorthands resolved where they are accepted); a former public registry still answers, with a warning."""
    rooms = [jf] + [getattr(jf, name) for name in jf.__all__ if isinstance(getattr(jf, name), types.ModuleType)]
    assert len(rooms) > 8
    for room in rooms:
        names = list(room.__all__)
        assert names == sorted(names), f"{room.__name__}.__all__ is not sorted"
        assert len(set(names)) == len(names)
        for name in names:
            obj = getattr(room, name)
            assert not (name.isupper() and isinstance(obj, dict)), f"{room.__name__}.{name} is a registry"
    with pytest.warns(FutureWarning, match="private"):
        solvers = jf.sampling.SOLVER_NAMES
    assert "tsit5" in solvers
    with pytest.raises(AttributeError):
        jf.sampling.NO_SUCH_NAME  # noqa: B018
