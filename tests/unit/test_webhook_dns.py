"""Webhooks re-check DNS when they are sent, and connect only to the address they checked.

DNS is faked at ``socket.getaddrinfo`` (the resolver the check uses) and the
receiver at the HTTP edge (``httpx.MockTransport``); the notifier's send path,
the address check and the pinning are real.
"""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from orchestrator.core.config import Settings
from orchestrator.services.notifier import Notifier, Send
from orchestrator.wire.webhooks import pin_callback_url

PUBLIC = "93.184.216.34"


class FakeDns:
    """``getaddrinfo`` answering from a dict that the test changes between calls."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        self.asked.append(host)
        if host not in self.answers:
            raise socket.gaierror("Name or service not known")
        family = socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (ip, 0)) for ip in self.answers[host]]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    fake = FakeDns({"hooks.example.com": [PUBLIC]})
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


def notifier(allow_private: bool = False) -> tuple[Notifier, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def receive(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    settings = Settings(webhook_allow_private=allow_private)
    http = httpx.Client(transport=httpx.MockTransport(receive))
    engine: Any = None  # _post never touches the database
    return Notifier(settings, engine, http), seen


def send(url: str) -> Send:
    return Send("whd_1", "ten_1", "job", url, {"type": "job.finished"}, attempts=0)


def test_a_host_that_now_resolves_inside_the_network_is_refused_at_send_time(
    dns: FakeDns,
) -> None:
    # Given a callback host that was public when the job was submitted
    hooks, seen = notifier()
    assert pin_callback_url("https://hooks.example.com/x", allow_private=False) is not None
    # When its DNS now answers a private address, and the notification is sent
    dns.answers["hooks.example.com"] = ["10.0.0.7"]
    error = hooks._post(send("https://hooks.example.com/x"), "secret")
    # Then the send is refused with the reason, and no request left
    assert error is not None and "private or loopback" in error
    assert seen == [] and dns.asked.count("hooks.example.com") == 2


@pytest.mark.parametrize("answer", [["127.0.0.1"], [PUBLIC, "169.254.169.254"], ["::1"]])
def test_any_private_address_among_the_answers_refuses_it(dns: FakeDns, answer: list[str]) -> None:
    dns.answers["hooks.example.com"] = answer
    hooks, seen = notifier()
    assert hooks._post(send("http://hooks.example.com/x"), "secret") is not None
    assert seen == []


def test_a_public_host_is_sent_to_the_address_that_was_checked(dns: FakeDns) -> None:
    # Given a host that resolves to a public address
    hooks, seen = notifier()
    # When a notification is sent to it over https, on a port of its own
    assert hooks._post(send("https://hooks.example.com:8443/in?x=1"), "secret") is None
    # Then the connection goes to the checked address, with the receiver's names kept
    [request] = seen
    assert str(request.url) == f"https://{PUBLIC}:8443/in?x=1"
    assert request.headers["host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"
    assert request.headers["x-switchyard-signature"].startswith("t=")


def test_plain_http_is_pinned_without_a_tls_name(dns: FakeDns) -> None:
    hooks, seen = notifier()
    assert hooks._post(send("http://hooks.example.com/in"), "secret") is None
    [request] = seen
    assert request.url.host == PUBLIC and request.headers["host"] == "hooks.example.com"
    assert "sni_hostname" not in request.extensions


def test_a_host_that_stopped_resolving_is_a_failed_try(dns: FakeDns) -> None:
    dns.answers.clear()
    hooks, seen = notifier()
    error = hooks._post(send("https://hooks.example.com/x"), "secret")
    assert error is not None and "does not resolve" in error and seen == []


def test_with_private_addresses_allowed_the_url_is_used_as_given(dns: FakeDns) -> None:
    dns.answers["hooks.example.com"] = ["10.0.0.7"]
    hooks, seen = notifier(allow_private=True)
    assert hooks._post(send("http://hooks.example.com/x"), "secret") is None
    [request] = seen
    assert request.url.host == "hooks.example.com" and dns.asked == []
