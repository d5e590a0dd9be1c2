"""Collecting an ended provider batch: each line answered once, or sent back to sync.

    adapter.results(...)           the provider's answers and failed lines, by
                                   ``custom_id`` (``workers.providers.batch_base``)
    completions(lines, bodies, parse)  each line's answer parsed by the synchronous
                                   adapter's own parser (``adapter.parse``)
    write_answers(...)             per chunk of answered lines, in one transaction:
                                   lock the line, and if it is still ``batched``,
                                   claim the job's lease (``claim_line``) and write
                                   its answer, attempt and ledger row through
                                   ``store.answered`` at the deployment's batch
                                   prices; a job that had ended meanwhile, runs
                                   synchronously, or whose line was withdrawn only
                                   gets a ``superseded`` attempt: the provider bills
                                   the answer, so it has its one ledger row, but it
                                   is never the job's answer (nor a second success)
    provider_batch_lines.send_back(...)  every line still ``batched`` (failed at the
                                   provider, expired, cancelled, never answered):
                                   back to ``waiting`` for the next provider batch
                                   of its deployment, at the batch price, if its
                                   failure may go away, it was sent fewer than
                                   ``provider_batch_max_tries`` times and its job's
                                   sync time is ``provider_batch_retry_min_s`` away;
                                   else ``release``: its job is due now on the
                                   synchronous path, with the usual retries and
                                   fallbacks while its deadline allows

The line's state, written in the same transaction as the answer, is what makes a
collect that runs twice (a worker killed half-way) bill each line exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.orm import Session

from orchestrator.core.catalog import Deployment
from orchestrator.core.schemas import Completion, JobRequest
from orchestrator.store import answered, provider_batch_lines, repo
from orchestrator.store.answered import Answer
from orchestrator.store.models import Job, new_id
from orchestrator.store.provider_batch_lines import Line
from workers.paid import answer_columns, answer_record
from workers.providers.errors import ProviderError
from workers.providers.transport import Blocked, Malformed

Parser = Callable[[Any, JobRequest], Completion]

log = logging.getLogger(__name__)
CHUNK = 200
WITHDRAWN = "withdrawn"
PROVIDER_BATCH = "provider_batch"  # the ledger's path of every line the provider billed
# the attempt of an answer the provider gave (and bills) that is not the job's answer
SUPERSEDED = "superseded"
SUPERSEDED_WHY = "answered by the provider batch after the job had left it; not used"


@dataclass
class Collected:
    """What collecting wrote: jobs answered, lines only billed, jobs sent back."""

    answered: list[str] = field(default_factory=list)
    billed: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # back to wait for another batch


def completions(
    lines: Sequence[Line], bodies: dict[str, Any], parse: Parser
) -> list[tuple[Line, Completion]]:
    """The lines with a usable answer (a malformed or blocked one counts as failed:
    sent back, and the synchronous path gives the job its error)."""
    found: list[tuple[Line, Completion]] = []
    for line in lines:
        body = bodies.get(line.custom_id)
        if body is None:
            continue
        try:
            found.append((line, parse(body, JobRequest.model_validate(line.request))))
        except (Malformed, Blocked, ProviderError, ValueError) as exc:
            log.warning("provider batch line %s: unusable answer (%s); sent back", line.job_id, exc)
    return found


def write_chunk(
    session: Session,
    answers: Sequence[tuple[Line, Completion]],
    *,
    deployment: Deployment,
    owner: str,
    lease_s: float,
    latency_ms: int,
) -> Collected:
    """Write one chunk of answered lines (see the module's docstring)."""
    priced = deployment.batch_priced()
    done, writes = Collected(), []
    for line, completion in answers:
        state = provider_batch_lines.line_state(session, job_id=line.job_id)
        if state not in ("batched", WITHDRAWN):
            continue  # written by an earlier collect
        record = answer_record(
            priced, completion, outcome="ok", latency_ms=latency_ms, attempt_id=new_id("att")
        )
        record = replace(record, path=PROVIDER_BATCH)
        job = None
        if state == "batched":
            job = provider_batch_lines.claim_line(
                session, job_id=line.job_id, owner=owner, lease_s=lease_s
            )
        if job is None:  # withdrawn, ended or synchronous: billed, not the job's answer
            ended = session.get(Job, line.job_id)
            if ended is not None:
                superseded = replace(record, outcome=SUPERSEDED, error=SUPERSEDED_WHY)
                repo.record_attempt(session, job=ended, record=superseded)
            done.billed.append(line.job_id)
            continue
        values = answer_columns(priced, completion, latency_ms)
        writes.append(Answer(job, owner, record, values))
    won = answered.write_answers(session, writes)
    done.answered = [a.job.id for a, w in zip(writes, won, strict=True) if w is not None]
    done.billed += [a.job.id for a, w in zip(writes, won, strict=True) if w is None]
    provider_batch_lines.mark(session, job_ids=done.answered, state="answered")
    provider_batch_lines.mark(session, job_ids=done.billed, state="billed")
    return done
