"""Behavioral tests of a sentiment model (CheckList: Ribeiro et al., 2020).

The cases live in pipeline/behavior_cases.yaml, as templates and fillers that `load_cases`
expands. `run_suite` scores them with any `predict(texts) -> P(positive)` and says which
pass; `pass_rates` gives one rate per test type (mft, inv, dir), what the promotion gate
compares with `report.behavior_thresholds`, over the tests the gate counts (a test with
`gate: false` is reported, not gated). `word_order_table` gives each model's pass rates on the
word-order tests (`WORD_ORDER_TESTS`), for the report's "Lesson 4: word order".

    python -m pipeline.reporting.behavior --model-uri models:/imdb-sentiment@champion [--log]
"""

from __future__ import annotations

import itertools
import logging
import string
import sys
from collections.abc import Callable, Collection, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
import yaml

from pipeline import UserError
from pipeline.core.config import BEHAVIOR_TYPES
from pipeline.core.stage import run_stage

log = logging.getLogger(__name__)

CASES_PATH = Path(__file__).resolve().parents[1] / "behavior_cases.yaml"
Predict = Callable[[list[str]], np.ndarray]

NEGATION_TESTS = ("negated_praise", "negated_pans")
WORD_ORDER_TESTS = (*NEGATION_TESTS, "but_clauses")  # the verdict turns on the order of words
ALL_NEGATION = "all_negation"  # the negation tests' cases pooled
WORD_ORDER_COLUMNS = ("negated_praise", "negated_pans", ALL_NEGATION, "but_clauses")


@dataclass(frozen=True)
class Case:
    test: str
    type: str                       # mft, inv or dir
    text: str
    perturbed: str | None = None    # inv, dir: the changed text
    label: int | None = None        # mft: the expected label
    direction: int = 0              # dir: +1 P(positive) must not fall, -1 must not rise
    gate: bool = True               # False: reported, left out of `pass_rates`


def load_cases(path: Path | str = CASES_PATH) -> list[Case]:
    spec = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    cases = [case for test in spec["tests"] for case in expand(test, spec)]
    if not cases:
        raise UserError(f"{path} holds no behavioral test cases")
    return cases


def expand(test: dict, spec: dict) -> Iterator[Case]:
    """The cases of one test in the cases file."""
    name, kind = test["name"], test["type"]
    if kind not in BEHAVIOR_TYPES:
        raise UserError(f"behavioral test {name!r}: type must be one of {BEHAVIOR_TYPES}")
    fillers, reviews = spec.get("fillers", {}), spec.get("reviews", [])
    direction = {"up": 1, "down": -1}.get(test.get("direction"), 0)
    if kind == "dir" and not direction:
        raise UserError(f"behavioral test {name!r}: a dir test needs direction: up or down")
    gate = bool(test.get("gate", True))
    if "append" in test:
        for review, sentence in itertools.product(reviews, fillers[test["append"]]):
            yield Case(name, kind, review, f"{review} {sentence}", direction=direction, gate=gate)
    elif test.get("line_break"):
        for review in reviews:
            yield Case(name, kind, review, review.replace(". ", ".<br /><br />", 1), gate=gate)
    elif "swap" in test:
        values, slot = fillers[test["swap"]], "{" + test["swap"] + "}"
        for template in test["templates"]:
            for filled in fill(template, fillers, keep=test["swap"]):
                for value, other in zip(values, values[1:] + values[:1], strict=True):
                    yield Case(name, kind, filled.replace(slot, value),
                               filled.replace(slot, other), gate=gate)
    else:
        for template in test["templates"]:
            template, label = labelled(template, test)
            for text in fill(template, fillers):
                yield Case(name, kind, text, label=label, gate=gate)


def labelled(template: str | dict, test: dict) -> tuple[str, int]:
    """The template's text and expected label: its own `label` if it gives one, else the
    test's."""
    if isinstance(template, dict):
        return template["template"], int(template["label"])
    if "label" not in test:
        raise UserError(f"behavioral test {test['name']!r}: an mft test needs a label, for the "
                        "test or for each template")
    return template, int(test["label"])


