import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402
import pytest  # noqa: E402

import jaxflow  # noqa: E402, F401  (imported after jaxtyping's hook: every function and class is checked)
from tests import typechecks  # noqa: E402


@pytest.fixture
def unchecked():
    """Turn the test-time type checks off for one test: bad-input tests check jaxflow's own errors, which a user
    without the checks gets."""
    typechecks.ENABLED[0] = False
    yield
    typechecks.ENABLED[0] = True


@pytest.fixture
def key():
    return jax.random.key(0)
