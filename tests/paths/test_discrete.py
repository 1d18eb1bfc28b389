"""Discrete flow matching: the mixture path, its probability velocity, the two objectives and the jump sampler,
checked against exact enumeration over a small state space [V]^L."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxflow as jf
from jaxflow.losses import discrete_cross_entropy_loss, generalized_kl, mixture_kl_loss, token_cross_entropy
from jaxflow.paths import MaskSource, MixtureDiscretePath, PolynomialConvexScheduler, UniformSource, exact_posterior
from jaxflow.sampling import sample_discrete

V, L = 6, 2


def target_table(vocab=V, data_vocab=V):
    """A correlated law over [vocab]^2 (tokens equal or adjacent, mass only on ids < data_vocab)."""
    q = np.zeros((vocab, vocab))
    for a in range(data_vocab):
        for b in range(data_vocab):
            q[a, b] = np.exp(-((a - b) ** 2)) * (1.0 + a)
    return q / q.sum()


def exact_marginal(q, source, path, t):
    """p_t over [V]^L by enumeration of (x0, x1): Σ p0(x0) q(x1) Π_i (κ δ(x^i = x1^i) + (1 − κ) δ(x^i = x0^i))."""
    vocab = q.shape[0]
    p0 = np.asarray(source.probs(), np.float64)
    k = float(path.kappa(jnp.asarray(t)))
    one = (1 - k) * np.eye(vocab)[:, :, None] + k * np.eye(vocab)[:, None, :]  # [x, x0, x1] per token
    # p_t(x, y) = Σ_{a,b,c,d} p0(a) p0(b) q(c, d) one[x, a, c] one[y, b, d]
    return np.einsum("a,b,cd,xac,ybd->xy", p0, p0, q, one, one)


@pytest.mark.parametrize("t", [0.1, 0.5, 0.9])
def test_mixture_path_shows_data_with_probability_kappa(t):
    path = MixtureDiscretePath(PolynomialConvexScheduler(2.0))
    x0 = jnp.zeros((4000, 50), jnp.int32)
    x1 = jnp.ones((4000, 50), jnp.int32)
    ps = path.sample(jax.random.key(0), x0, x1, jnp.full((4000,), t))
    frac = float(jnp.mean(ps.xt == 1))
    n = x0.size
    assert abs(frac - t**2) < 5 * np.sqrt(t**2 * (1 - t**2) / n)
    assert bool(jnp.all((ps.xt == 0) | (ps.xt == 1)))


@pytest.mark.parametrize("source", [UniformSource(V), MaskSource(V + 1)])
def test_posterior_velocity_solves_the_kolmogorov_equation(source):
    """d/dt p_t(x) = Σ_y p_t(y) Q(y → x) − p_t(x) Σ_y Q(x → y) with Q built from posterior_to_velocity of the exact
    posterior, every state of [V]^2 checked against the time derivative of the enumerated marginal."""
    jax.config.update("jax_enable_x64", True)
    try:
        vocab = source.vocab_size
        q = target_table(vocab, V)
        path = MixtureDiscretePath(PolynomialConvexScheduler(1.5))
        post = exact_posterior(q, source, path)
        states = jnp.asarray(list(itertools.product(range(vocab), repeat=L)))
        for t in (0.2, 0.55, 0.8):
            u = path.posterior_to_velocity(post(t, states), states, t)  # [S, L, V]
            p = exact_marginal(q, source, path, t).reshape(-1)
            # full generator: from state s, token i jumps to value y at rate u[s, i, y]
            index = {tuple(map(int, s)): j for j, s in enumerate(states)}
            dp = np.zeros_like(p)
            for j, s in enumerate(np.asarray(states)):
                for i in range(L):
                    for y in range(vocab):
                        if y == s[i]:
                            continue
                        s2 = s.copy()
                        s2[i] = y
                        rate = float(u[j, i, y])
                        dp[index[tuple(s2)]] += p[j] * rate
                        dp[j] -= p[j] * rate
            h = 1e-6
            fd = (exact_marginal(q, source, path, t + h) - exact_marginal(q, source, path, t - h)).reshape(-1) / (2 * h)
            np.testing.assert_allclose(dp, fd, atol=1e-7)
            np.testing.assert_allclose(np.asarray(u.sum(-1)), 0.0, atol=1e-12)
    finally:
        jax.config.update("jax_enable_x64", False)


@pytest.mark.parametrize("per_token", [generalized_kl, token_cross_entropy])
def test_both_objectives_are_minimised_by_the_exact_posterior(per_token):
    """The expected loss at a fixed t, enumerated exactly over (x0, x1, x_t), as a function of a free logit table
    indexed by x_t: its gradient vanishes at the exact posterior's logits, and a perturbation raises it."""
    jax.config.update("jax_enable_x64", True)
    try:
        source = UniformSource(V)
        q = target_table()
        path = MixtureDiscretePath(PolynomialConvexScheduler(1.0))
        t = 0.4
        k = float(path.kappa(t))
        states = jnp.asarray(list(itertools.product(range(V), repeat=L)))
        S = states.shape[0]
        # joint weight of (x1, xt): q(x1) Π_i (k δ(xt_i = x1_i) + (1 − k) p0(xt_i))
        w = np.zeros((S, S))
        for a, x1 in enumerate(np.asarray(states)):
            for b, xt in enumerate(np.asarray(states)):
                w[a, b] = q[tuple(x1)] * np.prod([k * (xt[i] == x1[i]) + (1 - k) / V for i in range(L)])
        w = jnp.asarray(w)
        jump = path.jump_coefficient(jnp.asarray(t))

        def expected(table):  # table [S (x_t), L, V]
            per = per_token(table[None], states[:, None, :], states[None, :, :], jump)  # [S(x1), S(xt), L]
            return jnp.sum(w[..., None] * per)

        best = jnp.log(exact_posterior(q, source, path)(t, states))
        g = jax.grad(expected)(best)
        # logits are defined up to a constant per token: the gradient has no component off that direction
        assert float(jnp.max(jnp.abs(g))) < 1e-10
        bump = 0.3 * jax.random.normal(jax.random.key(3), best.shape, best.dtype)
        assert float(expected(best + bump)) > float(expected(best)) + 1e-6
    finally:
        jax.config.update("jax_enable_x64", False)


