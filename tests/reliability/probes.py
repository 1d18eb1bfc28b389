"""A table of bad inputs per public function, by class, each tried eagerly and (where it applies) under jit and
vmap. A probe passes when the call raises a clear error: a ValueError / TypeError (or a compiled check's run-time
error) whose message contains `expect` (it names the argument or what is expected). A silent answer, a NaN, or an
internal error from flax / XLA / POT fails.

`python -m tests.reliability.probes` prints the counts per class (used for the before / after table in the note)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Probe(NamedTuple):
    name: str
    kind: str  # shape, dtype, nonfinite, empty, size, range, name, binding
    call: Callable[[], object]
    expect: str  # a regular expression the error message must match


K = jax.random.key(0)
X = jnp.asarray(np.random.default_rng(0).normal(size=(16, 2)), jnp.float32)
Y = X + 1.0
NAN = X.at[0, 0].set(jnp.nan)
INF = X.at[1, 1].set(jnp.inf)


def _v(t, x):
    return -x


def _jit(fn):
    """Call `fn` with its array argument traced."""
    return lambda *a: jax.jit(fn)(*a)


def probes() -> list[Probe]:
    import jaxflow as jf
    from jaxflow.couplings import ExactOTCoupling, SinkhornCoupling
    from jaxflow.ot import gaussian

    path = jf.paths.cond_ot_path()
    m = jf.nn.MLPVelocity(out_dim=2, hidden=(8,))
    params = jf.nn.init_mlp(jax.random.key(1), m, 2)
    boundary = jf.nn.velocity_fn(m)
    loss = jf.losses.cfm_loss(boundary)
    t = jnp.full((16,), 0.5)
    P = [
        # paths
        Probe("path.sample t > 1", "range", lambda: path.sample(K, X, Y, jnp.full((16,), 1.3)), r"\[0, 1\]|t"),
        Probe(
            "path.sample t > 1 (jit)",
            "range",
            lambda: _jit(lambda tt: path.sample(K, X, Y, tt).xt)(jnp.full((16,), 1.3)).block_until_ready(),
            r"\[0, 1\]|t",
        ),
        Probe("path.sample x0/x1 shapes", "shape", lambda: path.sample(K, X, Y[:8], t), r"shape|x1"),
        Probe("path.sample NaN x1", "nonfinite", lambda: path.sample(K, X, NAN, t), r"non-finite|NaN"),
        Probe(
            "path.sample NaN x1 (jit)",
            "nonfinite",
            lambda: _jit(lambda y: path.sample(K, X, y, t).xt)(NAN).block_until_ready(),
            r"non-finite|NaN",
        ),
        Probe("path.sample int x1", "dtype", lambda: path.sample(K, X, Y.astype(jnp.int32), t), r"float|dtype"),
        Probe(
            "convert unknown name",
            "name",
            lambda: path.convert(X, 0.5, X, source="velocity", target="noise"),
            r"unknown target",
        ),
        Probe(
            "pfgmpp_perturb NaN y",
            "nonfinite",
            lambda: jf.paths.pfgmpp_perturb(K, NAN, jnp.ones(16), 64.0),
            r"non-finite|NaN",
        ),
        Probe("pfgmpp_perturb empty", "empty", lambda: jf.paths.pfgmpp_perturb(K, X[:0], jnp.ones(0), 64.0), r"empty"),
        Probe("pfgmpp_perturb D < 0", "range", lambda: jf.paths.pfgmpp_perturb(K, X, jnp.ones(16), -4.0), r"D"),
        Probe(
            "data_separation NaN",
            "nonfinite",
            lambda: jf.paths.data_separation(K, NAN, jnp.array([1.0])),
            r"non-finite|NaN",
        ),
        Probe(
            "data_separation empty",
            "empty",
            lambda: jf.paths.data_separation(K, X[:0], jnp.array([1.0])),
            r"empty|at least",
        ),
        Probe(
            "KO from_separation λ > 1",
            "range",
            lambda: jf.paths.KineticOptimalScheduler.from_separation(jnp.array([0.1, 1.0]), jnp.array([0.5, 1.5])),
            r"λ|lambda|\[0, 1\]|separation",
        ),
        # couplings
        Probe("ExactOT NaN", "nonfinite", lambda: ExactOTCoupling()(K, NAN, Y), r"non-finite|NaN"),
        Probe(
            "Sinkhorn NaN (jit)",
            "nonfinite",
            lambda: _jit(lambda y: SinkhornCoupling()(K, X, y).x1)(NAN).block_until_ready(),
            r"non-finite|NaN",
        ),
        Probe("Sinkhorn eps < 0", "range", lambda: SinkhornCoupling(epsilon=-1.0), r"epsilon"),
        Probe(
            "ExactOT unknown solver",
            "name",
            lambda: ExactOTCoupling(solver="hungarian"),
            r"assignment solver|hungarian",
        ),
        Probe("coupling batch mismatch", "shape", lambda: ExactOTCoupling()(K, X, Y[:8]), r"shape|batch|x1"),
        # losses
        Probe("cfm_loss NaN x1", "nonfinite", lambda: loss(params, {"x1": NAN}, K), r"non-finite|NaN"),
        Probe(
            "cfm_loss NaN x1 (jit)",
            "nonfinite",
            lambda: _jit(lambda y: loss(params, {"x1": y}, K)[0])(NAN).block_until_ready(),
            r"non-finite|NaN",
        ),
        Probe("cfm_loss int x1", "dtype", lambda: loss(params, {"x1": Y.astype(jnp.int32)}, K), r"float"),
        Probe("cfm_loss empty", "empty", lambda: loss(params, {"x1": X[:0]}, K), r"empty"),
        Probe("cfm_loss no x1", "shape", lambda: loss(params, {"x": X}, K), r"x1"),
        Probe(
            "cfm_loss dropout > 1",
            "range",
            lambda: jf.losses.cfm_loss(boundary, label_dropout=1.5, null_label=3),
            r"label_dropout",
        ),
        Probe("shortcut min_step < 0", "range", lambda: jf.losses.shortcut_loss(boundary, min_step=-0.5), r"min_step"),
        Probe(
            "population_loss NaN x1 (vmaps inside)",
            "nonfinite",
            lambda: jf.losses.population_loss(boundary)(
                {"velocity": params}, {"x0": jnp.ones((2, 8, 2)), "x1": jnp.ones((2, 8, 2)).at[0, 0, 0].set(jnp.nan)}, K
            )[0].block_until_ready(),
            r"non-finite|NaN",
        ),
        Probe(
            "population_loss mask shape",
            "shape",
            lambda: jf.losses.population_loss(boundary)(
                {"velocity": params},
                {"x0": jnp.ones((2, 8, 2)), "x1": jnp.ones((2, 8, 2)), "mask": jnp.ones((2, 7), bool)},
                K,
            ),
            r"mask",
        ),
        Probe("pfgmpp_loss D = 0", "range", lambda: jf.losses.pfgmpp_loss(boundary, 0), r"D"),
        # sampling
        Probe("sample NaN x0", "nonfinite", lambda: jf.sample(_v, NAN), r"non-finite|NaN|x0"),
        Probe("sample steps = 0", "size", lambda: jf.sample(_v, X, steps=0), r"steps"),
        Probe("sample steps = -3", "size", lambda: jf.sample(_v, X, steps=-3), r"steps"),
        Probe("sample rtol < 0", "range", lambda: jf.sample(_v, X, solver="tsit5", rtol=-1e-3), r"rtol"),
        Probe("sample unknown solver", "name", lambda: jf.sample(_v, X, solver="rk45"), r"solver"),
        Probe("sample boundary without params", "binding", lambda: jf.sample(boundary, X), r"params="),
        Probe("sample plain field with params", "binding", lambda: jf.sample(_v, X, params=params), r"params="),
        Probe("sample wrong model output", "shape", lambda: jf.sample(lambda t, x: x[:, :1], X), r"shape"),
        Probe(
            "sample model on another dim",
            "shape",
            lambda: jf.sample(boundary, jnp.ones((4, 3)), params=params),
            r"shape|cannot be evaluated",
        ),
        Probe(
            "sample grid not monotone",
            "range",
            lambda: jf.sample(_v, X, grid=jnp.array([0.0, 0.6, 0.4, 1.0])),
            r"monotone",
        ),
        Probe(
            "sample_flow_map grid not monotone",
            "range",
            lambda: jf.sampling.sample_flow_map(lambda s, t, x: -x, X, grid=jnp.array([0.0, 0.6, 0.4, 1.0])),
            r"monotone",
        ),
        Probe(
            "sample_flow_map wrong output",
            "shape",
            lambda: jf.sampling.sample_flow_map(lambda s, t, x: x[:, :1], X),
            r"returned",
        ),
        Probe("sample_sde eps < 0", "range", lambda: jf.sample_sde(_v, _v, X, K, epsilon=-0.1), r"epsilon"),
        Probe("log_likelihood NaN", "nonfinite", lambda: jf.log_likelihood(_v, NAN), r"non-finite|NaN"),
        Probe(
            "log_likelihood hutchinson without key",
            "binding",
            lambda: jf.log_likelihood(_v, X, divergence="hutchinson"),
            r"key",
        ),
        Probe("invert_ode atol < 0", "range", lambda: jf.sampling.invert_ode(_v, X, atol=-1.0), r"atol"),
        Probe("flowopt patience 0", "range", lambda: jf.sampling.flowopt(lambda z: z, X, X, patience=0), r"patience"),
        # ot
        Probe("solve_sinkhorn eps = 0", "range", lambda: jf.ot.solve_sinkhorn(jnp.ones((3, 3)), 0.0), r"epsilon"),
        Probe(
            "exact_plan unequal mass",
            "range",
            lambda: jf.ot.exact_plan(jnp.ones((3, 4)), jnp.ones(3), jnp.ones(4)),
            r"mass",
        ),
        Probe(
            "auction eps < 0",
            "range",
            lambda: jf.ot.auction_assignment(jnp.ones((4, 4)), epsilon_final=-1.0),
            r"epsilon",
        ),
        Probe(
            "SNS negative mass",
            "range",
            lambda: jf.ot.sinkhorn_newton_sparse(jnp.ones((3, 3)), jnp.array([0.5, 0.6, -0.1]), None, epsilon=0.1),
            r"non-negative",
        ),
        Probe(
            "bures non-SPD",
            "range",
            lambda: gaussian.bures_wasserstein(jnp.zeros(2), -jnp.eye(2), jnp.zeros(2), jnp.eye(2)),
            r"positive|SPD|symmetric",
        ),
        Probe(
            "bures non-SPD (jit)",
            "range",
            lambda: _jit(lambda c: gaussian.bures_wasserstein(jnp.zeros(2), c, jnp.zeros(2), jnp.eye(2)))(
                -jnp.eye(2)
            ).block_until_ready(),
            r"positive|SPD|symmetric",
        ),
        Probe(
            "sliced_wasserstein NaN (jit)",
            "nonfinite",
            lambda: _jit(lambda y: jf.metrics.sliced_wasserstein(K, X, y))(NAN).block_until_ready(),
            r"non-finite|NaN",
        ),
        Probe(
            "sliced_wasserstein dims",
            "shape",
            lambda: jf.metrics.sliced_wasserstein(K, X, jnp.ones((16, 3))),
            r"dimension|shape",
        ),
        Probe(
            "sliced_wasserstein projections 0",
            "size",
            lambda: jf.metrics.sliced_wasserstein(K, X, Y, n_projections=0),
            r"n_projections",
        ),
        # metrics
        Probe("wasserstein NaN", "nonfinite", lambda: jf.metrics.wasserstein(NAN, Y), r"non-finite|NaN"),
        Probe("wasserstein empty", "empty", lambda: jf.metrics.wasserstein(X[:0], Y), r"empty|at least"),
        Probe("mmd inf", "nonfinite", lambda: jf.metrics.mmd(INF, Y), r"non-finite|NaN|inf"),
        Probe(
            "energy_distance dims", "shape", lambda: jf.metrics.energy_distance(X, jnp.ones((5, 3))), r"dimension|shape"
        ),
        Probe("chamfer NaN", "nonfinite", lambda: jf.metrics.chamfer(NAN, Y), r"non-finite|NaN"),
        Probe(
            "frechet_distance one sample", "size", lambda: jf.metrics.frechet_distance(X[:1], Y), r"at least|samples"
        ),
        # data
        Probe("sample_toy unknown", "name", lambda: jf.data.sample_toy(K, "spirals", 10), r"unknown data set"),
        Probe("sample_toy n = -1", "size", lambda: jf.data.sample_toy(K, "moons", -1), r"\bn\b"),
        # under vmap (a batch of problems: one bad member must not pass silently)
        Probe(
            "path.sample t > 1 (vmap)",
            "range",
            lambda: jax.vmap(lambda tt: path.sample(K, X, Y, tt).xt)(jnp.full((3, 16), 1.3)).block_until_ready(),
            r"\[0, 1\]|t",
        ),
        Probe(
            "cfm_loss NaN x1 (vmap)",
            "nonfinite",
            lambda: jax.vmap(lambda y: loss(params, {"x1": y}, K)[0])(jnp.stack([X, NAN])).block_until_ready(),
            r"non-finite|NaN",
        ),
        Probe(
            "bures non-SPD (vmap)",
            "range",
            lambda: jax.vmap(lambda c: gaussian.bures_wasserstein(jnp.zeros(2), c, jnp.zeros(2), jnp.eye(2)))(
                jnp.stack([jnp.eye(2), -jnp.eye(2)])
            ).block_until_ready(),
            r"positive|SPD|symmetric",
        ),
        Probe(
            "sliced_wasserstein NaN (vmap)",
            "nonfinite",
            lambda: jax.vmap(lambda y: jf.metrics.sliced_wasserstein(K, X, y))(jnp.stack([Y, NAN])).block_until_ready(),
            r"non-finite|NaN",
        ),
        Probe(
            "sample NaN x0 (vmap)",
            "nonfinite",
            lambda: jax.vmap(lambda x: jf.sample(_v, x[None]).x)(NAN).block_until_ready(),
            r"non-finite|NaN",
        ),
        # shapes (mesh builders)
        Probe("icosphere subdivisions < 0", "size", lambda: jf.shapes.icosphere(-1), r"subdivisions"),
        Probe("superquadric exponent 0", "range", lambda: jf.shapes.superquadric((0.0, 1.0)), r"exponents"),
        Probe("torus n_major 0", "size", lambda: jf.shapes.torus(n_major=0), r"n_major"),
        Probe("torus minor > major", "range", lambda: jf.shapes.torus(1.0, 2.0), r"minor"),
        Probe(
            "random_deformation modes 0",
            "size",
            lambda: jf.shapes.random_deformation(K, jf.shapes.icosphere(1), modes=0),
            r"modes",
        ),
        # training
        Probe("train step chunk 0", "size", lambda: _train_step()(_state(), None, 0), r"steps"),
        Probe("fit num_steps < 0", "size", lambda: jf.train.fit(_state(), _train_step(), num_steps=-4), r"num_steps"),
    ]
    return P


def _state():
    import optax

    import jaxflow as jf

    return jf.train.TrainState.create(jax.random.key(0), {"w": jnp.zeros(2)}, optax.sgd(0.1))


def _train_step():
    import optax

    import jaxflow as jf

    return jf.train.make_train_step(lambda p, b, k: (jnp.sum(p["w"] ** 2), {}), optax.sgd(0.1), data_fn=lambda k: {})


def outcome(probe: Probe) -> tuple[str, str]:
    """('clear' | 'obscure' | 'silent', message)."""
    try:
        out = probe.call()
        jax.block_until_ready(out) if isinstance(out, jax.Array) else None
    except Exception as err:  # noqa: BLE001 - the point is to classify every failure
        msg = f"{type(err).__name__}: {err}"
        if type(err).__name__ == "TypeCheckError":  # the test suite's run-time shape check: names each parameter
            return "clear", msg.splitlines()[0][:160]
        clear_type = isinstance(err, ValueError | TypeError) or "EquinoxRuntimeError" in msg or "JaxRuntimeError" in msg
        return ("clear" if clear_type and re.search(probe.expect, str(err)) else "obscure"), msg.splitlines()[0][:160]
    return "silent", repr(out)[:160]


if __name__ == "__main__":
    import collections

    counts = collections.defaultdict(collections.Counter)
    for p in probes():
        kind, msg = outcome(p)
        counts[p.kind][kind] += 1
        if kind != "clear":
            print(f"{kind:8s} {p.name}: {msg}")
    print("class      clear obscure silent")
    for k, c in sorted(counts.items()):
        print(f"{k:10s} {c['clear']:5d} {c['obscure']:7d} {c['silent']:6d}")
