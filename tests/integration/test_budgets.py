"""Budgets against a real Redis and database: reservations under contention, spend recovery."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import event, func, select

from orchestrator.core.catalog import load_catalog
from orchestrator.core.config import Settings
from orchestrator.core.errors import BudgetExceeded
from orchestrator.core.schemas import JobRequest
from orchestrator.costs.budgets import Budgets, TenantPolicy, set_budget
from orchestrator.costs.pricing import format_usd
from orchestrator.routing import route
from orchestrator.store import repo
from orchestrator.store.db import get_engine, session_scope
from orchestrator.store.models import LedgerEntry, UsageDaily, new_id, utcnow
from workers.execute import Outcome, Runtime

pytestmark = pytest.mark.integration


@pytest.fixture
def budgets(database_url: str, redis_url: str, key_prefix: str) -> Iterator[Budgets]:
    client = redis.Redis.from_url(redis_url)
    yield Budgets(
        client, get_engine(database_url), prefix=f"{key_prefix}b{secrets.token_hex(3)}:", ttl_s=0
    )
    client.close()


def tenant_with(budgets: Budgets, daily_micro_usd: int) -> str:
    with session_scope(budgets.engine) as session:
        tenant = repo.create_tenant(session, name=f"budget-{secrets.token_hex(4)}")
        set_budget(session, tenant_id=tenant.id, policy=TenantPolicy(daily_micro_usd, None))
        return tenant.id


def test_concurrent_reservations_never_pass_the_limit(budgets: Budgets) -> None:
    # Given a $0.01 daily budget and 16 threads admitting jobs of at most 900 micro-USD
    tenant_id = tenant_with(budgets, 10_000)
    settled: list[int] = []
    refused = threading.Event()

    def admit(worker: int) -> None:
        for i in range(40):
            holder = f"job-{worker}-{i}"
            try:
                budgets.reserve(tenant_id, holder, 900, hold_s=60)
            except BudgetExceeded:
                refused.set()
                continue
            budgets.settle(tenant_id, holder, 900, 600)  # the job really cost 600
            settled.append(600)

    # When they all admit and settle at once
    threads = [threading.Thread(target=admit, args=(w,)) for w in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then the budget filled up but was never passed, and nothing stays reserved
    daily = next(s for s in budgets.status(tenant_id) if s.period == "daily")
    assert refused.is_set()
    assert daily.spent_micro_usd == sum(settled) <= 10_000
    assert daily.spent_micro_usd > 10_000 - 900 and daily.reserved_micro_usd == 0


def test_a_stale_policy_is_read_again_by_one_thread_while_the_others_keep_it(
    budgets: Budgets,
) -> None:
    # Given a tenant's policy read once (and stale at once: the fixture's ttl is 0), and a
    # database that takes a while to answer the next read of its row
    tenant_id = tenant_with(budgets, 10_000)
    assert budgets.policy(tenant_id).limit("daily") == 10_000
    reads: list[str] = []

    def slow_read(_conn: Any, _cursor: Any, sql: str, params: Any, *_rest: Any) -> None:
        if "FROM tenants" in sql and tenant_id in str(params):
            reads.append(sql)
            time.sleep(0.3)

    event.listen(budgets.engine, "before_cursor_execute", slow_read)
    try:
        # When 16 threads ask for it at once
        seen: list[int | None] = []
        start = threading.Barrier(16)

        def ask() -> None:
            start.wait()
            seen.append(budgets.policy(tenant_id).limit("daily"))

        threads = [threading.Thread(target=ask) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        event.remove(budgets.engine, "before_cursor_execute", slow_read)
    # Then one of them read the row; the others kept the policy they had meanwhile
    assert len(reads) == 1
    assert seen == [10_000] * 16


def ok(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    usage = {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}
    choice = {
        "index": 0,
        "finish_reason": "stop",
        "message": {"role": "assistant", "content": "ok"},
    }
    return httpx.Response(
        200,
        json={
            "id": "c",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [choice],
            "usage": usage,
        },
    )


def test_spend_comes_back_from_the_rollup_and_the_402_names_budget_and_spend(
    database_url: str, budgets: Budgets
) -> None:
    # Given a job that ran and was billed (fake provider edge, real database)
    settings = Settings(database_url=database_url)
    http = httpx.Client(transport=httpx.MockTransport(ok))
    runtime = Runtime(settings, load_catalog(settings), get_engine(database_url), http)
    tenant_id = tenant_with(budgets, 1)
    request = JobRequest(prompt="Say hello.")
    decision = route(request, runtime.catalog)
    job_id = new_id("job")
    row = {
        "id": job_id,
        "tenant_id": tenant_id,
        "status": "queued",
        "tier": decision.tier.value,
        "tier_reasons": [],
        "plan": [d.name for d in decision.plan],
        "priority": 0,
        "request": request.model_dump(mode="json"),
        "created_at": utcnow(),
    }
    with session_scope(runtime.engine) as session:
        repo.insert_jobs(session, rows=[row])
    assert runtime.execute(job_id) is Outcome.SUCCEEDED
    with session_scope(runtime.engine) as session:
        cost = int(
            session.scalar(select(LedgerEntry.cost_micro_usd).where(LedgerEntry.job_id == job_id))
            or 0
        )
        rolled = session.scalar(
            select(func.sum(UsageDaily.cost_micro_usd)).where(UsageDaily.tenant_id == tenant_id)
        )
    # Then the rollup holds its cost, and a Redis without counters reloads it from there
    assert cost > 0 and rolled == cost
    budgets.client.delete(
        *[k for k in budgets.client.scan_iter(match=f"{budgets.prefix}*")] or ["-"]
    )
    daily = next(s for s in budgets.status(tenant_id) if s.period == "daily")
    assert daily.spent_micro_usd == cost
    # And with the budget set just above that spend, the next job is refused naming both
    with session_scope(budgets.engine) as session:
        set_budget(session, tenant_id=tenant_id, policy=TenantPolicy(cost + 10, None))
    with pytest.raises(BudgetExceeded) as refused:
        budgets.reserve(tenant_id, "next-job", 100, hold_s=60)
    assert refused.value.period == "daily"
    assert "daily budget" in str(refused.value) and f"spent {format_usd(cost)}" in str(
        refused.value
    )
