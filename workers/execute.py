"""Running one delivery of a job: claim its lease, run the attempt loop, write the end.

``Runtime.execute(job_id)`` is what the Celery task calls:

    claim the lease (compare-and-set)   none: the job is final, held elsewhere or not
                                        due yet (a duplicate; its wake-up will come) -> SKIPPED
    too many dead workers already?      -> FAILED (a job that kills its worker stops)
    attempt loop (``workers.attempts``) under a lease heartbeat (``workers.lease``)
    write the verdict                   succeeded / failed / expired: final, if we still
                                        hold the lease; deferred: back to queued or
                                        retrying until ``next_attempt_at``; the
                                        reconciler publishes it shortly before then

Every database write is retried while the database is unreachable (a Postgres
restart), and the writes of an attempt carry a client-chosen id, so a retried
write that had in fact committed is recognised instead of billed twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from enum import StrEnum
from functools import partial
from typing import Any, TypeVar, cast

import httpx
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from orchestrator.core.batching import Combiner, is_alone
from orchestrator.core.catalog import Catalog, Deployment
from orchestrator.core.config import Settings
from orchestrator.core.schemas import Completion, JobRequest, JobStatus
from orchestrator.jobs.completion_events import ANSWER_FIELDS, answer_event
from orchestrator.queues.app import QueuedJob
from orchestrator.store import answered, leases, repo
from orchestrator.store.answered import Answer, Written
from orchestrator.store.models import Job, new_id, utcnow
from orchestrator.store.prepared import Prepared, prepared
from workers.attempts import AttemptLoop, Ending, Verdict
from workers.checks import OutputGate, Problem
from workers.db_retry import in_transaction, written_before
from workers.guards import Call, Guard, Progress, local_guards
from workers.lease import LeaseKeeper
from workers.paid import (
    PaidCalls,
    answer_columns,
    answer_record,
    fail_answered,
    failure_reason,
)
from workers.providers import ProviderError, adapter_for
from workers.steps import PipelineHook
from workers.streaming import StreamRelay

log = logging.getLogger(__name__)
T = TypeVar("T")
PREPARED_POOL_MAX = 8  # connections for the claim and answer statements (store.prepared)
LINGER_S = 0.002  # how long the first of a batch message's claims or writes waits for the rest


class Outcome(StrEnum):
    """What ``execute`` did with a message."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"
    DEFERRED = "deferred"  # handed back until its next attempt is due
    SKIPPED = "skipped"  # lease held elsewhere, job already final, or not due yet
    LOST_LEASE = "lost_lease"


