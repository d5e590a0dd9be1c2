"""Fuzz the running API from its own OpenAPI schema (schemathesis): no input earns a 5xx.

Every operation gets valid cases (positive mode) and invalid ones (negative
mode), sent with a valid key, so the requests reach the handlers instead of
stopping at the 401.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode

from tests.integration.conftest import ADMIN_KEY, Cluster

pytestmark = pytest.mark.integration
EXAMPLES_PER_OPERATION = 20


def send(case: Case, cluster: Cluster) -> None:
    key = ADMIN_KEY if case.path.startswith("/admin") else cluster.api_key
    response = case.call(
        base_url=cluster.api_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    )
    where = f"{case.method} {case.formatted_path} {case.body!r:.300}"
    assert response.status_code < 500, f"{where} -> {response.status_code} {response.text:.300}"
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["type"] and error["message"], where


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_earns_a_server_error(cluster: Cluster, mode: GenerationMode) -> None:
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
            send(case, cluster)

        try:
            fuzz()
        except Unsatisfiable:  # nothing about this operation can be made invalid
            continue
        except AssertionError as exc:
            failures.append(str(exc).splitlines()[0])
    # Then none answered with a server error
    assert not failures, "\n".join(failures)
