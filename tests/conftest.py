import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402
import pytest  # noqa: E402
from beartype import BeartypeConf, beartype  # noqa: E402
from jaxtyping import jaxtyped  # noqa: E402

# Run-time checks of the shape annotations of the public API (as diffrax's test suite does): each function below is
# wrapped in jaxtyping's `jaxtyped` with beartype for the whole test session, wherever the tests reach it from.
_CHECKED = {
    "jaxflow.sampling.ode": ["sample"],
    "jaxflow.sampling.sde": ["sample_sde"],
    "jaxflow.sampling.likelihood": ["log_likelihood"],
    "jaxflow.metrics.distances": ["wasserstein", "mmd", "energy_distance"],
    "jaxflow.ot.sliced": ["sliced_wasserstein"],
    "jaxflow.ot.maps": ["barycentric_map"],
}
_TYPECHECKER = beartype(conf=BeartypeConf(is_pep484_tower=True))
CHECKED_FUNCTIONS = []
_SWAPS = []  # (module, name, original, checked)


def _install_runtime_checks():
    import importlib
    import sys

    for module_name, names in _CHECKED.items():
        module = importlib.import_module(module_name)
        for name in names:
            original = getattr(module, name)
            checked = jaxtyped(typechecker=_TYPECHECKER)(original)
            CHECKED_FUNCTIONS.append(checked)
            # replace every reference the package exports (jf.sample, jf.sampling.sample, jf.metrics.wasserstein, ...)
            for mod in list(sys.modules.values()):
                if getattr(mod, "__name__", "").startswith("jaxflow") and getattr(mod, name, None) is original:
                    setattr(mod, name, checked)
                    _SWAPS.append((mod, name, original, checked))


_install_runtime_checks()


@pytest.fixture
def unchecked():
    """Turn the test-time type checks off for one test: bad-input tests check jaxflow's own errors, which a user
    without the checks gets."""
    for mod, name, original, _ in _SWAPS:
        setattr(mod, name, original)
    yield
    for mod, name, _, checked in _SWAPS:
        setattr(mod, name, checked)


@pytest.fixture
def key():
    return jax.random.key(0)