class Runtime:
    """Per-process resources shared by every worker thread: settings, catalog, pools, guards."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        engine: Engine,
        http: httpx.Client,
        *,
        guards: Sequence[Guard] | None = None,
        relay: StreamRelay | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.engine = engine
        # the claim's and the answer's statements: prepared once, planned once
        url = engine.url.render_as_string(hide_password=False)
        self.prepared = prepared(url, min(settings.worker_concurrency, PREPARED_POOL_MAX))
        self.http = http
        self.guards = list(guards) if guards is not None else local_guards(settings)
        self.relay = relay or StreamRelay(settings)
        self.gate = OutputGate()  # output checks: repair or escalate (workers.checks)
        self.pipeline = PipelineHook(settings, catalog)  # next step of a pipeline job
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._local = threading.local()
        self.keeper = LeaseKeeper(
            engine, owner_prefix=f"{self.owner}:", lease_s=settings.job_lease_s
        )
        # claims of jobs starting at the same moment share one UPDATE, and the writes
        # of jobs ending at the same moment one transaction (group commit)
        # (a batch message's jobs start together: the first claim waits a moment for the
        # rest; only batch jobs use these combiners, an interactive job's asks go alone)
        fill = settings.batch_message_jobs
        self._claims: Combiner[str, leases.Claim] = Combiner(
            self._claim_many, max_batch=max(64, fill), linger_s=LINGER_S, fill=fill
        )
        self._writes: Combiner[int, object] = Combiner(
            self._write_many, max_batch=max(32, fill), linger_s=LINGER_S, fill=fill
        )

    def _claim_many(self, owners: dict[str, object]) -> dict[str, leases.Claim]:
        wanted = {job_id: str(owner) for job_id, owner in owners.items()}
        lease_s = self.settings.job_lease_s
        if self.prepared is not None:
            try:
                return leases.claim_jobs_by(self.prepared.rows, owners=wanted, lease_s=lease_s)
            except (OperationalError, InterfaceError) as exc:  # retried through the engine
                log.warning("claim on a prepared connection failed (%s); retrying", exc)
        claim = partial(leases.claim_jobs, owners=wanted, lease_s=lease_s)
        return self._db(claim, one_statement=True)

    def answer_event(self, job_id: str) -> str | None:
        """The completion event carrying the answer of this thread's last ``execute``, if
        that was ``job_id``, it succeeded, and it ran alone (``events.answer_event``)."""
        answer: tuple[str, str] | None = getattr(self._local, "answer", None)
        self._local.answer = None
        return answer[1] if answer is not None and answer[0] == job_id else None

    def claimed(self, job_id: str) -> Job | None:
        """The row this thread's last ``execute`` claimed, if it was ``job_id`` (for hooks)."""
        job: Job | None = getattr(self._local, "claimed", None)
        return job if job is not None and job.id == job_id else None

    def execute(self, job_id: str) -> Outcome:
        owner = f"{self.owner}:{threading.get_ident()}"
        claim = self._claims.ask(job_id, owner)
        job = self._local.claimed = claim.job
        if job is None:  # final, running elsewhere, or not due: its own wake-up will come
            return Outcome.SKIPPED
        if job.lease_expiries > self.settings.max_lease_expiries:
            error = f"its worker died {job.lease_expiries} times while running it; stopped"
            return self._finish(job, owner, Outcome.FAILED, {"status": "failed", "error": error})
        if self.pipeline.is_parent(job):  # a re-driven pipeline: its steps run, not it
            queued = self._db(lambda s: self.pipeline.resume(s, job, owner))
            self.pipeline.publish(queued)
            return Outcome.DEFERRED
        with self.keeper.hold(job.id) as held:
            paid = PaidCalls(lambda d, r: self._call(d, r, job_id=job.id))
            loop = AttemptLoop(
                job=job,
                catalog=self.catalog,
                guards=[self.gate, *self.guards],
                call_provider=paid,
                record_failure=lambda d, e, ms, p: self._record_failure(job, owner, d, e, ms, p),
                held=held,
                review=lambda c, done, ms: self.gate.review(
                    c, done, lambda p: self._record_rejected(job, owner, c, done, ms, p, paid)
                ),
            )
            try:
                return self._conclude(job, owner, loop.run(), paid)
            except (OperationalError, InterfaceError):
                raise  # the database stayed away: nothing can be written, the lease runs out
            except Exception as exc:
                if not paid.answered:
                    raise
                log.exception("job %s: processing a paid answer failed; the job fails", job.id)
                return self._fail_answered(job, owner, paid, failure_reason(exc))

    def _conclude(self, job: Job, owner: str, verdict: Verdict, paid: PaidCalls) -> Outcome:
        if verdict.ending is Ending.SUCCEEDED:
            return self._succeed(job, owner, verdict, paid)
        if verdict.ending is Ending.FAILED:
            values = {"status": JobStatus.FAILED.value, "error": verdict.error}
            return self._finish(job, owner, Outcome.FAILED, values)
        if verdict.ending is Ending.EXPIRED:
            values = {"status": JobStatus.EXPIRED.value, "error": verdict.error}
            return self._finish(job, owner, Outcome.EXPIRED, values)
        if verdict.ending is Ending.DEFERRED:
            return self._defer(job, owner, verdict)
        return Outcome.LOST_LEASE

    def _call(
        self, deployment: Deployment, request: JobRequest, *, job_id: str | None = None
    ) -> Completion:
        adapter = adapter_for(deployment, self.http, self.settings)
        if request.stream and job_id is not None:  # relayed token by token (workers.streaming)
            return self.relay.call(adapter, deployment, request, job_id=job_id)
        return adapter.complete(deployment, request)

    def _record_failure(
        self,
        job: Job,
        owner: str,
        deployment: Deployment,
        exc: ProviderError,
        latency_ms: int,
        progress: Progress,
    ) -> None:
        record = repo.AttemptRecord(
            deployment=deployment.name,
            provider=deployment.provider,
            model=deployment.model,
            outcome=type(exc).__name__,
            latency_ms=latency_ms,
            http_status=exc.status,
            error=str(exc),
            attempt_id=new_id("att"),
        )
        self._record_attempt(job, owner, record, progress.to_json())

    def _record_rejected(
        self,
        job: Job,
        owner: str,
        call: Call,
        completion: Completion,
        latency_ms: int,
        problem: Problem,
        paid: PaidCalls,
    ) -> None:
        """An answer that failed a check: billed, so an attempt and its ledger row."""
        record = answer_record(
            call.deployment,
            completion,
            outcome="rejected",
            latency_ms=latency_ms,
            attempt_id=paid.attempt_id(completion),
            error=f"{problem.check}: {problem.reason}",
        )
        self._record_attempt(job, owner, record, call.progress.to_json())
        paid.written(completion)

    def _record_attempt(
        self, job: Job, owner: str, record: repo.AttemptRecord, progress: dict[str, Any]
    ) -> None:
        """A call that did not end the job: its attempt (and ledger row, if billed) and the
        job's progress, written once even if the transaction is retried."""

        def write(session: Session) -> None:
            if not written_before(session, record.attempt_id):
                repo.record_attempt(session, job=job, record=record)
                leases.save_progress(session, job_id=job.id, owner=owner, progress=progress)

        self._write(write)

    def _succeed(self, job: Job, owner: str, verdict: Verdict, paid: PaidCalls) -> Outcome:
        deployment, completion = verdict.deployment, verdict.completion
        assert deployment is not None and completion is not None
        record = answer_record(
            deployment,
            completion,
            outcome="ok",
            latency_ms=verdict.latency_ms,
            attempt_id=paid.attempt_id(completion),
            cache_hit=verdict.cache_hit,
        )
        values = answer_columns(deployment, completion, verdict.latency_ms)
        values["cache_hit"] = verdict.cache_hit
        written, queued = self._write_answer(Answer(job, owner, record, values))
        paid.written(completion)  # the attempt and its cost are in, whoever holds the lease
        self.pipeline.publish(queued)
        if written is None:
            return Outcome.LOST_LEASE
        if is_alone():  # someone may be waiting: the completion event carries the answer
            ended = {"cost_micro_usd": written.cost_micro_usd, "finished_at": written.finished_at}
            self._local.answer = (job.id, answer_event(_columns(job) | values | ended))
        return Outcome.SUCCEEDED

    def _fail_answered(self, job: Job, owner: str, paid: PaidCalls, reason: str) -> Outcome:
        """Processing a paid answer raised: write what is owed, fail the job (``workers.paid``).

        If the pipeline hook is what raised, the step fails without it; its parent then
        ends by its deadline (``lifecycle.expire_overdue``).
        """
        write = partial(fail_answered, job=job, owner=owner, owed=paid.owed, reason=reason)
        try:
            won = self._db(partial(write, on_final=self.pipeline.on_final))
        except (OperationalError, InterfaceError):
            raise
        except Exception:
            log.exception("job %s: its pipeline could not be told of the failure", job.id)
            won = self._db(partial(write, on_final=None))
        paid.owed = None
        return Outcome.FAILED if won else Outcome.LOST_LEASE

    def _finish(self, job: Job, owner: str, outcome: Outcome, values: dict[str, Any]) -> Outcome:
        def write(session: Session) -> bool:
            won = leases.finish_job(session, job_id=job.id, owner=owner, values=values)
            if won:  # a pipeline's step: its parent fails or expires with it
                self.pipeline.on_final(session, job, values)
            return won

        won = self._write(write)
        return outcome if won else Outcome.LOST_LEASE

    def _defer(self, job: Job, owner: str, verdict: Verdict) -> Outcome:
        """Hand the job back; the reconciler publishes it again shortly before it is due."""
        status = JobStatus.QUEUED if verdict.waiting else JobStatus.RETRYING
        due = utcnow() + timedelta(seconds=verdict.delay_s)
        won = self._write(
            lambda s: leases.defer_job(
                s,
                job_id=job.id,
                owner=owner,
                status=status,
                next_attempt_at=due,
                progress=verdict.progress or {},
                error=verdict.error,
            )
        )
        return Outcome.DEFERRED if won else Outcome.LOST_LEASE

    def _write(self, work: Callable[[Session], T]) -> T:
        """``_db(work)``, in one transaction with the writes other threads make meanwhile.

        Every write of a job's end is conditioned on its lease and recognises its own
        earlier try, so the batch's transaction can be retried as a whole.
        """
        return cast(T, self._joined(work))

    def _write_answer(self, answer: Answer) -> tuple[Written | None, list[QueuedJob]]:
        """Write an answered job's end as ``_write`` does; what it became if it won (None if
        the lease was lost), and a step's next.

        The answers among a transaction's writes go in one statement (``store.answered``).
        """
        return cast(tuple[Written | None, list[QueuedJob]], self._joined(answer))

    def _joined(self, work: object) -> object:
        done = self._writes.ask(id(work), work)
        if isinstance(done, _Raised):
            raise done.error
        return done

    def _write_many(self, works: dict[int, object]) -> dict[int, object]:
        one_statement = _one_statement(works)
        retry = False
        if one_statement and self.prepared is not None:
            try:
                return self._answers_prepared(self.prepared, works)
            except (OperationalError, InterfaceError) as exc:  # perhaps committed: a retry
                log.warning("answers on a prepared connection failed (%s); retrying", exc)
                retry = True
            except Exception:  # not written (one statement): the engine's path sorts it out
                log.debug("answers on a prepared connection refused", exc_info=True)
        try:
            return self._db(partial(self._write_batch, works=works), one_statement, retry=retry)
        except (OperationalError, InterfaceError):
            raise  # the database stayed away: every write of the batch fails alike
        except Exception:
            if len(works) == 1:
                raise
        # one write broke the batch: each alone now, so only its own job sees the error
        done: dict[int, object] = {}
        for key, work in works.items():
            try:
                alone = {key: work}
                done[key] = self._db(partial(self._write_batch, works=alone))[key]
            except Exception as exc:
                done[key] = _Raised(exc)
        return done

    @staticmethod
    def _answers_prepared(prepared: Prepared, works: dict[int, object]) -> dict[int, object]:
        """Answers to distinct jobs, none a pipeline's step (``_one_statement``), written in
        one statement on a prepared connection; for each, what ``_write_batch`` gives."""
        answers = [cast(Answer, work) for work in works.values()]
        ends = answered.write_answers_by(prepared.rows, answers)
        return {key: (written, []) for key, written in zip(works, ends, strict=True)}

    def _write_batch(self, session: Session, works: dict[int, object]) -> dict[int, object]:
        answers = {key: w for key, w in works.items() if isinstance(w, Answer)}
        retry = bool(session.info.get("retry"))
        ends = answered.write_answers(session, list(answers.values()), retry=retry)
        won = dict(zip(answers, ends, strict=True))
        done: dict[int, object] = {}
        for key, work in works.items():
            if isinstance(work, Answer):
                written = won[key]  # a pipeline's step: its parent moves on
                queued = self.pipeline.on_final(session, work.job, work.values) if written else []
                done[key] = (written, queued)
            else:
                done[key] = cast(Callable[[Session], object], work)(session)
        return done

    def _db(
        self, work: Callable[[Session], T], one_statement: bool = False, *, retry: bool = False
    ) -> T:
        """``work`` in a transaction, retried while the database is away (``workers.db_retry``);
        ``retry``: an earlier try may have committed."""
        return in_transaction(self.engine, work, one_statement=one_statement, retry=retry)


def _columns(job: Job) -> dict[str, Any]:
    return {name: getattr(job, name) for name in ANSWER_FIELDS}


def _one_statement(works: dict[int, object]) -> bool:
    """Whether a batch of writes is one statement: answers only, none a pipeline's step,
    and no two for the same job (those take one statement each: a transaction then)."""
    answers = [w for w in works.values() if isinstance(w, Answer)]
    if len(answers) < len(works) or any(a.job.parent_job_id is not None for a in answers):
        return False
    return len({a.job.id for a in answers}) == len(answers)


class _Raised:
    """A write that raised, carried back to its own thread by the batch that ran it."""

    def __init__(self, error: Exception) -> None:
        self.error = error
