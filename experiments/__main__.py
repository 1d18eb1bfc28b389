"""`python -m experiments list | run NAME [--quick] [flags] | check [--strict] | ledger`."""

from __future__ import annotations

import sys

USAGE = """usage: python -m experiments COMMAND

  list                         every study and its declared claims
  run NAME [--quick] [flags]   run one study (`run NAME --help` lists its flags); explicit flags win over --quick
  check [--strict] [ROOT]      re-judge every stored result from its measurements; exit 1 where a stored verdict
                               disagrees (with --strict also where a result is stale)
  ledger [ROOT]                write CLAIMS.md from results/
"""


def _list() -> int:
    from experiments.pipeline import legacy_studies, rule_text, studies

    for name, s in studies().items():
        quick = ", ".join(f"{k}={v}" for k, v in s.quick.items())
        print(f"{name}: {s.description or s.config.__doc__ or ''}".strip())
        print(f"  --quick: {quick or '(same as full)'}")
        for c in s.claims:
            sel = f"  [{c.selection}]" if c.selection else ""
            print(f"  - {c.id}: {c.text}  ⇒  {rule_text(c.asdict())}{sel}")
    legacy = legacy_studies()
    if legacy:
        print("not yet on the pipeline (`python -m experiments.NAME`): " + ", ".join(legacy))
    return 0


def _check(args: list[str]) -> int:
    from pathlib import Path

    from experiments.pipeline import RESULTS, check

    strict = "--strict" in args
    rest = [a for a in args if a != "--strict"]
    findings = check(Path(rest[0]) if rest else RESULTS)
    bad = 0
    for f in findings:
        for e in f.errors:
            print(f"ERROR {f.path}: {e}")
        for s in f.stale:
            print(f"stale {f.path}: {s}")
        bad += bool(f.errors) or (strict and bool(f.stale))
    ok = sum(not f.errors and not f.stale for f in findings)
    print(
        f"{len(findings)} results: {ok} current, {sum(bool(f.stale) for f in findings)} stale, "
        f"{sum(bool(f.errors) for f in findings)} with a verdict that its measurements do not give"
    )
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "list":
        return _list()
    if cmd == "run":
        from experiments.pipeline import studies

        registry = studies()
        if rest and rest[0] in ("-h", "--help"):
            print(USAGE + "\nstudies: " + ", ".join(sorted(registry)))
            return 0
        if not rest or rest[0] not in registry:
            name = rest[0] if rest else ""
            print(f"unknown study {name!r}; choose from {sorted(registry)}", file=sys.stderr)
            return 2
        registry[rest[0]].main(rest[1:])
        return 0
    if cmd == "check":
        return _check(rest)
    if cmd == "ledger":
        from pathlib import Path

        from experiments.pipeline import RESULTS, write_ledger

        print(write_ledger(Path("CLAIMS.md"), Path(rest[0]) if rest else RESULTS))
        return 0
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
