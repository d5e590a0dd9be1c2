"""Unit-test fixtures: a real provider simulator served over HTTP."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn
from fastapi import FastAPI

from orchestrator.simulator import SimulatorConfig, create_simulator_app


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` on a free port in a thread; yields ``http://127.0.0.1:PORT``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Accepted connections inherit TCP_NODELAY; without it small responses wait ~40 ms.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the simulator did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="session")
def simulator_url() -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT/v1``) of a default simulator running in a thread."""
    with serving(create_simulator_app()) as root:
        yield f"{root}/v1"


@pytest.fixture
def fresh_simulator() -> Iterator[str]:
    """Root URL of a simulator of its own, for tests that change its config or read its stats."""
    with serving(create_simulator_app(config=SimulatorConfig())) as root:
        yield root
