"""The provider simulator: an offline server speaking the OpenAI, Anthropic and Gemini formats."""

from orchestrator.simulator.app import create_simulator_app, run_simulator
from orchestrator.simulator.config import Profile, SimulatorConfig, load_config

__all__ = ["Profile", "SimulatorConfig", "create_simulator_app", "load_config", "run_simulator"]
