"""Webhook URLs, signatures and backoff."""

from __future__ import annotations

import pytest

from orchestrator.core.errors import ValidationFailed
from orchestrator.wire.webhooks import backoff_s, check_callback_url, sign, verify_signature


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
    "header",
    ["t=1000000,v1=\u00e9\u00e9", "t=1000000,v1=\u20ac", "t=\u00e9,v1=ab", "t=1000000,v1=\ud800"],
)
def test_a_non_ascii_signature_header_is_false_not_an_error(header: str) -> None:
    # Given a header with non-ASCII text where the signature or time should be
    # When it is checked; Then the answer is False (it used to raise TypeError)
    assert verify_signature("whsec_a", b'{"x":1}', header, now=1_000_000) is False


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/h",
        "http://10.0.0.5/h",
        "http://192.168.1.1:8080/h",
        "http://169.254.169.254/",
        "http://[::1]:80/h",
        "http://0.0.0.0/h",
        # shared address space (RFC 6598): cloud metadata services live here
        "http://100.64.0.1/h",
        "http://100.100.100.200/latest/meta-data/",
        # IPv6 forms of inside addresses: 6to4 of 100.64.0.1 and of 10.0.0.1,
        # IPv4-mapped, NAT64, IPv4-compatible, Teredo, unique-local, site-local
        "http://[2002:6440:1::1]/h",
        "http://[2002:a00:1::1]/h",
        "http://[::ffff:10.0.0.1]/h",
        "http://[::ffff:127.0.0.1]/h",
        "http://[::ffff:100.64.0.1]/h",
        "http://[64:ff9b::a9fe:a9fe]/h",
        "http://[::10.0.0.1]/h",
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/h",
        "http://[fd00::1]/h",
        "http://[fec0::1]/h",
        "http://[ff02::1]/h",
        "http://198.18.0.1/h",
        "http://240.0.0.1/h",
        "http://[2001:db8::1]/h",
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
    # global IPv6, and IPv6 forms that carry a global IPv4 address
    check_callback_url("https://[2606:4700::1111]/hook", allow_private=False)
    check_callback_url("https://[2002:5db8:d822::1]/hook", allow_private=False)
    check_callback_url("https://[64:ff9b::5db8:d822]/hook", allow_private=False)
    check_callback_url("http://127.0.0.1:9000/hook", allow_private=True)


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [backoff_s(n) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]
    assert backoff_s(30) == 3600.0
