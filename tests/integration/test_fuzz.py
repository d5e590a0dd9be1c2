"""Fuzz the running API from its own OpenAPI schema (schemathesis): no input earns a 5xx.

Every operation gets valid cases (positive mode) and invalid ones (negative
mode), sent with a valid key, so the requests reach the handlers instead of
stopping at the 401. Hypothesis then puts hostile JSON (deep nesting, huge
numbers, NaN, huge arrays and objects) inside otherwise real bodies: no 5xx,
and no reset either.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode

from orchestrator.cluster.bootstrap import ensure_tenant_key
from tests.integration.conftest import ADMIN_KEY, Cluster

pytestmark = pytest.mark.integration
EXAMPLES_PER_OPERATION = 20


@pytest.fixture(scope="module")
def fuzz_key(cluster: Cluster) -> str:
    """A tenant of the fuzzer's own: what its valid requests create (an experiment on
    every tier, a session, a budget) must not change how the shared tenant's jobs route
    for the tests after it."""
    state_dir = cluster.settings.state_path / "fuzz"
    return ensure_tenant_key(cluster.engine, state_dir=state_dir, tenant="it-fuzz")


def send(case: Case, cluster: Cluster, tenant_key: str) -> None:
    key = ADMIN_KEY if case.path.startswith("/admin") else tenant_key
    response = case.call(
        base_url=cluster.api_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    )
    where = f"{case.method} {case.formatted_path} {case.body!r:.300}"
    assert response.status_code < 500, f"{where} -> {response.status_code} {response.text:.300}"
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["type"] and error["message"], where


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_earns_a_server_error(
    cluster: Cluster, fuzz_key: str, mode: GenerationMode
) -> None:
    # Given the API's own schema
    schema = schemathesis.openapi.from_url(f"{cluster.api_url}/openapi.json")
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        # When each operation is sent generated requests
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def fuzz(case: Case) -> None:
            send(case, cluster, fuzz_key)

        try:
            fuzz()
        except Unsatisfiable:  # nothing about this operation can be made invalid
            continue
        except AssertionError as exc:
            failures.append(str(exc).splitlines()[0])
    # Then none answered with a server error
    assert not failures, "\n".join(failures)


# Hostile JSON, written as text (json.dumps cannot write most of it): nesting past any
# sane depth, integers past Python's int() limit, NaN and infinities, and arrays of up to
# a quarter of a million items, each put where a real request has a value.
HOSTILE_VALUES = st.one_of(
    st.integers(65, 5000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(33, 3000).map(lambda depth: '{"a":' * depth + "1" + "}" * depth),
    st.integers(101, 6000).map(lambda digits: "9" * digits),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e400", "1" * 400 + ".5"]),
    st.integers(1000, 250_000).map(lambda n: "[" + ",".join(["0"] * n) + "]"),
    st.integers(1000, 60_000).map(lambda n: "{" + ",".join(f'"{i}":{{}}' for i in range(n)) + "}"),
)
# (method, path, content type, body with one %s where the value goes)
HOSTILE_PLACES = st.sampled_from(
    [
        ("POST", "/v1/jobs", "json", '{"prompt": "hi", "max_tokens": %s}'),
        ("POST", "/v1/jobs", "json", '{"prompt": "hi", "metadata": {"k": %s}}'),
        ("POST", "/v1/jobs", "json", '{"prompt": "hi", "max_cost_usd": %s}'),
        ("POST", "/v1/jobs", "json", '{"prompt": "hi", "tools": [{"type": "function", '
         '"function": {"name": "f", "parameters": {"type": "object", "properties": {"a": %s}}}}]}'),
        ("POST", "/v1/jobs", "json", '{"prompt": "hi", "response_format": {"type": "json_schema", '
         '"json_schema": {"name": "x", "schema": %s}}}'),
        ("POST", "/v1/jobs", "json", '{"prompt": "x", "steps": %s}'),
        ("POST", "/v1/jobs", "json",
         '{"prompt": "x", "steps": [{"prompt": "a", "json_schema": %s}]}'),
        ("POST", "/v1/jobs", "json", '{"messages": %s}'),
        ("POST", "/v1/jobs", "json", "%s"),
        ("POST", "/v1/chat/completions", "json",
         '{"model": "auto", "messages": [{"role": "user", "content": %s}]}'),
        ("POST", "/v1/chat/completions", "json",
         '{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "temperature": %s}'),
        ("POST", "/v1/batches", "json", '[{"prompt": "hi", "max_tokens": %s}]'),
        ("POST", "/v1/batches", "json", "%s"),
        ("POST", "/v1/batches", "x-ndjson", '{"prompt": "hi"}\n{"prompt": "hi", "top_p": %s}\n'),
        ("POST", "/v1/experiments", "json", '{"name": "x", "arms": %s}'),
        ("POST", "/v1/jobs/job_none/feedback", "json", '{"score": %s}'),
        ("PUT", "/admin/tenants/ten_none/budget", "json", '{"daily_usd": %s}'),
        ("PUT", "/admin/tenants/ten_none/budget", "json", '{"warn_ratio": %s}'),
        ("PATCH", "/admin/tenants/ten_none", "json", '{"rate_limit_rpm": %s}'),
        ("POST", "/admin/tenants", "json", '{"name": "x", "rate_limit_rpm": %s}'),
    ]
)  # fmt: skip


def test_hostile_json_earns_no_server_error_and_no_reset(cluster: Cluster, fuzz_key: str) -> None:
    # Given generated bodies with hostile values where real requests have values
    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(place=HOSTILE_PLACES, value=HOSTILE_VALUES)
    def fuzz(place: tuple[str, str, str, str], value: str) -> None:
        method, path, kind, template = place
        key = ADMIN_KEY if path.startswith("/admin") else fuzz_key
        headers = {"Authorization": f"Bearer {key}", "Content-Type": f"application/{kind}"}
        # When each is sent to the real API on a connection of its own
        try:
            url, body = cluster.api_url + path, template % value
            response = httpx.request(method, url, content=body, headers=headers, timeout=60)
        except httpx.TransportError as exc:  # a reset, or no answer
            raise AssertionError(f"{method} {path} {value[:40]!r}...: {exc!r}") from exc
        # Then never a 5xx, and every refusal is the API's error shape
        where = f"{method} {path} {value[:40]!r}... -> {response.status_code}"
        assert response.status_code < 500, f"{where} {response.text:.300}"
        if response.status_code >= 400:
            error = response.json()["error"]
            assert error["type"] and error["message"], where

    fuzz()
