"""Python SDK for services that hand Switchyard work: ``Switchyard`` (sync) and ``AsyncSwitchyard``.

    from orchestrator.client.sdk import Switchyard
    with Switchyard("http://switchyard:8000", api_key) as sy:
        job = sy.wait_job(sy.submit_job(prompt="What is 2 + 2?").id, timeout_s=60)
        batch = sy.submit_batch({"prompt": p, "custom_id": str(i)} for i, p in enumerate(prompts))
        sy.wait_batch(batch.id, timeout_s=3600)
        for line in sy.iter_results(batch.id):
            print(line.custom_id, line.status, line.output)

Requests and answers are the API's own pydantic models (``JobRequest``,
``JobView``, ``BatchView``, ``BatchResultLine``). A batch is validated line by line
before it is sent (``ValidationFailed`` names the index), then streamed as JSON
Lines, so an iterable of 50,000 jobs is never held in memory. Error answers are
raised as the classes of ``orchestrator.core.errors`` (``NotFound``, ``RateLimited``...).
For OpenAI-style calls, point the official ``openai`` SDK at ``<base_url>/v1``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import httpx

from orchestrator.client.common import (
    ClientBase,
    JobInput,
    Progress,
    TargetSettings,
    batch_done,
    checked,
    error_from,
    job_input,
    jsonl,
)
from orchestrator.core.schemas import JobView
from orchestrator.wire.batch_objects import BatchList, BatchResultLine, BatchView
from orchestrator.wire.webhooks import verify_signature

__all__ = ["AsyncSwitchyard", "Switchyard", "error_from", "verify_signature"]


class Switchyard(ClientBase):
    """Blocking client (httpx); one per thread or shared, it is thread-safe."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 30.0,
        http: httpx.Client | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout_s)
        self.http = http or httpx.Client(timeout=timeout_s)

    @classmethod
    def from_settings(cls, settings: TargetSettings) -> Switchyard:
        return cls(*cls.settings_target(settings))

    def __enter__(self) -> Switchyard:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.http.request(
            method,
            self.base_url + path,
            headers={**self.headers, **kwargs.pop("headers", {})},
            **kwargs,
        )
        return checked(response)

    def submit_job(self, request: JobInput | None = None, **fields: Any) -> JobView:
        """Queue one job (interactive priority)."""
        body = job_input(request, fields)
        return JobView.model_validate(self._call("POST", "/v1/jobs", json=body).json())

    def get_job(self, job_id: str) -> JobView:
        return JobView.model_validate(self._call("GET", f"/v1/jobs/{job_id}").json())

    def cancel_job(self, job_id: str) -> JobView:
        return JobView.model_validate(self._call("POST", f"/v1/jobs/{job_id}/cancel").json())

    def wait_job(self, job_id: str, *, timeout_s: float = 300.0, poll_s: float = 0.5) -> JobView:
        """Poll until the job is final; ``TimeoutError`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            view = self.get_job(job_id)
            if view.status.final:
                return view
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} still {view.status} after {timeout_s}s")
            time.sleep(poll_s)

    def submit_batch(
        self, jobs: Iterable[JobInput], *, callback_url: str | None = None
    ) -> BatchView:
        """Queue many jobs as one batch, streamed as JSON Lines."""
        params = {"callback_url": callback_url} if callback_url else None
        response = self._call(
            "POST",
            "/v1/batches",
            content=jsonl(jobs),
            params=params,
            headers={"Content-Type": "application/x-ndjson"},
        )
        return BatchView.model_validate(response.json())

    def get_batch(self, batch_id: str) -> BatchView:
        return BatchView.model_validate(self._call("GET", f"/v1/batches/{batch_id}").json())

    def list_batches(self, *, limit: int = 20, after: str | None = None) -> BatchList:
        params: dict[str, Any] = {"limit": limit, **({"after": after} if after else {})}
        return BatchList.model_validate(self._call("GET", "/v1/batches", params=params).json())

    def get_usage(
        self, *, group_by: str = "", since: str | None = None, until: str | None = None
    ) -> dict[str, Any]:
        """Your spend grouped by tier, provider, model, deployment, day or kind (COSTS.md)."""
        given = {"group_by": group_by, "since": since, "until": until}
        params = {k: v for k, v in given.items() if v}
        usage: dict[str, Any] = self._call("GET", "/v1/usage", params=params).json()
        return usage

    def cancel_batch(self, batch_id: str) -> BatchView:
        response = self._call("POST", f"/v1/batches/{batch_id}/cancel")
        return BatchView.model_validate(response.json())

    def wait_batch(
        self,
        batch_id: str,
        *,
        timeout_s: float = 3600.0,
        poll_s: float = 1.0,
        on_progress: Progress | None = None,
    ) -> BatchView:
        """Poll until every job of the batch is final, reporting each poll to ``on_progress``."""
        deadline = time.monotonic() + timeout_s
        while True:
            view = self.get_batch(batch_id)
            if on_progress is not None:
                on_progress(view)
            if batch_done(view):
                return view
            if time.monotonic() >= deadline:
                raise TimeoutError(f"batch {batch_id} still {view.status} after {timeout_s}s")
            time.sleep(poll_s)

    def iter_results(self, batch_id: str) -> Iterator[BatchResultLine]:
        """The batch's result lines, in submission order, streamed."""
        url = f"{self.base_url}/v1/batches/{batch_id}/results"
        with self.http.stream("GET", url, headers=self.headers) as response:
            if response.status_code >= 400:
                response.read()
                raise error_from(response)
            for line in response.iter_lines():
                if line.strip():
                    yield BatchResultLine.model_validate(json.loads(line))


