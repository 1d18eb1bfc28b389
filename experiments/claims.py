"""Claims as data, and the one engine that judges them.

A study declares its claims before it runs: the words, the paper and its number, the quantity measured per seed (one
measurement, or a paired difference, ratio or declared best-of of several), the direction and the threshold. The
pipeline (`experiments.pipeline`) stores the per-seed measurements of every run and calls `judge`; no study code
computes a verdict.

The decision rule: with n ≥ 3 values the two-sided 95% Student-t interval of the mean must clear the threshold (for
"<" its upper end is below it, for ">" its lower end above it); with fewer values (one or two seeds, or a quantity the
study measures once, such as a convergence slope over a grid) the point estimate decides and the table says so.

Quantities compose: `Diff(Measure("a"), Measure("b"))` is paired (per seed a − b, so seed-to-seed variation common to
both cancels) unless `paired=False` (Welch interval of the difference of means). `Ratio` is the paired per-seed ratio,
or, unpaired, the ratio of means with a delta-method interval on its logarithm. `BestOf` takes per seed the best of k
declared quantities; it is the only selection the engine knows, and the ledger prints it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DIRECTIONS = ("<", ">")
STATUSES = ("holds", "does not hold", "not measured")


class NotMeasured(LookupError):
    """A quantity names a measurement the run did not make (e.g. a method left out of a quick run)."""


# ---- quantities ----
@dataclass(frozen=True)
class Measure:
    """One named measurement, a value per seed (or a single value the study measures once)."""

    name: str

    def values(self, m: Mapping[str, Sequence[float]]) -> np.ndarray:
        if self.name not in m:
            raise NotMeasured(self.name)
        return np.atleast_1d(np.asarray(m[self.name], dtype=float))

    def describe(self) -> str:
        return self.name

    def names(self) -> tuple[str, ...]:
        return (self.name,)


def _as_quantity(q) -> Any:
    return Measure(q) if isinstance(q, str) else q


def _paired(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what}: paired quantities need one value per seed each, got {a.size} and {b.size}")


@dataclass(frozen=True)
class _Pair:
    """A quantity combining two others, per seed when `paired` (the default)."""

    a: Any
    b: Any
    paired: bool = True
    symbol = ""  # and a static `combine(a, b)`, set by each subclass

    def __post_init__(self):
        object.__setattr__(self, "a", _as_quantity(self.a))
        object.__setattr__(self, "b", _as_quantity(self.b))

    def values(self, m):
        a, b = self.a.values(m), self.b.values(m)
        if not self.paired:
            raise TypeError("an unpaired quantity has no per-seed values; the engine judges it from both samples")
        _paired(a, b, self.describe())
        return self.combine(a, b)

    def describe(self) -> str:
        def operand(q):  # a combined operand keeps its brackets: (a − b) − (c − d), not a − b − c − d
            return f"({q.describe()})" if isinstance(q, _Pair) else q.describe()

        return f"{operand(self.a)} {self.symbol} {operand(self.b)}" + ("" if self.paired else " (unpaired)")

    def names(self):
        return self.a.names() + self.b.names()


@dataclass(frozen=True)
class Diff(_Pair):
    """a − b; paired per seed by default."""

    symbol = "−"

    @staticmethod
    def combine(a, b):
        return a - b


@dataclass(frozen=True)
class Ratio(_Pair):
    """a / b; paired per seed by default."""

    symbol = "/"

    @staticmethod
    def combine(a, b):
        return a / b


@dataclass(frozen=True)
class BestOf:
    """Per seed, the smallest (`best="min"`) or largest of k quantities: a selection declared before the run."""

    options: tuple
    best: str = "min"

    def __post_init__(self):
        object.__setattr__(self, "options", tuple(_as_quantity(q) for q in self.options))
        if self.best not in ("min", "max"):
            raise ValueError(f"best must be 'min' or 'max', got {self.best!r}")
        if len(self.options) < 2:
            raise ValueError("BestOf needs at least two options")

    def values(self, m):
        vals = [q.values(m) for q in self.options]
        for v in vals[1:]:
            _paired(vals[0], v, self.describe())
        stack = np.stack(vals)
        return stack.min(0) if self.best == "min" else stack.max(0)

    def describe(self) -> str:
        return f"{self.best} of ({', '.join(q.describe() for q in self.options)})"

    def names(self):
        return tuple(n for q in self.options for n in q.names())

    @property
    def k(self) -> int:
        return len(self.options)


# ---- the claim ----
@dataclass(frozen=True)
class Claim:
    """A claim of a paper, declared before the run.

    id: short name, unique within the study (the ledger's key).
    text: the claim in words.
    quantity: what is measured (a measurement name, `Measure`, `Diff`, `Ratio`, `BestOf`).
    direction, threshold: the claim holds when the quantity is `<` (or `>`) the threshold.
    paper: the reference (authors, year, arXiv id, table or figure); paper_value: the paper's own number, as text.
    level: the confidence level of the interval.
    note: why the protocol differs from the paper's, where it does.
    """

    id: str
    text: str
    quantity: Any
    direction: str
    threshold: float
    paper: str = ""
    paper_value: str | None = None
    level: float = 0.95
    note: str = ""

    def __post_init__(self):
        object.__setattr__(self, "quantity", _as_quantity(self.quantity))
        if self.direction not in DIRECTIONS:
            raise ValueError(f"claim {self.id!r}: direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if not (isinstance(self.threshold, int | float) and math.isfinite(self.threshold)):
            raise ValueError(f"claim {self.id!r}: threshold must be a finite number, got {self.threshold!r}")
        if not 0 < self.level < 1:
            raise ValueError(f"claim {self.id!r}: level must lie in (0, 1), got {self.level!r}")

    @property
    def selection(self) -> str:
        """'' or the declared selection, e.g. 'best of 3 (declared)'."""
        q = self.quantity
        parts = [q] + [getattr(q, "a", None), getattr(q, "b", None)]
        for p in parts:
            if isinstance(p, BestOf):
                return f"best of {p.k} (declared)"
        return ""

    def asdict(self) -> dict:
        return {
            "id": self.id,
            "text": self.text,
            "quantity": quantity_to_dict(self.quantity),
            "direction": self.direction,
            "threshold": float(self.threshold),
            "paper": self.paper,
            "paper_value": self.paper_value,
            "level": self.level,
            "note": self.note,
        }

    @classmethod
    def fromdict(cls, d: Mapping) -> Claim:
        d = dict(d)
        d["quantity"] = quantity_from_dict(d["quantity"])
        return cls(**d)


def quantity_to_dict(q) -> dict:
    if isinstance(q, Measure):
        return {"measure": q.name}
    if isinstance(q, Diff | Ratio):
        return {type(q).__name__.lower(): [quantity_to_dict(q.a), quantity_to_dict(q.b)], "paired": q.paired}
    if isinstance(q, BestOf):
        return {"best_of": [quantity_to_dict(o) for o in q.options], "best": q.best}
    raise TypeError(f"not a quantity: {q!r}")


def quantity_from_dict(d: Mapping):
    if "measure" in d:
        return Measure(d["measure"])
    if "diff" in d:
        return Diff(*(quantity_from_dict(x) for x in d["diff"]), paired=d["paired"])
    if "ratio" in d:
        return Ratio(*(quantity_from_dict(x) for x in d["ratio"]), paired=d["paired"])
    if "best_of" in d:
        return BestOf(tuple(quantity_from_dict(x) for x in d["best_of"]), best=d["best"])
    raise ValueError(f"not a stored quantity: {d!r}")


# ---- the verdict ----
@dataclass(frozen=True)
class Verdict:
    status: str
    estimate: float | None = None
    low: float | None = None
    high: float | None = None
    n: int = 0
    basis: str = ""  # "interval" or "point (n < 3)"
    reason: str = ""
    values: list = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return self.status == "holds"

    def asdict(self) -> dict:
        return dataclasses.asdict(self)


def _t_quantile(level: float, dof: float) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.5 + level / 2, dof))


def _mean_interval(v: np.ndarray, level: float) -> tuple[float, float, float]:
    mean = float(v.mean())
    if v.size < 2:
        return mean, mean, mean
    half = _t_quantile(level, v.size - 1) * float(v.std(ddof=1)) / math.sqrt(v.size)
    return mean, mean - half, mean + half


def _welch(a: np.ndarray, b: np.ndarray, level: float) -> tuple[float, float, float, float]:
    """(difference of means, low, high, dof) by Welch's interval."""
    est = float(a.mean() - b.mean())
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        return est, est, est, float(a.size + b.size - 2)
    dof = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = _t_quantile(level, dof) * se
    return est, est - half, est + half, dof


def judge(claim: Claim, measurements: Mapping[str, Sequence[float]]) -> Verdict:
    """The verdict of a declared claim on stored per-seed measurements."""
    q = claim.quantity
    try:
        if isinstance(q, Diff | Ratio) and not q.paired:
            a, b = q.a.values(measurements), q.b.values(measurements)
            n = int(min(a.size, b.size))
            values = []
            if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
                return Verdict("does not hold", n=n, reason="non-finite measurement")
            if isinstance(q, Diff):
                if n >= 3:
                    est, lo, hi, _ = _welch(a, b, claim.level)
                else:
                    est = lo = hi = float(a.mean() - b.mean())
            else:
                if np.any(a <= 0) or np.any(b <= 0):
                    return Verdict("does not hold", n=n, reason="an unpaired ratio needs positive values")
                est = float(a.mean() / b.mean())
                lo = hi = est
                if n >= 3:
                    # delta method on log(mean a / mean b)
                    se = math.sqrt(a.var(ddof=1) / (a.size * a.mean() ** 2) + b.var(ddof=1) / (b.size * b.mean() ** 2))
                    half = _t_quantile(claim.level, min(a.size, b.size) - 1) * se
                    lo, hi = est * math.exp(-half), est * math.exp(half)
        else:
            v = q.values(measurements)
            n, values = int(v.size), v.tolist()
            if not np.all(np.isfinite(v)):
                return Verdict("does not hold", n=n, reason="non-finite measurement", values=values)
            est, lo, hi = _mean_interval(v, claim.level)
    except NotMeasured as e:
        return Verdict("not measured", reason=f"no measurement {e.args[0]!r} in this run")
    basis = "interval" if n >= 3 else "point (n < 3)"
    decide_lo, decide_hi = (lo, hi) if n >= 3 else (est, est)
    ok = decide_hi < claim.threshold if claim.direction == "<" else decide_lo > claim.threshold
    return Verdict(
        "holds" if ok else "does not hold",
        estimate=float(est),
        low=float(lo),
        high=float(hi),
        n=n,
        basis=basis,
        values=values,
    )


def check_declarations(claims: Sequence[Claim]) -> None:
    """Ids are unique; raises ValueError naming the first repeated id."""
    seen = set()
    for c in claims:
        if not isinstance(c, Claim):
            raise TypeError(f"a study's claims must be Claim objects, got {type(c).__name__}")
        if c.id in seen:
            raise ValueError(f"claim id {c.id!r} is declared twice")
        seen.add(c.id)
