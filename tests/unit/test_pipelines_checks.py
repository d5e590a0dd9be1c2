"""Pipeline templates and steps, output checks, and the simulator's bad-answer knobs."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import pytest
from pydantic import ValidationError

from loadtests._serve import serving
from orchestrator.core.catalog import Deployment, load_catalog
from orchestrator.core.config import Settings
from orchestrator.core.pipeline_schemas import render
from orchestrator.core.schemas import Completion, JobRequest
from orchestrator.core.tiers import Tier
from orchestrator.pipelines.planner import publishable, route_request, split_pipelines, step_request
from orchestrator.simulator import SimulatorConfig, create_simulator_app
from orchestrator.simulator.faults import REFUSAL_TEXT
from orchestrator.store.models import utcnow
from workers.checks import OutputGate, RefusalCheck, SchemaCheck
from workers.guards import Call, Progress, RetryAfter, SkipDeployment

SCHEMA = {
    "type": "object",
    "properties": {"total": {"type": "number"}, "paid": {"type": "boolean"}},
    "required": ["total", "paid"],
}
JSON_FORMAT = {"type": "json_schema", "json_schema": {"name": "rec", "schema": SCHEMA}}
IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/scan.png"}}


def test_render_fills_input_and_earlier_outputs_and_leaves_other_braces() -> None:
    # Given a template with placeholders, a JSON example and a format-string trap
    template = 'In: {input} | A: {steps.a.output} | {"k": 1} | {input.__class__} | {steps.z.output}'
    # When it is rendered
    text = render(template, input_text="doc", outputs={"a": "first"})
    # Then only known placeholders are replaced; everything else stays as written
    assert text == 'In: doc | A: first | {"k": 1} | {input.__class__} | {steps.z.output}'


def test_steps_may_only_refer_to_earlier_steps_and_names_are_unique() -> None:
    with pytest.raises(ValidationError, match=r"steps\[0\]\.prompt.*names no earlier step"):
        JobRequest.model_validate({"prompt": "x", "steps": [{"prompt": "{steps.b.output}"}]})
    with pytest.raises(ValidationError, match="used by an earlier step"):
        JobRequest.model_validate(
            {"prompt": "x", "steps": [{"name": "a", "prompt": "1"}, {"name": "a", "prompt": "2"}]}
        )
    with pytest.raises(ValidationError, match="not a valid JSON Schema"):
        JobRequest.model_validate(
            {"prompt": "x", "steps": [{"prompt": "1", "json_schema": {"type": "nope"}}]}
        )


def test_a_step_request_carries_images_schema_and_strategy() -> None:
    # Given a pipeline over an image, whose second step wants JSON, as a cascade
    parent = JobRequest.model_validate(
        {
            "messages": [{"role": "user", "content": [{"type": "text", "text": "scan"}, IMAGE]}],
            "strategy": "cascade",
            "steps": [
                {"name": "read", "prompt": "Read: {input}"},
                {"prompt": "Fields of {steps.read.output}", "json_schema": SCHEMA, "tier": "fast"},
            ],
        }
    )
    first = step_request(parent, 0, {})
    second = step_request(parent, 1, {"read": "TOTAL 12"})
    # Then the first step sees the image, the second only text, with the schema and strategy
    assert first.image_count() == 1 and "Read: scan" in first.prompt_text()
    assert second.image_count() == 0 and second.prompt == "Fields of TOTAL 12"
    assert second.response_format is not None and second.response_format.json_schema is not None
    assert second.response_format.json_schema.schema_ == SCHEMA
    assert second.strategy == "cascade" and second.tier is Tier.FAST


def test_a_pipeline_row_splits_into_an_unpublished_parent_and_its_first_step() -> None:
    request = JobRequest.model_validate(
        {"prompt": "doc", "steps": [{"prompt": "a {input}"}, {"prompt": "b {steps.step0.output}"}]}
    )
    row: dict[str, Any] = {
        "id": "job_parent",
        "tenant_id": "ten_1",
        "batch_id": "bat_1",
        "batch_index": 3,
        "status": "queued",
        "tier": "fast",
        "tier_reasons": ["r"],
        "plan": ["sim-a"],
        "routing": [],
        "priority": 6,
        "request": request.model_dump(mode="json", exclude_none=True),
        "created_at": utcnow(),
        "deadline_at": utcnow(),
    }
    parent, child = split_pipelines([row])
    assert parent["status"] == "running" and parent["plan"] == [] and parent["batch_index"] == 3
    assert child["parent_job_id"] == "job_parent" and child["step_index"] == 0
    assert "batch_id" not in child and child["request"]["prompt"] == "a doc"
    assert publishable([parent, child]) == [child]


def deployment(name: str) -> Deployment:
    return Deployment(
        name=name,
        provider="simulator",
        model=name,
        base_url="http://x",
        tiers=(Tier.FAST,),
        input_usd_per_mtok=1,
        output_usd_per_mtok=1,
        context_window=1000,
    )


def call_for(request: JobRequest, progress: Progress | None = None) -> Call:
    return Call("job_1", deployment("dep-a"), request, progress or Progress(), 10)


def test_schema_check_repairs_once_on_the_same_deployment_then_escalates() -> None:
    gate, rejected = OutputGate(), []
    request = JobRequest.model_validate({"prompt": "give JSON", "response_format": JSON_FORMAT})
    call = call_for(request)
    bad = Completion(text='{"total": 3')
    # When the first answer does not parse: it is recorded, and a repair is asked in place
    with pytest.raises(RetryAfter) as repair:
        gate.review(call, bad, rejected.append)
    assert repair.value.delay_s == 0
    assert [m.role for m in call.request.canonical_messages()] == ["user", "assistant", "user"]
    assert "not valid JSON" in call.request.canonical_messages()[-1].text()
    # When the repaired answer is valid JSON but misses a required field: escalate
    with pytest.raises(SkipDeployment, match="schema check failed"):
        gate.review(call, Completion(text='{"total": 3}'), rejected.append)
    assert [p.check for p in rejected] == ["schema", "schema"]
    assert "'paid' is a required property" in rejected[1].reason
    # And a later delivery skips that deployment before calling it
    with pytest.raises(SkipDeployment, match="rejected earlier"):
        gate.before_call(call_for(request, call.progress))
    # While a valid answer passes untouched
    fresh = call_for(request)
    gate.review(fresh, Completion(text='{"total": 3, "paid": true}'), rejected.append)
    assert len(rejected) == 2


def test_refusals_fail_only_in_a_cascade() -> None:
    refusal = Completion(text=REFUSAL_TEXT)
    cascade = JobRequest(prompt="hi", strategy="cascade")
    assert RefusalCheck().applies(cascade)
    assert not RefusalCheck().applies(JobRequest(prompt="hi"))
    with pytest.raises(SkipDeployment, match="refusal"):
        OutputGate().review(call_for(cascade), refusal, lambda p: None)
    OutputGate().review(call_for(JobRequest(prompt="hi")), refusal, lambda p: None)
    assert SchemaCheck().problem(cascade, Completion(text="[1]")) is None  # JSON not asked


# one client for every call: a client made per call loads the CA bundle each time (~40 ms)
HTTP = httpx.Client(timeout=10)


def ask(root: str, model: str, text: str, fmt: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": text}]}
    if fmt is not None:
        body["response_format"] = fmt
    answer = HTTP.post(f"{root}/v1/chat/completions", json=body).json()
    return str(answer["choices"][0]["message"]["content"])


def test_simulator_spoils_exactly_the_configured_share_of_inputs_per_model() -> None:
    # Given a cheap model with 30% invalid JSON and 30% refusals (even draw), a strong one clean
    cheap = {"invalid_json_rate": 0.3, "refusal_rate": 0.3, "fault_draw": "even"}
    config = SimulatorConfig.model_validate({"models": {"cheap": cheap}})
    with serving(create_simulator_app(config=config)) as root:
        outputs = [ask(root, "cheap", f"record {i}", JSON_FORMAT) for i in range(100)]
        strong = [ask(root, "strong", f"record {i}", JSON_FORMAT) for i in range(20)]
        again = [ask(root, "cheap", f"record {i}", JSON_FORMAT) for i in range(10)]
        texts = [ask(root, "cheap", f"greet {i}") for i in range(100)]
    # Then exactly 30 of 100 JSON answers do not parse, and the rest follow the schema
    parsed = []
    for text in outputs:
        try:
            parsed.append(json.loads(text))
        except ValueError:
            continue
    assert len(parsed) == 70
    for value in parsed:
        jsonschema.validate(value, SCHEMA)
    # And the same input fails the same way again; the strong model never fails
    assert again == outputs[:10]
    assert all(jsonschema.validate(json.loads(t), SCHEMA) is None for t in strong)
    # And 30 of 100 plain answers are refusals
    assert sum(t == REFUSAL_TEXT for t in texts) == 30


def test_hash_draw_is_stable_and_near_the_rate() -> None:
    config = SimulatorConfig.model_validate({"models": {"cheap": {"refusal_rate": 0.3}}})
    with serving(create_simulator_app(config=config)) as root:
        first = [ask(root, "cheap", f"input {i}") == REFUSAL_TEXT for i in range(300)]
        second = [ask(root, "cheap", f"input {i}") == REFUSAL_TEXT for i in range(50)]
    assert 0.2 <= sum(first) / 300 <= 0.4
    assert second == first[:50]


def test_a_cascade_plans_cheapest_first_even_for_a_strong_request() -> None:
    catalog = load_catalog(Settings())
    strong = JobRequest(prompt="Say hi", tier="fast", quality=1.0)
    # Given a request the strong/weak decision sends to the strong model
    single = route_request(strong, catalog)
    cascade = route_request(strong.model_copy(update={"strategy": "cascade"}), catalog)
    # Then alone it starts strong, as a cascade it starts cheapest and says why
    assert single.plan[0].name == "sim-gpt-4.1"
    assert [d.name for d in cascade.plan] == ["sim-gpt-4o-mini", "sim-gpt-4.1"]
    step = cascade.record()[-1]
    assert step["step"] == "strategy" and step["choice"] == "cascade"
    assert "sim-gpt-4o-mini -> sim-gpt-4.1" in step["reasons"][0]


def test_fenced_or_slightly_broken_json_is_repaired_locally_without_a_paid_call() -> None:
    # Given JSON asked for with a schema, and answers a model often gives
    gate, rejected = OutputGate(), []
    request = JobRequest.model_validate({"prompt": "give JSON", "response_format": JSON_FORMAT})
    for text in (
        '```json\n{"total": 3, "paid": true}\n```',
        '{"total": 3, "paid": true,}',
        "Here it is:\n```\n{'total': 3, 'paid': true}\n```",
    ):
        call = call_for(request)
        answer = Completion(text=text)
        # When the gate reviews it: no repair is asked (no RetryAfter), nothing is rejected
        gate.review(call, answer, rejected.append)
        # Then the job's answer is the repaired JSON, valid against the schema
        assert json.loads(answer.text) == {"total": 3, "paid": True}, text
        assert [m.role for m in call.request.canonical_messages()] == ["user"]
    assert rejected == []


def test_a_local_repair_is_refused_when_it_cannot_be_trusted() -> None:
    gate = OutputGate()
    request = JobRequest.model_validate({"prompt": "give JSON", "response_format": JSON_FORMAT})
    # Given an answer cut off by the token limit, or one whose repair misses a field
    for answer in (
        Completion(text='{"total": 3, "paid": tr', finish_reason="length"),
        Completion(text='```json\n{"total": 3}\n```'),
    ):
        # Then the paid repair is asked as before
        with pytest.raises(RetryAfter):
            gate.review(call_for(request), answer, lambda p: None)
