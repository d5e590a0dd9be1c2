"""Cost bounds: rendered sizes counted without rendering, and a pipeline's worst case."""

from __future__ import annotations

import random

from orchestrator.core.catalog import load_catalog
from orchestrator.core.config import Settings
from orchestrator.core.pipeline_schemas import render
from orchestrator.core.schemas import JobRequest
from orchestrator.costs.bounds import (
    OUTPUT_CHARS_PER_TOKEN,
    call_max_cost,
    pipeline_upper_bound,
    rendered_chars,
    request_tokens,
)
from orchestrator.pipelines.planner import route_job, step_request

CATALOG = load_catalog(Settings())


def test_rendered_chars_is_the_length_render_would_make() -> None:
    # Given templates mixing text, {input}, step outputs, unknown names and other braces
    rng = random.Random(7)
    parts = ["{input}", "{steps.a.output}", "{steps.b.output}", "{steps.zz.output}", "{x}", "é"]
    for _ in range(200):
        template = "".join(rng.choice([*parts, "plain text "]) for _ in range(rng.randint(0, 30)))
        given, outputs = "in" * rng.randint(0, 50), {"a": "A" * rng.randint(0, 9), "b": ""}
        # When its size is counted, Then it is exactly the rendered length
        sizes = {name: len(text) for name, text in outputs.items()}
        expected = len(render(template, input_text=given, outputs=outputs))
        assert rendered_chars(template, input_chars=len(given), output_chars=sizes) == expected


def test_a_200x_input_template_is_priced_without_being_rendered() -> None:
    # Given a two-step pipeline whose second step repeats its input 200 times
    text = "x" * 2_000
    body = {
        "prompt": text,
        "steps": [
            {"name": "a", "tier": "fast", "prompt": "Sum up {input}", "max_tokens": 32},
            {"name": "b", "model": "sim-gpt-4.1", "prompt": "{input}" * 200, "max_tokens": 32},
        ],
    }
    request = JobRequest.model_validate(body)
    # When its upper bound is taken
    bound = pipeline_upper_bound(request, CATALOG)
    # Then the second step counts 200 inputs at its pinned model's price, exactly as the
    # rendered request would be estimated
    second = step_request(request, 1, {})
    assert bound.steps[1].prompt_chars == 200 * len(text)
    assert bound.steps[1].input_tokens == request_tokens(second)
    gpt41 = CATALOG.find("sim-gpt-4.1")
    assert gpt41 is not None
    assert bound.steps[1].max_cost_micro_usd == call_max_cost(gpt41, request_tokens(second), 32)
    assert bound.total_micro_usd == sum(s.max_cost_micro_usd for s in bound.steps)


def test_a_later_step_is_bounded_by_the_largest_output_and_the_dearest_tier() -> None:
    # Given a step that reads an earlier step's output twice and pins nothing
    body = {
        "prompt": "hello",
        "steps": [
            {"name": "a", "prompt": "Write: {input}", "max_tokens": 100},
            {"name": "b", "prompt": "{steps.a.output}|{steps.a.output}", "json_schema": {}},
        ],
    }
    request = JobRequest.model_validate(body)
    bound = pipeline_upper_bound(request, CATALOG, first_plan=route_job(request, CATALOG).plan)
    # When step a wrote all its tokens at the widest characters allowed
    longest = {"a": "w" * (100 * OUTPUT_CHARS_PER_TOKEN)}
    rendered = step_request(request, 1, longest)
    # Then the bound covers that prompt on every deployment of the catalog
    assert bound.steps[1].input_tokens >= request_tokens(rendered)
    worst = max(call_max_cost(d, request_tokens(rendered), 512) for d in CATALOG.deployments)
    assert bound.steps[1].max_cost_micro_usd >= worst
    assert set(bound.steps[1].deployments) == {d.name for d in CATALOG.deployments}
