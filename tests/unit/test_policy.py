"""The route plan (filters, ordering, pinned models) and `route()`, on the built-in catalog."""

from __future__ import annotations

import dataclasses

import pytest

from orchestrator.core.catalog import Catalog, Deployment, load_catalog
from orchestrator.core.config import Settings
from orchestrator.core.errors import NoRoute, ValidationFailed
from orchestrator.core.schemas import JobRequest
from orchestrator.core.tiers import Tier
from orchestrator.core.tokens import estimate_request_tokens
from orchestrator.routing import RouteDecision, expected_cost_micro_usd, plan_route, route

IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(Settings())


def names(plan: tuple[Deployment, ...]) -> list[str]:
    return [d.name for d in plan]


def with_image(text: str = "What is in this picture?", **params: object) -> JobRequest:
    messages = [{"role": "user", "content": [{"type": "text", "text": text}, IMAGE]}]
    return JobRequest.model_validate({"messages": messages, **params})


# --- ordering ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tier", "expected"),
    [
        (Tier.FAST, ["sim-gpt-4o-mini", "sim-gpt-4.1"]),
        (Tier.REASONING, ["sim-o4-mini", "sim-o3", "sim-claude-sonnet-4"]),
        (Tier.CODE, ["sim-codestral", "sim-gpt-4.1", "sim-claude-sonnet-4"]),
    ],
)
def test_plan_is_the_tier_cheapest_first(catalog: Catalog, tier: Tier, expected: list[str]) -> None:
    # Given a short text request
    request = JobRequest(prompt="Hello there", max_tokens=256)
    # When its plan is made for a tier
    plan = plan_route(request, tier, catalog)
    # Then it lists every deployment of that tier, by expected cost ascending
    assert names(plan) == expected
    costs = [expected_cost_micro_usd(d, 10, 256) for d in plan]
    assert costs == sorted(costs)


def test_equal_cost_prefers_the_stronger_deployment(catalog: Catalog) -> None:
    # Given a twin of sim-gpt-4o-mini in the fast tier: same prices, stronger
    mini = catalog.get("sim-gpt-4o-mini")
    twin = mini.model_copy(update={"name": "sim-gpt-4o-mini-strong", "strength": 5})
    wider = Catalog(deployments=(*catalog.deployments, twin))
    # When a fast plan is made
    plan = plan_route(JobRequest(prompt="Hello"), Tier.FAST, wider)
    # Then the stronger one comes first among the equally cheap
    assert names(plan) == ["sim-gpt-4o-mini-strong", "sim-gpt-4o-mini", "sim-gpt-4.1"]


def test_expected_cost_counts_the_prompt_and_all_of_max_tokens(catalog: Catalog) -> None:
    # Given sim-o3 at $2 in and $8 out per million tokens
    o3 = catalog.get("sim-o3")
    # When a call of 1,000 input tokens and max_tokens=500 is priced
    cost = expected_cost_micro_usd(o3, 1_000, 500)
    # Then it is 1,000 x 2 + 500 x 8 micro-USD
    assert cost == 6_000


# --- capability and size filters ---------------------------------------------------


def test_images_only_go_to_vision_deployments(catalog: Catalog) -> None:
    # Given a request with an image
    request = with_image()
    # When plans are made for the vision and the reasoning tiers
    vision = plan_route(request, Tier.VISION, catalog)
    reasoning = plan_route(request, Tier.REASONING, catalog)
    # Then only deployments with vision: true are kept
    assert names(vision) == ["sim-gpt-4o-mini-vision", "sim-gemini-2.5-flash", "sim-gpt-4o"]
    assert names(reasoning) == ["sim-claude-sonnet-4"]


def test_no_vision_deployment_in_the_tier_is_no_route(catalog: Catalog) -> None:
    # Given a request with an image, forced into the fast tier
    request = with_image(tier="fast")
    # When its plan is made, Then there is no route, and the error says why
    with pytest.raises(NoRoute, match="no vision deployment in tier 'fast'"):
        plan_route(request, Tier.FAST, catalog)


def test_deployments_whose_context_window_is_too_small_are_dropped(catalog: Catalog) -> None:
    # Given a prompt of ~220k tokens: over sim-claude-sonnet-4's 200k window
    request = JobRequest(prompt="Summarize this code", max_tokens=1_000)
    # When a code plan is made
    plan = plan_route(request, Tier.CODE, catalog, input_tokens=220_000)
    # Then only the deployments with a larger window remain
    assert names(plan) == ["sim-codestral", "sim-gpt-4.1"]


def test_max_tokens_is_reserved_inside_the_context_window(catalog: Catalog) -> None:
    # Given a prompt of 199,600 tokens for the reasoning tier (200k windows)
    request_fits = JobRequest(prompt="Think.", max_tokens=400)
    request_too_big = JobRequest(prompt="Think.", max_tokens=401)
    # When plans are made with 400 and with 401 tokens of output reserved
    plan = plan_route(request_fits, Tier.REASONING, catalog, input_tokens=199_600)
    # Then the first fits and the second does not
    assert len(plan) == 3
    with pytest.raises(NoRoute, match="with max_tokens=401 reserved"):
        plan_route(request_too_big, Tier.REASONING, catalog, input_tokens=199_600)


