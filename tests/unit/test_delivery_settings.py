"""Delivery settings: kombu's ack emulation and the visibility timeout it needs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from orchestrator.core.config import Settings
from orchestrator.queues.app import broker_transport_options


def test_ack_emulation_is_off_by_default_and_on_when_asked() -> None:
    assert broker_transport_options(Settings())["ack_emulation"] is False
    emulated = Settings(broker_ack_emulation=True)
    assert broker_transport_options(emulated)["ack_emulation"] is True


def test_with_ack_emulation_the_visibility_timeout_must_exceed_the_deadline() -> None:
    # Given a deadline longer than the visibility timeout
    long = {"job_deadline_s": 10_000, "broker_visibility_timeout_s": 7200}
    # Then it is refused with ack emulation (Redis would deliver a running job again)
    with pytest.raises(ValidationError, match="broker_visibility_timeout_s=7200 must exceed"):
        Settings(broker_ack_emulation=True, **long)
    # And accepted without it, where no visibility timeout applies
    assert Settings(**long).job_deadline_s == 10_000
