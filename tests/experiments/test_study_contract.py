"""Every study can be imported in a notebook without side effects, and shares the one results writer."""

import importlib
import pkgutil
import subprocess
import sys

import pytest

import experiments


@pytest.mark.slow
def test_importing_studies_does_not_switch_the_matplotlib_backend():
    code = (
        "import matplotlib; matplotlib.use('svg'); import importlib, pkgutil, experiments\n"
        "for m in pkgutil.iter_modules(experiments.__path__): importlib.import_module('experiments.' + m.name)\n"
        "print(matplotlib.get_backend())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip().splitlines()[-1] == "svg"


SHARED = ("common", "claims", "pipeline", "__main__")


def study_modules():
    return [m.name for m in pkgutil.iter_modules(experiments.__path__) if m.name not in SHARED]


def test_every_study_is_on_the_pipeline():
    from experiments.pipeline import Study, legacy_studies, studies

    names = study_modules()
    registry = studies()
    assert len(names) >= 21 and legacy_studies() == [] and set(names) == set(registry)
    for name in names:
        mod = importlib.import_module(f"experiments.{name}")
        assert isinstance(mod.STUDY, Study) and mod.STUDY.name == name
        assert mod.main == mod.STUDY.main and callable(mod.run)
        assert registry[name] is mod.STUDY
        # the quick and smoke overrides build valid configs
        for over in (mod.STUDY.quick, mod.STUDY.smoke):
            mod.STUDY.configure(quick=True, **over)


def test_no_study_judges_writes_or_parses_by_itself():
    """Verdicts come from the engine, files from the pipeline, flags from its CLI: a study's source has none."""
    import re
    from pathlib import Path

    forbidden = {
        r"\bholds\s*=": "assigns a verdict",
        r"tyro\.cli": "parses its own command line",
        r"write_json|atomic_write|\.savefig\(|write_text\(|write_bytes\(": "writes result files",
        r"plt\.|pyplot": "uses pyplot (switches the user's backend)",
    }
    for name in study_modules():
        src = Path(experiments.__path__[0], f"{name}.py").read_text()
        for pattern, what in forbidden.items():
            assert not re.search(pattern, src), f"experiments/{name}.py {what}"
