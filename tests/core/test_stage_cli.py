"""Every entry point is a Typer command whose --help says what it reads and writes."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.core.stage import architecture_stage_app, help_text, stage_app

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted({re.match(r"python -m ([\w.]+)", stage.get("do", stage)["cmd"]).group(1)
                  for stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].values()})
runner = CliRunner()


def main_block(module: str) -> str:
    """The source of `if __name__ == "__main__":` in a module."""
    tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8"))
    blocks = [node for node in tree.body if isinstance(node, ast.If)
              and "__main__" in ast.unparse(node.test)]
    assert len(blocks) == 1, f"{module} has no `if __name__ == '__main__':` block"
    return ast.unparse(blocks[0])


@pytest.mark.parametrize("module", MODULES)
def test_every_stage_runs_through_a_typer_app(module):
    assert re.search(r"\b(stage_app|architecture_stage_app)\(__doc__|\bapp\(\)",
                     main_block(module)), main_block(module)


@pytest.mark.parametrize("module", MODULES)
def test_every_stage_help_says_what_it_writes(module):
    stage = importlib.import_module(module)
    summary = getattr(stage, "main_summary", None)
    app = (stage.app if hasattr(stage, "app") else
           stage_app(stage.__doc__, stage.main) if not _takes_architecture(stage.main) else
           architecture_stage_app(stage.__doc__, stage.main, summary))
    result = runner.invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Stage" in text or "Lesson" in text
    assert re.search(r"\b[Ww]rites?\b", text), text


def _takes_architecture(main) -> bool:
    return bool(main.__code__.co_argcount)


def test_tune_keeps_its_storage_and_n_trials_options(monkeypatch):
    from pipeline import tune

    calls = []
    monkeypatch.setattr(tune, "main", lambda *args: calls.append(args))
    result = runner.invoke(tune.app, ["gru", "--storage", "sqlite:///x.db", "--n-trials", "3"])
    assert result.exit_code == 0, result.output
    assert calls == [("gru", "sqlite:///x.db", 3)]


def test_help_text_joins_each_paragraph_and_keeps_examples():
    doc = "One\nline.\n\nTwo\nlines.\n\n    python -m pipeline.x a\n"
    assert help_text(doc) == "One line.\n\nTwo lines.\n\n    python -m pipeline.x a"


def test_imdb_has_predict_retrain_and_behavior():
    from pipeline.cli import app

    result = runner.invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    for command in ("predict", "retrain", "behavior"):
        assert command in result.output
