"""``switchyard bench NAME``: import ``loadtests.NAME`` and run its ``main(argv)``.

Benchmarks live in ``loadtests/``, a package of the distribution (so they run from
an installed wheel as from a checkout); each one measures its baseline in the same
run and prints JSON. Modules whose names start with ``_`` are their shared parts.
"""

from __future__ import annotations

import importlib
import pkgutil

from orchestrator.core.errors import ConfigError


def available() -> list[str]:
    """The benchmark names: every public module of the ``loadtests`` package."""
    try:
        import loadtests
    except ImportError:
        return []
    return sorted(m.name for m in pkgutil.iter_modules(loadtests.__path__) if m.name[0] != "_")


def run_benchmark(name: str, argv: list[str]) -> int:
    """Import ``loadtests.<name>`` and return what its ``main(argv)`` returns."""
    names = available()
    name = name.replace("-", "_")
    if name not in names:
        listed = ", ".join(names) or "none (the loadtests package is missing: reinstall switchyard)"
        raise ConfigError(f"no benchmark {name!r}; available: {listed}")
    module = importlib.import_module(f"loadtests.{name}")
    code: int = module.main(argv)
    return code
