"""The floor of ``switchyard bench overhead --floor`` (``loadtests/_floor.py``) is a real path:
its API answers a chat completion through its Celery worker and the simulator, and with
its database it leaves the job's row written (``answer_first``: before the answer reaches
the client). The batch floor of ``switchyard bench pipeline --floor`` answers every job of a
batch."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
from openai.types.chat import ChatCompletion

from loadtests import _floor
from loadtests._floor import floor_processes
from loadtests._services import libpq_url
from tests.integration.conftest import Cluster

BODY = {"model": "floor", "messages": [{"role": "user", "content": "Say hello."}]}


def _rows(database_url: str) -> list[tuple[str, str]]:
    conninfo = libpq_url(database_url)
    with psycopg.connect(conninfo) as conn:
        return [(str(s), str(a)) for s, a in conn.execute("SELECT status, answer FROM floor_jobs")]


@pytest.mark.parametrize(("with_db", "answer_first"), [(True, False), (True, True), (False, False)])
def test_the_floor_answers_through_its_worker(
    cluster: Cluster,
    database_url: str,
    redis_url: str,
    tmp_path: Path,
    with_db: bool,
    answer_first: bool,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the floor runs on Postgres: set SWITCHYARD_TEST_DATABASE_URL")
    with floor_processes(
        database_url=database_url,
        redis_url=redis_url,
        simulator_url=cluster.settings.simulator_url,
        log_dir=tmp_path,
        with_db=with_db,
        answer_first=answer_first,
    ) as floor:
        before = len(_rows(database_url)) if with_db else 0
        response = httpx.post(f"{floor.url}/v1/chat/completions", json=BODY, timeout=30)
        if answer_first:  # the answer is in its row by the time the client has it
            rows = _rows(database_url)
            assert len(rows) == before + 1 and rows[-1][0] == "succeeded"
    assert response.status_code == 200, response.text
    completion = ChatCompletion.model_validate(response.json())  # the simulator's, relayed
    assert completion.choices[0].message.content
    if with_db:
        rows = _rows(database_url)
        assert {status for status, _ in rows} == {"succeeded"}
        assert completion.id in {ChatCompletion.model_validate_json(a).id for _, a in rows}


def test_the_batch_floor_answers_every_job_of_a_batch(
    cluster: Cluster, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    """``bench pipeline --floor``: 40 jobs inserted and published 16 to a message (three
    messages, the last short) are claimed, answered by the simulator and written."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the floor runs on Postgres: set SWITCHYARD_TEST_DATABASE_URL")
    conninfo = libpq_url(database_url)
    client = redis.Redis.from_url(redis_url)
    _floor.app.conf.broker_url = redis_url
    prompts = [f"floor {i}: say hello." for i in range(40)]
    with (
        psycopg.connect(conninfo, autocommit=True) as conn,
        _floor.floor_workers(
            database_url=database_url,
            redis_url=redis_url,
            simulator_url=cluster.settings.simulator_url,
            log_dir=tmp_path,
            processes=1,
            threads=4,
        ) as floor,
    ):
        conn.execute(_floor.TABLE)
        before = dict(conn.execute("SELECT status, count(*) FROM floor_jobs GROUP BY status"))
        _floor.publish_batch(conn, prompts, queue=floor.queue)
        deadline = time.monotonic() + 30
        key = _floor.done_count_key(floor.queue)
        while int(client.get(key) or 0) < len(prompts) and time.monotonic() < deadline:
            time.sleep(0.05)
        after = dict(conn.execute("SELECT status, count(*) FROM floor_jobs GROUP BY status"))
        answers = conn.execute(
            "SELECT answer FROM floor_jobs WHERE prompt = ANY(%s)", (prompts,)
        ).fetchall()
    assert int(client.get(key) or 0) == len(prompts)
    assert after.get("succeeded", 0) - before.get("succeeded", 0) == len(prompts)
    assert after.get("queued", 0) == before.get("queued", 0)
    assert len(answers) == len(prompts)
    assert all(ChatCompletion.model_validate_json(a).choices[0].message.content for (a,) in answers)
