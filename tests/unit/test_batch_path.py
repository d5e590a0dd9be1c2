"""Which path a job takes (issue 26): synchronous, or its provider's batch API."""

from __future__ import annotations

from orchestrator.core.catalog import load_catalog
from orchestrator.core.config import Settings
from orchestrator.core.schemas import JobRequest
from orchestrator.routing.batch_path import choose_path

ON = Settings(provider_batch_enabled=True)
CATALOG = load_catalog(ON)
MINI = CATALOG.get("sim-gpt-4o-mini")  # offers a batch API
CODESTRAL = CATALOG.get("sim-codestral")  # in this catalog: none


def job(**fields: object) -> JobRequest:
    return JobRequest.model_validate({"prompt": "Summarise this.", **fields})


def test_a_job_with_a_window_goes_by_provider_batch_and_may_take_it() -> None:
    # Given a job that may take 24h, routed to a deployment offering a batch API
    # When its path is chosen
    path = choose_path(job(completion_window="24h"), [MINI], ON)
    # Then it goes by provider batch with a 24h deadline, and says why
    assert path.provider_batch and path.deadline_s == 86_400
    [step] = path.steps()
    assert step["step"] == "path" and step["choice"] == "provider_batch"
    assert step["reasons"][0] == "completion_window 24h"
    assert "sim-gpt-4o-mini offers a batch API" in step["reasons"][1]


def test_a_job_that_did_not_ask_shows_no_path_step() -> None:
    path = choose_path(job(), [MINI], ON)
    assert not path.provider_batch and path.steps() == []
    assert path.deadline_s == ON.job_deadline_s


def test_each_refusal_keeps_the_job_synchronous_and_says_why() -> None:
    off = Settings(provider_batch_enabled=False)
    cases = [
        (job(completion_window="24h"), [MINI], off, "SWITCHYARD_PROVIDER_BATCH_ENABLED"),
        (job(completion_window="24h", stream=True), [MINI], ON, "streamed"),
        (job(completion_window="24h", session_id="s1"), [MINI], ON, "session"),
        (job(completion_window="24h"), [CODESTRAL, MINI], ON, "sim-codestral offers no"),
        (job(objective="cost"), [MINI], ON, "nearer than provider_batch_min_wait_s=86400"),
    ]
    for request, plan, settings, why in cases:
        path = choose_path(request, plan, settings)
        [step] = path.steps()
        assert step["choice"] == "sync", why
        assert why in step["reasons"][1]
        assert path.deadline_s == settings.job_deadline_s


def test_objective_cost_with_a_far_deadline_goes_by_provider_batch() -> None:
    # Given jobs whose deadline is two days away
    patient = Settings(
        provider_batch_enabled=True, job_deadline_s=172_800, broker_visibility_timeout_s=180_000
    )
    path = choose_path(job(objective="cost"), [MINI], patient)
    assert path.provider_batch and path.deadline_s == 172_800
    assert path.steps()[0]["reasons"][0] == "objective cost"


def test_batch_prices_are_about_half_the_synchronous_ones() -> None:
    for dep in CATALOG.deployments:
        if dep.batch is not None:
            priced = dep.batch_priced()
            assert priced.input_usd_per_mtok * 2 == dep.input_usd_per_mtok
            assert priced.output_usd_per_mtok * 2 == dep.output_usd_per_mtok
            assert priced.name == dep.name