def _tv(samples, q):
    h = np.zeros_like(q)
    np.add.at(h, tuple(np.asarray(samples).T), 1.0)
    return 0.5 * np.abs(h / h.sum() - q).sum()


def _iid_tv(q, n, seed=0):
    flat = np.random.default_rng(seed).choice(q.size, size=n, p=q.reshape(-1))
    return _tv(np.stack(np.unravel_index(flat, q.shape), -1), q)


@pytest.mark.parametrize(
    "source, div_free, steps",
    # the divergence-free term leaves the marginals alone but raises the rates, so Euler's error: more steps
    [(UniformSource(V), 0.0, 64), (MaskSource(V + 1), 0.0, 64), (UniformSource(V), lambda t: t, 256)],
)
def test_jump_sampler_with_the_exact_posterior_reaches_the_target(source, div_free, steps):
    vocab = source.vocab_size
    q = target_table(vocab, V)
    path = MixtureDiscretePath(PolynomialConvexScheduler(1.0))
    post = exact_posterior(q, source, path)

    def logits(t, x):
        return jnp.log(post(t, x))

    n = 20_000
    x0 = source.sample(jax.random.key(1), (n, L))
    out = sample_discrete(logits, x0, jax.random.key(2), path=path, steps=steps, div_free=div_free, source=source)
    assert out.x.shape == (n, L) and out.x.dtype == x0.dtype
    reference = _iid_tv(q, n)
    assert _tv(out.x, q) < 1.5 * reference + 0.01
    # one step returns a draw from the posterior at t = 0: the product of q's marginals, far from the correlated q
    one = sample_discrete(logits, x0, jax.random.key(2), path=path, steps=1, source=source)
    assert _tv(one.x, q) > 3 * reference + 0.05


def test_sampler_is_compiled_deterministic_and_saves_the_trajectory():
    source = UniformSource(V)
    q = target_table()
    path = MixtureDiscretePath()
    post = exact_posterior(q, source, path)

    def logits(params, t, x, cond):
        return params * jnp.log(post(t, x))

    x0 = source.sample(jax.random.key(0), (64, L))
    run = jax.jit(lambda k: sample_discrete(logits, x0, k, path=path, params=1.0, steps=8, save_trajectory=True))
    a, b = run(jax.random.key(5)), run(jax.random.key(5))
    assert bool(jnp.all(a.x == b.x))
    assert a.trajectory.shape == (9, 64, L)
    assert bool(jnp.all(a.trajectory[0] == x0)) and bool(jnp.all(a.trajectory[-1] == a.x))


def test_losses_train_a_tiny_model_toward_the_exact_posterior():
    """A free logit table per (time bin, state) trained with the generalized KL moves toward the exact posterior: its
    cross-entropy to the exact posterior falls well below the untrained table's."""
    import optax

    source = UniformSource(V)
    q = target_table()
    path = MixtureDiscretePath()
    bins = 4
    states = jnp.asarray(list(itertools.product(range(V), repeat=L)))

    def model(params, t, x, cond):
        idx = x[:, 0] * V + x[:, 1]
        b = jnp.clip((t * bins).astype(jnp.int32), 0, bins - 1)
        return params[b, idx]

    loss = mixture_kl_loss(model, path, source)
    params = jnp.zeros((bins, V * V, L, V))
    opt = optax.adam(0.1)
    state = opt.init(params)
    flat = np.random.default_rng(0).choice(q.size, size=(300, 256), p=q.reshape(-1))
    data = jnp.asarray(np.stack(np.unravel_index(flat, q.shape), -1), jnp.int32)

    @jax.jit
    def step(params, state, x1, key):
        (value, aux), g = jax.value_and_grad(loss, has_aux=True)(params, {"x1": x1}, key)
        upd, state = opt.update(g, state)
        return optax.apply_updates(params, upd), state, value

    def gap(params):  # mean KL(exact ‖ model) at bin centres, weighted by the marginal
        total = 0.0
        for b in range(bins):
            t = (b + 0.5) / bins
            p = exact_marginal(q, source, path, t).reshape(-1)
            exact = exact_posterior(q, source, path)(t, states)
            logp = jax.nn.log_softmax(params[b], -1)
            kl = jnp.sum(exact * (jnp.log(exact + 1e-30) - logp), -1).sum(-1)
            total += float(jnp.sum(p * kl))
        return total / bins

    start = gap(params)
    for i in range(300):
        params, state, _ = step(params, state, data[i], jax.random.key(i))
    assert gap(params) < 0.25 * start
    # the cross-entropy objective is a swap of one field
    ce = discrete_cross_entropy_loss(model, path, source)
    assert np.isfinite(float(ce(params, {"x1": data[0]}, jax.random.key(0))[0]))


