import pytest

from pipeline import UserError, tracking


def test_local_sqlite_store_is_the_default(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_tracking_uri_from_the_environment_wins(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert tracking.tracking_uri() == "http://mlflow.example:5000"


def test_unreachable_tracking_server_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(UserError, match="cannot reach the MLflow tracking store at "
                                        "http://127.0.0.1:9.*unset MLFLOW_TRACKING_URI"):
        tracking.setup()


def test_data_hash_changes_with_content_and_names(tmp_path):
    (tmp_path / "a.npz").write_bytes(b"one")
    first = tracking.data_hash(tmp_path)
    assert tracking.data_hash(tmp_path) == first
    (tmp_path / "a.npz").write_bytes(b"two")
    second = tracking.data_hash(tmp_path)
    (tmp_path / "a.npz").rename(tmp_path / "b.npz")
    assert len({first, second, tracking.data_hash(tmp_path)}) == 3
