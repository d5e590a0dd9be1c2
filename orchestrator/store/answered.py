"""The end of answered jobs, many in one statement: attempt, ledger row, final job row.

``write_answers(session, answers)`` does for every ``Answer`` what
``repo.record_attempt(bill_job=False)`` then ``leases.finish_job`` do for one:
the attempt and its ledger row are written whatever happens (the call was made
and billed), and the job becomes final only if the answer's owner still holds
its lease; a job whose lease was lost still counts the attempt and its cost.

On Postgres the rows travel as three JSON documents and one statement writes
them all (``INSERT``s in ``WITH`` beside the ``UPDATE ... FROM``): one round trip
for a batch of jobs ending together, where one statement per row kept a worker
thread going back and forth to the server 3 times a job while the others waited
(``switchyard bench latency``, BENCHMARKS.md). Elsewhere (SQLite) row by row.

The same statement bills the jobs whose lease was lost: it locks each answer's
job row first and reads there whether the answer still owns it, then updates
every row once, the final columns only where it won. So an answer written
without a transaction (``statement_scope``) is all written or not at all, and a
retry that finds its attempt finds the job billed too. Two answers for the same
job (one thread's lease expired, another thread took the job over) go in
separate statements, in their order, each told whether it won.

A retried transaction (``retry=True``: the database went away, perhaps after
committing) first looks for its attempts: an answer whose attempt is there was
written, and won if its job is final under its owner.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache, partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.core.schemas import JobStatus
from orchestrator.store import leases, repo
from orchestrator.store.bulk import dumps, with_defaults
from orchestrator.store.db import Rows, driver_rows
from orchestrator.store.models import Attempt, Job, LedgerEntry, utcnow

SUCCEEDED = JobStatus.SUCCEEDED.value


@dataclass(frozen=True)
class Answer:
    """One job's answer to write: its attempt (with its id and cost) and result columns."""

    job: Job
    owner: str
    record: repo.AttemptRecord
    values: dict[str, Any]

    @property
    def cost_micro_usd(self) -> int:
        return self.record.cost_micro_usd or 0


@dataclass(frozen=True)
class Written:
    """What a job made final by its answer holds now: its whole cost, and when it ended."""

    cost_micro_usd: int
    finished_at: datetime


def write_answers(
    session: Session, answers: Sequence[Answer], *, retry: bool = False
) -> list[Written | None]:
    """Write every answer; for each, what its job became if it won (None: the lease was lost)."""
    result: list[Written | None] = [None] * len(answers)
    todo = list(range(len(answers)))
    if retry:
        todo = _not_written(session, answers, result)
    postgres = session.get_bind().dialect.name == "postgresql"
    for round_ in _rounds(answers, todo):
        if not postgres:
            for n in round_:
                result[n] = _write_one(session, answers[n])
        else:
            _write_together(partial(driver_rows, session.connection()), answers, round_, result)
    return result


def write_answers_by(rows: Rows, answers: Sequence[Answer]) -> list[Written | None]:
    """``write_answers`` of answers to distinct jobs on Postgres, in one statement run by
    ``rows`` (``store.prepared``), not retried: a retry goes through ``write_answers``."""
    if len({a.job.id for a in answers}) < len(answers):
        raise ValueError("two answers for one job take a statement each: write_answers")
    result: list[Written | None] = [None] * len(answers)
    _write_together(rows, answers, list(range(len(answers))), result)
    return result


def _rounds(answers: Sequence[Answer], todo: list[int]) -> list[list[int]]:
    """``todo`` in order, split so that no job is written twice by one statement."""
    rounds: list[list[int]] = []
    seen: Counter[str] = Counter()
    for n in todo:
        job_id = answers[n].job.id
        if seen[job_id] == len(rounds):
            rounds.append([])
        rounds[seen[job_id]].append(n)
        seen[job_id] += 1
    return rounds


def _write_together(
    rows: Rows, answers: Sequence[Answer], round_: list[int], result: list[Written | None]
) -> None:
    attempts, ledger, jobs = [], [], []
    now = utcnow()
    for n in round_:
        answer = answers[n]
        attempt, entry = repo.attempt_rows(answer.job, answer.record)
        attempts.append(with_defaults(Attempt.__table__, attempt))  # type: ignore[arg-type]
        if entry is not None:
            ledger.append(with_defaults(LedgerEntry.__table__, entry))  # type: ignore[arg-type]
        row = dict(answer.values, id=answer.job.id, lease_owner=answer.owner, finished_at=now)
        row["cost_micro_usd"] = answer.cost_micro_usd  # added to the job's
        jobs.append(row)
    statement = _statement(tuple(attempts[0]), tuple(ledger[0]) if ledger else (), tuple(jobs[0]))
    params: dict[str, Any] = {
        "attempts": dumps(attempts),
        "ledger": dumps(ledger),
        "jobs": dumps(jobs),
        "ids": [row["id"] for row in jobs],
    }
    won = {
        row["id"]: Written(row["cost_micro_usd"], row["finished_at"])
        for row in rows(statement, params)
        if row["won"]
    }
    for n in round_:
        result[n] = won.get(answers[n].job.id)


