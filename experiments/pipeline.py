"""The one study pipeline: configure, validate, run, judge the declared claims, record provenance, write atomically.

A study module declares

    STUDY = Study(name, config=MyConfig, run=run, claims=CLAIMS, quick={...}, validate=validate)

where `run(cfg, key) -> Output` composes jaxflow objects and returns named measurements, one value per seed (or one
value for a quantity measured once), plus its own table, figures and any other data worth keeping. The pipeline owns
the rest: flag validation before any compute, `--quick` (explicit flags win over it), float64 scoping, the command
line, seeds (the run's key is `jax.random.key(cfg.seed)`; the study folds in the seed index), judging the claims
(`experiments.claims.judge`), provenance and the files under `cfg.out_dir`:

    metrics.json   study, provenance (commit, dirty tree, versions, machine, start, end, wall time), config,
                   per-seed measurements, the study's data, and each claim as declared with its verdict
    table.md       the study's table, then the claims with their intervals and verdicts
    <figure>.png   one per figure

A long study splits its work into named units (`unit("seed 1/vp", fn)`, one model of one seed, say): each finished
unit is kept under `cfg.out_dir/.units/<fingerprint>/`, so a killed run started again on the same commit with the same
config takes the finished units from there and computes only the rest (the fingerprint is the study, the commit, the
uncommitted changes and the config; a run never reads another run's units). The folder goes once the results are
written; provenance lists the units taken from an earlier sitting and the seconds they cost there.

`check` re-judges every stored result from its stored measurements (a hand-edited verdict fails it) and flags stale
ones; `ledger` writes CLAIMS.md. The command line is `python -m experiments list | run NAME | check | ledger`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import importlib
import io
import json
import os
import pickle
import pkgutil
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from experiments.claims import Claim, check_declarations, judge
from experiments.common import StudyConfig, _fmt, markdown_table, require, versions, write_json
from jaxflow._io import atomic_write_bytes

SCHEMA = 2  # metrics.json written by this pipeline; results without "schema" are the legacy format
IGNORED_CONFIG_FIELDS = ("out_dir", "progress", "quick")
RESULTS = Path("results")


@dataclass
class Output:
    """What a study's `run` returns.

    measurements: name -> one value per seed (a list of length cfg.seeds), or a single value for a quantity the study
        measures once (a slope over a grid, a count); these are what the claims are judged on.
    table: the study's own results as markdown (the pipeline appends the claims).
    figures: name -> matplotlib Figure (saved as <name>.png).
    data: anything else JSON can hold (per-task summaries, curves) kept in metrics.json.
    """

    measurements: dict[str, Any]
    table: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Study:
    """A study: its config class, `run(cfg, key) -> Output`, its declared claims and its quick override.

    `quick` is the few-minutes version for people (`--quick`); `smoke` (on top of quick) is the under-a-minute
    version the test suite runs end to end.
    """

    name: str
    config: type
    run: Callable[[Any, Any], Output]
    claims: tuple[Claim, ...]
    quick: Mapping[str, Any] = field(default_factory=dict)
    smoke: Mapping[str, Any] = field(default_factory=dict)
    validate: Callable[[Any], None] | None = None
    x64: bool = False
    description: str = ""

    def __post_init__(self):
        object.__setattr__(self, "claims", tuple(self.claims))
        check_declarations(self.claims)
        fields = {f.name for f in dataclasses.fields(self.config)}
        for kind, over in (("quick", self.quick), ("smoke", self.smoke)):
            unknown = set(over) - fields
            if unknown:
                raise ValueError(f"study {self.name}: {kind} overrides unknown fields {sorted(unknown)}")
        if not issubclass(self.config, StudyConfig):
            raise TypeError(f"study {self.name}: its config must subclass StudyConfig")

    def configure(self, quick: bool = False, **overrides):
        """The study's config: defaults, then (quick) the quick override, then explicit `overrides`, which win."""
        base = {"out_dir": str(RESULTS / self.name)}
        if quick:
            base.update(self.quick)
            base["out_dir"] = str(RESULTS / self.name / "quick")
            base["quick"] = True
        base.update(overrides)
        return self.config(**base)

    def execute(self, cfg=None, **overrides) -> Path:
        """Run with `cfg` (default: `configure(**overrides)`) and write the results; returns the folder."""
        return execute(self, cfg if cfg is not None else self.configure(**overrides))

    def main(self, argv: Sequence[str] | None = None) -> Path:
        """The command line of this study (`python -m experiments.NAME` and `python -m experiments run NAME`)."""
        from experiments.common import ConfigError

        try:
            return execute(self, parse_config(self, list(sys.argv[1:] if argv is None else argv)))
        except ConfigError as e:
            raise SystemExit(f"error: {e}") from None


