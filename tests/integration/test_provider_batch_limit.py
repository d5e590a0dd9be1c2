"""The tokens a provider lets queue in batches per model (issue 26 item 4).

A private cluster on the real Postgres and Redis, the simulator, Celery worker
processes and the reconciler. The catalog lets two jobs' input tokens queue at
once: the gatherer never queues more, later lines wait for room, and one whose
deadline does not allow waiting runs synchronously instead.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from loadtests._cluster import ClusterSpec
from orchestrator.core.schemas import JobRequest
from orchestrator.core.tokens import estimate_request_tokens
from orchestrator.store.db import session_scope
from orchestrator.store.provider_batch_models import ProviderBatch, ProviderBatchLine
from tests.integration.reliability import MakeCluster, deployment, make_cluster
from tests.integration.test_provider_batch_cluster import (
    BATCH_PRICES,
    KNOBS,
    submit_native_batch,
    submitted_rows,
)
from tests.integration.test_provider_batch_withdraw import (
    SHORT_DEADLINE,
    ledger,
    line_states,
    prices,
    wait_for,
)

pytestmark = pytest.mark.integration
__all__ = ["make_cluster"]
# the words repeat so every job's estimate is the same; ~1,000 tokens each
PROMPT = "Summarise the quarterly ledger entries below. " + "ledger entry figure " * 300


def estimate() -> int:
    return estimate_request_tokens(JobRequest(prompt=PROMPT, tier="fast").canonical_messages())


def opened(batch: ProviderBatch) -> datetime:
    return batch.created_at.replace(tzinfo=batch.created_at.tzinfo or UTC)


def test_lines_over_the_queued_token_limit_wait_or_run_synchronously(
    make_cluster: MakeCluster,
) -> None:
    # Given a model whose provider lets two jobs' tokens queue in batches at once,
    # and provider batches that take 15 s
    tokens = estimate()
    limit = 2 * tokens + tokens // 2
    batch = BATCH_PRICES | {"max_queued_tokens": limit}
    cluster = make_cluster(
        ClusterSpec(
            deployments=[deployment("pb-mini", "gpt-4o-mini", price=1.0, batch=batch)],
            simulator={"default": {"batch_processing_s": 15.0}},
            tiers=("fast",),
            knobs=KNOBS | SHORT_DEADLINE,
        )
    )
    first = submit_native_batch(cluster, 2, prompt=PROMPT)
    wait_for("the first provider batch", lambda: submitted_rows(cluster) == 1)
    # When more jobs come while it runs: two with a 24h window, one that must run
    # synchronously 8 s after it was submitted (before the first batch ends)
    later = submit_native_batch(cluster, 2, prompt=PROMPT)
    [hurried] = cluster.submit([JobRequest(prompt=PROMPT, tier="fast", objective="cost")])
    job_ids = [*first, *later, hurried]
    statuses = cluster.wait_final(job_ids, timeout_s=150)
    # Then every job succeeded exactly once
    assert set(statuses.values()) == {"succeeded"}, statuses
    audit = cluster.audit(job_ids)
    assert (audit.lost, audit.duplicate_successes, audit.ledger_mismatches) == (0, 0, 0), audit
    # the later jobs waited for the first batch to end, then went by a second one
    with session_scope(cluster.engine) as session:
        made = list(session.scalars(select(ProviderBatch).order_by(ProviderBatch.created_at)))
        batch_of = dict(
            session.execute(
                select(ProviderBatchLine.job_id, ProviderBatchLine.provider_batch_id).where(
                    ProviderBatchLine.job_id.in_(job_ids)
                )
            ).all()
        )
        session.expunge_all()
    assert len(made) == 2, [(b.id, b.lines, b.input_tokens) for b in made]
    assert {batch_of[j] for j in first} == {made[0].id}
    assert {batch_of[j] for j in later} == {made[1].id}
    assert all(b.input_tokens <= limit for b in made)
    assert made[0].polled_at is not None
    ended_at = made[0].polled_at.replace(tzinfo=made[0].polled_at.tzinfo or UTC)
    assert opened(made[1]) >= ended_at, "the second batch was queued before the first ended"
    lines = line_states(cluster, job_ids)
    assert {lines[j] for j in [*first, *later]} == {"answered"}, lines
    # and the hurried job never queued: it left the waiting line and ran synchronously
    assert batch_of[hurried] is None and lines[hurried] == "withdrawn", lines
    [(_, outcome, cost, tokens_in, tokens_out)] = ledger(cluster, [hurried])
    assert (outcome, cost) == ("ok", prices(cluster, tokens_in, tokens_out)[0])
