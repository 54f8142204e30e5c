"""Same params, same code, same numbers: two fresh copies of the project, each running the
small params' `dvc repro` from scratch, end with identical results."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_two_fresh_copies_reproduce_every_result_byte_for_byte(reproduced_projects):
    (_, _, _, first), (_, _, _, second) = reproduced_projects
    assert sorted(first) == sorted(second)
    differing = [name for name in first if first[name] != second[name]]
    assert not differing, f"these results differ between two runs of the same params: {differing}"
    kinds = {name.split("/")[0] for name in first}
    assert {"metrics", "tuned", "reports", "lessons", "plots", "predictions"} <= kinds
    tuned = [json.loads(first[name]) for name in first if name.startswith("tuned/")]
    assert any(result["tuned"] for result in tuned)  # tuned values, not only the defaults


def test_results_carry_no_machine_measurements(reproduced_projects):
    _, _, _, results = reproduced_projects[0]
    for name, content in results.items():
        if name.endswith((".json", ".csv", ".md")):
            text = content.decode()
            for word in ("seconds", "ms_per_review", "samples_per_second"):
                assert word not in text, f"{name} holds a timing ({word})"
