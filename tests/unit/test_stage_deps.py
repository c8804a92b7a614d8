"""dvc.yaml's code deps are derived, not remembered: each stage lists exactly the project's
Python files that stage NAME imports, transitively (a stale list let a change to the TTA
views skip evaluate).

Each cmd is `python -m runner NAME ...`; the walk starts at stages/NAME.py, the module the
runner ends in. The dispatchers (runner/__main__.py, stages/__main__.py) and the executors
(runner/) are left out on purpose: they choose where a stage runs, not what it computes, and
dvc.lock must not depend on the executor.
Imports inside functions count (the stages import heavy modules lazily). Package
`__init__.py` files count only when they hold code beyond a docstring. Non-Python deps (data,
reports, the dependency lock) are not checked here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from stages.__main__ import STAGES
from stages.lib.params import read_yaml
from tests.conftest import ROOT


def _module_file(name: str, root: Path) -> Path | None:
    """The project file a dotted module name resolves to, or None (stdlib, third party)."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_inits(name: str, root: Path) -> list[Path]:
    """`import a.b.c` also runs a/__init__.py and a/b/__init__.py."""
    parts = name.split(".")
    return [p for i in range(1, len(parts)) if (p := root.joinpath(*parts[:i], "__init__.py")).is_file()]


def _imported_names(path: Path, root: Path) -> set[str]:
    """Dotted names of every module `path` imports anywhere in its body (relative ones resolved)."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return names


def _has_code(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    return any(not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)) for n in body)


def imports(start: Path, root: Path = ROOT) -> set[str]:
    """Project-relative paths of start and every project file it imports, transitively."""
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imported_names(path, root):
            found = _module_file(name, root)
            todo.extend(p for p in [found, *_package_inits(name, root)] if p is not None and p not in seen)
    return {p.relative_to(root).as_posix() for p in seen if p.name != "__init__.py" or _has_code(p)}


def declared(stage: str, dvc_yaml: Path = ROOT / "dvc.yaml") -> set[str]:
    deps = read_yaml(dvc_yaml)["stages"][stage].get("deps", [])
    return {d for d in deps if d.endswith(".py")}


def test_the_walk_follows_lazy_relative_and_from_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""docstring only: not a dep."""\n')
    (pkg / "sub" / "__init__.py").write_text("X = 1\n")  # code: a dep
    (pkg / "main.py").write_text("import os\nfrom pkg.sub import a\n\ndef f():\n    from . import lazy\n")
    (pkg / "sub" / "a.py").write_text("from .b import thing\n")
    (pkg / "sub" / "b.py").write_text("import numpy\nthing = 1\n")
    (pkg / "lazy.py").write_text("")
    (pkg / "unused.py").write_text("")
    found = imports(pkg / "main.py", tmp_path)
    assert found == {"pkg/main.py", "pkg/sub/__init__.py", "pkg/sub/a.py", "pkg/sub/b.py", "pkg/lazy.py"}


@pytest.mark.parametrize("stage", STAGES)
def test_each_cmd_runs_its_stage_through_the_runner(stage):
    cmd = read_yaml(ROOT / "dvc.yaml")["stages"][stage]["cmd"].split()
    assert cmd[:4] == ["python", "-m", "runner", stage]


@pytest.mark.parametrize("stage", STAGES)
def test_dvc_yaml_lists_exactly_the_code_each_stage_imports(stage):
    derived = imports(ROOT / "stages" / f"{stage}.py")
    listed = declared(stage)
    missing, extra = sorted(derived - listed), sorted(listed - derived)
    assert not (missing or extra), f"dvc.yaml stage {stage}: missing deps {missing}, extra deps {extra}"


@pytest.mark.parametrize("stage", STAGES)
def test_no_stage_depends_on_serving_sweeps_or_the_locks_upper_layers(stage):
    """A serving or sweep change (code, settings, packages) must never rerun a stage: serve/ and
    sweep/ own their settings (ServeParams, SweepParams) and only env/stages.lock is a stage dep."""
    entry = read_yaml(ROOT / "dvc.yaml")["stages"][stage]
    code = imports(ROOT / "stages" / f"{stage}.py")
    for path in code:
        classes = {n.name for n in ast.walk(ast.parse((ROOT / path).read_text())) if isinstance(n, ast.ClassDef)}
        assert not classes & {"ServeParams", "SweepParams"}, f"{path} (a dep of {stage}) holds serve/sweep settings"
    deps = set(entry.get("deps", [])) | code
    assert not sorted(d for d in deps if d.startswith(("serve/", "sweep/", "flows/")))
    assert sorted(d for d in deps if d.startswith("env/")) == ["env/stages.lock"]
    sections = {str(p).split(".")[0] for p in entry.get("params", [])}
    assert not sections & {"serve", "sweep"}