# ---- configuration from the command line ----
def parse_config(study: Study, argv: list[str]):
    """tyro over the study's config; with `--quick` the quick override is the default, so explicit flags win."""
    import tyro

    quick = "--quick" in argv
    default = study.configure(quick=quick)
    return tyro.cli(study.config, default=default, args=argv, prog=f"python -m experiments run {study.name}")


def n_seeds(cfg) -> int:
    """The number of seeds of a run (a study without a `seeds` field runs once)."""
    return getattr(cfg, "seeds", 1)


def validate_common(cfg) -> None:
    """The fields every study has, checked before any compute; errors name the flag."""
    for name in ("seed",):
        v = getattr(cfg, name)
        require(isinstance(v, int) and not isinstance(v, bool) and v >= 0, name, v, "must be an integer >= 0")
    v = n_seeds(cfg)
    require(isinstance(v, int) and not isinstance(v, bool) and v >= 1, "seeds", v, "must be a positive integer")
    out = Path(cfg.out_dir)
    for parent in [out, *out.parents]:
        if parent.exists():
            require(parent.is_dir(), "out_dir", cfg.out_dir, f"{parent} exists and is not a folder")
            require(os.access(parent, os.W_OK), "out_dir", cfg.out_dir, f"{parent} is not writable")
            break


# ---- provenance ----
def _git(*args: str, cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=30, cwd=cwd or _repo_root())
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def git_state() -> dict:
    """The commit and whether the tree had changes outside results/ and CLAIMS.md."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--", ".", ":(exclude)results", ":(exclude)CLAIMS.md")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def machine() -> dict:
    import jax

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "devices": [str(d) for d in jax.devices()],
    }


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ---- resumable units ----
class UnitStore:
    """The finished units of one run (study, commit, uncommitted changes, config), kept on disk so that a killed run
    resumes where it stopped. `run(name, fn)` returns the kept result of `name` or computes, keeps and returns fn()."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.resumed: dict[str, float] = {}  # unit -> seconds it took in the sitting that computed it
        self.computed: list[str] = []

    def _path(self, name: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_.=" else "_" for c in name)
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]  # distinct names never share a file
        return self.folder / f"{safe}-{digest}.pkl"

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        if name in self.resumed or name in self.computed:
            raise ValueError(f"unit {name!r} ran twice in one run: unit names must be unique")
        path = self._path(name)
        if path.exists():
            with open(path, "rb") as fh:
                kept = pickle.load(fh)
            self.resumed[name] = kept["seconds"]
            print(f"  unit {name!r}: taken from an earlier sitting ({kept['seconds']:.0f} s there)", flush=True)
            return kept["value"]
        t0 = time.perf_counter()
        value = fn()
        value = _to_host(value)
        data = pickle.dumps({"name": name, "seconds": time.perf_counter() - t0, "value": value})
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
        self.computed.append(name)
        return value

    def discard(self) -> None:
        """Remove this run's units (after its results are written); other runs' units are left alone."""
        if self.folder.exists():
            shutil.rmtree(self.folder)
        parent = self.folder.parent
        if parent.exists() and not any(parent.iterdir()):
            parent.rmdir()


