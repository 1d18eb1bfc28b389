"""Helpers shared by studies: result folders, versions, markdown tables."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path

import numpy as np

PACKAGES = ("jax", "jaxlib", "flax", "optax", "diffrax", "ott-jax", "chex", "pot")


def versions() -> dict:
    out = {"python": platform.python_version(), "machine": platform.machine()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def results_dir(path: str) -> Path:
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    return p


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, default=float))


def mean_std(values) -> str:
    v = np.asarray(values, float)
    return f"{v.mean():.3f} ± {v.std(ddof=1) if v.size > 1 else 0.0:.3f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def fit_line(x, y) -> tuple[float, float, float]:
    """Least-squares line y = a + b x: returns (b, half-width of its 95% interval, residual sum of squares)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    a = np.vstack([x, np.ones_like(x)]).T
    coef, res, *_ = np.linalg.lstsq(a, y, rcond=None)
    rss = float(res[0]) if res.size else float(np.sum((a @ coef - y) ** 2))
    dof = max(len(x) - 2, 1)
    se = np.sqrt(rss / dof / np.sum((x - x.mean()) ** 2))
    return float(coef[0]), float(1.96 * se), rss


def loglog_slope(ns, errs) -> tuple[float, float]:
    """Slope of log errs on log ns with its 95% interval half-width."""
    slope, ci, _ = fit_line(np.log(np.asarray(ns, float)), np.log(np.asarray(errs, float)))
    return slope, ci
