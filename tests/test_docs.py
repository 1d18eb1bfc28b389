"""The documentation site's generated API reference names every public name of every room (tools/build_docs.py);
the strict `mkdocs build` itself runs in `.ci/run` (`make docs`)."""

import importlib
import inspect
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


def _public_objects():
    seen = {}
    modules = [jaxflow] + [
        getattr(jaxflow, n) for n in jaxflow.__all__ if isinstance(getattr(jaxflow, n), types.ModuleType)
    ]
    for mod in modules:
        for name in mod.__all__:
            obj = inspect.unwrap(getattr(mod, name)) if callable(getattr(mod, name)) else getattr(mod, name)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and id(obj) not in seen:
                seen[id(obj)] = (f"{mod.__name__}.{name}", obj)
    return list(seen.values())


def _documented_parameters(doc: str) -> set[str]:
    """The names listed under the Args:/Attributes: sections of a Google-style docstring."""
    names, inside, indent = set(), False, None
    for line in doc.splitlines():
        if re.match(r"^(Args|Arguments|Attributes|Parameters):\s*$", line):
            inside, indent = True, None
        elif line and not line.startswith(" "):
            inside = False
        elif inside and (m := re.match(r"^( +)(\*{0,2}\w+)( \(.*\))?:", line)):
            indent = indent or m.group(1)  # the items' own indentation; deeper lines continue an item
            if m.group(1) == indent:
                names.add(m.group(2).lstrip("*"))
    return names


def test_every_public_name_documents_its_parameters():
    """Each public function and class lists every parameter of its signature (a class: of its constructor) in
    Args:/Attributes:, so the API page shows each argument with its shape; the strict build checks the reverse
    (a documented argument must exist and be annotated)."""
    missing = []
    for qualname, obj in _public_objects():
        doc = inspect.getdoc(obj) or ""
        if not doc.strip():
            missing.append(f"{qualname}: no docstring")
            continue
        try:
            params = inspect.signature(obj).parameters
        except (TypeError, ValueError):  # builtin-derived exceptions
            continue
        wanted = {n for n, p in params.items() if n not in ("self", "parent", "name")}
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            wanted = set()
        absent = wanted - _documented_parameters(doc)
        if absent:
            missing.append(f"{qualname}: {sorted(absent)}")
    assert missing == [], "public names with undocumented parameters:\n" + "\n".join(missing)
