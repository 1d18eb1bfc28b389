"""Every probe of the table (tests/reliability/probes.py) ends in a clear error that names the argument or what is
expected: no silent answer, no NaN, no internal flax / XLA / POT message."""

import pytest

from tests.reliability.probes import outcome, probes

PROBES = probes()


def test_the_table_covers_every_class():
    kinds = {p.kind for p in PROBES}
    assert kinds >= {"shape", "dtype", "nonfinite", "empty", "size", "range", "name", "binding"}
    assert sum("(jit)" in p.name for p in PROBES) >= 5 and sum("(vmap)" in p.name for p in PROBES) >= 5


@pytest.mark.parametrize("probe", PROBES, ids=[p.name for p in PROBES])
def test_bad_input_gets_a_clear_error(probe):
    kind, message = outcome(probe)
    assert kind == "clear", f"{probe.name}: {kind}: {message}"
