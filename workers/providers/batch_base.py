"""What the provider batch lifecycle needs from a provider's batch API, whatever its wire.

    uploads                          True: an input file is uploaded before the batch is
                                     created (OpenAI); False: the requests travel inline
                                     in the create call (Anthropic, Gemini)
    tagged                           True: a created batch carries our tag, so
                                     ``find_batch`` is exact (OpenAI metadata, Gemini
                                     displayName); False (Anthropic): it is found by
                                     size and time, so creates of one provider run one
                                     at a time (``provider_batches.begin_alone``)
    line(custom_id, request)         one request in the provider's batch shape (its bytes
                                     count against the catalog's ``batch.max_bytes``)
    find_file(name), upload(...)     the input file step (only when ``uploads``)
    find_batch(manifest)             our batch if an earlier create's reply was lost
    create(file_id, tag, lines)      submit the batch -> ``BatchState``
    poll(batch_id)                   ``BatchState``
    results(batch_id, output, error, manifest)
                                     answer bodies by custom id, and the ids that failed
    parse(body, request)             a ``Completion``, as the synchronous adapter parses it
    cancel(batch_id)                 ``BatchState``

Each line carries the body the synchronous adapter would send, so both paths ask
the same question; ``parse`` is the synchronous adapter's own parser, so both
paths read the same answer. ``BatchWire`` is the shared HTTP edge: one injected
``httpx.Client``, errors raised through ``workers.providers.errors``; ``jsonl_line``
writes a line the way every adapter does, and ``InlineRequests`` is the file step of
the adapters whose requests travel inline (none).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import httpx

from orchestrator.core.catalog import Deployment
from orchestrator.core.schemas import Completion, JobRequest
from workers.providers.errors import error_from_response, error_from_transport


@dataclass(frozen=True)
class BatchState:
    """What the provider says of a batch: its id, status, whether it ended, its results."""

    id: str
    status: str
    ended: bool
    output_file_id: str | None = None  # where its answers are (a file id, a results URL)
    error_file_id: str | None = None
    completed: int = 0
    failed: int = 0


@dataclass(frozen=True)
class Manifest:
    """What our store knows of one provider batch, to recognise it and read its results.

    ``custom_ids`` are the lines still waiting for an answer, in the order they were
    sent; ``sent`` is how many requests the create call carried; ``since`` is when our
    row was made (the provider's batch cannot be older); ``taken`` are provider batch
    ids our store already records for other batches.
    """

    tag: str
    sent: int = 0
    custom_ids: tuple[str, ...] = ()
    since: datetime | None = None
    taken: frozenset[str] = frozenset()


@dataclass
class Results:
    """An ended batch's answers: provider bodies by custom id, the custom ids that
    failed, and those among them whose failure will not go away (``final``: the
    request itself was refused, e.g. a 400; they go synchronous, which reports it;
    any other unanswered line may wait for another provider batch)."""

    bodies: dict[str, Any] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)
    final: set[str] = field(default_factory=set)


class BatchAdapter(Protocol):
    """One deployment's batch API, as the lifecycle (``workers.batch_advance``) uses it."""

    @property
    def uploads(self) -> bool:
        """Whether an input file is uploaded first (else requests go inline)."""
        ...

    @property
    def tagged(self) -> bool:
        """Whether a created batch carries our tag (``find_batch`` is then exact)."""
        ...

    def line(self, custom_id: str, request: JobRequest) -> bytes: ...

    def find_file(self, name: str) -> str | None: ...

    def upload(self, name: str, lines: Sequence[bytes]) -> str: ...

    def find_batch(self, manifest: Manifest) -> BatchState | None: ...

    def create(self, file_id: str | None, tag: str, lines: Sequence[bytes] = ()) -> BatchState: ...

    def poll(self, batch_id: str) -> BatchState: ...

    def results(
        self, batch_id: str, output: str | None, error: str | None, manifest: Manifest
    ) -> Results: ...

    def parse(self, body: Any, request: JobRequest) -> Completion: ...

    def cancel(self, batch_id: str) -> BatchState: ...


def jsonl_line(row: dict[str, Any]) -> bytes:
    """One compact JSON line, as every adapter writes a batch line."""
    return json.dumps(row, separators=(",", ":")).encode() + b"\n"


class InlineRequests:
    """The file step of an adapter whose requests travel inline in the create call: none."""

    uploads = False

    def find_file(self, name: str) -> str | None:
        return None  # no file step: requests go inline

    def upload(self, name: str, lines: Sequence[bytes]) -> str:
        raise TypeError(f"{type(self).__name__} sends its requests inline, with no file")


def inline_array(lines: Sequence[bytes]) -> bytes:
    """JSON lines as one JSON array, without decoding them again."""
    return b"[" + b",".join(row.rstrip(b"\n") for row in lines) + b"]"


class BatchWire:
    """The HTTP edge every batch adapter shares: base URL, headers, errors mapped."""

    def __init__(
        self,
        client: httpx.Client,
        deployment: Deployment,
        api_key: str | None,
        headers: dict[str, str],
        base: str | None = None,
    ) -> None:
        self.client = client
        self.deployment = deployment
        self.api_key = api_key
        self.headers = headers
        self.base = (base or deployment.base_url).rstrip("/")

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """``path`` under the base URL (or an absolute URL); a ``ProviderError`` on failure."""
        url = path if path.startswith(("http://", "https://")) else f"{self.base}{path}"
        dep = self.deployment
        headers = self.headers | kwargs.pop("headers", {})
        try:
            response = self.client.request(method, url, headers=headers, **kwargs)
        except httpx.TransportError as exc:
            raise error_from_transport(
                exc, provider=dep.provider, model=dep.model, api_key=self.api_key
            ) from exc
        if response.status_code >= 400:
            raise error_from_response(
                response, provider=dep.provider, model=dep.model, api_key=self.api_key
            )
        return response

    def same_origin(self, url: str) -> bool:
        """Whether ``url`` is on the deployment's host (our key is only sent there)."""
        mine, theirs = httpx.URL(self.base), httpx.URL(url)
        return (mine.scheme, mine.host, mine.port) == (theirs.scheme, theirs.host, theirs.port)
