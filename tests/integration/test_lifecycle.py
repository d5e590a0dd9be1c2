"""Job state transitions in the database: leases, cancel, re-drive, expiry, lost-work finders.

Time is moved by writing timestamps into rows, never by sleeping.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, update
from sqlalchemy.exc import OperationalError

from orchestrator.core.schemas import JobStatus
from orchestrator.store import answered, leases, lifecycle, repo
from orchestrator.store.db import get_engine, session_scope
from orchestrator.store.models import Attempt, Job, new_id, utcnow
from tests.conftest import private_database
from workers.db_retry import in_transaction

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    # Its own database: the session's cluster runs a reconciler that would take the
    # lost and dead jobs these tests write before the finders under test see them.
    with private_database(tmp_path_factory) as url:
        yield get_engine(url)


@pytest.fixture
def tenant(engine: Engine) -> str:
    with session_scope(engine) as session:
        return repo.create_tenant(session, name=f"life-{secrets.token_hex(4)}").id


def add_job(engine: Engine, tenant: str, **values: Any) -> str:
    job_id = new_id("job")
    row = {
        "id": job_id,
        "tenant_id": tenant,
        "status": "queued",
        "tier": values.pop("tier", "fast"),
        "tier_reasons": [],
        "plan": ["sim-gpt-4o-mini"],
        "priority": 6,
        "request": {"prompt": "hi"},
        "created_at": utcnow(),
        **values,
    }
    with session_scope(engine) as session:
        repo.insert_jobs(session, rows=[row])
    return job_id


def set_job(engine: Engine, job_id: str, **values: Any) -> None:
    with session_scope(engine) as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def job(engine: Engine, job_id: str) -> Job:
    with session_scope(engine) as session:
        row = session.get(Job, job_id)
        assert row is not None
        return row


def claim(engine: Engine, job_id: str, owner: str = "host:1:1") -> leases.Claim:
    with session_scope(engine) as session:
        return leases.claim_job(session, job_id=job_id, owner=owner, lease_s=30)


def test_a_job_is_claimed_once_and_taken_over_only_when_its_lease_expired(
    engine: Engine, tenant: str
) -> None:
    # Given a queued job claimed by one worker
    job_id = add_job(engine, tenant)
    assert claim(engine, job_id, "host:1:1").job is not None
    # When another worker gets the same message; Then it finds the lease held
    assert claim(engine, job_id, "host:2:1") == leases.Claim(None, status="running")
    # When the first lease expires; Then the next claim takes it over and counts the expiry
    set_job(engine, job_id, lease_expires_at=utcnow() - timedelta(seconds=1))
    taken = claim(engine, job_id, "host:2:1").job
    assert taken is not None and taken.lease_owner == "host:2:1"
    assert (taken.deliveries, taken.lease_expiries) == (2, 1)
    # And the first owner can no longer finish it
    with session_scope(engine) as session:
        assert not leases.finish_job(
            session, job_id=job_id, owner="host:1:1", values={"status": "succeeded"}
        )
        assert leases.finish_job(
            session, job_id=job_id, owner="host:2:1", values={"status": "succeeded"}
        )
    assert claim(engine, job_id, "host:3:1").status == "succeeded"


def test_a_deferred_job_is_claimed_only_when_due(engine: Engine, tenant: str) -> None:
    # Given a running job handed back for 60 s
    job_id = add_job(engine, tenant)
    claim(engine, job_id)
    due = utcnow() + timedelta(seconds=60)
    with session_scope(engine) as session:
        assert leases.defer_job(
            session,
            job_id=job_id,
            owner="host:1:1",
            status=JobStatus.RETRYING,
            next_attempt_at=due,
            progress={"tries": {"a": 1}},
            error="boom",
        )
    # When a message arrives early; Then the claim says when it is due
    early = claim(engine, job_id)
    assert early.job is None and early.status == "retrying" and early.due_at is not None
    # When it is due; Then it is claimed, with its progress
    set_job(engine, job_id, next_attempt_at=utcnow())
    due_claim = claim(engine, job_id).job
    assert due_claim is not None and due_claim.progress == {"tries": {"a": 1}}


def test_many_jobs_are_claimed_in_one_statement_each_as_it_would_be_alone(
    engine: Engine, tenant: str
) -> None:
    # Given a queued job, one running elsewhere, one whose lease expired, one not due, one done
    queued, held, expired, later, done = (add_job(engine, tenant) for _ in range(5))
    claim(engine, held, "host:1:1")
    claim(engine, expired, "host:1:2")
    set_job(engine, expired, lease_expires_at=utcnow() - timedelta(seconds=1))
    set_job(engine, later, status="retrying", next_attempt_at=utcnow() + timedelta(seconds=60))
    set_job(engine, done, status="succeeded")
    owners = {i: f"host:2:{n}" for n, i in enumerate([queued, held, expired, later, done, "nope"])}
    # When one worker claims them all at once
    with session_scope(engine) as session:
        claims = leases.claim_jobs(session, owners=owners, lease_s=30)
    # Then the queued job and the expired lease are its, each under its own owner
    assert list(claims) == list(owners)
    for job_id in (queued, expired):
        got = claims[job_id].job
        assert got is not None and got.lease_owner == owners[job_id] and got.status == "running"
        assert got.request == {"prompt": "hi"}
    assert claims[expired].job is not None and claims[expired].job.lease_expiries == 1
    # And every other job says why not, as claim_job would
    assert claims[held] == leases.Claim(None, status="running")
    assert claims[later].status == "retrying" and claims[later].due_at is not None
    assert claims[done] == leases.Claim(None, status="succeeded")
    assert claims["nope"] == leases.Claim(None)
    assert job(engine, held).lease_owner == "host:1:1"


def test_heartbeat_keeps_held_leases_and_reports_lost_ones(engine: Engine, tenant: str) -> None:
    # Given two jobs this process runs, one of which is then cancelled
    kept, cancelled = add_job(engine, tenant), add_job(engine, tenant)
    claim(engine, kept, "h:9:1")
    claim(engine, cancelled, "h:9:2")
    with session_scope(engine) as session:
        assert lifecycle.cancel_jobs(session, tenant_id=tenant, job_ids=[cancelled]) == 1
    # When the heartbeat renews them; Then only the job still running is held
    with session_scope(engine) as session:
        held = leases.renew_leases(
            session, job_ids=[kept, cancelled], owner_prefix="h:9:", lease_s=30
        )
    assert held == {kept}
    assert job(engine, cancelled).status == "cancelled"


def test_cancel_and_redrive(engine: Engine, tenant: str) -> None:
    # Given a failed, a succeeded and a queued job
    failed = add_job(engine, tenant, status="failed", error="x", progress={"tries": {"a": 3}})
    done = add_job(engine, tenant, status="succeeded")
    waiting = add_job(engine, tenant)
    # When all are cancelled; Then only the queued one changes
    with session_scope(engine) as session:
        ids = [failed, done, waiting]
        assert lifecycle.cancel_jobs(session, tenant_id=tenant, job_ids=ids) == 1
    # When the failed and cancelled ones are re-driven; Then they are queued, with a fresh slate
    with session_scope(engine) as session:
        pending = lifecycle.redrive_jobs(
            session, tenant_id=tenant, deadline_s=60, job_ids=[failed, done, waiting]
        )
    assert sorted(p.job_id for p in pending) == sorted([failed, waiting])
    again = job(engine, failed)
    assert (again.status, again.error, again.progress, again.redrives) == ("queued", None, {}, 1)
    assert again.deadline_at is not None
    # And another tenant cannot touch them
    with session_scope(engine) as session:
        assert lifecycle.cancel_jobs(session, tenant_id="ten_other", job_ids=[failed]) == 0


def test_jobs_past_their_deadline_expire_unless_a_live_worker_holds_them(
    engine: Engine, tenant: str
) -> None:
    past = utcnow() - timedelta(seconds=1)
    waiting = add_job(engine, tenant, deadline_at=past)
    live = add_job(engine, tenant, deadline_at=past)
    claim(engine, live)
    dead = add_job(engine, tenant, deadline_at=past)
    claim(engine, dead)
    set_job(engine, dead, lease_expires_at=past)
    future = add_job(engine, tenant, deadline_at=utcnow() + timedelta(hours=1))
    with session_scope(engine) as session:
        lifecycle.expire_overdue(session, now=utcnow())
    statuses = {j: job(engine, j).status for j in (waiting, live, dead, future)}
    assert statuses == {waiting: "expired", live: "running", dead: "expired", future: "queued"}


def test_dead_leases_are_found_once_per_death(engine: Engine, tenant: str) -> None:
    # Given a job whose worker died
    dead = add_job(engine, tenant, tier="code")
    claim(engine, dead)
    set_job(engine, dead, lease_expires_at=utcnow() - timedelta(seconds=1))

    def find() -> set[str]:
        with session_scope(engine) as session:
            found = lifecycle.dead_leases(session, now=utcnow(), requeue_s=30)
        return {p.job_id for p in found} & {dead}

    # When the reconciler looks twice; Then it finds it once
    assert find() == {dead}
    assert find() == set()
    # When the re-published job is claimed and its new worker dies too; Then it is found again
    claim(engine, dead)
    set_job(engine, dead, lease_expires_at=utcnow() - timedelta(seconds=1))
    assert find() == {dead}


def test_deferred_jobs_are_published_shortly_before_they_are_due(
    engine: Engine, tenant: str
) -> None:
    # Given three deferred jobs: due in 2 s, due in a minute, and one already published
    now = utcnow()
    soon = add_job(engine, tenant, status="retrying", next_attempt_at=now + timedelta(seconds=2))
    later = add_job(engine, tenant, status="retrying", next_attempt_at=now + timedelta(minutes=1))
    sent = add_job(engine, tenant, next_attempt_at=now, requeued_at=now)

    def find() -> set[str]:
        with session_scope(engine) as session:
            found = lifecycle.due_unsent(session, now=utcnow(), lookahead_s=3)
        return {p.job_id for p in found} & {soon, later, sent}

    # Then only the one due within the look-ahead is published, once, with its due time
    assert find() == {soon}
    assert find() == set()


def test_waiting_jobs_due_for_a_while_are_lost_when_their_queue_is_empty(
    engine: Engine, tenant: str
) -> None:
    long_ago = utcnow() - timedelta(minutes=5)
    # published long ago (dispatched, or woken by the reconciler), never claimed: lost
    old = add_job(engine, tenant, tier="vision", created_at=long_ago)
    woken = add_job(
        engine,
        tenant,
        tier="vision",
        status="retrying",
        next_attempt_at=long_ago,
        requeued_at=long_ago,
    )
    # just dispatched; deferred and not yet published; due later: not lost
    new = add_job(engine, tenant, tier="vision")
    unsent = add_job(engine, tenant, tier="vision", status="retrying", next_attempt_at=long_ago)
    later = add_job(
        engine,
        tenant,
        tier="vision",
        created_at=long_ago,
        next_attempt_at=utcnow() + timedelta(minutes=5),
        requeued_at=long_ago,
    )

    def find() -> set[str]:
        with session_scope(engine) as session:
            found = lifecycle.lost_waiting(session, tier="vision", now=utcnow(), grace_s=15)
        return {p.job_id for p in found} & {old, woken, new, unsent, later}

    assert find() == {old, woken}
    assert find() == set()  # published just now: not again within the grace


def answer_for(engine: Engine, job_id: str, owner: str, cost: int | None) -> answered.Answer:
    """An answer to ``job_id`` by ``owner``: an attempt billed ``cost`` (None: not billed)."""
    record = repo.AttemptRecord(
        deployment="sim-gpt-4o-mini",
        provider="openai",
        model="gpt-4o-mini",
        outcome="ok",
        latency_ms=7,
        input_tokens=11,
        output_tokens=5,
        cost_micro_usd=cost,
        attempt_id=new_id("att"),
    )
    values = {"status": "succeeded", "output": f"answer {job_id}", "latency_ms": 7}
    values.update(tool_calls=[{"id": "t1", "name": "f", "arguments": "{}"}], error=None)
    return answered.Answer(job(engine, job_id), owner, record, values)


def test_answers_written_together_are_what_each_written_alone_would_be(
    engine: Engine, tenant: str
) -> None:
    # Given three running jobs, one of whose leases passed to another worker
    ids = [add_job(engine, tenant) for _ in range(3)]
    for n, job_id in enumerate(ids):
        claim(engine, job_id, f"h:3:{n}")
    set_job(engine, ids[2], lease_owner="elsewhere:1:1")
    answers = [answer_for(engine, ids[0], "h:3:0", 120), answer_for(engine, ids[1], "h:3:1", None)]
    answers.append(answer_for(engine, ids[2], "h:3:2", 40))
    # When their answers are written in one go
    with session_scope(engine) as session:
        won = answered.write_answers(session, answers)
    # Then the two still held are final with their answers, attempts and costs
    assert [w is not None for w in won] == [True, True, False]
    first, second, lost = (job(engine, i) for i in ids)
    assert won[0] == answered.Written(120, first.finished_at)  # as the row holds it
    assert (first.status, first.output, first.attempts, first.cost_micro_usd) == (
        "succeeded",
        f"answer {ids[0]}",
        1,
        120,
    )
    assert first.tool_calls == [{"id": "t1", "name": "f", "arguments": "{}"}]
    assert first.finished_at is not None and first.lease_expires_at is None
    assert (second.status, second.attempts, second.cost_micro_usd) == ("succeeded", 1, 0)
    # And the one whose lease was lost is not final, but counts the call and its cost
    assert (lost.status, lost.output, lost.attempts) == ("running", None, 1)
    assert lost.cost_micro_usd == 40
    # And every call has its attempt; each billed call one ledger row
    with session_scope(engine) as session:
        for answer in answers:
            entries = repo.ledger_for_job(session, tenant_id=tenant, job_id=answer.job.id)
            attempt = session.get(Attempt, answer.record.attempt_id)
            assert attempt is not None and attempt.job_id == answer.job.id
            assert [e.cost_micro_usd for e in entries] == (
                [] if answer.record.cost_micro_usd is None else [answer.record.cost_micro_usd]
            )
    # When the same writes are tried again (the first commit's reply was lost)
    with session_scope(engine) as session:
        again = answered.write_answers(session, answers, retry=True)
    # Then they are recognised: the same jobs won, and nothing is written twice
    assert again == won
    assert job(engine, ids[0]).attempts == 1 and job(engine, ids[2]).cost_micro_usd == 40
    with session_scope(engine) as session:
        entries = repo.ledger_for_job(session, tenant_id=tenant, job_id=ids[0])
        assert len(entries) == 1


def test_an_answer_whose_lease_was_lost_is_billed_by_the_same_statement(
    engine: Engine, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a running job whose lease passed to another worker, and a connection that
    # fails whatever statement follows the first write
    job_id = add_job(engine, tenant)
    claim(engine, job_id, "h:4:0")
    set_job(engine, job_id, lease_owner="elsewhere:1:1")
    lost = answer_for(engine, job_id, "h:4:0", 70)
    sent: list[bool] = []  # the answers' statement went (through the driver: no events)
    through = answered.driver_rows

    def answers_statement(*args: Any, **kwargs: Any) -> Any:
        sent.append(True)
        return through(*args, **kwargs)

    monkeypatch.setattr(answered, "driver_rows", answers_statement)
    failed: list[str] = []

    def fail_after_the_first_write(conn: Any, cursor: Any, sql: str, *_args: Any) -> None:
        if sent and not failed and not sql.lstrip().upper().startswith("SELECT"):
            failed.append(sql)
            raise OperationalError(sql, {}, ConnectionError("the connection dropped"))

    # When its answer is written without a transaction, retried as the workers retry it
    event.listen(engine, "before_cursor_execute", fail_after_the_first_write)
    try:
        won = in_transaction(
            engine,
            lambda s: answered.write_answers(s, [lost], retry=bool(s.info.get("retry"))),
            one_statement=True,
        )
    finally:
        event.remove(engine, "before_cursor_execute", fail_after_the_first_write)
    # Then the job counts its call and its cost once, and the answer did not win
    row = job(engine, job_id)
    assert (row.status, row.attempts, row.cost_micro_usd) == ("running", 1, 70)
    assert won == [None] and len(sent) == 1 and failed == []
    with session_scope(engine) as session:
        entries = repo.ledger_for_job(session, tenant_id=tenant, job_id=job_id)
    assert [e.cost_micro_usd for e in entries] == [70]


def test_two_answers_for_one_job_written_together_bill_both_and_one_wins(
    engine: Engine, tenant: str
) -> None:
    # Given a job whose first thread's lease expired and a second thread that took it over
    job_id = add_job(engine, tenant)
    claim(engine, job_id, "h:5:1")
    late = answer_for(engine, job_id, "h:5:0", 30)  # the first thread's, lease lost
    held = answer_for(engine, job_id, "h:5:1", 50)
    # When both answers reach the database in one write
    with session_scope(engine) as session:
        won = answered.write_answers(session, [late, held])
    # Then only the holder's answer won, and the job counts both calls and both costs
    row = job(engine, job_id)
    assert (row.status, row.lease_owner, row.attempts, row.cost_micro_usd) == (
        "succeeded",
        "h:5:1",
        2,
        80,
    )
    assert won == [None, answered.Written(80, row.finished_at)]
    # And when the holder's comes first, the late one loses to the job now final
    other = add_job(engine, tenant)
    claim(engine, other, "h:6:1")
    first, second = answer_for(engine, other, "h:6:1", 5), answer_for(engine, other, "h:6:1", 6)
    with session_scope(engine) as session:
        won = answered.write_answers(session, [first, second])
    row = job(engine, other)
    assert won == [answered.Written(5, row.finished_at), None]
    assert (row.attempts, row.cost_micro_usd) == (2, 11)
