"""One webhook POST, bounded in time and in what is read back.

httpx's timeouts are per operation: a receiver that sends one byte of its answer
every second never trips a 2 s read timeout, and held a delivery (and a notifier
thread) for as long as it liked. And httpx reads a whole answer into memory: a
400 MB answer cost the notifier 800 MB. So each try here gets a total deadline
(``Deadline``: at ``timeout_s`` after the start, the connection's socket is shut
down, whatever the request is waiting for) and the answer is streamed, with at
most ``RESPONSE_CAP_BYTES`` of its body read before the connection is closed.
The status line decides the outcome; the body is never needed.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from typing import Any

import httpx

RESPONSE_CAP_BYTES = 64 * 1024
# httpcore's trace events that hand over a new connection's network stream
_CONNECTED = ("connection.connect_tcp.complete", "connection.start_tls.complete")


def webhook_client(timeout_s: float) -> httpx.Client:
    """The notifier's client: no redirects, and a fresh connection per request.

    No keep-alive, so that every request connects and ``Deadline`` sees its socket
    (a pooled connection would be reused without the trace event that names it).
    """
    return httpx.Client(
        follow_redirects=False,
        timeout=timeout_s,
        limits=httpx.Limits(max_keepalive_connections=0),
    )


def _shut(sock: Any) -> None:
    """Shut ``sock`` down for both directions: a read blocked on it returns at once."""
    if isinstance(sock, socket.socket):
        # the base class's: an SSLSocket's own also drops its TLS state mid-read;
        # OSError: already closed
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class Deadline:
    """A total time limit for one request, enforced by shutting its socket down.

    The sockets are learned from httpx's ``trace`` request extension (``trace``);
    a timer thread shuts them down when the time is up, so a read that is blocked
    then fails at once instead of waiting for another byte.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[Any] = []
        self._timer = threading.Timer(seconds, self.expire)
        self._timer.daemon = True

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpx's trace callback: remember each socket the request connects."""
        if event not in _CONNECTED:
            return
        sock = info["return_value"].get_extra_info("socket")
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:  # connected just as the time ran out
            _shut(sock)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._timer.cancel()


def bounded_post(
    http: httpx.Client,
    url: str,
    *,
    body: bytes,
    headers: dict[str, str],
    extensions: dict[str, Any],
    timeout_s: float,
) -> str | None:
    """POST ``body``; None when the receiver answered 2xx within ``timeout_s``, else why not."""
    with Deadline(timeout_s) as deadline:
        try:
            request = http.build_request(
                "POST",
                url,
                content=body,
                headers=headers,
                timeout=timeout_s,
                extensions={**extensions, "trace": deadline.trace},
            )
            response = http.send(request, stream=True)
        except httpx.HTTPError as exc:
            if deadline.expired:
                return f"no answer within {timeout_s:g} s"
            return f"{type(exc).__name__}: {exc}"[:500]
        try:
            _read_some(response, deadline)
        except httpx.HTTPError:  # the status is in: a body cut short changes nothing
            pass
        finally:
            response.close()
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}"


def _read_some(response: httpx.Response, deadline: Deadline) -> int:
    """Read at most ``RESPONSE_CAP_BYTES`` of the body, and nothing after the deadline."""
    read = 0
    if response.is_stream_consumed:  # the transport read it already (httpx.MockTransport)
        return read
    for chunk in response.iter_raw():  # raw: a compressed answer is never inflated
        read += len(chunk)
        if read >= RESPONSE_CAP_BYTES or deadline.expired:
            break
    return read
