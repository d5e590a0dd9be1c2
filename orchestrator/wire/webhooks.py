"""Completion webhooks: which URLs may be called, how a notification is signed and checked.

A job or batch with a ``callback_url`` gets one POST when it ends (the notifier
sends it, retried with backoff). The body is JSON; the headers say what it is
and prove who sent it:

    X-Switchyard-Event:      job.finished | batch.finished
    X-Switchyard-Delivery:   the delivery id (the same on every retry: deduplicate on it)
    X-Switchyard-Signature:  t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

The secret is per tenant (``GET /v1/webhooks/secret``). Receivers check the
signature with ``verify_signature`` and refuse old timestamps (replays).
Every address that is not globally routable (``ipaddress``'s ``is_global``:
private, loopback, link-local, shared 100.64.0.0/10 where cloud metadata services
live, reserved, multicast) is refused at submission and again before each send,
unless ``SWITCHYARD_WEBHOOK_ALLOW_PRIVATE`` is set; so is an IPv6 address that
carries such an IPv4 address inside it (IPv4-mapped, 6to4, Teredo, NAT64).

At send time the host is resolved again (a name that was public when the job was
submitted may point inside the network now), and the request is pinned to the
address that was checked (``pin_callback_url``): it connects to that IP, with the
original ``Host`` header and TLS server name, so a second DNS answer (DNS
rebinding) cannot send it elsewhere.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from orchestrator.core.errors import ValidationFailed

SIGNATURE_HEADER = "X-Switchyard-Signature"
EVENT_HEADER = "X-Switchyard-Event"
DELIVERY_HEADER = "X-Switchyard-Delivery"


def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address ``host`` names now (an IP literal is itself)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


# IPv6 ranges some Python versions still call global, none of which a webhook
# receiver lives in: NAT64's local-use prefix, documentation, SRv6 segment ids.
_NOT_GLOBAL_V6 = tuple(
    ipaddress.IPv6Network(n) for n in ("64:ff9b:1::/48", "3fff::/20", "5f00::/16", "fec0::/10")
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_v4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to: mapped, 6to4, Teredo."""
    found = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
    if address.teredo is not None:
        found.extend(address.teredo)
    return found


def _private(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True unless ``address`` is a global unicast address (and so is any IPv4 inside it)."""
    if isinstance(address, ipaddress.IPv6Address) and address in _NAT64:
        # a DNS64 resolver's answer for an IPv4-only host: judged by that host
        return _private(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if (
        not address.is_global
        or address.is_private
        or address.is_reserved
        or address.is_multicast
        or address.is_link_local
        or address.is_loopback
        or address.is_unspecified
    ):
        return True
    if isinstance(address, ipaddress.IPv4Address):
        return False
    if address.is_site_local or any(address in net for net in _NOT_GLOBAL_V6):
        return True
    return any(_private(inner) for inner in _embedded_v4(address))


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class PinnedTarget:
    """Where a webhook is sent: the checked address, and the names the receiver expects."""

    url: str  # the callback URL with its host replaced by the checked address
    host_header: str  # the original ``host[:port]``
    sni_hostname: str | None  # the original host name, for TLS (None for http)


def check_callback_url(url: str, *, allow_private: bool, field: str = "callback_url") -> None:
    """Refuse (``ValidationFailed``) a URL that is not http(s) or points inside the network."""
    _checked_addresses(url, allow_private=allow_private, field=field)


def pin_callback_url(
    url: str, *, allow_private: bool, field: str = "callback_url"
) -> PinnedTarget | None:
    """Resolve ``url``'s host now and pin the request to a checked address.

    Raises ``ValidationFailed`` like ``check_callback_url``; None when private
    addresses are allowed (nothing to protect: the URL is used as it is).
    """
    addresses = _checked_addresses(url, allow_private=allow_private, field=field)
    if not addresses:
        return None
    parsed = httpx.URL(url)
    pinned = parsed.copy_with(host=str(addresses[0]))
    sni = parsed.host if parsed.scheme == "https" else None
    return PinnedTarget(str(pinned), parsed.netloc.decode("ascii"), sni)


def _checked_addresses(url: str, *, allow_private: bool, field: str) -> list[Address]:
    """The host's addresses, all public ([] when private ones are allowed); or refused."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port
    except ValueError as exc:
        raise ValidationFailed(field, f"not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not host:
        raise ValidationFailed(field, "must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ValidationFailed(field, "must not carry credentials")
    if allow_private:
        return []
    try:
        addresses = _addresses(host)
    except (OSError, UnicodeError) as exc:
        raise ValidationFailed(field, f"host {host!r} does not resolve") from exc
    if not addresses or any(_private(a) for a in addresses):
        raise ValidationFailed(
            field, f"host {host!r} is a private or loopback address; refused for webhooks"
        )
    return addresses


def sign(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    """The ``X-Switchyard-Signature`` value for ``body``."""
    stamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def verify_signature(
    secret: str, body: bytes, header: str, *, tolerance_s: float = 300.0, now: float | None = None
) -> bool:
    """True if ``header`` signs ``body`` with ``secret`` and is at most ``tolerance_s`` old.

    Anything malformed (a missing field, a non-numeric time, non-ASCII text in the
    header) is False, never an exception.
    """
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        stamp = int(fields["t"])
        signature = fields.get("v1", "").encode("ascii")
    except (KeyError, ValueError):  # UnicodeEncodeError is a ValueError
        return False
    current = time.time() if now is None else now
    if abs(current - stamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp=stamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected.encode("ascii"), signature)


def backoff_s(attempts: int, *, cap_s: float = 3600.0) -> float:
    """Seconds before the next try after ``attempts`` failed ones: 2, 4, 8 ... capped."""
    return float(min(cap_s, 2 ** max(1, attempts)))
