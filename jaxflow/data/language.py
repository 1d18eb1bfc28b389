"""A procedurally generated language with an exact validity check: arithmetic expressions with balanced brackets.

    expr := term (op term)*        term := digit | "(" expr ")"        op := "+" | "-" | "*"

Tokens: digits 0–9 are ids 0–9, then + - * ( ) and a padding id (`PAD` = 15); `VOCAB_SIZE` = 16 (a mask source adds
id 16). A sequence is an expression of `min_len` to `max_len` characters followed by padding to `max_len`. The grammar
is unambiguous, so `is_valid` is an exact recursive-descent parse: a discrete generative model's samples are judged
with no learned critic. Used by the discrete flow-matching study (`experiments/discrete.py`).
"""

from __future__ import annotations

import jax
import numpy as np

from jaxflow._checks import check_count

CHARS = "0123456789+-*()"
PAD = len(CHARS)
VOCAB_SIZE = PAD + 1
_OPS = (10, 11, 12)
_OPEN, _CLOSE = 13, 14


def _rng(key: jax.Array) -> np.random.Generator:
    return np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())


def _expression(rng, budget: int, depth: int) -> list[int]:
    out = _term(rng, budget, depth)
    while len(out) < budget - 1 and rng.random() < 0.85:
        out += [int(rng.choice(_OPS))] + _term(rng, budget - len(out) - 1, depth)
    return out


def _term(rng, budget: int, depth: int) -> list[int]:
    if depth < 4 and budget >= 5 and rng.random() < 0.35:
        inner = _expression(rng, min(budget - 2, int(rng.integers(3, 16))), depth + 1)
        return [_OPEN] + inner + [_CLOSE]
    return [int(rng.integers(0, 10))]


def sample_expressions(key: jax.Array, n: int, *, min_len: int = 32, max_len: int = 64) -> np.ndarray:
    """n token sequences [n, max_len] (int32): random valid expressions of min_len..max_len characters, padded."""
    n = check_count(n, "n")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len} and {max_len}")
    rng = _rng(key)
    out = np.full((n, max_len), PAD, np.int32)
    i = 0
    while i < n:
        target = int(rng.integers(min_len, max_len + 1))
        expr = _expression(rng, target, 0)
        while len(expr) < min_len:  # extend to the drawn length
            expr += [int(rng.choice(_OPS))] + _term(rng, target - len(expr) - 1, 0)
        if len(expr) <= max_len and is_valid_tokens(expr):
            out[i, : len(expr)] = expr
            i += 1
    return out


def is_valid_tokens(tokens) -> bool:
    """Whether a token sequence is an expression followed only by padding (at least one character)."""
    toks = [int(t) for t in tokens]
    if PAD in toks:
        first = toks.index(PAD)
        if any(t != PAD for t in toks[first:]):
            return False
        toks = toks[:first]
    if not toks or any(t < 0 or t >= PAD for t in toks):
        return False
    pos = _parse_expression(toks, 0)
    return pos == len(toks)


def _parse_expression(toks, pos):
    pos = _parse_term(toks, pos)
    while pos is not None and pos < len(toks) and toks[pos] in _OPS:
        pos = _parse_term(toks, pos + 1)
    return pos


def _parse_term(toks, pos):
    if pos >= len(toks):
        return None
    if toks[pos] < 10:
        return pos + 1
    if toks[pos] == _OPEN:
        pos = _parse_expression(toks, pos + 1)
        if pos is None or pos >= len(toks) or toks[pos] != _CLOSE:
            return None
        return pos + 1
    return None


def is_valid(samples) -> np.ndarray:
    """[n] booleans: `is_valid_tokens` of each row of [n, L] token samples."""
    samples = np.asarray(samples)
    if samples.ndim != 2:
        raise ValueError(f"samples must be [n, L] tokens, got shape {samples.shape}")
    return np.array([is_valid_tokens(row) for row in samples], bool)


def decode(tokens) -> str:
    """The characters of a token sequence (padding dropped, other ids shown as '?')."""
    return "".join(CHARS[t] if 0 <= t < PAD else ("" if t == PAD else "?") for t in (int(x) for x in tokens))
