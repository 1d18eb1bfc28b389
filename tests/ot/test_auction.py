"""The device auction against SciPy's Hungarian solver (an independent exact algorithm)."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import jaxflow as jf
from jaxflow.ot import auction_assignment

SOLVE = jax.jit(lambda c: auction_assignment(c))


def _optimum(cost):
    r, c = linear_sum_assignment(cost)
    return cost[r, c].sum()


def _check(cost, out):
    perm = np.asarray(out.perm)
    n = cost.shape[0]
    assert sorted(perm.tolist()) == list(range(n))  # a permutation
    assert bool(out.converged)
    return cost[np.arange(n), perm].sum()


@pytest.mark.parametrize("n", [2, 3, 7, 32, 128, pytest.param(512, marks=pytest.mark.slow)])
def test_integer_costs_with_ties_are_solved_exactly(n):
    cost = np.random.default_rng(n).integers(0, 4, (n, n)).astype(np.float32)  # many ties
    total = _check(cost, SOLVE(jnp.asarray(cost)))
    assert total == _optimum(cost)


@pytest.mark.parametrize("n", [2, 5, 16, 64, 256])
def test_float_costs_within_the_stated_bound(n):
    rng = np.random.default_rng(100 + n)
    x, y = rng.normal(size=(n, 2)), rng.normal(size=(n, 2)) + 1.0
    cost = ((x[:, None] - y[None]) ** 2).sum(-1).astype(np.float32)
    out = SOLVE(jnp.asarray(cost))
    total, opt = _check(cost, out), _optimum(cost)
    assert total <= opt + n * float(out.epsilon) + 1e-4 * opt  # B·ε_final (plus float32 rounding of the sums)
    assert (total - opt) / opt <= 1e-4  # the default ε_final's relative guarantee


def test_float64_and_explicit_epsilon():
    with jax.enable_x64(True):
        cost = np.random.default_rng(1).random((40, 40))
        out = auction_assignment(jnp.asarray(cost), epsilon_final=1e-9)
        assert out.cost.dtype == jnp.float64
        assert _check(cost, out) <= _optimum(cost) + 40 * 1e-9


def test_vmap_over_problems_equals_the_loop():
    costs = jax.random.uniform(jax.random.key(0), (6, 24, 24))
    batched = auction_assignment(costs)  # batch dimensions are vmapped
    assert batched.perm.shape == (6, 24)
    for i in range(6):
        np.testing.assert_array_equal(batched.perm[i], SOLVE(costs[i]).perm)


def test_iteration_cap_is_reported():
    cost = jax.random.uniform(jax.random.key(3), (64, 64))
    out = auction_assignment(cost, max_rounds=5)
    assert not bool(out.converged)
    assert sorted(np.asarray(out.perm).tolist()) == list(range(64))  # still a permutation
    x0 = jax.random.normal(jax.random.key(4), (64, 2))
    x1 = jax.random.normal(jax.random.key(5), (64, 2))
    capped = jf.couplings.ExactOTCoupling(solver=jf.couplings.Auction(max_rounds=5))
    with pytest.warns(jf.ot.NotConvergedWarning, match=r"ExactOTCoupling\(Auction\)"):
        capped(jax.random.key(6), x0, x1)
    with pytest.raises(jf.ot.NotConvergedError):
        jf.couplings.ExactOTCoupling(solver=jf.couplings.Auction(max_rounds=5), on_nonconvergence="raise")(
            jax.random.key(6), x0, x1
        )


@pytest.mark.parametrize("mode", ["permutation", "resample"])
def test_exact_coupling_with_either_solver_gives_the_same_pairs(mode):
    x0 = jax.random.normal(jax.random.key(7), (48, 2))
    x1 = 2.0 + jax.random.normal(jax.random.key(8), (48, 2))
    a = jf.couplings.ExactOTCoupling(mode, solver="network_simplex")(jax.random.key(9), x0, x1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = jax.jit(jf.couplings.ExactOTCoupling(mode, solver="auction"))(jax.random.key(9), x0, x1)
    np.testing.assert_allclose(a.x0, b.x0)
    np.testing.assert_allclose(a.x1, b.x1)  # float costs without ties: the optimal assignment is unique


def test_bad_input(unchecked):
    with pytest.raises(ValueError, match="square"):
        auction_assignment(jnp.ones((3, 4)))
    with pytest.raises(ValueError, match="scale"):
        auction_assignment(jnp.ones((3, 3)), scale=1.0)
    with pytest.raises(ValueError, match="unknown assignment solver"):
        jf.couplings.ExactOTCoupling(solver="hungarian")