def test_a_prompt_over_every_window_is_no_route(catalog: Catalog) -> None:
    # Given a prompt of about 225k tokens (900k characters), estimated by the planner
    request = JobRequest(prompt="word " * 180_000)
    # When a reasoning plan is made, Then there is no route, with the estimate in the message
    with pytest.raises(NoRoute) as caught:
        plan_route(request, Tier.REASONING, catalog)
    message = str(caught.value)
    assert "exceeds every context window of tier 'reasoning'" in message
    assert f"~{estimate_request_tokens(request.canonical_messages())} tokens" in message


def test_max_tokens_must_fit_max_output_tokens(catalog: Catalog) -> None:
    # Given requests for 20k and 50k output tokens in the fast tier (16k and 32k limits)
    medium = JobRequest(prompt="Write a long story", max_tokens=20_000)
    huge = JobRequest(prompt="Write a long story", max_tokens=50_000)
    # When plans are made
    plan = plan_route(medium, Tier.FAST, catalog)
    # Then only deployments able to generate that much are kept, or none
    assert names(plan) == ["sim-gpt-4.1"]
    with pytest.raises(NoRoute, match="max_tokens=50000 exceeds every max_output_tokens"):
        plan_route(huge, Tier.FAST, catalog)


# --- pinned model ------------------------------------------------------------------


def test_a_named_model_goes_first_and_its_tier_follows(catalog: Catalog) -> None:
    # Given a request naming the dearest code model by its model name
    request = JobRequest(prompt="Refactor this", model="claude-sonnet-4")
    # When a code plan is made
    plan = plan_route(request, Tier.CODE, catalog)
    # Then it comes first, and the rest of the tier follows cheapest first, once each
    assert names(plan) == ["sim-claude-sonnet-4", "sim-codestral", "sim-gpt-4.1"]


def test_a_named_deployment_outside_the_tier_still_goes_first(catalog: Catalog) -> None:
    # Given a request for the fast tier that also names sim-o3
    request = JobRequest(prompt="Hello", tier="fast", model="sim-o3")
    # When a fast plan is made
    plan = plan_route(request, Tier.FAST, catalog)
    # Then sim-o3 leads and the fast deployments are the fallbacks
    assert names(plan) == ["sim-o3", "sim-gpt-4o-mini", "sim-gpt-4.1"]


def test_a_named_model_with_an_image_uses_its_vision_deployment(catalog: Catalog) -> None:
    # Given gpt-4o-mini named on a request with an image
    request = with_image(model="gpt-4o-mini")
    # When a vision plan is made
    plan = plan_route(request, Tier.VISION, catalog)
    # Then the vision deployment of that model leads
    assert names(plan) == ["sim-gpt-4o-mini-vision", "sim-gemini-2.5-flash", "sim-gpt-4o"]


def test_a_named_model_that_cannot_serve_the_request_is_no_route(catalog: Catalog) -> None:
    # Given a prompt too large for the named model's window
    request = JobRequest(prompt="Think hard.", model="o3")
    # When a plan is made, Then there is no route, and the error names the model
    with pytest.raises(NoRoute, match=r"model 'o3' \(deployment 'sim-o3'\) cannot serve"):
        plan_route(request, Tier.REASONING, catalog, input_tokens=250_000)


def test_an_unknown_model_is_refused(catalog: Catalog) -> None:
    # Given a model the catalog does not have
    request = JobRequest(prompt="Hello", model="no-such-model")
    # When a plan is made, Then the request is refused on its model field
    with pytest.raises(ValidationFailed) as caught:
        plan_route(request, Tier.FAST, catalog)
    assert caught.value.field == "model"


# --- route() -----------------------------------------------------------------------


def test_route_classifies_then_plans(catalog: Catalog) -> None:
    # Given a math problem
    request = JobRequest(prompt="Solve 3x + 5 = 20", max_tokens=300)
    # When it is routed
    decision = route(request, catalog)
    # Then the decision carries the tier, its reasons, the plan and the token estimate
    assert decision.tier is Tier.REASONING
    assert decision.reasons[0].startswith("P reasoning ")
    assert names(decision.plan) == ["sim-o4-mini", "sim-o3", "sim-claude-sonnet-4"]
    assert decision.estimated_input_tokens == estimate_request_tokens(request.canonical_messages())
    assert 0.0 <= decision.confidence <= 1.0


def test_route_decision_is_immutable(catalog: Catalog) -> None:
    # Given a routing decision
    decision = route(JobRequest(prompt="hi"), catalog)
    # When someone tries to change it, Then it refuses
    assert isinstance(decision, RouteDecision)
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.tier = Tier.CODE  # type: ignore[misc]
