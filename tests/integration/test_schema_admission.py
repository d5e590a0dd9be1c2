"""No schema is ever fetched: remote, self-referencing and malformed schemas are refused.

A listener on 127.0.0.1, started here, stands for whatever a ``$ref`` could name
(a metadata service, an internal admin page): it must never see a request, from
the API at admission nor from a worker given a schema stored before admission
refused such schemas.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from orchestrator.core.tiers import Tier
from orchestrator.queues.app import QueuedJob, make_celery, publish
from orchestrator.store import repo
from orchestrator.store.db import session_scope
from orchestrator.store.models import new_id, utcnow
from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

SCHEMA_FIELD = "response_format.json_schema.schema"


class Listener:
    """An HTTP server on 127.0.0.1 that answers a schema and counts who asked."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        seen = self.paths

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.path)
                body = b'{"type": "string"}'
                self.send_response(200)
                self.send_header("content-type", "application/schema+json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/x.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def listener() -> Iterator[Listener]:
    served = Listener()
    yield served
    served.server.shutdown()
    served.server.server_close()


@pytest.fixture
def client(cluster: Cluster) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {cluster.api_key}"}
    with httpx.Client(base_url=cluster.api_url, headers=headers, timeout=30) as http:
        yield http


def schema_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "record", "schema": schema}}


def job(schema: dict[str, Any]) -> dict[str, Any]:
    return {"prompt": "Give the record as JSON.", "response_format": schema_format(schema)}


def chat(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": "auto",
        "messages": [{"role": "user", "content": "Give the record as JSON."}],
        "response_format": schema_format(schema),
    }


def pipeline(schema: dict[str, Any]) -> dict[str, Any]:
    steps = [{"prompt": "Summarise: {input}"}, {"prompt": "As JSON", "json_schema": schema}]
    return {"prompt": "An invoice for ACME, 12 EUR, paid.", "steps": steps}


def field_of(response: httpx.Response) -> str:
    """The refused field, with list indexes written either way (``steps.1`` / ``steps[1]``)."""
    assert response.status_code == 422, response.text
    field = str(response.json()["error"]["field"])
    return field.replace("[", ".").replace("]", "").lstrip(".")


def refused_fields(client: httpx.Client, schema: dict[str, Any]) -> list[str]:
    """The field each way in names when refusing ``schema``."""
    return [
        field_of(client.post("/v1/jobs", json=job(schema))),
        field_of(client.post("/v1/chat/completions", json=chat(schema))),
        field_of(client.post("/v1/jobs", json=pipeline(schema))),
        field_of(client.post("/v1/batches", json=[job({"type": "string"}), job(schema)])),
    ]


def expected_fields() -> list[str]:
    return [SCHEMA_FIELD, SCHEMA_FIELD, "steps.1.json_schema", f"1.{SCHEMA_FIELD}"]


def test_a_remote_ref_is_refused_at_admission_and_never_fetched(
    client: httpx.Client, listener: Listener
) -> None:
    # Given schemas that name the local listener, at the top and deep inside
    remote = {"$ref": listener.url}
    nested = {"type": "object", "properties": {"a": {"items": {"$ref": listener.url}}}}
    for schema in (remote, nested):
        # When every way in is given them; Then each refuses with a 422 naming the field
        fields = refused_fields(client, schema)
        assert fields == expected_fields(), fields
    # And an OpenAI batch file's line with one is refused alone, in the error file
    line = {"custom_id": "r", "method": "POST", "url": "/v1/chat/completions", "body": chat(remote)}
    upload = client.post(
        "/v1/files",
        files={"file": ("in.jsonl", json.dumps(line).encode())},
        data={"purpose": "batch"},
    )
    assert upload.status_code == 200, upload.text
    create = {"input_file_id": upload.json()["id"], "endpoint": "/v1/chat/completions"}
    batch = client.post("/v1/batches", json={**create, "completion_window": "24h"})
    assert batch.status_code == 202 and batch.json()["status"] == "failed", batch.text
    assert SCHEMA_FIELD in json.dumps(batch.json()["errors"]), batch.text
    # And the listener was never asked for anything
    time.sleep(0.5)
    assert listener.paths == []