def fill(template: str, fillers: dict[str, list[str]], keep: str | None = None) -> Iterator[str]:
    """`template` with every combination of its fillers' values; `{keep}` stays as it is."""
    names = sorted({field for _, field, _, _ in string.Formatter().parse(template)
                    if field and field != keep})
    for values in itertools.product(*(fillers[n] for n in names)):
        yield template.format(**dict(zip(names, values, strict=True)),
                              **({keep: "{" + keep + "}"} if keep else {}))


def run_suite(predict: Predict, cases: list[Case], threshold: float = 0.5,
              dir_tolerance: float = 0.01) -> pd.DataFrame:
    """One row per case: its probabilities and whether it passed."""
    texts = sorted({c.text for c in cases} | {c.perturbed for c in cases if c.perturbed})
    probability = dict(zip(texts, np.asarray(predict(texts), dtype=float).reshape(-1),
                           strict=True))
    rows = []
    for case in cases:
        p = probability[case.text]
        q = probability[case.perturbed] if case.perturbed else np.nan
        if case.type == "mft":
            passed = (p >= threshold) == bool(case.label)
        elif case.type == "inv":
            passed = (p >= threshold) == (q >= threshold)
        else:
            passed = case.direction * (q - p) >= -dir_tolerance
        rows.append({**asdict(case), "probability": p, "perturbed_probability": q,
                     "passed": bool(passed)})
    return pd.DataFrame(rows)


def pass_rates(results: pd.DataFrame) -> dict[str, float]:
    """Share of cases passed, per test type, over the tests the gate counts (a test with
    `gate: false` is left out)."""
    if "gate" in results:
        results = results[results.gate.astype(bool)]
    return {kind: round(float(results.passed[results.type == kind].mean()), 4)
            for kind in BEHAVIOR_TYPES if (results.type == kind).any()}


def ungated_tests(results: pd.DataFrame) -> list[str]:
    """The tests in `results` that the gate's pass rates leave out, in the cases file's order."""
    if "gate" not in results:
        return []
    return results.test[~results.gate.astype(bool)].drop_duplicates().tolist()


def pass_rates_by_test(results: pd.DataFrame) -> pd.DataFrame:
    """Per test: its type, number of cases and share passed."""
    return (results.groupby(["type", "test"], sort=False)
            .agg(cases=("passed", "size"), pass_rate=("passed", "mean"))
            .reset_index())


def pass_rates_by_architecture(results: pd.DataFrame, architectures: list[str]) -> pd.DataFrame:
    """Per test: its type and number of cases, then one pass-rate column per architecture.

    `results` holds `run_suite`'s rows for each architecture, told apart by an `architecture`
    column.
    """
    table = None
    for architecture in architectures:
        rates = pass_rates_by_test(results[results.architecture == architecture])
        rates = rates.rename(columns={"pass_rate": architecture})
        table = rates if table is None else table.merge(rates, how="left",
                                                         on=["type", "test", "cases"])
    return table


def word_order_table(results: pd.DataFrame, models: list[str], baselines: Collection[str] = (),
                     recurrent: Collection[str] = ()) -> pd.DataFrame:
    """One row per model, in the order given: `model`, `is_baseline` and `recurrent` (whether it
    is in `baselines`, in `recurrent`), its share passed of each word-order test and of the
    negation tests' cases pooled (`all_negation`), then each one's number of cases
    (`<column>_cases`).

    `results` holds `run_suite`'s rows for each model, told apart by an `architecture` column.
    """
    tests = {**{test: (test,) for test in WORD_ORDER_TESTS}, ALL_NEGATION: NEGATION_TESTS}
    rows = []
    for model in models:
        own = results[results.architecture == model]
        passed = {column: own.passed[own.test.isin(tests[column])] for column in WORD_ORDER_COLUMNS}
        rows.append({"model": model, "is_baseline": model in baselines,
                     "recurrent": model in recurrent,
                     **{c: round(float(p.mean()), 4) if len(p) else np.nan
                        for c, p in passed.items()},
                     **{f"{c}_cases": len(p) for c, p in passed.items()}})
    return pd.DataFrame(rows)


def shortfalls(rates: dict[str, float], thresholds: dict[str, float]) -> list[str]:
    """The test types whose pass rate is below its threshold, as readable lines."""
    return [f"{kind} {rates.get(kind, 0.0):.3f} < {threshold}"
            for kind, threshold in thresholds.items() if rates.get(kind, 0.0) < threshold]


