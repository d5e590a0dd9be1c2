"""Webhook URLs, signatures and backoff."""

from __future__ import annotations

import pytest

from orchestrator.errors import ValidationFailed
from orchestrator.webhooks import backoff_s, check_callback_url, sign, verify_signature


def test_a_signature_verifies_only_with_its_secret_body_and_time() -> None:
    # Given a body signed at a known time
    header = sign("whsec_a", b'{"x":1}', timestamp=1_000_000)
    # Then it verifies then, and not with another secret, another body, or much later
    assert verify_signature("whsec_a", b'{"x":1}', header, now=1_000_100)
    assert not verify_signature("whsec_b", b'{"x":1}', header, now=1_000_100)
    assert not verify_signature("whsec_a", b'{"x":2}', header, now=1_000_100)
    assert not verify_signature("whsec_a", b'{"x":1}', header, now=1_000_000 + 301)
    assert not verify_signature("whsec_a", b'{"x":1}', "garbage", now=1_000_000)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/h",
        "http://10.0.0.5/h",
        "http://192.168.1.1:8080/h",
        "http://169.254.169.254/",
        "http://[::1]:80/h",
        "http://0.0.0.0/h",
        "ftp://93.184.216.34/h",
        "https://u:p@93.184.216.34/h",
        "not a url",
    ],
)
def test_private_loopback_and_odd_urls_are_refused(url: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        check_callback_url(url, allow_private=False)
    assert refused.value.field == "callback_url"


def test_public_addresses_pass_and_private_ones_when_allowed() -> None:
    check_callback_url("https://93.184.216.34/hook", allow_private=False)
    check_callback_url("http://127.0.0.1:9000/hook", allow_private=True)


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [backoff_s(n) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]
    assert backoff_s(30) == 3600.0
