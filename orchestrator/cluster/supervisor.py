"""Child processes for ``switchyard up``: start them, wait for them, stop them all.

Children run in their own session so a Ctrl-C reaches only the supervisor, which
then stops them layer by layer, the highest first, each layer gone before the next
gets its SIGTERM. ``switchyard up`` puts the API on top (no new work comes in),
then the workers and daemons (a Celery worker finishes or hands back the jobs it
holds), then the simulator, then Redis, which the workers need until they are gone.
On Linux each child also gets SIGTERM if the supervisor dies.
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
    layers: dict[int, int] = field(default_factory=dict)  # pid -> layer (stop order)

    def spawn(self, name: str, *cli_args: str, layer: int = 1) -> subprocess.Popen[bytes]:
        """Run ``switchyard <cli_args>`` as a child, logging to ``<log_dir>/<name>.log``."""
        return self.run(name, sys.executable, "-m", "orchestrator.cli.main", *cli_args, layer=layer)

    def run(self, name: str, *argv: str, layer: int = 1) -> subprocess.Popen[bytes]:
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
        self.adopt(name, proc, layer=layer)
        return proc

    def adopt(self, name: str, proc: subprocess.Popen[bytes], layer: int = 1) -> None:
        """Own a process started elsewhere (embedded Redis), stopped with its layer."""
        self.children.append((name, proc))
        self.layers[proc.pid] = layer

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
        """Stop the children layer by layer, highest first (see the module docstring)."""
        procs = [proc for _, proc in reversed(self.children)]
        for layer in sorted({self.layers.get(p.pid, 1) for p in procs}, reverse=True):
            _stop_all([p for p in procs if self.layers.get(p.pid, 1) == layer], timeout_s)
        self.children.clear()
        self.layers.clear()


def _stop_all(procs: list[subprocess.Popen[bytes]], timeout_s: float) -> None:
    """SIGTERM every process, then SIGKILL what is left after the timeout."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