def model_predictor(model_uri: str) -> Predict:
    """Load an MLflow pyfunc model that reads a `review` column and answers `probability`."""
    import mlflow

    from pipeline.serving import TEXT_COLUMN

    model = mlflow.pyfunc.load_model(model_uri)
    return lambda texts: model.predict(
        pd.DataFrame({TEXT_COLUMN: texts}))["probability"].to_numpy()


def log_to_mlflow(results: pd.DataFrame) -> dict[str, float]:
    """Pass rates (per type and per test) as metrics of the active run, the cases as a table."""
    import mlflow

    rates = pass_rates(results)
    mlflow.log_metrics({f"behavior_{kind}_pass_rate": rate for kind, rate in rates.items()})
    mlflow.log_metrics({f"behavior_{row.type}_{row.test}_pass_rate": row.pass_rate
                        for row in pass_rates_by_test(results).itertuples()})
    mlflow.log_table(results, artifact_file="behavior/cases.json")
    return rates


def summary(results: pd.DataFrame, max_failures: int = 10) -> str:
    """Pass rates per type and per test, and a few failing cases of each test, as text."""
    lines = ["pass rate per type: " + ", ".join(
        f"{kind} {rate:.3f}" for kind, rate in pass_rates(results).items())]
    ungated = ungated_tests(results)
    for row in pass_rates_by_test(results).itertuples():
        lines.append(f"  {row.type} {row.test}: {row.pass_rate:.3f} of {row.cases}"
                     + (" (not gated)" if row.test in ungated else ""))
        failed = results[(results.test == row.test) & ~results.passed]
        for case in failed.head(max_failures).itertuples():
            if case.type == "mft":
                lines.append(f"    FAIL p={case.probability:.3f} (want label {case.label:.0f}): "
                             f"{case.text}")
            else:
                lines.append(f"    FAIL p={case.probability:.3f} -> "
                             f"{case.perturbed_probability:.3f}: {case.text!r} -> "
                             f"{case.perturbed!r}")
        if len(failed) > max_failures:
            lines.append(f"    ... and {len(failed) - max_failures} more")
    return "\n".join(lines)


def main(model_uri: str = "models:/imdb-sentiment@champion", cases: str = str(CASES_PATH),
         log_run: bool = False) -> None:
    """Score the cases with `model_uri`, print the summary; exit 1 below the thresholds."""
    from pipeline.core import tracking
    from pipeline.core.config import load_params

    params = load_params()
    if log_run:
        tracking.setup()
    else:  # only read from the store
        import mlflow

        mlflow.set_tracking_uri(tracking.tracking_uri())
    results = run_suite(model_predictor(model_uri), load_cases(cases),
                        params.evaluate.threshold, params.report.behavior_dir_tolerance)
    print(summary(results))
    if log_run:
        import mlflow

        with mlflow.start_run(run_name="behavioral-tests",
                              tags={"stage": "behavior", "model_uri": model_uri}):
            log_to_mlflow(results)
    missing = shortfalls(pass_rates(results), params.report.behavior_thresholds)
    print("below report.behavior_thresholds: " + ", ".join(missing) if missing
          else "all pass rates meet report.behavior_thresholds")
    if missing:
        sys.exit(1)


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


HELP = ("Run the behavioral tests (pipeline/behavior_cases.yaml) against a model and print the "
        "pass rates and failing cases; exit 1 when a pass rate is below "
        "report.behavior_thresholds (params.yaml). Reads the model from the MLflow store "
        "(MLFLOW_TRACKING_URI, else ./mlflow.db); writes nothing, unless --log adds an MLflow "
        "run with the pass rates and cases.")


@app.command(help=HELP)
def cli(
    model_uri: Annotated[str, typer.Option(
        help="MLflow model URI to test.")] = "models:/imdb-sentiment@champion",
    cases: Annotated[Path, typer.Option(help="The cases file.")] = CASES_PATH,
    log_run: Annotated[bool, typer.Option(
        "--log", help="Log the pass rates and cases to a new MLflow run.")] = False,
) -> None:
    run_stage(lambda: main(model_uri, str(cases), log_run))


if __name__ == "__main__":
    app()
