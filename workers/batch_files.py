"""A provider batch's input file, built from its lines in the store.

``build_file(session, batch_id, deployment, line)`` returns the lines (in the
provider's batch shape, built by its adapter's ``line``; OpenAI's by default) of
the batch's lines still ``batched``, in job id order, so building it again after a
crash gives the same file. Lines past the catalog's ``max_bytes`` go back to
wait for the next provider batch (``unbatch``); a line whose stored request is
no longer valid is sent to the synchronous path, which fails it with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from pydantic import ValidationError
from sqlalchemy.orm import Session

from orchestrator.core.catalog import Deployment
from orchestrator.core.schemas import JobRequest
from orchestrator.store import provider_batch_lines
from orchestrator.store.models import utcnow
from workers.providers import batch_openai

LineMaker = Callable[[str, JobRequest], bytes]

log = logging.getLogger(__name__)


def build_file(
    session: Session, *, batch_id: str, deployment: Deployment, line: LineMaker | None = None
) -> list[bytes]:
    """The batch's input lines (see the module's docstring)."""
    if line is None:
        line = partial(batch_openai.line, deployment)
    limit = deployment.batch.max_bytes if deployment.batch is not None else 0
    rows: list[bytes] = []
    size = 0
    invalid: list[str] = []
    later: list[str] = []
    for found in provider_batch_lines.lines_of(session, batch_id=batch_id):
        try:
            request = JobRequest.model_validate(found.request)
        except ValidationError:
            invalid.append(found.job_id)
            continue
        row = line(found.custom_id, request)
        if rows and size + len(row) > limit:
            later.append(found.job_id)
            continue
        rows.append(row)
        size += len(row)
    if later:
        provider_batch_lines.unbatch(session, job_ids=later)
    if invalid:
        log.warning("provider batch %s: %d stored requests invalid", batch_id, len(invalid))
        provider_batch_lines.release(session, job_ids=invalid, now=utcnow())
    return rows
