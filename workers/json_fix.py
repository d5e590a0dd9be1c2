"""Repair a JSON answer locally before paying a model to repair it.

Models often wrap JSON in Markdown code fences, or leave a trailing comma or an
unquoted key. A paid repair call (``checks.repair_request``) fixes that at the
price of a second call; this module tries first, for free: strip the fences, then
parse, then let ``json_repair`` (PyPI) mend the text. The repaired value is used
only when it can be trusted: the answer finished normally (``finish_reason``
``stop``: a cut-off answer's missing end would be guessed, not repaired), the
value is a JSON object or array, and it validates against the request's schema.
"""

from __future__ import annotations

import json
import re
from typing import Any

from orchestrator.core.schemas import Completion, JobRequest

FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n?(.*?)\n?\s*```\s*$", re.S)


def strip_fences(text: str) -> str:
    """The text inside a Markdown code fence that wraps the whole answer, else the text."""
    found = FENCE.match(text)
    return found.group(1) if found else text


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        from json_repair import repair_json

        return repair_json(text, return_objects=True)


def local_fix(
    request: JobRequest, completion: Completion, schema: dict[str, Any] | None
) -> str | None:
    """The answer as valid JSON text, repaired without a model call; None if not safely."""
    if completion.finish_reason != "stop" or not completion.text.strip():
        return None
    value = _parse(strip_fences(completion.text))
    if not isinstance(value, dict | list):
        return None
    if schema:
        from workers.checks import first_schema_error

        if first_schema_error(schema, value) is not None:
            return None
    return json.dumps(value, ensure_ascii=False)
