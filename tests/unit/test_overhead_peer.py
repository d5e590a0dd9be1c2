"""``switchyard bench overhead --peer litellm``: the install line without the extra, where the
proxy is looked for, its generated config and environment (no LiteLLM needed, no network)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from loadtests import _peer, overhead
from orchestrator.cli import main as cli


@pytest.fixture
def without_litellm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No LiteLLM where the bench looks: only an interpreter that is not there."""
    monkeypatch.setattr(_peer, "interpreters", lambda: [tmp_path / "bin" / "python"])


@pytest.mark.usefixtures("without_litellm")
def test_peer_without_the_extra_exits_2_with_the_install_command() -> None:
    # Given no LiteLLM, When the bench is run through the real CLI
    result = CliRunner().invoke(cli.app, ["bench", "overhead", "--peer", "litellm", "--json"])
    # Then it stops before starting anything, with one line that says what to install
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "pip install -e '.[peers]'" in lines[0]
    assert "make peers" in lines[0]
    assert result.stdout == ""


def _interpreter(bin_dir: Path, script: str, *, with_command: bool = True) -> Path:
    """A stand-in interpreter that answers the probe with ``script``."""
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.write_text(f"#!/bin/sh\n{script}\n")
    python.chmod(0o755)
    if with_command:
        (bin_dir / "litellm").write_text("#!/bin/sh\n")
    return python


def test_probe_reads_the_release_from_an_interpreter_that_has_the_proxy(tmp_path: Path) -> None:
    python = _interpreter(tmp_path / "bin", "echo 1.108.7")
    assert _peer.probe(python) == _peer.Install(tmp_path / "bin" / "litellm", "1.108.7")


def test_probe_refuses_an_interpreter_without_the_proxy_or_its_command(tmp_path: Path) -> None:
    assert _peer.probe(_interpreter(tmp_path / "a", "exit 1")) is None  # import failed
    assert _peer.probe(_interpreter(tmp_path / "b", "echo 1.0", with_command=False)) is None
    assert _peer.probe(tmp_path / "none" / "python") is None


def test_find_takes_the_first_interpreter_with_the_proxy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    without = _interpreter(tmp_path / "plain", "exit 1")
    peers = _interpreter(tmp_path / "peers", "echo 1.108.7")
    monkeypatch.setattr(_peer, "interpreters", lambda: [without, peers])
    assert _peer.find() == _peer.Install(tmp_path / "peers" / "litellm", "1.108.7")
    assert _peer.missing("litellm") is None


def test_peer_venv_is_at_the_top_of_the_checkout() -> None:
    assert Path(overhead.__file__).resolve().parents[1] / ".venv-peers" == _peer.PEER_VENV
    assert _peer.interpreters()[0] == Path(sys.executable)


def test_peer_is_off_unless_asked_and_only_litellm_is_known() -> None:
    assert overhead.parse([]).peer is None
    assert overhead.parse(["--peer", "litellm"]).peer == "litellm"
    with pytest.raises(SystemExit) as exited:
        overhead.parse(["--peer", "nginx"])
    assert exited.value.code == 2


def test_peer_with_a_background_batch_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert overhead.main(["--peer", "litellm", "--background-jobs", "100"]) == 2
    assert "--background-jobs" in capsys.readouterr().err


def test_config_has_one_model_served_by_the_simulator_and_a_master_key() -> None:
    # Given the simulator's OpenAI base URL, When the proxy's config is generated
    text = yaml.safe_dump(_peer.litellm_config("http://127.0.0.1:8123/v1", "sk-" + "ab" * 32))
    # Then it lists the model the direct phase calls, through LiteLLM's OpenAI provider
    assert yaml.safe_load(text) == {
        "model_list": [
            {
                "model_name": "bench-fast",
                "litellm_params": {
                    "model": "openai/bench-fast",
                    "api_base": "http://127.0.0.1:8123/v1",
                    "api_key": "sim-key",
                },
            }
        ],
        "general_settings": {"master_key": "sk-" + "ab" * 32},
    }
    assert "model" not in overhead.BODY  # the peer gets the direct phase's body and model


def test_environment_withholds_databases_and_keys_and_keeps_litellm_offline() -> None:
    base = {
        "PATH": "/usr/bin",
        "DATABASE_URL": "postgresql://db/x",
        "DIRECT_URL": "postgresql://db/y",
        "REDIS_HOST": "cache",
        "LITELLM_MASTER_KEY": "sk-1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "False",
    }
    env = _peer.environment(base)
    assert env["PATH"] == "/usr/bin"
    assert {"DATABASE_URL", "DIRECT_URL", "REDIS_HOST", "LITELLM_MASTER_KEY"}.isdisjoint(env)
    assert env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    assert env["LITELLM_TELEMETRY_DISABLED"] == "True"
