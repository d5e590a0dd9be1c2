"""Every routing decision is stored with the job and shown by GET /v1/jobs/{id}."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration


@pytest.fixture
def client(cluster: Cluster) -> httpx.Client:
    headers = {"Authorization": f"Bearer {cluster.api_key}"}
    return httpx.Client(base_url=cluster.api_url, headers=headers, timeout=30)


@pytest.mark.parametrize(("quality", "choice"), [(1.0, "strong"), (0.0, "weak")])
def test_a_job_shows_its_tier_and_strength_decisions(
    client: httpx.Client, quality: float, choice: str
) -> None:
    # Given a reasoning job submitted with a quality setting
    body = {"prompt": "Solve 3x + 5 = 20 and show each step", "quality": quality}
    submitted = client.post("/v1/jobs", json=body)
    assert submitted.status_code == 202, submitted.text
    # When it is read back
    job = client.get(f"/v1/jobs/{submitted.json()['id']}").json()
    # Then both decisions are there, with scorer, score, threshold and reasons
    tier, strength = job["routing"]
    assert tier["step"] == "tier" and tier["choice"] == job["tier"] == "reasoning"
    assert tier["reasons"] == job["tier_reasons"]
    assert tier["scorer"] == "tier-model" and tier["reasons"][0].startswith("P reasoning")
    assert tier["probabilities"]["reasoning"] == tier["score"]
    assert strength["step"] == "strength" and strength["choice"] == choice
    assert strength["scorer"] == "tiered" and strength["quality"] == quality
    assert isinstance(strength["score"], float) and isinstance(strength["threshold"], float)
    assert strength["reasons"][0].startswith("score ")


def test_a_pinned_model_is_recorded_as_pinned(client: httpx.Client) -> None:
    submitted = client.post("/v1/jobs", json={"prompt": "hello", "model": "o3"}).json()
    job = client.get(f"/v1/jobs/{submitted['id']}").json()
    assert job["routing"][1]["choice"] == "pinned"
    assert job["plan"][0] == "sim-o3"


def test_quality_out_of_range_is_a_422_naming_the_field(client: httpx.Client) -> None:
    response = client.post("/v1/jobs", json={"prompt": "hi", "quality": 1.5})
    assert response.status_code == 422 and "quality" in response.json()["error"]["field"]
