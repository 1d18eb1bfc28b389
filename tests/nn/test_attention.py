"""Attention modules and blocks: causality, direct formulas, the accelerated block's reduction."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxflow.nn import AcceleratedBlock, CharTransformer, ClassicalBlock, MultiHeadAttention


def _direct(params, x, n_heads, kind, causal):
    """Token-by-token loops of the attention formulas."""
    b, t, d = x.shape
    dh = d // n_heads
    w = params["qkv"]["kernel"].reshape(d, 3, n_heads, dh)
    out = np.zeros((b, t, n_heads, dh))
    for bi in range(b):
        q = np.einsum("td,dhk->thk", x[bi], w[:, 0])
        k = np.einsum("td,dhk->thk", x[bi], w[:, 1])
        v = np.einsum("td,dhk->thk", x[bi], w[:, 2])
        for h in range(n_heads):
            for i in range(t):
                js = range(i + 1) if causal else range(t)
                s = np.array([q[i, h] @ k[j, h] for j in js])
                if kind == "softmax":
                    a = np.exp(s / math.sqrt(dh) - (s / math.sqrt(dh)).max())
                    a = a / a.sum()
                else:
                    a = s / len(s)
                out[bi, i, h] = sum(a[n] * v[j, h] for n, j in enumerate(js))
    out = out.reshape(b, t, d)
    return out @ np.asarray(params["out"]["kernel"]) + np.asarray(params["out"]["bias"])


@pytest.mark.parametrize("kind", ["softmax", "linear"])
@pytest.mark.parametrize("causal", [True, False])
def test_attention_matches_direct_formula(kind, causal):
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.key(0), (2, 5, 8), jnp.float64)
        mod = MultiHeadAttention(2, kind, causal)
        params = mod.init(jax.random.key(1), x)["params"]
        params = jax.tree.map(lambda a: a + 0.1, params)  # non-zero biases
        np.testing.assert_allclose(
            mod.apply({"params": params}, x), _direct(params, np.asarray(x), 2, kind, causal), rtol=1e-10, atol=1e-10
        )


@pytest.mark.parametrize("block", ["classical", "accelerated"])
def test_language_model_is_causal(block):
    model = CharTransformer(vocab_size=20, width=16, n_layers=2, n_heads=2, max_len=12, block=block)
    tokens = jax.random.randint(jax.random.key(2), (1, 12), 0, 20)
    params = model.init(jax.random.key(3), tokens)
    base = model.apply(params, tokens)
    changed = model.apply(params, tokens.at[0, 7:].set((tokens[0, 7:] + 1) % 20))
    np.testing.assert_allclose(base[0, :7], changed[0, :7], atol=1e-6)
    assert not np.allclose(base[0, 7:], changed[0, 7:])


@pytest.mark.parametrize("kind", ["softmax", "linear"])
def test_accelerated_block_without_momentum_and_damping_is_classical(kind):
    """Zero momentum, c_log = c_lin = 0: the symplectic block's first step is the classical block with step h²."""
    x = jax.random.normal(jax.random.key(4), (2, 6, 8))
    h = 0.7
    acc = AcceleratedBlock(2, 0, kind, True, "symplectic", c_log=0.0, c_lin=0.0, step_init=h)
    params = acc.init(jax.random.key(5), x, jnp.zeros_like(x))
    x_acc, p_acc = acc.apply(params, x, jnp.zeros_like(x))
    cls = ClassicalBlock(2, kind, True, step_init=h * h)
    cparams = jax.tree_util.tree_map(lambda a: a, params)  # same parameter names; only the step differs
    cparams["params"]["log_h_attn"] = jnp.asarray(2 * math.log(h), jnp.float32)
    x_cls = cls.apply(cparams, x)
    np.testing.assert_allclose(x_acc, x_cls, rtol=1e-5, atol=1e-5)
    attn = MultiHeadAttention(2, kind, True).apply(
        {"params": params["params"]["attn"]}, jax.nn.standardize(x, axis=-1, epsilon=1e-6)
    )
    np.testing.assert_allclose(p_acc, h * attn, rtol=1e-4, atol=1e-5)


def test_bad_input():
    x = jnp.ones((1, 4, 6))
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(4).init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="unknown attention kind"):
        MultiHeadAttention(2, kind="cosine").init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="unknown scheme"):
        AcceleratedBlock(2, scheme="leapfrog").init(jax.random.key(0), x, x)
    model = CharTransformer(vocab_size=10, width=8, n_heads=2, max_len=4)
    with pytest.raises(ValueError, match="integer"):
        model.init(jax.random.key(0), jnp.ones((1, 4)))
    with pytest.raises(ValueError, match="max_len"):
        model.init(jax.random.key(0), jnp.ones((1, 5), jnp.int32))
    with pytest.raises(ValueError, match="unknown block"):
        CharTransformer(vocab_size=10, width=8, n_heads=2, block="rnn").init(jax.random.key(0), jnp.ones((1, 4), int))
