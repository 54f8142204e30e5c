import pytest

from pipeline.registry import decide


def test_first_candidate_wins_when_there_is_no_champion():
    promoted, reason = decide(0.80, None, margin=0.01)
    assert promoted and "no champion" in reason


@pytest.mark.parametrize("candidate, champion, margin, promoted", [
    (0.900, 0.890, 0.005, True),
    (0.900, 0.898, 0.005, False),
    (0.890, 0.890, 0.0, True),   # a zero margin promotes a tie: the newer model wins
    (0.880, 0.890, 0.0, False),
])
def test_candidate_must_beat_the_champion_by_the_margin(candidate, champion, margin, promoted):
    assert decide(candidate, champion, margin)[0] is promoted
