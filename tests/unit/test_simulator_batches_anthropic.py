"""The official ``anthropic`` SDK against the simulator's Message Batches API, over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types.messages import MessageBatch

MODEL = "claude-haiku-3.5"


def configure(root: str, **profile: Any) -> None:
    httpx.put(f"{root}/_sim/config", json={"default": profile}).raise_for_status()


def params(i: int) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 200,
        "messages": [{"role": "user", "content": f"Question number {i}?"}],
    }


def requests(n: int) -> list[Any]:
    return [{"custom_id": f"req-{i}", "params": params(i)} for i in range(n)]


@pytest.fixture
def claude(fresh_simulator: str) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(base_url=fresh_simulator, api_key="sk-ant-test", max_retries=0)
    yield client
    client.close()


def wait_until_ended(claude: anthropic.Anthropic, batch_id: str) -> MessageBatch:
    deadline = time.monotonic() + 15
    while True:
        batch = claude.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        assert time.monotonic() < deadline, f"batch still {batch.processing_status}"
        time.sleep(0.1)


def results(claude: anthropic.Anthropic, batch_id: str) -> dict[str, Any]:
    return {r.custom_id: r.result for r in claude.messages.batches.results(batch_id)}


def test_a_batch_processes_then_ends_with_the_synchronous_answers(
    claude: anthropic.Anthropic, fresh_simulator: str
) -> None:
    # Given a processing time of 1 s and three requests
    configure(fresh_simulator, batch_processing_s=1.0)
    created = claude.messages.batches.create(requests=requests(3))
    # When read at once and after its processing time
    early = claude.messages.batches.retrieve(created.id)
    ended = wait_until_ended(claude, created.id)
    # Then every request counts as processing until the batch ends, then as succeeded
    assert early.processing_status == "in_progress" and early.request_counts.processing == 3
    assert early.results_url is None
    assert ended.request_counts.succeeded == 3 and ended.request_counts.processing == 0
    assert ended.ended_at is not None and ended.ended_at > ended.created_at
    assert ended.results_url is not None and ended.results_url.endswith(f"{created.id}/results")
    # And each result is the message the synchronous endpoint gives
    by_id = results(claude, created.id)
    for i in range(3):
        result = by_id[f"req-{i}"]
        assert result.type == "succeeded"
        direct = claude.messages.create(**params(i))
        assert result.message.content == direct.content
        assert result.message.usage.output_tokens == direct.usage.output_tokens


def test_failed_and_invalid_requests_are_errored(
    claude: anthropic.Anthropic, fresh_simulator: str
) -> None:
    # Given a 50% line error rate drawn evenly, and one request without max_tokens
    configure(fresh_simulator, batch_line_error_rate=0.5, fault_draw="even")
    invalid: Any = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    batch = claude.messages.batches.create(
        requests=[*requests(4), {"custom_id": "bad", "params": invalid}]
    )
    # When it ends
    ended = wait_until_ended(claude, batch.id)
    # Then two failed with an api_error, the invalid one with an invalid_request_error
    assert (ended.request_counts.succeeded, ended.request_counts.errored) == (2, 3)
    by_id = results(claude, batch.id)
    assert by_id["bad"].type == "errored"
    assert by_id["bad"].error.error.type == "invalid_request_error"
    kinds = sorted(r.error.error.type for r in by_id.values() if r.type == "errored")
    assert kinds == ["api_error", "api_error", "invalid_request_error"]
    stats = httpx.get(f"{fresh_simulator}/_sim/stats").json()["batches"]["formats"]["anthropic"]
    assert (stats["lines_served"], stats["lines_failed"]) == (2, 3)


def test_an_expired_batch_reports_expired_requests(
    claude: anthropic.Anthropic, fresh_simulator: str
) -> None:
    # Given every batch picked to expire
    configure(fresh_simulator, batch_expire_rate=1.0)
    # When a batch of four ends
    batch = wait_until_ended(claude, claude.messages.batches.create(requests=requests(4)).id)
    # Then half succeeded and half expired
    assert (batch.request_counts.succeeded, batch.request_counts.expired) == (2, 2)
    types = [results(claude, batch.id)[f"req-{i}"].type for i in range(4)]
    assert types == ["succeeded", "succeeded", "expired", "expired"]


def test_cancel_then_delete(claude: anthropic.Anthropic, fresh_simulator: str) -> None:
    # Given a batch that takes a minute
    configure(fresh_simulator, batch_processing_s=60)
    batch = claude.messages.batches.create(requests=requests(2))
    # When it cannot be deleted while running, then is cancelled
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.batches.delete(batch.id)
    canceling = claude.messages.batches.cancel(batch.id)
    ended = claude.messages.batches.retrieve(batch.id)
    # Then it was canceling, then ended with its requests canceled
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None
    assert ended.processing_status == "ended" and ended.request_counts.canceled == 2
    assert {r.type for r in results(claude, batch.id).values()} == {"canceled"}
    # And once deleted it is gone
    assert claude.messages.batches.delete(batch.id).type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.batches.retrieve(batch.id)


def test_list_newest_first_in_pages(claude: anthropic.Anthropic) -> None:
    # Given three batches
    ids = [claude.messages.batches.create(requests=requests(1)).id for _ in range(3)]
    # When listed two at a time
    page = claude.messages.batches.list(limit=2)
    # Then the first page holds the two newest; paging reaches all three
    assert [b.id for b in page.data] == ids[:0:-1] and page.has_more is True
    assert [b.id for b in page] == ids[::-1]


@pytest.mark.parametrize(
    ("batch_requests", "named"),
    [
        ([{"custom_id": "bad id!", "params": params(0)}], "requests.0.custom_id"),
        ([{"custom_id": "a", "params": params(0)}] * 2, "requests.1.custom_id"),
        ([{"custom_id": "a"}], "requests.0.params"),
        ([], "requests"),
    ],
)
def test_malformed_batches_are_400s_naming_the_request(
    claude: anthropic.Anthropic, batch_requests: list[Any], named: str
) -> None:
    # When a malformed batch is created; Then a 400 names the request at fault
    with pytest.raises(anthropic.BadRequestError, match=named.replace(".", r"\.")):
        claude.messages.batches.create(requests=batch_requests)
