import pandas as pd

from pipeline.report import (
    accuracy_chart,
    comparison_table,
    gate_markdown,
    learning_curves_chart,
    to_markdown,
)


def metrics():
    train = {"gru": {"parameters": 100, "epochs": 4, "best_epoch": 2, "train_seconds": 30.0},
             "dense": {"parameters": 50, "epochs": 3, "best_epoch": 3, "train_seconds": 5.0}}
    cm = {"tn": 40, "fp": 10, "fn": 5, "tp": 45}
    evaluation = {
        "gru": {"accuracy": 0.85, "f1": 0.86, "roc_auc": 0.9, "log_loss": 0.3,
                "predict_ms_per_review": 0.4, "confusion_matrix": cm},
        "dense": {"accuracy": 0.80, "f1": 0.8, "roc_auc": 0.85, "log_loss": 0.4,
                  "predict_ms_per_review": 0.1, "confusion_matrix": cm}}
    return train, evaluation


def test_table_is_sorted_by_test_accuracy():
    table = comparison_table({"dense": metrics()[0]["dense"], "gru": metrics()[0]["gru"]},
                             metrics()[1])
    assert table.architecture.tolist() == ["gru", "dense"]
    assert table.loc[0, "train_seconds"] == 30.0


def test_markdown_has_a_row_per_architecture_and_readable_numbers():
    table = comparison_table(*metrics())
    text = to_markdown(table)
    assert "| gru | 0.8500 |" in text and "| dense | 0.8000 |" in text
    assert "test accuracy" in text and "100 reviews" in text


def test_charts_are_written(tmp_path):
    table = comparison_table(*metrics())
    history = pd.DataFrame({"epoch": [1, 2, 3], "loss": [0.6, 0.4, 0.3],
                            "val_loss": [0.5, 0.45, 0.5]})
    accuracy_chart(table, tmp_path / "a.png")
    learning_curves_chart({"gru": history, "dense": history}, tmp_path / "l.png")
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "l.png").stat().st_size > 5000


def test_the_report_names_the_gate_that_held_the_candidate_back():
    decision = {"promoted": False, "reason": "...",
                "candidate_accuracy": 0.9, "champion_accuracy": 0.88, "margin": 0.002,
                "held_back_by": ["behavior"], "behavior_pass_rates": {"mft": 0.5, "inv": 0.95},
                "behavior_thresholds": {"mft": 0.55, "inv": 0.9}}
    per_test = pd.DataFrame({"type": ["mft"], "test": ["negated_pans"], "cases": [45],
                             "pass_rate": [0.0]})
    text = gate_markdown(decision, per_test)
    assert "| accuracy | 0.9000 | 0.8800 + 0.002 | yes |" in text
    assert "| behavior: mft pass rate | 0.500 | 0.55 | no |" in text
    assert "| behavior: inv pass rate | 0.950 | 0.9 | yes |" in text
    assert "Held back by the behavior gate." in text
    assert "| mft | negated_pans | 45 | 0.000 |" in text
    both = gate_markdown({**decision, "held_back_by": ["accuracy", "behavior"]}, per_test)
    assert "Held back by the accuracy and the behavior gates." in both
    assert "No gate held" in gate_markdown({**decision, "held_back_by": [], "promoted": True},
                                           per_test)
    already = {**decision, "held_back_by": [], "reason": "the candidate already is the champion"}
    assert "Not promoted: the candidate already is the champion." in gate_markdown(already,
                                                                                   per_test)
