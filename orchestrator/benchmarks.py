"""``switchyard bench NAME``: find ``loadtests/NAME.py`` and run its ``main(argv)``.

Benchmarks live beside the code in ``loadtests/`` (not in the installed
package); each one measures its baseline in the same run and prints JSON.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from orchestrator.errors import ConfigError

LOADTESTS = Path(__file__).resolve().parents[1] / "loadtests"


def available() -> list[str]:
    return sorted(p.stem for p in LOADTESTS.glob("*.py") if not p.stem.startswith("_"))


def run_benchmark(name: str, argv: list[str]) -> int:
    """Import ``loadtests/<name>.py`` and return what its ``main(argv)`` returns."""
    path = LOADTESTS / f"{name}.py"
    if name.startswith("_") or not path.is_file():
        raise ConfigError(f"no benchmark {name!r}; available: {', '.join(available()) or 'none'}")
    if str(LOADTESTS.parent) not in sys.path:  # so benchmarks can share ``loadtests._helpers``
        sys.path.insert(0, str(LOADTESTS.parent))
    spec = importlib.util.spec_from_file_location(f"loadtests.{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    code: int = module.main(argv)
    return code