def _to_host(value):
    """Device arrays -> numpy, so that a kept unit does not pin a device or a backend (dict order is kept)."""
    import jax

    if isinstance(value, jax.Array):
        return np.asarray(value)
    if isinstance(value, dict):
        return type(value)((k, _to_host(v)) for k, v in value.items())
    if isinstance(value, list | tuple) and not hasattr(value, "_fields"):
        return type(value)(_to_host(v) for v in value)
    return value


_STORE: UnitStore | None = None


def unit(name: str, fn: Callable[[], Any]) -> Any:
    """fn() as a resumable unit of the running study (see the module docstring); outside a run it is just fn().

    The unit's result must not depend on anything but the run's config and key (it is reused by the rerun of a
    killed run); device arrays in it come back as numpy arrays.
    """
    return fn() if _STORE is None else _STORE.run(name, fn)


def run_fingerprint(study: Study, cfg, git: Mapping) -> str | None:
    """What identifies a run for resuming: the study, the commit, the uncommitted changes and the config. None when
    the commit is unknown (then nothing is kept: the code that made a unit could not be told apart)."""
    if not git.get("commit"):
        return None
    diff = _git("diff", "HEAD", "--", ".", ":(exclude)results", ":(exclude)CLAIMS.md") if git.get("dirty") else ""
    text = json.dumps(
        {"study": study.name, "commit": git["commit"], "diff": diff, "config": config_dict(cfg), "x64": study.x64},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---- running ----
def _check_measurements(study: Study, cfg, measurements: Mapping) -> dict:
    out = {}
    for name, v in measurements.items():
        arr = np.atleast_1d(np.asarray(v, dtype=float))
        if arr.ndim != 1 or arr.size not in (1, n_seeds(cfg)):
            raise ValueError(
                f"study {study.name}: measurement {name!r} has {arr.size} values; "
                f"expected one per seed ({n_seeds(cfg)}) or a single value"
            )
        out[name] = arr.tolist()
    return out


def config_dict(cfg) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def execute(study: Study, cfg) -> Path:
    """Validate, run, judge and write. Nothing is written before the run has finished."""
    import jax

    if not isinstance(cfg, study.config):
        raise TypeError(f"study {study.name} takes a {study.config.__name__}, got {type(cfg).__name__}")
    validate_common(cfg)
    if study.validate is not None:
        study.validate(cfg)
    start, t0 = _now(), time.perf_counter()
    git = git_state()
    label = "quick" if cfg.quick else "full"
    print(f"[{study.name}] {label} run, {n_seeds(cfg)} seed(s) from {cfg.seed}, results to {cfg.out_dir}/", flush=True)
    key = jax.random.key(cfg.seed)
    global _STORE
    fingerprint = run_fingerprint(study, cfg, git)
    store = None if fingerprint is None else UnitStore(Path(cfg.out_dir) / ".units" / fingerprint)
    _STORE = store
    try:
        if study.x64:
            with jax.enable_x64(True):
                out = study.run(cfg, key)
        else:
            out = study.run(cfg, key)
    finally:
        _STORE = None
    if not isinstance(out, Output):
        raise TypeError(f"study {study.name}: run must return an Output, got {type(out).__name__}")
    measurements = _check_measurements(study, cfg, out.measurements)
    verdicts = [judge(c, measurements) for c in study.claims]
    record = {
        "schema": SCHEMA,
        "study": study.name,
        "provenance": {
            **git,
            "quick": bool(cfg.quick),
            "seed": cfg.seed,
            "seeds": n_seeds(cfg),
            "versions": versions(),
            "machine": machine(),
            "start": start,
            "end": _now(),
            "wall_s": round(time.perf_counter() - t0, 1),
            "resumed_units": sorted(store.resumed) if store else [],
            "resumed_seconds": round(sum(store.resumed.values()), 1) if store else 0.0,
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
        },
        "config": config_dict(cfg),
        "measurements": measurements,
        "data": out.data,
        "claims": [{**c.asdict(), "verdict": v.asdict()} for c, v in zip(study.claims, verdicts)],
    }
    folder = write(study, cfg, out, record)
    if store is not None:
        store.discard()
    held = sum(v.holds for v in verdicts)
    print(f"[{study.name}] {held} of {len(verdicts)} claims hold; written to {folder}/", flush=True)
    return folder


def write(study: Study, cfg, out: Output, record: dict) -> Path:
    folder = Path(cfg.out_dir)
    # render everything first, so a failure leaves the earlier files as they were
    pngs = {}
    for name, fig in out.figures.items():
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        pngs[name] = buf.getvalue()
    body = out.table.strip()
    head = "" if body.startswith("# ") else f"# {study.name}\n\n"
    table = head + body + "\n\n" + claims_table(record) + provenance_line(record)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in pngs.items():
        atomic_write_bytes(folder / f"{name}.png", data)
    atomic_write_bytes(folder / "table.md", table.encode())
    write_json(folder / "metrics.json", record)  # last: its presence marks a complete result
    return folder


# ---- tables ----
def _num(x) -> str:
    return "—" if x is None else f"{x:.4g}"


def verdict_text(claim: Mapping, verdict: Mapping) -> str:
    if verdict["status"] == "not measured":
        return "not measured"
    est = _num(verdict["estimate"])
    if verdict["basis"] == "interval":
        return f"{est} [{_num(verdict['low'])}, {_num(verdict['high'])}] (n={verdict['n']})"
    return f"{est} (n={verdict['n']}, point)"


def rule_text(claim: Mapping) -> str:
    from experiments.claims import quantity_from_dict

    q = quantity_from_dict(claim["quantity"]).describe()
    return f"{q} {claim['direction']} {_fmt(claim['threshold'])}"


def claims_table(record: Mapping) -> str:
    rows = []
    for c in record["claims"]:
        v = c["verdict"]
        status = v["status"] if v["status"] != "does not hold" else "**does not hold**"
        paper = f"{c['paper_value']} ({c['paper']})" if c.get("paper_value") else (c["paper"] or "—")
        rows.append([f"{c['text']} `{c['id']}`", paper, rule_text(c), verdict_text(c, v), status])
    if not rows:
        return ""
    head = ["claim", "paper", "rule (declared before the run)", "ours: estimate [95% interval]", "verdict"]
    return "## Claims\n\n" + markdown_table(head, rows)


def provenance_line(record: Mapping) -> str:
    p = record["provenance"]
    commit = (p["commit"] or "no commit")[:10] + (" (dirty tree)" if p.get("dirty") else "")
    kind = "quick" if p["quick"] else "full"
    seeds = f"{p['seed']}…{p['seed'] + p['seeds'] - 1}"
    earlier = p.get("resumed_seconds") or 0
    wall = f"{p['wall_s']:.0f} s" + (f" (+ {earlier:.0f} s in earlier sittings)" if earlier else "")
    return f"\n{kind} run, commit {commit}, seeds {seeds}, {wall}, {p['end']}\n"


# ---- the registry ----
def studies() -> dict[str, Study]:
    """Every study module of experiments/ that declares a STUDY, by name."""
    import experiments

    out = {}
    for m in sorted(pkgutil.iter_modules(experiments.__path__), key=lambda m: m.name):
        if m.name in ("common", "claims", "pipeline", "__main__"):
            continue
        mod = importlib.import_module(f"experiments.{m.name}")
        s = getattr(mod, "STUDY", None)
        if isinstance(s, Study):
            out[s.name] = s
    return out


def legacy_studies() -> list[str]:
    """Study modules not yet on the pipeline (they have `run(cfg)` and write their own files)."""
    import experiments

    names = []
    for m in pkgutil.iter_modules(experiments.__path__):
        if m.name in ("common", "claims", "pipeline", "__main__"):
            continue
        mod = importlib.import_module(f"experiments.{m.name}")
        if not isinstance(getattr(mod, "STUDY", None), Study):
            names.append(m.name)
    return sorted(names)


# ---- check ----
@dataclass
class Finding:
    path: str
    study: str
    errors: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    record: dict | None = None


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool(np.isclose(a, b, rtol=1e-9, atol=1e-12))


def check_record(path: Path, record: dict, registry: Mapping[str, Study], head: str | None = "HEAD") -> Finding:
    """Re-judge one stored result; errors where a stored verdict disagrees, stale reasons otherwise."""
    name = record.get("study", path.parent.name)
    f = Finding(str(path), name, record=record)
    if record.get("schema") != SCHEMA:
        f.stale.append("legacy result: written by the study itself, verdicts computed by hand (not judged)")
        return f
    for c in record["claims"]:
        try:
            claim = Claim.fromdict({k: v for k, v in c.items() if k != "verdict"})
        except (TypeError, ValueError, KeyError) as e:
            f.errors.append(f"claim {c.get('id')!r}: malformed declaration ({e})")
            continue
        fresh, stored = judge(claim, record["measurements"]), c["verdict"]
        same = fresh.status == stored.get("status") and all(
            _close(getattr(fresh, k), stored.get(k)) for k in ("estimate", "low", "high")
        )
        if not same:
            f.errors.append(
                f"claim {claim.id!r}: stored verdict {stored.get('status')!r} "
                f"({_num(stored.get('estimate'))}) but its measurements give {fresh.status!r} ({_num(fresh.estimate)})"
            )
    p = record["provenance"]
    if not p.get("commit"):
        f.stale.append("no commit recorded")
    elif head is not None and _git("merge-base", "--is-ancestor", p["commit"], head) is None:
        f.stale.append(f"commit {p['commit'][:10]} is not an ancestor of {head}")
    if p.get("dirty"):
        f.stale.append("run from a tree with uncommitted changes")
    study = registry.get(name)
    if study is None:
        f.stale.append(f"no study named {name!r} any more")
        return f
    current = config_dict(study.configure(quick=p["quick"]))
    stored = record["config"]
    diff = sorted(
        k for k in set(current) | set(stored) if k not in IGNORED_CONFIG_FIELDS and current.get(k) != stored.get(k)
    )
    if diff:
        f.stale.append("config differs from the study's current defaults: " + ", ".join(diff))
    declared = {c.id: c.asdict() for c in study.claims}
    ran = {c["id"]: {k: v for k, v in c.items() if k != "verdict"} for c in record["claims"]}
    changed = sorted(i for i in declared if i in ran and json.dumps(declared[i]) != json.dumps(ran[i]))
    missing = sorted(set(declared) - set(ran))
    if changed:
        f.stale.append("claims declared differently now: " + ", ".join(changed))
    if missing:
        f.stale.append("claims declared since the run: " + ", ".join(missing))
    return f


def result_paths(root: Path = RESULTS) -> list[Path]:
    root = Path(root)
    return sorted([*root.glob("*/metrics.json"), *root.glob("*/quick/metrics.json")])


def check(
    root: Path = RESULTS, head: str | None = "HEAD", registry: Mapping[str, Study] | None = None
) -> list[Finding]:
    registry = studies() if registry is None else registry
    out = []
    for path in result_paths(root):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            out.append(Finding(str(path), path.parent.name, errors=[f"unreadable: {e}"]))
            continue
        out.append(check_record(path, record, registry, head))
    return out


# ---- ledger ----
def ledger(root: Path = RESULTS, head: str | None = "HEAD", registry: Mapping[str, Study] | None = None) -> str:
    """CLAIMS.md: every declared claim of every study, from the full runs under `root`."""
    registry = studies() if registry is None else registry
    findings = {f.path: f for f in check(root, head, registry)}
    lines = [
        "# Claims ledger",
        "",
        "Generated by `python -m experiments ledger` from results/ (do not edit by hand; `python -m experiments check`",
        "re-judges every stored verdict). Each claim was declared before its run: the quantity, the direction and the",
        "threshold. With three or more seeds the 95% interval over seeds decides; with fewer, the point estimate",
        "(marked).",
        "A result is **stale** when its commit is not an ancestor of this one, its tree was dirty, its config differs",
        "from the study's current defaults, or its claims were declared differently since.",
        "",
    ]
    counts = {"holds": 0, "does not hold": 0, "not measured": 0, "stale": 0, "not run": 0}
    body, summary_rows = [], []
    for name, study in registry.items():
        before = dict(counts)
        path = Path(root) / name / "metrics.json"
        f = findings.get(str(path))
        body += [f"## {name}", ""]
        if study.description:
            body += [study.description, ""]
        if f is None or f.record is None or f.record.get("schema") != SCHEMA:
            reason = "no full run on the pipeline yet" if f is None or f.record is None else f.stale[0]
            body += [f"No full result: {reason}. Run `python -m experiments run {name}`.", ""]
        else:
            p = f.record["provenance"]
            body += [
                f"Full run at commit `{(p['commit'] or '?')[:10]}`, {p['seeds']} seed(s), {p['wall_s']:.0f} s, "
                f"{p['end']}; [table](results/{name}/table.md)."
                + (" **Stale**: " + "; ".join(f.stale) + "." if f.stale else ""),
                "",
            ]
        stored = {}
        if f is not None and f.record is not None and f.record.get("schema") == SCHEMA:
            stored = {c["id"]: c for c in f.record["claims"]}
        rows = []
        for c in study.claims:
            d = c.asdict()
            paper = f"{c.paper_value} ({c.paper})" if c.paper_value else (c.paper or "—")
            s = stored.get(c.id)
            if s is None:
                ours, status = "—", "not run"
            else:
                ours = verdict_text(s, s["verdict"])
                status = s["verdict"]["status"]
                if f.stale:
                    status = f"stale ({status})"
            counts["stale" if status.startswith("stale") else status] += 1
            sel = f" — {c.selection}" if c.selection else ""
            rows.append([f"{c.text}{sel} `{c.id}`", paper, rule_text(d), ours, status])
        if rows:
            body.append(markdown_table(["claim", "paper", "rule", "ours [95% interval]", "verdict"], rows))
        got = {k: counts[k] - before[k] for k in counts}
        if f is not None and f.record is not None and f.record.get("schema") == SCHEMA:
            p = f.record["provenance"]
            run = f"`{(p['commit'] or '?')[:7]}`, {p['seeds']} seed(s)" + (" (stale)" if f.stale else "")
        else:
            run = "not yet"
        summary_rows.append(
            [
                f"[{name}](#{name})",
                run,
                len(study.claims),
                got["holds"],
                got["does not hold"],
                got["not run"] + got["stale"] + got["not measured"],
            ]
        )
    legacy = legacy_studies()
    if legacy:
        body += [
            "## Studies not yet on the pipeline",
            "",
            "Their results/ folders hold verdicts computed by the study itself after the run; not counted here: "
            + ", ".join(legacy)
            + ".",
            "",
        ]
    summary = ", ".join(f"{v} {k}" for k, v in counts.items())
    lines += [f"**{sum(counts.values())} claims**: {summary}.", ""]
    lines.append(
        markdown_table(
            ["study", "full run on the pipeline", "claims", "hold", "do not hold", "not run, stale or not measured"],
            summary_rows,
        )
    )
    return "\n".join(lines + body).rstrip() + "\n"


def write_ledger(path: Path = Path("CLAIMS.md"), root: Path = RESULTS) -> Path:
    atomic_write_bytes(Path(path), ledger(root).encode())
    return Path(path)
