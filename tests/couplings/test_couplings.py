import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxflow as jf
from jaxflow.couplings import (
    ConditionalOTCoupling,
    ExactOTCoupling,
    GibbsWeightedCoupling,
    IndependentCoupling,
    SinkhornCoupling,
    greedy_permutation,
    schrodinger_bridge_coupling,
)
from jaxflow.ot import exact_assignment, solve_sinkhorn, sqeuclidean_cost


def _xs(key, n=64, d=2):
    k0, k1 = jax.random.split(key)
    return jax.random.normal(k0, (n, d)), 3.0 + 2.0 * jax.random.normal(k1, (n, d))


def _brute_force_assignment(cost):
    n = cost.shape[0]
    return min(itertools.permutations(range(n)), key=lambda p: sum(cost[i, p[i]] for i in range(n)))


@pytest.mark.parametrize("seed", range(4))
def test_exact_assignment_against_brute_force(seed):
    x0, x1 = _xs(jax.random.key(seed), n=6)
    cost = np.asarray(sqeuclidean_cost(x0, x1), np.float64)
    perm = np.asarray(exact_assignment(jnp.asarray(cost)))
    best = _brute_force_assignment(cost)
    np.testing.assert_allclose(cost[np.arange(6), perm].sum(), cost[np.arange(6), best].sum(), rtol=1e-6)


def test_exact_assignment_under_vmap_and_jit(key):
    x0, x1 = jax.vmap(lambda k: _xs(k, n=6))(jax.random.split(key, 3))
    costs = jax.vmap(sqeuclidean_cost)(x0, x1)
    perms = jax.jit(jax.vmap(exact_assignment))(costs)
    for c, p in zip(np.asarray(costs, np.float64), np.asarray(perms)):
        best = _brute_force_assignment(c)
        assert np.isclose(c[np.arange(6), p].sum(), c[np.arange(6), best].sum(), rtol=1e-6)


def _rows(a):
    return sorted(map(tuple, np.round(np.asarray(a), 5)))


@pytest.mark.parametrize("coupling", [ExactOTCoupling(mode="permutation"), SinkhornCoupling(mode="permutation")])
def test_permutation_mode_keeps_both_marginals(coupling, key):
    x0, x1 = _xs(key)
    p = coupling(key, x0, x1)
    assert _rows(p.x0) == _rows(x0) and _rows(p.x1) == _rows(x1)


def test_exact_permutation_lowers_cost_to_optimum(key):
    x0, x1 = _xs(key)
    ind = IndependentCoupling()(key, x0, x1)
    ot = ExactOTCoupling(mode="permutation")(key, x0, x1)
    perm = np.asarray(exact_assignment(sqeuclidean_cost(x0, x1)))
    opt = float(jnp.sum((x0 - x1[perm]) ** 2))
    np.testing.assert_allclose(float(jnp.sum((ot.x0 - ot.x1) ** 2)), opt, rtol=1e-5)
    assert opt < float(jnp.sum((ind.x0 - ind.x1) ** 2))


def test_resampled_pairs_follow_the_plan(key):
    """Pairs resampled from the exact plan P_σ/n: every pair is an optimal pair (i, σ(i)) and the frequency of each
    pair matches its plan mass 1/n (chi-square test over 400 batches)."""
    from scipy import stats

    n = 16
    x0, x1 = _xs(key, n=n)
    perm = np.asarray(exact_assignment(sqeuclidean_cost(x0, x1)))
    coupling = ExactOTCoupling(mode="resample")
    keys = jax.random.split(jax.random.key(5), 400)
    pairs = [coupling(k, x0, x1) for k in keys[:2]]
    assert all(p.x0.shape == x0.shape for p in pairs)
    counts = np.zeros((n, n))
    x0n, x1n = np.asarray(x0), np.asarray(x1)
    batches = jax.jit(jax.vmap(coupling, in_axes=(0, None, None)))(keys, x0, x1)  # the 400 batches in one call
    np.testing.assert_array_equal(batches.x1[1], pairs[1].x1)  # the same draws as one call per key
    for bx0, bx1 in zip(np.asarray(batches.x0), np.asarray(batches.x1)):
        i = np.argmin(((bx0[:, None] - x0n[None]) ** 2).sum(-1), axis=1)
        j = np.argmin(((bx1[:, None] - x1n[None]) ** 2).sum(-1), axis=1)
        np.add.at(counts, (i, j), 1)
    assert counts.sum() == 400 * n
    off_plan = counts.copy()
    off_plan[np.arange(n), perm] = 0
    assert off_plan.sum() == 0  # no pair outside the plan's support
    on_plan = counts[np.arange(n), perm]
    assert stats.chisquare(on_plan).pvalue > 1e-3  # each pair drawn with probability 1/n


