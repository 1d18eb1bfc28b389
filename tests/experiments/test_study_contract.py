"""Every study can be imported in a notebook without side effects, and shares the one results writer."""

import importlib
import pkgutil
import subprocess
import sys

import experiments


def test_importing_studies_does_not_switch_the_matplotlib_backend():
    code = (
        "import matplotlib; matplotlib.use('svg'); import importlib, pkgutil, experiments\n"
        "for m in pkgutil.iter_modules(experiments.__path__): importlib.import_module('experiments.' + m.name)\n"
        "print(matplotlib.get_backend())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip().splitlines()[-1] == "svg"


def test_every_study_has_a_config_and_run():
    for m in pkgutil.iter_modules(experiments.__path__):
        if m.name == "common":
            continue
        mod = importlib.import_module(f"experiments.{m.name}")
        assert callable(getattr(mod, "run", None)), m.name
        assert callable(getattr(mod, "main", None)), m.name
