"""A webhook receiver cannot hold a delivery past its deadline, or fill the notifier's memory.

Each receiver is a real TCP server of the test's own on 127.0.0.1 (reached because
the settings allow private addresses, as every loopback webhook test does); the
notifier is the one ``switchyard notifier`` builds, and ``_post`` is its real try.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.core.config import Settings
from orchestrator.services.notifier import Notifier, Send, build_notifier

TIMEOUT_S = 1.0
Behaviour = Callable[[socket.socket], None]


class Receiver:
    """A one-connection-at-a-time server that answers each POST with ``behaviour``."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.sent = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/hook"
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        with conn:
            _read_request(conn)
            with contextlib.suppress(OSError):  # the notifier hung up: what the tests want
                self.behaviour(conn)
        self.done.set()

    def send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        self.sent += len(data)


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += conn.recv(65536)


@pytest.fixture
def notifier(tmp_path: Path) -> Iterator[Notifier]:
    settings = Settings(state_dir=tmp_path, webhook_allow_private=True, webhook_timeout_s=TIMEOUT_S)
    hooks = build_notifier(settings)
    yield hooks
    hooks.http.close()


def deliver(notifier: Notifier, url: str) -> tuple[str | None, float]:
    started = time.monotonic()
    error = notifier._post(Send("whd_1", "ten_1", "job", url, {"type": "job.finished"}, 0), "s")
    return error, time.monotonic() - started


def drip(receiver: Receiver, data: bytes, every_s: float = 0.25) -> Behaviour:
    def behaviour(conn: socket.socket) -> None:
        for i in range(len(data)):
            receiver.send(conn, data[i : i + 1])
            time.sleep(every_s)

    return behaviour


def test_a_receiver_dripping_its_status_line_is_cut_off_at_the_deadline(
    notifier: Notifier,
) -> None:
    # Given a receiver that answers one byte every 0.25 s (each read is well within
    # the 1 s timeout; the whole answer would take 10 s)
    receiver = Receiver(lambda conn: None)
    answer = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
    receiver.behaviour = drip(receiver, answer)
    # When a notification is sent to it
    error, took = deliver(notifier, receiver.url)
    # Then the try ends at its deadline, as a failure that says so
    assert took < TIMEOUT_S + 1.0, took
    assert error == f"no answer within {TIMEOUT_S:g} s"
    assert receiver.done.wait(5) and receiver.sent < len(answer)


def test_a_receiver_dripping_its_body_after_a_2xx_is_delivered_within_the_deadline(
    notifier: Notifier,
) -> None:
    # Given a receiver that says 200 at once, then drips a 40-byte body (10 s)
    receiver = Receiver(lambda conn: None)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n"

    def behaviour(conn: socket.socket) -> None:
        receiver.send(conn, head)
        drip(receiver, b"x" * 40)(conn)

    receiver.behaviour = behaviour
    # When a notification is sent; Then it counts as delivered, within the deadline
    error, took = deliver(notifier, receiver.url)
    assert error is None and took < TIMEOUT_S + 1.0, (error, took)


def test_a_huge_answer_is_not_read(notifier: Notifier) -> None:
    # Given a receiver whose answer is a 256 MB body, sent as fast as it goes
    size, chunk = 256 * 1024 * 1024, b"\0" * (1024 * 1024)
    receiver = Receiver(lambda conn: None)

    def behaviour(conn: socket.socket) -> None:
        receiver.send(conn, f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
        for _ in range(size // len(chunk)):
            receiver.send(conn, chunk)

    receiver.behaviour = behaviour
    # When a notification is sent to it
    error, took = deliver(notifier, receiver.url)
    # Then it is delivered, and the notifier hung up after a little of the body:
    # the receiver could push only what the sockets' buffers hold
    assert error is None, error
    assert receiver.done.wait(5)
    assert receiver.sent < 32 * 1024 * 1024, receiver.sent
    assert took < TIMEOUT_S + 1.0
