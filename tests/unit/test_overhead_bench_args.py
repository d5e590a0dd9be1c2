"""``switchyard bench overhead --floor`` refuses a draining batch before starting anything."""

from __future__ import annotations

import pytest

from loadtests import overhead


def test_floor_with_a_background_batch_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert overhead.main(["--floor", "--background-jobs", "100"]) == 2
    assert "--background-jobs" in capsys.readouterr().err


def test_floor_is_off_unless_asked() -> None:
    assert overhead.parse([]).floor is False
    assert overhead.parse(["--floor"]).floor is True
