"""Running Switchyard on one machine: ``switchyard up`` (``up``), the process
supervisor, the embedded Redis, first-run bootstrap, the demo batch and the
start-up check for provider keys.

May import: every orchestrator package but ``cli``.
"""
