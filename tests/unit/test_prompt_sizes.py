"""A step's prompt is measured before it is rendered: too long is refused, never built."""

from __future__ import annotations

import pytest

from orchestrator.core.errors import ValidationFailed
from orchestrator.core.pipeline_schemas import render, rendered_size
from orchestrator.core.schemas import JobRequest
from orchestrator.pipelines.planner import check_prompt_sizes, step_request


def pipeline(second: str) -> JobRequest:
    return JobRequest.model_validate(
        {"prompt": "w" * 8000, "steps": [{"name": "a", "prompt": "hi"}, {"prompt": second}]}
    )


def test_admission_counts_every_input_without_rendering() -> None:
    # A step repeating {input} 28,000 times would be 224 million characters
    with pytest.raises(ValidationFailed) as refused:
        check_prompt_sizes(pipeline("{input}" * 28_000), 400_000)
    assert refused.value.field == "steps[1].prompt"
    assert "224000000 characters" in refused.value.message
    # One that fits passes, whatever its earlier outputs will be (they are not known yet)
    check_prompt_sizes(pipeline("{input} then {steps.a.output}"), 400_000)


def test_a_later_step_too_long_for_its_outputs_is_refused_before_it_is_built() -> None:
    request = pipeline("{steps.a.output}" * 1000)
    # With a short output the step is built as usual
    assert step_request(request, 1, {"a": "ok"}, max_chars=400_000).prompt == "ok" * 1000
    # With a long one it is refused, naming the step, before any of it is rendered
    with pytest.raises(ValidationFailed) as refused:
        step_request(request, 1, {"a": "x" * 10_000}, max_chars=400_000)
    assert refused.value.field == "steps[1].prompt"
    assert "10000000 characters" in refused.value.message


def test_the_counted_size_is_the_rendered_length() -> None:
    outputs = {"a": "12345", "b": ""}
    for template in [
        "plain",
        "{input}{input} and {steps.a.output}",
        "{steps.b.output}{steps.c.output} {json: {input}} {steps.a.output",
        "{{input}} {input}" * 50,
    ]:
        rendered = render(template, input_text="in put", outputs=outputs)
        lengths = {name: len(text) for name, text in outputs.items()}
        assert rendered_size(template, input_chars=6, output_chars=lengths) == len(rendered)