def test_sinkhorn_plan_marginals_and_limit(key):
    x0, x1 = _xs(key, n=48)
    cost = sqeuclidean_cost(x0, x1)
    out = solve_sinkhorn(cost, 0.01 * float(cost.mean()))
    np.testing.assert_allclose(out.matrix.sum(0), 1 / 48, atol=2e-4)
    np.testing.assert_allclose(out.matrix.sum(1), 1 / 48, atol=2e-4)
    # small ε: the entropic plan's cost approaches the exact optimum
    perm = np.asarray(exact_assignment(cost))
    exact = float(cost[jnp.arange(48), perm].mean())
    assert float(jnp.sum(out.matrix * cost)) == pytest.approx(exact, rel=0.05)
    # the greedy rounding of a near-permutation plan recovers a near-optimal permutation
    g = greedy_permutation(out.matrix)
    assert sorted(np.asarray(g).tolist()) == list(range(48))
    assert float(cost[jnp.arange(48), g].mean()) == pytest.approx(exact, rel=0.05)


def test_greedy_permutation_exact_on_permutation_matrix(key):
    perm = jax.random.permutation(key, 20)
    plan = jnp.eye(20)[perm] / 20
    np.testing.assert_array_equal(greedy_permutation(plan), perm)


def test_schrodinger_bridge_epsilon():
    c = schrodinger_bridge_coupling(0.3)
    assert c.epsilon == pytest.approx(2 * 0.09) and not c.relative


@pytest.mark.parametrize("base", [ExactOTCoupling(), SinkhornCoupling(mode="permutation")])
def test_conditional_ot_respects_labels(base, key):
    x0, x1 = _xs(key, n=40)
    labels = jnp.arange(40) % 4
    # make x0 carry its label's location so a label-blind OT would mix labels
    p = ConditionalOTCoupling(base)(key, x0, x1, labels)
    # each pair must come from the same label block: x0 index label == x1 index label
    idx0 = [int(np.argmin(np.abs(np.asarray(x0) - np.asarray(a)).sum(1))) for a in p.x0]
    idx1 = [int(np.argmin(np.abs(np.asarray(x1) - np.asarray(b)).sum(1))) for b in p.x1]
    assert all(labels[i] == labels[j] for i, j in zip(idx0, idx1))
    np.testing.assert_array_equal(p.labels, labels[np.array(idx1)])


def test_gibbs_weights(key):
    x0, x1 = _xs(key)
    w = GibbsWeightedCoupling(epsilon=1.0)(key, x0, x1).weights
    assert float(w.mean()) == pytest.approx(1.0, rel=1e-5)
    c = jnp.sum((x0 - x1) ** 2, 1)
    # lower cost, higher weight
    assert float(jnp.corrcoef(c, w)[0, 1]) < 0
    raw = GibbsWeightedCoupling(epsilon=2.0, relative=False, normalize=False)(key, x0, x1).weights
    np.testing.assert_allclose(raw, jnp.exp(-c / 2.0), rtol=1e-5)
    big = GibbsWeightedCoupling(epsilon=1e9)(key, x0, x1).weights  # ε → ∞: I-CFM
    np.testing.assert_allclose(big, 1.0, rtol=1e-5)


def test_bad_inputs(key):
    x0, x1 = _xs(key)
    with pytest.raises(ValueError, match="same batch size"):
        ExactOTCoupling()(key, x0, x1[:10])
    with pytest.raises(ValueError, match="non-finite"):
        SinkhornCoupling()(key, x0.at[3].set(jnp.inf), x1)
    with pytest.raises(ValueError, match="epsilon"):
        SinkhornCoupling(epsilon=0.0)
    with pytest.raises(ValueError, match="epsilon"):
        GibbsWeightedCoupling(epsilon=-1.0)
    with pytest.raises(ValueError, match="unknown mode"):
        ExactOTCoupling(mode="hungarian")
    with pytest.raises(ValueError, match="needs labels"):
        ConditionalOTCoupling()(key, x0, x1)
    with pytest.raises(ValueError, match="labels must have shape"):
        ConditionalOTCoupling()(key, x0, x1, jnp.zeros(3))


