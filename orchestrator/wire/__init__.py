"""Wire shapes shared by the SDK and the API.

OpenAI's request and response bodies as Switchyard's OpenAI-compatible routes
speak them (``openai_schemas``), the batch resource (``batch_objects``), experiments as
the API shows them (``experiment_views``) and the completion webhook's contract: its
signature and which callback URLs may be called (``webhooks``).

May import: ``orchestrator.core``.
"""
