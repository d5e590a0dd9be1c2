"""OpenAI's Files API in the simulator: batch input files, and batches' output files.

    POST   /v1/files                multipart ``file`` + ``purpose=batch``
    GET    /v1/files                the uploaded files, newest first
    GET    /v1/files/{id}           a file object
    GET    /v1/files/{id}/content   its bytes (JSON Lines)
    DELETE /v1/files/{id}           ``{"id", "object": "file", "deleted": true}``

Uploads are held in memory: at most ``MAX_FILE_BYTES`` each (413 beyond),
``MAX_FILES`` files and ``MAX_TOTAL_BYTES`` in all (400 beyond: delete some). A
batch's output and error files are not stored: ``outputs`` renders them from the
batch when they are read (``simulator.batch_openai``).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from starlette.datastructures import UploadFile

from orchestrator.simulator import openai_wire
from orchestrator.simulator.batch_store import respond
from orchestrator.simulator.wire import SimError

if TYPE_CHECKING:
    from orchestrator.simulator.engine import Engine

MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_TOTAL_BYTES = 256 * 1024 * 1024
MAX_FILES = 1_000
PURPOSES = ("batch",)

# file id -> (file name, purpose, content), or None when it is not a batch's output
Outputs = Callable[[str], tuple[str, str, bytes] | None]


@dataclass(slots=True)
class SimFile:
    """An uploaded file: what the Files API reports about it, and its bytes."""

    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int


class FileStore:
    """Uploaded files in memory, oldest first, within the count and byte caps."""

    def __init__(self) -> None:
        self.files: OrderedDict[str, SimFile] = OrderedDict()
        self.total_bytes = 0

    def add(self, filename: str, purpose: str, data: bytes) -> SimFile:
        if len(self.files) >= MAX_FILES or self.total_bytes + len(data) > MAX_TOTAL_BYTES:
            raise SimError(400, "The simulator holds no more files; delete some first.")
        file_id = f"file-{uuid.uuid4().hex[:24]}"
        sim_file = SimFile(file_id, filename, purpose, data, int(time.time()))
        self.files[sim_file.id] = sim_file
        self.total_bytes += len(data)
        return sim_file

    def get(self, file_id: str) -> SimFile | None:
        return self.files.get(file_id)

    def delete(self, file_id: str) -> bool:
        sim_file = self.files.pop(file_id, None)
        if sim_file is None:
            return False
        self.total_bytes -= len(sim_file.data)
        return True


def file_object(
    file_id: str, filename: str, purpose: str, size: int, created: int
) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": created,
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
        "status_details": None,
        "expires_at": None,
    }


def _describe(sim_file: SimFile) -> dict[str, Any]:
    return file_object(
        sim_file.id, sim_file.filename, sim_file.purpose, len(sim_file.data), sim_file.created_at
    )


def _error(exc: SimError) -> Response:
    return respond(openai_wire.error_body(exc), exc.status)


def _missing(file_id: str) -> SimError:
    return SimError(404, f"No such File object: {file_id}", "not_found", param="id")


async def _upload(engine: Engine, request: Request) -> SimFile:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FILE_BYTES + 64 * 1024:
        raise SimError(413, f"A file may be at most {MAX_FILE_BYTES} bytes.", code="too_large")
    form = await request.form(max_files=1, max_fields=4)
    upload, purpose = form.get("file"), form.get("purpose")
    if not isinstance(upload, UploadFile):
        raise SimError(400, "Missing required parameter: 'file'.", param="file")
    if purpose not in PURPOSES:
        raise SimError(400, f"'purpose' must be one of {list(PURPOSES)}.", param="purpose")
    data = await upload.read(MAX_FILE_BYTES + 1)
    await form.close()
    if len(data) > MAX_FILE_BYTES:
        raise SimError(413, f"A file may be at most {MAX_FILE_BYTES} bytes.", code="too_large")
    return engine.files.add(upload.filename or "upload.jsonl", str(purpose), data)


def add_file_routes(app: FastAPI, engine: Engine, outputs: Outputs) -> None:
    """Mount the Files API; ``outputs`` resolves a batch's output and error file ids."""

    @app.post("/v1/files")
    async def create_file(request: Request) -> Response:
        """Upload a batch input file (multipart ``file``, ``purpose=batch``)."""
        try:
            return respond(_describe(await _upload(engine, request)))
        except SimError as exc:
            return _error(exc)

    @app.get("/v1/files")
    async def list_files() -> Response:
        """The uploaded files, newest first."""
        data = [_describe(f) for f in reversed(engine.files.files.values())]
        return respond({"object": "list", "data": data, "has_more": False})

    @app.get("/v1/files/{file_id}")
    async def retrieve_file(file_id: str) -> Response:
        """A file object: an upload, or a batch's output or error file."""
        sim_file = engine.files.get(file_id)
        if sim_file is not None:
            return respond(_describe(sim_file))
        rendered = outputs(file_id)
        if rendered is None:
            return _error(_missing(file_id))
        name, purpose, data = rendered
        return respond(file_object(file_id, name, purpose, len(data), int(time.time())))

    @app.get("/v1/files/{file_id}/content")
    async def file_content(file_id: str) -> Response:
        """The file's bytes."""
        sim_file = engine.files.get(file_id)
        rendered = outputs(file_id) if sim_file is None else None
        if sim_file is None and rendered is None:
            return _error(_missing(file_id))
        data = sim_file.data if sim_file is not None else rendered[2] if rendered else b""
        return Response(data, media_type="application/octet-stream")

    @app.delete("/v1/files/{file_id}")
    async def delete_file(file_id: str) -> Response:
        """Delete an uploaded file."""
        if not engine.files.delete(file_id):
            return _error(_missing(file_id))
        return respond({"id": file_id, "object": "file", "deleted": True})
