"""The official ``openai`` SDK against the simulator's Files and Batch APIs, over real HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any, Final

import httpx
import openai
import pytest
from openai.types import Batch
from openai.types.chat import ChatCompletion

ENDPOINT: Final = "/v1/chat/completions"


def configure(root: str, **profile: Any) -> None:
    httpx.put(f"{root}/_sim/config", json={"default": profile}).raise_for_status()


def batch_stats(root: str) -> dict[str, int]:
    stats: dict[str, int] = httpx.get(f"{root}/_sim/stats").json()["batches"]["total"]
    return stats


def body(i: int, model: str = "gpt-4o-mini") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": f"Question number {i}?"}]}


def input_file(n: int, **overrides: Any) -> bytes:
    rows = [
        {"custom_id": f"req-{i}", "method": "POST", "url": ENDPOINT, "body": body(i), **overrides}
        for i in range(n)
    ]
    return "\n".join(json.dumps(r) for r in rows).encode()


@pytest.fixture
def oai(fresh_simulator: str) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=f"{fresh_simulator}/v1", api_key="sk-test", max_retries=0)
    yield client
    client.close()


def submit(oai: openai.OpenAI, data: bytes, **options: Any) -> Batch:
    uploaded = oai.files.create(file=("requests.jsonl", data), purpose="batch")
    return oai.batches.create(
        input_file_id=uploaded.id, endpoint=ENDPOINT, completion_window="24h", **options
    )


def wait_until_ended(oai: openai.OpenAI, batch_id: str, timeout_s: float = 15) -> Batch:
    deadline = time.monotonic() + timeout_s
    while True:
        batch = oai.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return batch
        assert time.monotonic() < deadline, f"batch still {batch.status}"
        time.sleep(0.1)


def lines(oai: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    return [json.loads(line) for line in oai.files.content(file_id).text.splitlines()]


def test_a_batch_runs_for_its_processing_time_and_answers_like_the_synchronous_endpoint(
    oai: openai.OpenAI, fresh_simulator: str
) -> None:
    # Given a processing time of 1.5 s and a three-line input file
    configure(fresh_simulator, batch_processing_s=1.5)
    created = submit(oai, input_file(3), metadata={"switchyard_batch": "b1"})
    # When it is read at once and again after its processing time
    early = oai.batches.retrieve(created.id)
    ended = wait_until_ended(oai, created.id)
    # Then it was validating, then in progress, then completed after about 1.5 s
    assert created.status == "validating" and early.status == "in_progress"
    assert ended.status == "completed" and ended.metadata == {"switchyard_batch": "b1"}
    assert ended.completed_at is not None and ended.completed_at - ended.created_at >= 1
    assert ended.request_counts is not None and ended.request_counts.completed == 3
    assert ended.error_file_id is None and ended.usage is not None
    # And each output line's body is the chat.completion the synchronous endpoint gives
    rows = lines(oai, ended.output_file_id)
    assert [r["custom_id"] for r in rows] == ["req-0", "req-1", "req-2"]
    for i, row in enumerate(rows):
        assert row["error"] is None and row["response"]["status_code"] == 200
        completion = ChatCompletion.model_validate(row["response"]["body"])
        direct = oai.chat.completions.create(**body(i))
        assert completion.choices[0].message.content == direct.choices[0].message.content
        assert completion.usage == direct.usage
    assert ended.usage.output_tokens == sum(
        r["response"]["body"]["usage"]["completion_tokens"] for r in rows
    )


def test_failed_lines_land_in_the_error_file(oai: openai.OpenAI, fresh_simulator: str) -> None:
    # Given a 50% line error rate drawn evenly, and a file with one invalid request
    configure(fresh_simulator, batch_line_error_rate=0.5, fault_draw="even")
    data = (
        input_file(4)
        + b"\n"
        + json.dumps(
            {
                "custom_id": "bad",
                "method": "POST",
                "url": ENDPOINT,
                "body": {"model": "gpt-4o-mini"},
            }
        ).encode()
    )
    # When the batch completes
    batch = wait_until_ended(oai, submit(oai, data).id)
    # Then two lines failed with a 500, the invalid one with a 400, in the error file
    assert batch.status == "completed" and batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (2, 3)
    errors = {r["custom_id"]: r for r in lines(oai, batch.error_file_id)}
    assert errors["bad"]["response"]["status_code"] == 400
    assert errors["bad"]["response"]["body"]["error"]["param"] == "messages"
    statuses = sorted(r["response"]["status_code"] for r in errors.values())
    assert statuses == [400, 500, 500]
    assert len(lines(oai, batch.output_file_id)) == 2
    stats = batch_stats(fresh_simulator)
    assert (stats["lines_served"], stats["lines_failed"]) == (2, 3)


def test_a_configured_expiry_hits_exactly_the_first_batch(
    oai: openai.OpenAI, fresh_simulator: str
) -> None:
    # Given every batch picked to expire, but at most one
    configure(fresh_simulator, batch_expire_rate=1.0, batch_expire_max=1)
    # When two batches of four lines run
    first = wait_until_ended(oai, submit(oai, input_file(4)).id)
    second = wait_until_ended(oai, submit(oai, input_file(4)).id)
    # Then the first expired with half its lines done and the others marked expired
    assert first.status == "expired" and first.expired_at is not None
    assert len(lines(oai, first.output_file_id)) == 2
    expired = lines(oai, first.error_file_id)
    assert [r["error"]["code"] for r in expired] == ["batch_expired"] * 2
    assert all(r["response"] is None for r in expired)
    # And the second completed
    assert second.status == "completed"
    assert batch_stats(fresh_simulator)["expired"] == 1


def test_the_expire_header_expires_one_batch(oai: openai.OpenAI) -> None:
    # Given a batch created with x-simulator-batch-expire
    batch = submit(oai, input_file(2), extra_headers={"x-simulator-batch-expire": "true"})
    # Then it expires
    assert wait_until_ended(oai, batch.id).status == "expired"


def test_cancel_goes_cancelling_then_cancelled(oai: openai.OpenAI, fresh_simulator: str) -> None:
    # Given a batch that takes a minute
    configure(fresh_simulator, batch_processing_s=60)
    batch = submit(oai, input_file(3))
    # When cancelled
    cancelling = oai.batches.cancel(batch.id)
    cancelled = oai.batches.retrieve(batch.id)
    # Then it says cancelling, then cancelled, its lines marked batch_cancelled
    assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
    assert cancelled.status == "cancelled" and cancelled.cancelled_at is not None
    rows = lines(oai, cancelled.error_file_id)
    assert [r["error"]["code"] for r in rows] == ["batch_cancelled"] * 3
    assert batch_stats(fresh_simulator)["cancelled"] == 1
    # And a completed batch cannot be cancelled
    configure(fresh_simulator)
    done = wait_until_ended(oai, submit(oai, input_file(1)).id)
    with pytest.raises(openai.ConflictError):
        oai.batches.cancel(done.id)


def test_an_invalid_input_file_fails_the_batch_with_its_errors(oai: openai.OpenAI) -> None:
    # Given a file whose second line repeats the first line's custom_id
    data = input_file(1) + b"\n" + input_file(1)
    # When the batch is created and read
    batch = wait_until_ended(oai, submit(oai, data).id)
    # Then it failed, with the line and the reason
    assert batch.status == "failed" and batch.errors is not None and batch.errors.data
    error = batch.errors.data[0]
    assert (error.code, error.line) == ("duplicate_custom_id", 2)


@pytest.mark.parametrize(
    ("field", "options"),
    [
        ("input_file_id", {"input_file_id": "file-missing"}),
        ("endpoint", {"endpoint": "/v1/embeddings"}),
        ("completion_window", {"completion_window": "1h"}),
        ("metadata", {"metadata": {"k": "v" * 600}}),
    ],
)
def test_bad_create_requests_are_400s_naming_the_field(
    oai: openai.OpenAI, field: str, options: dict[str, Any]
) -> None:
    # Given an uploaded file and a create request with one bad field
    uploaded = oai.files.create(file=("in.jsonl", input_file(1)), purpose="batch")
    request: dict[str, Any] = {
        "input_file_id": uploaded.id,
        "endpoint": ENDPOINT,
        "completion_window": "24h",
    }
    # When created; Then the SDK raises a 400 naming that field
    with pytest.raises(openai.BadRequestError) as refused:
        oai.batches.create(**{**request, **options})
    assert refused.value.param == field


def test_batches_list_newest_first_in_pages(oai: openai.OpenAI) -> None:
    # Given three batches
    ids = [submit(oai, input_file(1)).id for _ in range(3)]
    # When listed two at a time
    page = oai.batches.list(limit=2)
    # Then the first page has the two newest and more to come; paging reaches all three
    assert [b.id for b in page.data] == ids[:0:-1] and page.has_more is True
    assert [b.id for b in page] == ids[::-1]


def test_files_upload_read_delete_and_size_cap(
    oai: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an uploaded file
    uploaded = oai.files.create(file=("in.jsonl", input_file(2)), purpose="batch")
    # Then it reads back, with its size, and is gone once deleted
    assert oai.files.retrieve(uploaded.id).bytes == len(input_file(2))
    assert oai.files.content(uploaded.id).content == input_file(2)
    assert oai.files.delete(uploaded.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        oai.files.retrieve(uploaded.id)
    # And a file over the size cap is a 413; a purpose other than batch a 400
    monkeypatch.setattr("orchestrator.simulator.batch_files.MAX_FILE_BYTES", 100)
    with pytest.raises(openai.APIStatusError) as too_big:
        oai.files.create(file=("in.jsonl", input_file(2)), purpose="batch")
    assert too_big.value.status_code == 413
    with pytest.raises(openai.BadRequestError):
        oai.files.create(file=("in.jsonl", b"{}"), purpose="assistants")