def test_bad_inputs_are_refused_clearly():
    path = MixtureDiscretePath()
    source = UniformSource(V)
    x = jnp.zeros((4, L), jnp.int32)
    with pytest.raises(TypeError, match="integer token ids"):
        path.sample(jax.random.key(0), x.astype(float), x, 0.5)
    with pytest.raises(ValueError, match="same shape"):
        path.sample(jax.random.key(0), x, x[:, :1], 0.5)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        path.sample(jax.random.key(0), x, x, 1.5)
    with pytest.raises(ValueError, match="mask_token"):
        MaskSource(4, mask_token=7)
    loss = mixture_kl_loss(lambda p, t, x, c: jnp.zeros((*x.shape, V)), path, source)
    with pytest.raises(ValueError, match="outside"):
        loss(None, {"x1": x + V}, jax.random.key(0))
    with pytest.raises(Exception, match="outside"):  # compiled in under jit
        jax.block_until_ready(jax.jit(loss)(None, {"x1": x + V}, jax.random.key(0)))
    wrong = mixture_kl_loss(lambda p, t, x, c: jnp.zeros((*x.shape, V + 1)), path, source)
    with pytest.raises(ValueError, match="logits of shape"):
        wrong(None, {"x1": x}, jax.random.key(0))
    logits = lambda t, x: jnp.zeros((*x.shape, V))  # noqa: E731
    with pytest.raises(ValueError, match="exactly one"):
        sample_discrete(logits, x, jax.random.key(0), path=path, steps=4, time_grid=jnp.linspace(0, 1, 5))
    with pytest.raises(ValueError, match="needs source"):
        sample_discrete(logits, x, jax.random.key(0), path=path, steps=4, div_free=1.0)
    with pytest.raises(ValueError, match="increase"):
        sample_discrete(logits, x, jax.random.key(0), path=path, time_grid=jnp.array([0.0, 0.6, 0.5, 1.0]))
    with pytest.raises(ValueError, match="outside"):
        sample_discrete(logits, x + V, jax.random.key(0), path=path, steps=4)
    with pytest.raises(ValueError, match="logits of shape"):
        sample_discrete(lambda t, x: jnp.zeros((*x.shape[:1], V)), x, jax.random.key(0), path=path, steps=4)
    with pytest.raises(ValueError, match="t_max"):
        mixture_kl_loss(logits, path, source, t_max=1.0)
    assert jf.paths.MixtureDiscretePath is MixtureDiscretePath


@pytest.mark.slow  # 13 s: 20,000 sequences × 256 steps, twice
def test_carry_over_keeps_unmasked_tokens_when_the_model_copies_imperfectly():
    """A posterior that copies an unmasked token with probability 0.9 (the rest spread uniformly): without carry-over
    the shown tokens hop and the samples drift from the target as steps grow; with it they keep their value and the
    sampler is back at the exact posterior's quality."""
    source = MaskSource(V + 1)
    q = target_table(V + 1, V)
    path = MixtureDiscretePath(PolynomialConvexScheduler(1.0))
    post = exact_posterior(q, source, path)

    def leaky(t, x):
        p = post(t, x)
        shown = (x != source.token)[..., None]
        uniform = jnp.ones_like(p).at[..., V].set(0.0) / V
        return jnp.log(jnp.where(shown, 0.9 * p + 0.1 * uniform, p))

    n = 20_000
    x0 = source.sample(None, (n, L))
    reference = _iid_tv(q, n)
    run = lambda c: sample_discrete(leaky, x0, jax.random.key(2), path=path, steps=256, source=source, carry_over=c).x  # noqa: E731
    assert _tv(run(True), q) < 1.5 * reference + 0.01
    assert _tv(run(False), q) > 2 * reference + 0.02
    with pytest.raises(ValueError, match="carry_over needs"):
        sample_discrete(leaky, x0, jax.random.key(2), path=path, steps=4, source=UniformSource(V + 1), carry_over=True)