def _write_one(session: Session, answer: Answer) -> Written | None:
    repo.record_attempt(session, job=answer.job, record=answer.record, bill_job=False)
    job_id, cost = answer.job.id, answer.cost_micro_usd
    won = leases.finish_job(
        session, job_id=job_id, owner=answer.owner, values=answer.values, add_cost_micro_usd=cost
    )
    if not won:
        repo.bill_job(session, job_id=job_id, cost_micro_usd=cost)
        return None
    return _written(session.get(Job, job_id, populate_existing=True))


def _written(row: Job | None) -> Written | None:
    if row is None or row.finished_at is None:
        return None
    return Written(row.cost_micro_usd, row.finished_at)


def _not_written(
    session: Session, answers: Sequence[Answer], result: list[Written | None]
) -> list[int]:
    """The answers an earlier try did not commit; ``result`` gets what the others won."""
    ids = [a.record.attempt_id for a in answers if a.record.attempt_id is not None]
    written = set(session.scalars(select(Attempt.id).where(Attempt.id.in_(ids)))) if ids else set()
    todo = []
    for n, answer in enumerate(answers):
        if answer.record.attempt_id not in written:
            todo.append(n)
            continue
        row = session.get(Job, answer.job.id)
        if row is not None and (row.status, row.lease_owner) == (SUCCEEDED, answer.owner):
            result[n] = _written(row)
    return todo


@lru_cache(maxsize=16)
def _statement(
    attempt_columns: tuple[str, ...], ledger_columns: tuple[str, ...], job_columns: tuple[str, ...]
) -> str:
    """The answers' statement, as SQL for psycopg (``db.driver_rows``)."""

    def rows(table: str, param: str) -> str:
        return f'json_populate_recordset(NULL::"{table}", %({param})s::json)'

    def insert(table: str, columns: tuple[str, ...], param: str) -> str:
        names = ", ".join(f'"{c}"' for c in columns)
        return f'INSERT INTO "{table}" ({names}) SELECT {names} FROM {rows(table, param)}'

    ledger = f", ledger_rows AS ({insert('cost_ledger', ledger_columns, 'ledger')})"
    # each answer's job row, locked, and whether the answer still holds its lease
    # (read from the row as it is once locked, not from the statement's snapshot)
    held = (
        f", held AS MATERIALIZED (SELECT jobs.id, (jobs.status = '{leases.RUNNING}'"
        " AND jobs.lease_owner = answer.lease_owner) IS TRUE AS won"
        f" FROM jobs JOIN {rows('jobs', 'jobs')} AS answer ON jobs.id = answer.id"
        # the ids again, as the claim of many jobs gives them: reached by the index
        " WHERE jobs.id = ANY(%(ids)s::text[]) FOR UPDATE OF jobs)"
    )
    kept = {"id", "lease_owner", "cost_micro_usd"}
    assignments = [
        f'"{c}" = CASE WHEN held.won THEN answer."{c}" ELSE jobs."{c}" END'
        for c in job_columns
        if c not in kept
    ]
    assignments += [
        "lease_expires_at = CASE WHEN held.won THEN NULL ELSE jobs.lease_expires_at END",
        "next_attempt_at = CASE WHEN held.won THEN NULL ELSE jobs.next_attempt_at END",
        "attempts = jobs.attempts + 1",  # a lost lease's call counts all the same
        "cost_micro_usd = jobs.cost_micro_usd + answer.cost_micro_usd",
    ]
    return (
        f"WITH attempt_rows AS ({insert('attempts', attempt_columns, 'attempts')})"
        f"{ledger if ledger_columns else ''}{held}"
        f" UPDATE jobs SET {', '.join(assignments)}"
        f" FROM held, {rows('jobs', 'jobs')} AS answer"
        " WHERE jobs.id = held.id AND jobs.id = answer.id AND jobs.id = ANY(%(ids)s::text[])"
        " RETURNING jobs.id, held.won, jobs.cost_micro_usd, jobs.finished_at"
    )
