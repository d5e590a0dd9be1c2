"""One HTTP connection pool per worker thread, behind the process's one ``httpx.Client``.

httpcore's pool walks every connection it holds on each request, and asks the
operating system whether each idle one has been closed (a ``poll`` per
connection). With hundreds of threads sharing one pool of hundreds of
connections that walk was the largest single cost in a worker
(``switchyard bench latency``, py-spy): it grows with the square of the
concurrency. A thread makes one call at a time, so a pool of its own stays a
few connections long and the walk costs nothing. The TLS context (CA bundle)
is built once and shared.
"""

from __future__ import annotations

import threading

import httpx

THREAD_POOL_CONNECTIONS = 4  # a thread's keep-alive connections (one call at a time, few hosts)


class PerThreadTransport(httpx.BaseTransport):
    """An ``httpx`` transport that hands each thread its own ``HTTPTransport``."""

    def __init__(self, *, connections: int = THREAD_POOL_CONNECTIONS) -> None:
        self._tls = httpx.create_ssl_context()
        self._limits = httpx.Limits(
            max_connections=connections, max_keepalive_connections=connections
        )
        self._local = threading.local()
        self._made: list[httpx.HTTPTransport] = []
        self._lock = threading.Lock()

    def _mine(self) -> httpx.HTTPTransport:
        transport: httpx.HTTPTransport | None = getattr(self._local, "transport", None)
        if transport is None:
            transport = httpx.HTTPTransport(verify=self._tls, limits=self._limits)
            self._local.transport = transport
            with self._lock:
                self._made.append(transport)
        return transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._mine().handle_request(request)

    def close(self) -> None:
        with self._lock:
            made, self._made = self._made, []
        for transport in made:
            transport.close()


def worker_client(timeout_s: float) -> httpx.Client:
    """The process's client for provider calls: one small pool per thread."""
    return httpx.Client(timeout=timeout_s, transport=PerThreadTransport())
