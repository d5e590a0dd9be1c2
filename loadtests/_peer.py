"""The peer under ``switchyard bench overhead --peer litellm``: the proxy a user would run instead.

A LiteLLM proxy started as its documentation tells a user to start one: ``litellm
--config FILE``, one process (uvicorn, one worker), no database, no queue, no master
Redis. Its config, generated here, lists one model that points at the run's
simulator through LiteLLM's OpenAI provider, and a master key made for the run (this
release refuses to start without one; Switchyard's phase authenticates a key too)::

    model_list:
      - model_name: bench-fast
        litellm_params: {model: openai/bench-fast, api_base: <simulator>/v1, api_key: sim-key}
    general_settings: {master_key: sk-<64 hex digits>}

so the client sends the peer the very body it sends the simulator, with that key. The proxy binds
a free loopback port and reaches nothing but the simulator: its start-up fetches
(the model cost map, Anthropic beta headers, blog posts, presets, policy templates)
read the copies shipped in the package, telemetry is off, and the database, Redis
and key variables of this environment are not passed on (LiteLLM would use them).

LiteLLM is an optional extra (``peers`` in pyproject.toml, heavy) and nothing here
imports it: the proxy is found as a command, beside this interpreter (``pip install -e
'.[peers]'`` in a plain install) or in a venv of its own, ``.venv-peers`` at the top of
the checkout (``make peers``). A development venv needs the second: the proxy extra holds
rich < 14, and the test tools (import-linter) need rich >= 14.2. ``missing`` says how to
install it; the bench exits 2 with that line.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from loadtests._services import free_port
from orchestrator.cluster.supervisor import Supervisor, die_with_parent

INSTALL = "make peers (a venv of its own, .venv-peers), or pip install -e '.[peers]'"
PEER_VENV = Path(__file__).resolve().parents[1] / ".venv-peers"
MODEL = "bench-fast"  # the simulator deployment the direct phase calls
API_KEY = "sim-key"  # a dummy: the simulator takes any key
# Run by a candidate interpreter: LiteLLM's release, if its `proxy` extra is there too
PROBE = (
    "import importlib.metadata as m, importlib.util as u; "
    "assert u.find_spec('litellm_proxy_extras'); print(m.version('litellm'))"
)
# What LiteLLM would otherwise fetch from the internet at start-up, or send there
OFFLINE = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_LOCAL_BLOG_POSTS": "True",
    "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True",
    "LITELLM_LOCAL_POLICY_TEMPLATES": "True",
    "LITELLM_TELEMETRY_DISABLED": "True",
    "HF_HUB_OFFLINE": "1",
    "NO_PROXY": "127.0.0.1,localhost",
}
# Variables LiteLLM reads to find a database, a Redis, keys or settings: never passed on
WITHHELD_PREFIXES = ("DATABASE_", "DIRECT_URL", "REDIS_", "LITELLM_")


@dataclass(frozen=True)
class Install:
    """Where a usable LiteLLM proxy is: its ``litellm`` command and its release."""

    command: Path
    version: str


def interpreters() -> list[Path]:
    """Where to look, in order: this interpreter, then the peers' own venv."""
    return [Path(sys.executable), PEER_VENV / "bin" / "python"]


def probe(python: Path) -> Install | None:
    """The LiteLLM proxy installed for ``python``, if there is one (imports nothing here)."""
    command = python.parent / "litellm"
    if not (python.exists() and command.exists()):
        return None
    done = subprocess.run(
        [str(python), "-c", PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    found = done.stdout.strip()
    return Install(command, found) if done.returncode == 0 and found else None


def find() -> Install | None:
    """The first LiteLLM proxy installed where ``interpreters`` looks."""
    return next((i for i in map(probe, interpreters()) if i is not None), None)


def missing(name: str) -> str | None:
    """Why the peer ``name`` cannot run here, in one line with the install command; or None."""
    if name != "litellm":
        return f"unknown peer {name!r}; known: litellm"
    if find() is None:
        return f"--peer litellm needs the LiteLLM proxy, an optional extra: {INSTALL}"
    return None


def litellm_config(simulator_v1: str, master_key: str) -> dict[str, Any]:
    """A LiteLLM proxy config with one model, served by the simulator's OpenAI endpoint."""
    params = {"model": f"openai/{MODEL}", "api_base": simulator_v1, "api_key": API_KEY}
    return {
        "model_list": [{"model_name": MODEL, "litellm_params": params}],
        "general_settings": {"master_key": master_key},
    }


def environment(base: dict[str, str]) -> dict[str, str]:
    """``base`` without what would point LiteLLM elsewhere, plus the offline switches."""
    kept = {k: v for k, v in base.items() if not k.upper().startswith(WITHHELD_PREFIXES)}
    return {**kept, **OFFLINE}


@dataclass(frozen=True)
class Peer:
    """A running peer: its base URL, the key it takes, its release and process id."""

    url: str
    key: str
    version: str
    pid: int


@contextmanager
def litellm_proxy(*, simulator_v1: str, workdir: Path, timeout_s: float = 180.0) -> Iterator[Peer]:
    """A LiteLLM proxy on a free loopback port, health-waited; stopped on exit."""
    install = find()
    if install is None:
        raise RuntimeError(missing("litellm"))
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "litellm.yaml"
    key = f"sk-{secrets.token_hex(32)}"
    config.write_text(yaml.safe_dump(litellm_config(simulator_v1, key), sort_keys=False))
    port = free_port()
    argv = [str(install.command), "--config", str(config), "--host", "127.0.0.1"]
    argv += ["--port", str(port)]
    supervisor = Supervisor(env={}, log_dir=workdir)
    try:
        with (workdir / "litellm.log").open("ab") as log:
            proc = subprocess.Popen(
                argv,
                env=environment(dict(os.environ)),
                cwd=workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent if sys.platform == "linux" else None,
            )
        supervisor.adopt("litellm", proc)
        url = f"http://127.0.0.1:{port}"
        supervisor.wait_http(f"{url}/health/liveliness", timeout_s=timeout_s)
        yield Peer(url=url, key=key, version=install.version, pid=proc.pid)
    finally:
        supervisor.stop()
