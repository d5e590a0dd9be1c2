"""The floor of ``switchyard bench overhead --floor`` (``loadtests/_floor.py``) is a real path:
its API answers a chat completion through its Celery worker and the simulator, and with
its database it leaves the job's row written (``answer_first``: before the answer reaches
the client)."""

from __future__ import annotations

from pathlib import Path

import httpx
import psycopg
import pytest
from openai.types.chat import ChatCompletion

from loadtests._floor import floor_processes
from tests.integration.conftest import Cluster

BODY = {"model": "floor", "messages": [{"role": "user", "content": "Say hello."}]}


def _rows(database_url: str) -> list[tuple[str, str]]:
    conninfo = database_url.replace("postgresql+psycopg", "postgresql")
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