class AsyncSwitchyard(ClientBase):
    """The same client for asyncio services."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 30.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout_s)
        self.http = http or httpx.AsyncClient(timeout=timeout_s)

    async def __aenter__(self) -> AsyncSwitchyard:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        response = await self.http.request(method, self.base_url + path, headers=headers, **kwargs)
        return checked(response)

    async def submit_job(self, request: JobInput | None = None, **fields: Any) -> JobView:
        body = job_input(request, fields)
        return JobView.model_validate((await self._call("POST", "/v1/jobs", json=body)).json())

    async def get_job(self, job_id: str) -> JobView:
        return JobView.model_validate((await self._call("GET", f"/v1/jobs/{job_id}")).json())

    async def wait_job(
        self, job_id: str, *, timeout_s: float = 300.0, poll_s: float = 0.5
    ) -> JobView:
        deadline = time.monotonic() + timeout_s
        while True:
            view = await self.get_job(job_id)
            if view.status.final:
                return view
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} still {view.status} after {timeout_s}s")
            await asyncio.sleep(poll_s)

    async def submit_batch(
        self, jobs: Iterable[JobInput], *, callback_url: str | None = None
    ) -> BatchView:
        params = {"callback_url": callback_url} if callback_url else None

        async def body() -> AsyncIterator[bytes]:
            for chunk in jsonl(jobs):
                yield chunk

        response = await self._call(
            "POST",
            "/v1/batches",
            content=body(),
            params=params,
            headers={"Content-Type": "application/x-ndjson"},
        )
        return BatchView.model_validate(response.json())

    async def get_batch(self, batch_id: str) -> BatchView:
        return BatchView.model_validate((await self._call("GET", f"/v1/batches/{batch_id}")).json())

    async def cancel_batch(self, batch_id: str) -> BatchView:
        response = await self._call("POST", f"/v1/batches/{batch_id}/cancel")
        return BatchView.model_validate(response.json())

    async def wait_batch(
        self,
        batch_id: str,
        *,
        timeout_s: float = 3600.0,
        poll_s: float = 1.0,
        on_progress: Progress | None = None,
    ) -> BatchView:
        deadline = time.monotonic() + timeout_s
        while True:
            view = await self.get_batch(batch_id)
            if on_progress is not None:
                on_progress(view)
            if batch_done(view):
                return view
            if time.monotonic() >= deadline:
                raise TimeoutError(f"batch {batch_id} still {view.status} after {timeout_s}s")
            await asyncio.sleep(poll_s)

    async def iter_results(self, batch_id: str) -> AsyncIterator[BatchResultLine]:
        url = f"{self.base_url}/v1/batches/{batch_id}/results"
        async with self.http.stream("GET", url, headers=self.headers) as response:
            if response.status_code >= 400:
                await response.aread()
                raise error_from(response)
            async for line in response.aiter_lines():
                if line.strip():
                    yield BatchResultLine.model_validate(json.loads(line))
