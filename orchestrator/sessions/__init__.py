"""Sessions: a conversation carried across models, fitted to one deployment's
context window (``context_window``). The rows live in ``orchestrator.store.sessions``.

May import: core.
"""