def test_batched_exact_solves_match_serial_solves(key):
    """The thread pool that solves a vmapped batch gives the serial solver's optimal costs."""
    from jaxflow.ot import exact as exact_mod

    x0, x1 = jax.vmap(lambda k: _xs(k, n=96))(jax.random.split(key, 5))
    costs = np.asarray(jax.vmap(sqeuclidean_cost)(x0, x1), np.float64)
    threaded = np.asarray(jax.vmap(exact_assignment)(jnp.asarray(costs)))
    exact_mod.set_num_threads(1)
    try:
        serial = np.asarray(jax.vmap(exact_assignment)(jnp.asarray(costs)))
    finally:
        exact_mod.set_num_threads(2)
    rows = np.arange(96)
    for c, a, b in zip(costs, threaded, serial):
        assert sorted(a) == list(range(96))
        np.testing.assert_allclose(c[rows, a].sum(), c[rows, b].sum(), rtol=1e-9)
    with pytest.raises(ValueError, match="num_threads"):
        exact_mod.set_num_threads(0)


def test_points_path_solves_the_same_problems(key):
    """`exact_assignment_sqeuclidean` (cost built on the host in float64) reaches the optimum of the explicit cost,
    under jit and vmap, with one argument batched and the other not, and for image-shaped points; the coupling uses it
    and its pairs cost what `pair_from_cost` pairs cost."""
    from jaxflow.ot import exact_assignment_sqeuclidean

    x0, x1 = jax.vmap(lambda k: _xs(k, n=48, d=3))(jax.random.split(key, 4))
    rows = np.arange(48)

    def check(a, b, perm):
        cost = np.asarray(sqeuclidean_cost(a, b), np.float64)
        best = np.asarray(exact_assignment(jnp.asarray(cost)))
        assert sorted(np.asarray(perm)) == list(range(48))
        np.testing.assert_allclose(cost[rows, perm].sum(), cost[rows, best].sum(), rtol=1e-5)

    perms = jax.jit(jax.vmap(exact_assignment_sqeuclidean))(x0, x1)
    for a, b, p in zip(x0, x1, perms):
        check(a, b, p)
    one_sided = jax.vmap(exact_assignment_sqeuclidean, in_axes=(0, None))(x0, x1[0])
    for a, p in zip(x0, one_sided):
        check(a, x1[0], p)
    img0, img1 = x0[0].reshape(48, 3, 1), x1[0].reshape(48, 1, 3)
    check(x0[0], x1[0], exact_assignment_sqeuclidean(img0, img1.reshape(48, 3, 1)))
    with pytest.raises(ValueError, match="one shape"):
        exact_assignment_sqeuclidean(x0[0], x1[0, :10])
    coupling = ExactOTCoupling(mode="permutation")
    p = coupling(key, x0[0], x1[0])
    q = coupling.pair_from_cost(key, x0[0], x1[0], sqeuclidean_cost(x0[0], x1[0]))
    np.testing.assert_allclose(float(jnp.sum((p.x0 - p.x1) ** 2)), float(jnp.sum((q.x0 - q.x1) ** 2)), rtol=1e-5)


def test_parallel_solves_keep_numpy_blas_to_one_thread():
    """While the pool's threads solve a batch, numpy's BLAS runs one thread (else its own workers oversubscribe the
    cores); outside, the BLAS keeps its own setting."""
    from threadpoolctl import threadpool_info

    from jaxflow.ot import exact as exact_mod

    np.ones((64, 64)) @ np.ones((64, 64))  # numpy's BLAS is loaded

    def blas_threads(_):
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads(None)
    inside = exact_mod._solve_all(blas_threads, [0, 1, 2, 3])
    assert before and all(t == [1] * len(before) for t in inside)
    assert blas_threads(None) == before


def test_pair_in_data_gives_the_optimal_pairing(key):
    from jaxflow.couplings import pair_in_data

    def data_fn(k):
        x0, x1 = _xs(k, n=6)
        return {"x0": x0, "x1": x1}

    batch = pair_in_data(data_fn, ExactOTCoupling(mode="permutation"))(key)
    raw = data_fn(jax.random.split(key)[0])
    cost = np.asarray(sqeuclidean_cost(raw["x0"], raw["x1"]), np.float64)
    best = _brute_force_assignment(cost)
    paired = float(jnp.sum((batch["x0"] - batch["x1"]) ** 2))
    np.testing.assert_allclose(paired, cost[np.arange(6), best].sum(), rtol=1e-5)
    assert _rows(batch["x1"]) == _rows(raw["x1"])


