import numpy as np
import pytest

from pipeline.evaluate import classification_metrics


def test_metrics_match_a_hand_computed_confusion_matrix():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    p = np.array([0.9, 0.8, 0.3, 0.2, 0.6, 0.1, 0.4, 0.7])
    m = classification_metrics(y, p, threshold=0.5)
    assert m["confusion_matrix"] == {"tp": 3, "fn": 1, "fp": 1, "tn": 3}
    assert m["accuracy"] == 0.75
    assert m["precision"] == 0.75 and m["recall"] == 0.75 and m["f1"] == 0.75
    assert m["roc_auc"] == pytest.approx(14 / 16, abs=1e-4)  # 14 of 16 pos/neg pairs ranked right


def test_threshold_moves_the_decision():
    y = np.array([1, 0])
    p = np.array([0.6, 0.4])
    assert classification_metrics(y, p, 0.5)["accuracy"] == 1.0
    assert classification_metrics(y, p, 0.7)["accuracy"] == 0.5


def test_confident_mistakes_cost_more_log_loss():
    y = np.array([1, 0])
    mild = classification_metrics(y, np.array([0.4, 0.6]))["log_loss"]
    confident = classification_metrics(y, np.array([0.01, 0.99]))["log_loss"]
    assert confident > mild