@pytest.mark.parametrize(
    ("schema", "why"),
    [
        ({"$ref": "#"}, "refers to itself"),
        ({"definitions": {"a": {"$ref": "#/definitions/a"}}, "$ref": "#/definitions/a"}, "itself"),
        ({"$defs": {"a": {"allOf": [{"$ref": "#"}]}}, "$ref": "#/$defs/a"}, "itself"),
        ({"type": 12}, "not a valid JSON Schema"),
        ({"$ref": "#/definitions/missing"}, "names nothing"),
    ],
)
def test_self_referencing_and_malformed_schemas_are_422(
    client: httpx.Client, schema: dict[str, Any], why: str
) -> None:
    # When a schema that loops forever or is not a schema is sent every way in
    fields = refused_fields(client, schema)
    # Then each is a 422 naming the field, and saying why
    assert fields == expected_fields(), fields
    assert why in client.post("/v1/jobs", json=job(schema)).json()["error"]["message"]


def test_a_recursive_schema_that_makes_progress_is_accepted(client: httpx.Client) -> None:
    # Given a tree: each node's children are nodes (a $ref to the root, under items)
    tree = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "children": {"type": "array", "items": {"$ref": "#"}},
        },
    }
    # When it is submitted; Then it is admitted
    response = client.post("/v1/jobs", json=job(tree))
    assert response.status_code == 202, response.text


def test_a_stored_remote_ref_makes_the_worker_fetch_nothing(
    cluster: Cluster, client: httpx.Client, listener: Listener
) -> None:
    # Given a job row written straight to the database (admission bypassed, as for a job
    # stored before it refused such schemas) whose schema names the local listener
    job_id = new_id("job")
    request = job({"type": "object", "properties": {"a": {"$ref": listener.url}}})
    with session_scope(cluster.engine) as session:
        tenant_id = repo.tenant_for_api_key(session, api_key=cluster.api_key)
        assert tenant_id is not None
        row = {
            "id": job_id,
            "tenant_id": tenant_id,
            "status": "queued",
            "tier": Tier.FAST.value,
            "tier_reasons": ["test"],
            "plan": ["sim-gpt-4o-mini", "sim-gpt-4.1"],
            "priority": 0,
            "request": request,
            "created_at": utcnow(),
        }
        repo.insert_jobs(session, rows=[row])
    # When a worker receives it
    publish(make_celery(cluster.settings), [QueuedJob(job_id, Tier.FAST, 0)])
    view = wait_final(client, job_id)
    # Then nothing reached the listener; the job failed naming the schema, before any call
    assert listener.paths == []
    assert view["status"] == "failed", view
    assert SCHEMA_FIELD in view["error"] and "not local" in view["error"], view["error"]
    assert view["attempts"] == 0 and view["cost_micro_usd"] == 0, view


def wait_final(client: httpx.Client, job_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        view: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if view["status"] in ("succeeded", "failed", "expired", "cancelled"):
            return view
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not final after {timeout_s}s")


@pytest.mark.parametrize(
    ("pattern", "why"),
    [("^(?=.*[0-9])[a-z0-9]+$", "lookaround"), ("^(a)\\1$", "backreferences")],
)
def test_a_pattern_re2_cannot_run_is_422_naming_where(
    client: httpx.Client, pattern: str, why: str
) -> None:
    # Given a schema whose property "a" has a lookahead or a backreference, which only a
    # backtracking engine runs (and RE2, the linear-time one workers match with, cannot)
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": pattern}}}
    # When it is sent every way in; Then each is a 422 naming the field
    assert refused_fields(client, schema) == expected_fields()
    # And the message says where inside the schema, and why
    message = client.post("/v1/jobs", json=job(schema)).json()["error"]["message"]
    assert "#/properties/a/pattern" in message and why in message, message
    # While an ordinary pattern is admitted
    ordinary = {"type": "object", "properties": {"a": {"pattern": "^[A-Z]{3}-\\d+$"}}}
    assert client.post("/v1/jobs", json=job(ordinary)).status_code == 202
