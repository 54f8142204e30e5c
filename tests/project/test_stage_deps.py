"""dvc.yaml's deps are honest: each stage lists every pipeline module its command runs, and
only those; and no stage module imports another stage's module.

A stage's modules are read from the source with ast, not imported: the module its `cmd` runs
(`python -m pipeline.<stage> ...`), then every pipeline module that module imports, at the top
or inside a function, transitively, with the packages (`__init__.py`) they sit in.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "pipeline"
COMMAND = re.compile(r"^python -m (pipeline(?:\.\w+)+)\b")


def module_file(name: str) -> Path | None:
    """pipeline.a.b -> pipeline/a/b.py or pipeline/a/b/__init__.py, relative to ROOT."""
    base = Path(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if (ROOT / path).is_file():
            return path
    return None


def with_packages(name: str) -> set[str]:
    """The module and every package above it: importing pipeline.a.b runs all three."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


@cache
def direct_imports(name: str) -> frozenset[str]:
    """The pipeline modules one module imports, anywhere in its source."""
    path = module_file(name)
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from . import x, from .a import b
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{anchor}.{node.module}" if node.module else anchor
            else:
                source = node.module or ""
            found.add(source)
            found |= {f"{source}.{alias.name}" for alias in node.names}  # submodules
    kept = {m for m in found if m.split(".")[0] == PACKAGE and module_file(m)}
    return frozenset().union(*(with_packages(m) for m in kept)) if kept else frozenset()


def modules_run(entry: str) -> set[str]:
    """`entry` and every pipeline module it imports, transitively, with their packages."""
    seen: set[str] = set()
    todo = list(with_packages(entry))
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(direct_imports(name) - seen)
    return seen


def stages() -> dict[str, tuple[str, list[str]]]:
    """{stage name: (module its cmd runs, its deps)}; a foreach stage counts once."""
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    found = {}
    for name, stage in spec.items():
        body = stage.get("do", stage)
        match = COMMAND.match(body["cmd"])
        assert match, f"stage {name}: cmd {body['cmd']!r} does not run `python -m pipeline.<x>`"
        found[name] = (match.group(1), [str(d) for d in body.get("deps", [])])
    return found


def declared_modules(deps: list[str]) -> set[str]:
    """The pipeline .py files a deps list names (files, not folders)."""
    return {d for d in deps if d.startswith(f"{PACKAGE}/") and d.endswith(".py")}


# Modules a stage runs without importing them by name: promote scores the candidate and the
# champion through mlflow.pyfunc.load_model, which unpickles ReviewSentimentModel.
LOADED_AT_RUNTIME = {"pipeline.promote": ("pipeline.serving.text_model",)}


def required_deps(entry: str) -> list[str]:
    """What a stage running `entry` must list: every file of the modules it runs."""
    modules = modules_run(entry).union(*(modules_run(m) for m in LOADED_AT_RUNTIME.get(entry, ())))
    return sorted(str(module_file(m)) for m in modules)


STAGES = stages()


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_module_a_stage_runs_is_among_its_deps(stage):
    entry, deps = STAGES[stage]
    undeclared = sorted(set(required_deps(entry)) - set(deps))
    assert not undeclared, f"stage {stage} runs {undeclared} but its deps do not list them"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_stage_lists_no_pipeline_module_it_does_not_run(stage):
    entry, deps = STAGES[stage]
    extra = sorted(declared_modules(deps) - set(required_deps(entry)))
    assert not extra, f"stage {stage} lists {extra}, which its command never imports"


def test_no_stage_module_imports_another_stage_module():
    entries = {entry for entry, _ in STAGES.values()}
    for entry in sorted(entries):
        others = sorted((modules_run(entry) - {entry}) & entries)
        assert not others, f"{entry} imports the stage module(s) {others}"


def test_the_import_reader_finds_imports_inside_functions_and_from_packages():
    # pipeline/core/stage.py imports config and tracking only inside run_stage
    assert {"pipeline.core.config", "pipeline.core.tracking"} <= modules_run("pipeline.core.stage")
    # `from pipeline.core import tracking` names a module, not only the package
    assert "pipeline.core.tracking" in direct_imports("pipeline.core.study_tracking")


if __name__ == "__main__":  # print each stage's required pipeline deps, to paste into dvc.yaml
    for name, (entry, _) in STAGES.items():
        print(name, entry)
        for path in required_deps(entry):
            print(f"  - {path}")
