"""The champion decision as markdown: what the promote stage writes to reports/promotion.md,
and the behavioral table the report stage shows beside its candidate."""

from __future__ import annotations

from collections.abc import Collection

import pandas as pd


def promotion_markdown(decision: dict, registered_model: str) -> str:
    champion = decision["champion_accuracy"]
    verdict = "promoted to champion" if decision["promoted"] else "not promoted"
    return "\n".join([
        "", "## Champion", "",
        f"Candidate: `{decision['candidate_architecture']}`, version {decision['version']} of "
        f"registered model `{registered_model}`, test accuracy "
        f"{decision['candidate_accuracy']:.4f}; current champion: "
        + ("none" if champion is None else
           f"version {decision['champion_version']}, {champion:.4f} on the same test set")
        + f". Decision: **{verdict}** ({decision['reason']}).", ""])


def gate_markdown(decision: dict, per_architecture: pd.DataFrame,
                  ungated: Collection[str] = ()) -> str:
    """The promotion gates, which held the candidate back, the more accurate architectures
    passed over, and every model's behavioral tests (`ungated`: those the gate leaves out)."""
    thresholds = decision["behavior_thresholds"] or {}
    rates = decision["behavior_pass_rates"] or {}
    held = decision["held_back_by"]
    champion = decision["champion_accuracy"]
    lines = ["", "## Promotion gates", "",
             "| gate | candidate | required | passed |", "|---|---:|---:|---|",
             f"| accuracy | {decision['candidate_accuracy']:.4f} | "
             + ("any (no champion)" if champion is None else
                f"{champion:.4f} + {decision['margin']}")
             + f" | {'no' if 'accuracy' in held else 'yes'} |"]
    for kind, threshold in thresholds.items():
        rate = rates.get(kind)
        shown = "n/a" if rate is None else f"{rate:.3f}"
        passed = rate is not None and rate >= threshold
        lines.append(f"| behavior: {kind} pass rate | {shown} | {threshold} | "
                     f"{'yes' if passed else 'no'} |")
    baseline = decision.get("vs_strongest_baseline")
    if baseline:
        lines.append(f"| baseline: vs {baseline['baseline']} | {baseline['text']} | not "
                     f"significantly worse (α={baseline['alpha']:.2g}) | "
                     f"{'no' if 'baseline' in held else 'yes'} |")
    if held:
        verdict = "Held back by the " + " and the ".join(held) + " gate" + "s" * (len(held) > 1)
    elif decision["promoted"]:
        verdict = "No gate held the candidate back"
    else:
        verdict = f"Not promoted: {decision['reason']}"
    lines += ["", verdict + "."]
    passed_over = decision.get("passed_over") or {}
    if passed_over:
        lines += ["", "More accurate than the candidate, but below the behavioral thresholds: "
                  + "; ".join(f"`{a}` ({', '.join(m)})" for a, m in passed_over.items()) + "."]
    return "\n".join(lines) + "\n" + behavior_table_markdown(per_architecture, ungated)


def behavior_table_markdown(per_architecture: pd.DataFrame, ungated: Collection[str] = ()) -> str:
    """Every model's behavioral pass rates, the most accurate first; the tests in `ungated`
    (left out of the gate's pass rates) are marked."""
    lines = []
    architectures = [c for c in per_architecture.columns if c not in ("type", "test", "cases")]
    lines += ["", "Behavioral tests, pass rate per model, the most accurate first "
              "(CheckList; cases in `pipeline/behavior_cases.yaml`, each case and model in "
              "`reports/behavior.csv`"
              + ("; tests marked \"not gated\" are left out of the gate's pass rates"
                 if ungated else "") + "):", "",
              "| type | test | cases | " + " | ".join(architectures) + " |",
              "|---|---|---:|" + "---:|" * len(architectures)]
    lines += ["| " + " | ".join([row.type, row.test + " (not gated)" * (row.test in ungated),
                                 str(row.cases)]
                                + [f"{getattr(row, a):.2f}" for a in architectures]) + " |"
              for row in per_architecture.itertuples()]
    return "\n".join(lines + [""])
