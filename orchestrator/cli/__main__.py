"""``python -m orchestrator.cli``: the ``switchyard`` command."""

from orchestrator.cli.main import main

main()