class GreedyCostCoupling(jf.couplings.CostCoupling):
    """A user's cost-based coupling: greedy rounding of the cost itself (no solver), written in a fork."""

    def pair_from_cost(self, key, x0, x1, cost, labels=None, scale_cost=None):
        perm = jf.couplings.greedy_permutation(-cost)
        return jf.couplings.Pairing(x0, x1[perm], jnp.ones(x0.shape[0]), None if labels is None else labels[perm])


def test_conditional_ot_wraps_any_cost_coupling():
    """ConditionalOTCoupling composes a user's CostCoupling through pair_from_cost alone: every pair keeps its label."""
    k0, k1, kl = jax.random.split(jax.random.key(0), 3)
    x0, x1 = jax.random.normal(k0, (64, 2)), jax.random.normal(k1, (64, 2))
    labels = jax.random.randint(kl, (64,), 0, 3)
    pairing = jf.couplings.ConditionalOTCoupling(GreedyCostCoupling())(jax.random.key(1), x0, x1, labels)
    # x0 row i carries labels[i]; its partner must carry the same label
    np.testing.assert_array_equal(pairing.labels, labels)
    plain = GreedyCostCoupling()(jax.random.key(1), x0, x1)
    assert float(jnp.sum((plain.x0 - plain.x1) ** 2)) <= float(jnp.sum((x0 - x1) ** 2))
    with pytest.raises(TypeError, match="CostCoupling"):
        jf.couplings.ConditionalOTCoupling(jf.couplings.IndependentCoupling())
    with pytest.raises(ValueError, match="non-finite"):
        jf.couplings.ConditionalOTCoupling()(jax.random.key(1), x0, x1, labels.astype(float).at[0].set(jnp.nan))
    with pytest.raises(ValueError, match="empty"):
        jf.couplings.ExactOTCoupling()(jax.random.key(1), x0[:0], x1[:0])


def test_sinkhorn_corrected_wcfm_weights_remove_most_of_the_marginal_tilt():
    """Plain Gibbs weights tilt the data marginal; the Sinkhorn-corrected weights (the entropic plan's density ratio
    on the batch) bring the weighted x1-marginal back towards the data (W2 with POT's exact solver, 6 batches)."""
    import ot as pot

    moons = jf.data.get_sampler("moons")
    ref = np.asarray(moons(jax.random.key(100), 1500), np.float64)

    def bias(correction):
        coupling = GibbsWeightedCoupling(epsilon=0.5, correction=correction)
        out = []
        for r in range(6):
            k = jax.random.key(r)
            p = coupling(k, jax.random.normal(jax.random.fold_in(k, 0), (256, 2)), moons(jax.random.fold_in(k, 1), 256))
            w = np.asarray(p.weights, np.float64)
            cost = pot.dist(np.asarray(p.x1, np.float64), ref)
            out.append(np.sqrt(pot.emd2(w / w.sum(), np.full(len(ref), 1 / len(ref)), cost)))
        return float(np.mean(out))

    plain, corrected = bias("none"), bias("sinkhorn")
    assert corrected < 0.6 * plain
    with pytest.raises(ValueError, match="correction"):
        GibbsWeightedCoupling(correction="tilt")


