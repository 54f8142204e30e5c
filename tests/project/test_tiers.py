"""The tiers hold: `pytest -m "not slow"` collects no end-to-end test and no test that uses a
fixture starting a server, PostgreSQL or `dvc repro`, and an unmarked test that starts one
itself fails at once (the hooks in tests/conftest.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import MLFLOW, PROJECT_ROOT, SLOW_FIXTURES, slow_command


class Collected:
    """A pytest plugin that keeps the session's items once collection (and -m) is done."""

    def __init__(self):
        self.items: list[pytest.Item] = []

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.items = list(session.items)


def collect(*args: str) -> list[pytest.Item]:
    collected = Collected()
    code = pytest.main([str(PROJECT_ROOT / "tests"), "--collect-only", "-q",
                        "-p", "no:cacheprovider", *args], plugins=[collected])
    assert code == pytest.ExitCode.OK, f"collection failed ({code!r})"
    return collected.items


def test_the_fast_tier_has_no_end_to_end_test_and_no_slow_fixture():
    fast = collect("-m", "not slow")
    assert len(fast) > 100 and any(item.path.name == "test_tiers.py" for item in fast)
    assert [item.nodeid for item in fast if item.get_closest_marker("e2e")] == []
    uses = {item.nodeid: sorted(SLOW_FIXTURES & set(item.fixturenames)) for item in fast}
    assert {test: fixtures for test, fixtures in uses.items() if fixtures} == {}, (
        "these tests use a fixture that starts a server, PostgreSQL or `dvc repro`: "
        "mark them @pytest.mark.slow")


@pytest.mark.parametrize("command, why", [
    ([MLFLOW, "server", "--help"], "starts an MLflow server"),
    ([sys.executable, "-m", "mlflow", "models", "serve", "--help"], "starts an MLflow server"),
    (["runuser", "-u", "postgres", "--", "pg_ctl", "--help"], "starts PostgreSQL"),
    ("dvc repro --help", "runs `dvc repro`"),
])
def test_an_unmarked_test_cannot_start_a_server_postgresql_or_a_repro(command, why):
    assert slow_command(command) == why
    with pytest.raises(AssertionError, match=f"{why} .* but is not marked slow"):
        subprocess.run(command, capture_output=True, shell=isinstance(command, str))


def test_other_commands_still_run_in_the_fast_tier():
    for command in (["dvc", "status"], [MLFLOW, "--version"], ["git", "log"], "pg_dump x"):
        assert slow_command(command) is None, command
    done = subprocess.run([sys.executable, "-c", "print('ok')"], capture_output=True, text=True)
    assert done.stdout == "ok\n"
