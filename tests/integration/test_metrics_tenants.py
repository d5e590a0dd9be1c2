"""``/metrics`` never names a tenant: budget gauges are aggregates per period.

Budgets on a real Redis and database; the text is what the API's ``/metrics``
serves from the process's default registry.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import redis
from prometheus_client import REGISTRY, generate_latest

from orchestrator.costs.budgets import Budgets, TenantPolicy, set_budget
from orchestrator.store import repo
from orchestrator.store.db import get_engine, session_scope

pytestmark = pytest.mark.integration


@pytest.fixture
def budgets(database_url: str, redis_url: str, key_prefix: str) -> Iterator[Budgets]:
    client = redis.Redis.from_url(redis_url)
    yield Budgets(
        client, get_engine(database_url), prefix=f"{key_prefix}m{secrets.token_hex(3)}:", ttl_s=0
    )
    client.close()


def test_budget_metrics_count_tenants_without_naming_them(budgets: Budgets) -> None:
    # Given a tenant with a $0.01 daily budget, 90% of it reserved (over its 80% warning)
    with session_scope(budgets.engine) as session:
        tenant = repo.create_tenant(session, name=f"metrics-{secrets.token_hex(4)}")
        set_budget(session, tenant_id=tenant.id, policy=TenantPolicy(10_000, None))
        tenant_id = tenant.id
    budgets.reserve(tenant_id, "job-1", 9_000, hold_s=60)
    # When its budget is read (as GET /v1/usage does), which sets the budget gauges
    [daily] = [s for s in budgets.status(tenant_id) if s.period == "daily"]
    assert daily.warning
    # Then /metrics counts a tenant in warning, and names no tenant anywhere
    text = generate_latest(REGISTRY).decode()
    assert tenant_id not in text
    assert 'tenant="' not in text
    warned = next(
        line
        for line in text.splitlines()
        if line.startswith('switchyard_budget_tenants_warning{period="daily"}')
    )
    assert float(warned.rsplit(" ", 1)[1]) >= 1
