"""Prepare the documentation site's generated pages under docs/gen/ (not committed), then `mkdocs build --strict`.

Generated: the API reference (one page per room, one entry per public name, from each room's `__all__`), the claims
ledger and the benchmarks (CLAIMS.md and BENCHMARKS.md with their links pointed at site pages), one page per study
(results/<study>/table.md with its figures), and the notebooks, rendered without re-executing: the copies the
notebook tests executed and saved under build/notebooks/ when they are newer than the source, else the source
without outputs. `make docs` runs `python -m tools.build_docs`; `--prepare-only` stops before mkdocs.
"""

from __future__ import annotations

import argparse
import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GEN = ROOT / "docs" / "gen"

ROOM_TITLES = {
    "paths": "Paths and schedulers",
    "couplings": "Couplings",
    "losses": "Losses",
    "nn": "Networks",
    "sampling": "Sampling",
    "manifolds": "Manifolds",
    "ot": "Optimal-transport toolbox",
    "dynamics": "Attention dynamics",
    "metrics": "Metrics",
    "data": "Data",
    "shapes": "Shapes",
    "train": "Training",
}


def rooms() -> list[str]:
    import jaxflow

    return [n for n in jaxflow.__all__ if n in ROOM_TITLES]


def public_names(room: str) -> list[str]:
    mod = importlib.import_module(f"jaxflow.{room}")
    return list(mod.__all__)


def api_pages(out: Path) -> dict[str, list[str]]:
    """docs/gen/api/<room>.md for every room, and index.md; returns {room: names}."""
    import jaxflow

    out.mkdir(parents=True, exist_ok=True)
    documented = {}
    index = ["# API reference\n", "Every public name of jaxflow, room by room (the guides describe the rooms).\n"]
    top = [n for n in jaxflow.__all__ if n not in ROOM_TITLES]
    index.append("## The top level\n")
    index.append(
        "`import jaxflow as jf` gives the rooms and these shorthands: " + ", ".join(f"`jf.{n}`" for n in top) + ".\n"
    )
    for n in top:
        index.append(f"::: jaxflow.{n}\n    options:\n      heading_level: 3\n")
    documented["jaxflow"] = top
    index.append("## Rooms\n")
    for room in rooms():
        names = public_names(room)
        documented[room] = names
        mod = importlib.import_module(f"jaxflow.{room}")
        doc = (mod.__doc__ or "").strip()
        lines = [f"# `jaxflow.{room}`: {ROOM_TITLES[room]}\n", doc + "\n" if doc else ""]
        for name in names:
            obj = getattr(mod, name)
            if isinstance(obj, type(sys)):  # a submodule re-exported as a name (jaxflow.data.language)
                lines.append(f"## `{room}.{name}`\n\n::: {obj.__name__}\n    options:\n      heading_level: 3\n")
            else:
                lines.append(f"::: jaxflow.{room}.{name}\n    options:\n      heading_level: 2\n")
        (out / f"{room}.md").write_text("\n".join(lines))
        index.append(f"- [`jaxflow.{room}`]({room}.md): {ROOM_TITLES[room]} ({len(names)} names)")
    (out / "index.md").write_text("\n".join(index) + "\n")
    return documented


def study_pages(out: Path) -> list[str]:
    """docs/gen/studies/<name>.md from results/<name>/table.md, with the study's figures beside it."""
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for table in sorted((ROOT / "results").glob("*/table.md")):
        name = table.parent.name
        text = table.read_text()
        figures = sorted(table.parent.glob("*.png"))
        for fig in figures:
            shutil.copy2(fig, out / f"{name}__{fig.name}")
        text = re.sub(r"\]\((?!https?://)([^)]+\.png)\)", lambda m, n=name: f"]({n}__{Path(m.group(1)).name})", text)
        if figures:
            text += "\n\n## Figures\n\n" + "\n\n".join(f"![{f.stem}]({name}__{f.name})" for f in figures) + "\n"
        (out / f"{name}.md").write_text(text)
        names.append(name)
    index = [
        "# Studies\n",
        "Each study's table and figures as its last full (or quick) run left them in results/; the "
        "[claims ledger](../claims.md) judges them.\n",
    ]
    index += [f"- [{n}]({n}.md)" for n in names]
    (out / "index.md").write_text("\n".join(index) + "\n")
    return names


def ledger_pages(out: Path, studies: list[str]) -> None:
    """claims.md and benchmarks.md: the top-level files with links pointed at site pages."""
    claims = (ROOT / "CLAIMS.md").read_text()
    claims = re.sub(
        r"\(results/([^/)]+)/table\.md\)",
        lambda m: f"(studies/{m.group(1)}.md)" if m.group(1) in studies else f"(#{m.group(1)})",
        claims,
    )
    (out / "claims.md").write_text(claims)
    bench = (ROOT / "BENCHMARKS.md").read_text()
    (out / "benchmarks.md").write_text(_unlink_outside(bench))


def _unlink_outside(text: str) -> str:
    """Relative links to files outside the site (source files, results JSON) become plain code spans."""
    return re.sub(r"\[([^\]]+)\]\((?!https?://|#)([^)]+)\)", r"\1 (`\2`)", text)


def notebook_pages(out: Path) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    names = []
    executed = ROOT / "build" / "notebooks"  # written by the notebook tests (make test-all runs them all)
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        done = executed / nb.name
        fresh = done.exists() and done.stat().st_mtime >= nb.stat().st_mtime
        shutil.copy2(done if fresh else nb, out / nb.name)
        names.append(nb.name)
    return names


def prepare() -> dict:
    if GEN.exists():
        shutil.rmtree(GEN)
    GEN.mkdir(parents=True)
    documented = api_pages(GEN / "api")
    studies = study_pages(GEN / "studies")
    ledger_pages(GEN, studies)
    notebooks = notebook_pages(GEN / "notebooks")
    return {"api": documented, "studies": studies, "notebooks": notebooks}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepare-only", action="store_true")
    args = ap.parse_args(argv)
    info = prepare()
    n = sum(len(v) for v in info["api"].values())
    print(f"docs/gen: {n} public names, {len(info['studies'])} study pages, {len(info['notebooks'])} notebooks")
    if args.prepare_only:
        return 0
    return subprocess.call([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml")])


if __name__ == "__main__":
    raise SystemExit(main())
