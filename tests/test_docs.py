"""The documentation site's generated API reference names every public name of every room (tools/build_docs.py);
the strict `mkdocs build` itself runs in `.ci/run` (`make docs`)."""

import importlib
import re
import types

import jaxflow
from tools import build_docs


def test_every_public_name_has_an_api_entry(tmp_path):
    documented = build_docs.api_pages(tmp_path)
    rooms = [n for n in jaxflow.__all__ if isinstance(getattr(jaxflow, n), types.ModuleType)]
    assert sorted(rooms) == sorted(build_docs.rooms()), "a room of jaxflow has no API page (add it to ROOM_TITLES)"
    missing = []
    for room in rooms:
        mod = importlib.import_module(f"jaxflow.{room}")
        page = (tmp_path / f"{room}.md").read_text()
        for name in mod.__all__:
            obj = getattr(mod, name)
            target = obj.__name__ if isinstance(obj, types.ModuleType) else f"jaxflow.{room}.{name}"
            if not re.search(rf"^::: {re.escape(target)}$", page, re.M):
                missing.append(f"jaxflow.{room}.{name}")
    index = (tmp_path / "index.md").read_text()
    missing += [f"jaxflow.{n}" for n in documented["jaxflow"] if f"::: jaxflow.{n}\n" not in index]
    assert missing == [], f"public names without an API entry: {missing}"
    assert sum(len(v) for v in documented.values()) > 300


def test_the_study_pages_and_ledger_links_point_inside_the_site(tmp_path):
    studies = build_docs.study_pages(tmp_path / "studies")
    build_docs.ledger_pages(tmp_path, studies)
    claims = (tmp_path / "claims.md").read_text()
    assert "](results/" not in claims, "a ledger link still points into results/"
    assert "](studies/" in claims
    for name in studies:
        assert (tmp_path / "studies" / f"{name}.md").exists()
