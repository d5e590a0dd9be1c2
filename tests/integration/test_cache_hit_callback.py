"""A response-cache hit checks its ``callback_url`` as a miss does, on both entry points.

Real API, Redis, Postgres, workers and simulator (the session's ``cluster``). The
cluster allows private webhook addresses (its receivers are on 127.0.0.1), so the
refused URL here is one refused whatever that setting: it carries credentials.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Cluster
from tests.integration.test_response_cache import finished

pytestmark = pytest.mark.integration
REFUSED = "http://user:pw@127.0.0.1:9/hook"


def question() -> dict[str, Any]:
    text = f"What is the capital of Chile? ({secrets.token_hex(6)})"
    return {"messages": [{"role": "user", "content": text}], "temperature": 0, "tier": "fast"}


def test_a_cache_hit_refuses_a_bad_callback_url(cluster: Cluster) -> None:
    headers = {"Authorization": f"Bearer {cluster.api_key}"}
    # Given an answered deterministic request, so the same request is a cache hit
    body = question()
    assert finished(cluster, cluster.api_key, body).status == "succeeded"
    with httpx.Client(base_url=cluster.api_url, headers=headers, timeout=60) as api:
        assert api.post("/v1/jobs", json=body).json()["cache_hit"] is True
        # When it is asked again with a callback URL that admission refuses
        job = api.post("/v1/jobs", json={**body, "callback_url": REFUSED})
        chat = {k: v for k, v in body.items() if k != "tier"}
        chat.update(model="tier:fast", callback_url=REFUSED)
        completion = api.post("/v1/chat/completions", json=chat)
    # Then both answer 422 naming the field, as a miss would, and no job is made
    for refused in (job, completion):
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["field"] == "callback_url", refused.text
