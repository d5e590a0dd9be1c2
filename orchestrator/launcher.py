"""Child processes for ``switchyard up``: start them, wait for them, stop them all.

Children run in their own session so a Ctrl-C reaches only the supervisor, which
then stops them in order (workers first, so they finish what they hold). On
Linux each child also gets SIGTERM if the supervisor dies.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child, before exec: ask Linux to SIGTERM us when the parent dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


@dataclass
class Supervisor:
    """Owns the child processes of one ``switchyard up``."""

    env: dict[str, str]
    log_dir: Path
    children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def spawn(self, name: str, *cli_args: str) -> subprocess.Popen[bytes]:
        """Run ``switchyard <cli_args>`` as a child, logging to ``<log_dir>/<name>.log``."""
        return self.run(name, sys.executable, "-m", "orchestrator.cli", *cli_args)

    def run(self, name: str, *argv: str) -> subprocess.Popen[bytes]:
        """Run any command as a child, as ``spawn`` does (the benchmarks' other processes)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            list(argv),
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )
        self.children.append((name, proc))
        return proc

    def adopt(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        self.children.append((name, proc))

    def check_alive(self) -> None:
        for name, proc in self.children:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {proc.returncode}; see {self.log_dir / (name + '.log')}"
                )

    def wait_http(self, url: str, timeout_s: float = 60.0) -> None:
        """Wait until ``url`` answers 200, failing early if a child died."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{url} not ready after {timeout_s}s")

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM every child (newest first), then SIGKILL what is left after the timeout."""
        for _, proc in reversed(self.children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for _, proc in reversed(self.children):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.children.clear()
