"""The Python SDK: ``Switchyard`` and ``AsyncSwitchyard`` (``sdk``) and what both
share (``common``).

May import: ``orchestrator.core`` and ``orchestrator.wire`` only.
"""

from orchestrator.client.sdk import AsyncSwitchyard, Switchyard

__all__ = ["AsyncSwitchyard", "Switchyard"]
