"""The provider simulator: an offline OpenAI-compatible server for demos, tests and benchmarks."""

from orchestrator.simulator.app import create_simulator_app, run_simulator

__all__ = ["create_simulator_app", "run_simulator"]
