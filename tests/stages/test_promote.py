"""The promote stage's own checks (the gates themselves: tests/serving/test_serving.py)."""

import mlflow
import pytest

from pipeline import UserError
from pipeline.promote import check_logged


def test_an_exported_model_missing_from_the_tracking_store_is_named_with_the_fix(tmp_path,
                                                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        with pytest.raises(UserError, match=(
                r"exported/gru/model_uri.txt names models:/m-0123abcd, which the tracking store "
                r"sqlite:///.*mlflow.db does not hold .*`dvc repro -f export@gru`")):
            check_logged("models:/m-0123abcd", "gru")
        check_logged("models:/imdb-sentiment@champion", "gru")  # a registered name: not checked
    finally:
        mlflow.set_tracking_uri(None)
