"""A shortened ``switchyard bench chaos``: a few hundred jobs while workers, Redis and Postgres die.

The full run (``--jobs 2000``) and its figures are in RELIABILITY.md; this one
keeps every guarantee checked on each ``make test``. It starts its own Postgres
and Redis (never the shared ones), so it needs the Postgres server binaries.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtests import chaos
from loadtests._services import has_postgres_server

pytestmark = pytest.mark.integration


@pytest.mark.timeout(600)
@pytest.mark.skipif(
    not has_postgres_server(),
    reason="the chaos run needs the Postgres server binaries (initdb, pg_ctl)",
)
def test_no_job_is_lost_or_doubled_while_workers_redis_and_postgres_die(tmp_path: Path) -> None:
    # Given the whole cluster on a private Postgres and Redis, a simulator injecting 20% 5xx,
    # 5% 429 and 2% timeouts under a 240 rpm limit per deployment, and 200 jobs
    args = chaos.parse(["--jobs", "200", "--rpm", "240", "--kill-every", "3", "--timeout", "400"])
    # When a worker is SIGKILLed every 3 s, Redis restarts empty once and Postgres crashes once
    result = chaos.run(args, tmp_path)
    # Then every job is final, none twice, the ledger adds up, and the limit held at the provider
    assert result["worker_kills"] >= 2, result
    assert result["redis_restarts"] == result["postgres_restarts"] == 1, result
    assert result["survivor_jobs_after_redis_restart"] > 0, result  # it kept consuming
    assert result["lost"] == 0, result
    assert result["succeeded"] + result["failed"] + result["expired"] == 200, result
    assert result["duplicate_successes"] == 0, result
    assert result["ledger_mismatches"] == 0, result
    assert result["max_provider_rpm"] <= result["limit_rpm"], result