@pytest.mark.slow
def test_exact_pairing_under_a_mesh_pairs_each_devices_own_shard():
    """Inside shard_map on 4 devices, both exact solvers (host network simplex, device auction) pair each device's
    shard with itself, optimally (against SciPy on that shard); a training step with the coupling in the loss gives
    the same losses under the mesh as one device running the same 4 shards."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from scipy.optimize import linear_sum_assignment

    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    script = Path(__file__).with_name("_mesh_pairing.py")
    out = subprocess.run(
        [sys.executable, str(script), "network_simplex", "auction"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    for solver, r in res.items():
        x0, x1, p0, p1 = (np.asarray(r[k]) for k in ("x0", "x1", "p0", "p1"))
        for s in range(4):
            sl = slice(32 * s, 32 * (s + 1))
            # the pairs of shard s are made of shard s's own points: x0 in order, x1 permuted within the shard
            np.testing.assert_allclose(p0[sl], x0[sl], atol=0, err_msg=solver)
            d = ((p1[sl][:, None, :] - x1[sl][None, :, :]) ** 2).sum(-1)
            assert np.all(d.min(1) < 1e-12) and len(set(d.argmin(1))) == 32, solver
            cost = ((x0[sl][:, None, :] - x1[sl][None, :, :]) ** 2).sum(-1)
            rows, cols = linear_sum_assignment(cost)
            optimum = cost[rows, cols].sum()
            ours = ((p0[sl] - p1[sl]) ** 2).sum()
            assert ours <= optimum * (1 + 1e-4) + 1e-6, (solver, s, ours, optimum)
        np.testing.assert_allclose(r["loss_mesh"], r["loss_split"], rtol=2e-5, err_msg=solver)


@pytest.mark.parametrize("eps", [0.25, 1.0])
def test_sinkhorn_corrected_wcfm_weights_are_the_entropic_plan_diagonal(eps):
    """The corrected weight of pair i is B·P_ii / Σ_j P_jj with P the entropic plan of the batch: against POT's
    log-domain Sinkhorn at the same ε (ε relative to the mean pair cost), converged hard and at the default stop."""
    import ot as pot

    k0, k1 = jax.random.split(jax.random.key(3))
    x0 = jax.random.normal(k0, (64, 2))
    x1 = jf.data.get_sampler("moons")(k1, 64)
    a, b = np.asarray(x0, np.float64), np.asarray(x1, np.float64)
    reg = eps * np.mean(((a - b) ** 2).sum(1))
    plan = pot.sinkhorn(pot.unif(64), pot.unif(64), pot.dist(a, b), reg, method="sinkhorn_log", stopThr=1e-12)
    expected = 64 * np.diag(plan) / np.diag(plan).sum()
    tight = GibbsWeightedCoupling(epsilon=eps, correction="sinkhorn", sinkhorn_tolerance=1e-6, sinkhorn_iterations=5000)
    np.testing.assert_allclose(np.asarray(tight(jax.random.key(0), x0, x1).weights), expected, rtol=2e-3)
    default = GibbsWeightedCoupling(epsilon=eps, correction="sinkhorn")
    np.testing.assert_allclose(np.asarray(default(jax.random.key(0), x0, x1).weights), expected, rtol=2e-2)
    # the stop rule matters: a single iteration is far from the plan at small ε
    one = GibbsWeightedCoupling(epsilon=eps, correction="sinkhorn", sinkhorn_iterations=1)
    assert np.max(np.abs(np.asarray(one(jax.random.key(0), x0, x1).weights) / expected - 1)) > 2e-2


def test_sinkhorn_coupling_takes_an_ott_solver_object(key, unchecked):
    """An ott Sinkhorn object is used as it is: the plan equals ott's own solve of the same problem, and the same
    solver built from the coupling's fields gives the same plan."""
    from ott.solvers.linear import sinkhorn as ott_sinkhorn

    x0 = jax.random.normal(key, (24, 2))
    x1 = jax.random.normal(jax.random.fold_in(key, 1), (24, 2)) + 1.0
    cost = sqeuclidean_cost(x0, x1)
    solver = ott_sinkhorn.Sinkhorn(threshold=1e-5, max_iterations=5000, momentum=None)
    coupling = SinkhornCoupling(epsilon=0.05, sinkhorn=solver)
    assert coupling.solver() is solver
    plan = coupling.plan(cost)
    ref = solve_sinkhorn(cost, 0.05 * float(jnp.mean(cost)), solver=solver).matrix
    np.testing.assert_allclose(plan, ref, rtol=1e-3, atol=1e-6)
    fields = SinkhornCoupling(epsilon=0.05, threshold=1e-5, max_iterations=5000, anderson=0).plan(cost)
    np.testing.assert_allclose(plan, fields, rtol=1e-3, atol=1e-6)
    # under jit, as the train step calls it
    np.testing.assert_allclose(jax.jit(coupling.plan)(cost), plan, rtol=1e-3, atol=1e-6)
    with pytest.raises(ValueError, match="not both"):
        SinkhornCoupling(sinkhorn=solver, threshold=1e-5)
    with pytest.raises(TypeError, match="ott-jax Sinkhorn"):
        SinkhornCoupling(sinkhorn="sinkhorn")


def test_exact_coupling_reads_host_or_device_from_the_solver():
    """Where pairs are made follows the solver's own `on_host`, for the library's solvers and a fork's."""

    class ForkHost(jf.couplings.NetworkSimplex):
        pass

    class ForkDevice(jf.couplings.AssignmentSolver):
        def __call__(self, cost):
            return jnp.argmin(cost, axis=1), jnp.asarray(True)

    assert ExactOTCoupling(solver="network_simplex").pairs_on_host
    assert not ExactOTCoupling(solver="auction").pairs_on_host
    assert ExactOTCoupling(solver=ForkHost()).pairs_on_host
    assert not ExactOTCoupling(solver=ForkDevice()).pairs_on_host

    class ForkCallback(ForkDevice):
        on_host = True  # a fork's solver that calls out to the host

    assert ExactOTCoupling(solver=ForkCallback()).pairs_on_host
