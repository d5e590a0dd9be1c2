"""The tier classifier's pipeline, stage by stage, against the built-in catalog.

Explicit overrides and images hold for every classifier (``CLASSIFIERS``); the
clue-by-clue tests below measure the rules classifier, kept by name for comparison
(the learned model, the default, is tested in ``test_tier_model.py``).
"""

from __future__ import annotations

import dataclasses

import pytest

from orchestrator.core.catalog import Catalog, load_catalog
from orchestrator.core.config import Settings
from orchestrator.core.errors import ValidationFailed
from orchestrator.core.schemas import JobRequest
from orchestrator.core.tiers import Tier
from orchestrator.routing import Classification, Scan, classify
from orchestrator.routing.classify import CLASSIFIERS, stages_of

RULES = stages_of("rules")
IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(Settings())


def with_images(text: str, images: int = 1, **params: object) -> JobRequest:
    content = [{"type": "text", "text": text}, *[IMAGE] * images]
    messages = [{"role": "user", "content": content}]
    return JobRequest.model_validate({"messages": messages, **params})


# --- explicit override -------------------------------------------------------------


@pytest.mark.parametrize("classifier", sorted(CLASSIFIERS))
def test_requested_tier_wins_over_every_rule(catalog: Catalog, classifier: str) -> None:
    # Given a plain question with an image, sent with tier=code
    request = with_images("What is the capital of France?", tier="code")
    # When it is classified (by the model or by the rules)
    result = classify(request, catalog, stages_of(classifier))
    # Then the requested tier is used, with full confidence, and says so
    assert result == Classification(Tier.CODE, 1.0, ("tier 'code' requested",))


@pytest.mark.parametrize(
    ("model", "tier", "deployment"),
    [
        ("o3", Tier.REASONING, "sim-o3"),
        ("sim-codestral", Tier.CODE, "sim-codestral"),
        ("gpt-4.1", Tier.FAST, "sim-gpt-4.1"),
    ],
)
def test_requested_model_picks_the_first_tier_of_its_deployment(
    catalog: Catalog, model: str, tier: Tier, deployment: str
) -> None:
    # Given a request naming a model (or a deployment) but no tier
    request = JobRequest(prompt="hello", model=model)
    # When it is classified
    result = classify(request, catalog)
    # Then the tier is the first one that deployment serves
    assert result.tier is tier
    assert result.confidence == 1.0
    assert f"deployment '{deployment}'" in result.reasons[0]


def test_requested_model_with_an_image_resolves_to_its_vision_deployment(
    catalog: Catalog,
) -> None:
    # Given gpt-4o-mini, served by a text deployment (fast) and a vision one
    request = with_images("What is in this picture?", model="gpt-4o-mini")
    # When a request with an image names it
    result = classify(request, catalog)
    # Then the vision deployment of that model decides the tier
    assert result.tier is Tier.VISION
    assert "sim-gpt-4o-mini-vision" in result.reasons[0]


def test_unknown_model_is_refused_on_the_model_field(catalog: Catalog) -> None:
    # Given a model the catalog does not know
    request = JobRequest(prompt="hello", model="gpt-9-ultra")
    # When it is classified, Then the request is refused, naming the field
    with pytest.raises(ValidationFailed) as caught:
        classify(request, catalog)
    assert caught.value.field == "model"
    assert "gpt-9-ultra" in caught.value.message


# --- modality ----------------------------------------------------------------------


@pytest.mark.parametrize("classifier", sorted(CLASSIFIERS))
@pytest.mark.parametrize(("images", "reason"), [(1, "image part present"), (2, "2 image parts")])
def test_any_image_part_means_vision(
    catalog: Catalog, images: int, reason: str, classifier: str
) -> None:
    # Given a request whose text alone would be code, with image parts
    request = with_images("Write a python function that parses this chart", images)
    # When it is classified (by the model or by the rules)
    result = classify(request, catalog, stages_of(classifier))
    # Then it goes to vision, because only vision deployments can read images
    assert result.tier is Tier.VISION
    assert reason in result.reasons[0]


# --- code detection (rules) ----------------------------------------------------------------

CODE_PROMPTS = [
    ("```\nx = compute()\n```\nWhat does this do?", "code fence found"),
    ('Traceback (most recent call last):\n  File "app.py", line 3\nKeyError: 1', "traceback"),
    ("#include <stdio.h>\nint main(void) { return 0; }", "C include"),
    ("Why does def total(items): return sum(items) fail?", "definition syntax 'def total('"),
    ("const add = function(a, b) { return a + b; }", "definition syntax"),
    ("SELECT name, email FROM users WHERE id = 7 is slow", "SQL statement"),
    ("select * from orders where total > 100", "SQL statement"),
    ("Write a python function that reverses a string", "code request 'Write a python function'"),
    ("Can you fix this bug? The loop never ends.", "debugging request 'fix this bug'"),
    ("I need a regex that matches email addresses", "regex 'regex'"),
    ("Write an SQL query that counts users per country", "SQL query"),
    ("How do I reverse a list in Python?", "code request"),
    ("import numpy as np\nprint(np.zeros(3))", "import statement"),
    ("Write a Java class that models a bank account", "code request"),
    ("Write a bash script to back up my home directory", "code request"),
]


@pytest.mark.parametrize(("prompt", "reason"), CODE_PROMPTS)
def test_code_is_detected(catalog: Catalog, prompt: str, reason: str) -> None:
    # Given a prompt with code, a traceback or a request for code
    request = JobRequest(prompt=prompt)
    # When it is classified
    result = classify(request, catalog, RULES)
    # Then it goes to the code tier, and the reasons name the clue
    assert result.tier is Tier.CODE, result.reasons
    assert any(r.startswith(reason) for r in result.reasons), result.reasons
    assert 0.5 <= result.confidence <= 1.0


@pytest.mark.parametrize(
    "prompt",
    [
        "Tell me a joke about pythons",
        "Tell me a joke about python",
        "Give me a discount code for my store",
        "Create a class schedule for my school",
        "Recommend a good book on the history of Java island",
        "Please select the best option from the list below.",
        "Write a script for my YouTube video about cats",
        "Write a unit plan for my history class",
    ],
)
def test_everyday_words_that_look_like_code_stay_fast(catalog: Catalog, prompt: str) -> None:
    # Given a prompt with a language name or a code-ish word, but no code
    request = JobRequest(prompt=prompt)
    # When it is classified
    result = classify(request, catalog, RULES)
    # Then one weak clue does not make it code
    assert result.tier is Tier.FAST, result.reasons


# --- reasoning (rules) ---------------------------------------------------------------------

REASONING_PROMPTS = [
    ("Solve 3x + 5 = 20", "math expression '3x + 5 = 20'"),
    ("Prove that the square root of 2 is irrational", "proof or calculus 'prove'"),
    ("What is the integral of x^2 from 0 to 1?", "proof or calculus 'integral'"),
    ("What is the probability of two sixes? Explain step by step.", "probability"),
    ("Explain why the sky is blue, step by step", "step by step"),
    ("Compare and analyze the economic policies of France and Germany", "comparison"),
    (
        "First add up the bill, then split it among 4 people. How much does each pay? Fair?",
        "sequence",
    ),
    (
        "A bat and a ball cost $1.10. The bat costs $1.00 more than the ball. "
        "How much does the ball cost? Why do people get this wrong?",
        "word problem 'How much'",
    ),
]


@pytest.mark.parametrize(("prompt", "reason"), REASONING_PROMPTS)
def test_math_and_multi_step_work_is_reasoning(catalog: Catalog, prompt: str, reason: str) -> None:
    # Given a math problem or a multi-step question
    request = JobRequest(prompt=prompt)
    # When it is classified
    result = classify(request, catalog, RULES)
    # Then it goes to the reasoning tier, and the reasons name the clue
    assert result.tier is Tier.REASONING, result.reasons
    assert any(r.startswith(reason) for r in result.reasons), result.reasons


@pytest.mark.parametrize(
    "prompt",
    [
        "What is the capital of France?",
        "Explain why the sky is blue",
        "What is 2+2?",
        "Summarize: the meeting on 2024-03-05 ran 10-11am; call 555-123-4567.",
        "I bought 3 apples and 2 pears at the market.",
    ],
)
def test_simple_questions_and_stray_numbers_stay_fast(catalog: Catalog, prompt: str) -> None:
    # Given a short question, or numbers that are dates, ranges or counts
    request = JobRequest(prompt=prompt)
    # When it is classified
    result = classify(request, catalog, RULES)
    # Then it stays in the fast tier
    assert result.tier is Tier.FAST, result.reasons


def test_a_long_prompt_adds_weight_to_a_weak_clue(catalog: Catalog) -> None:
    # Given the same weak clue in a short prompt and at the end of a long one
    filler = "The committee met again and read the minutes of the previous session. " * 120
    short = JobRequest(prompt="Go through the plan step by step.")
    long = JobRequest(prompt=filler + "Go through the plan step by step.")
    # When both are classified
    short_result, long_result = classify(short, catalog, RULES), classify(long, catalog, RULES)
    # Then only the long one tips over into reasoning, and says why
    assert short_result.tier is Tier.FAST
    assert long_result.tier is Tier.REASONING
    assert any(r.startswith("long prompt") for r in long_result.reasons)


# --- fast fallback (rules) -----------------------------------------------------------------


def test_no_signal_is_fast_with_high_confidence(catalog: Catalog) -> None:
    # Given a plain question
    request = JobRequest(prompt="What is the capital of France?")
    # When it is classified
    result = classify(request, catalog, RULES)
    # Then it is fast, confidently, and says nothing else matched
    assert result == Classification(Tier.FAST, 0.9, ("no code, math or multi-step signal",))


def test_weak_signals_lower_the_fast_confidence_and_are_reported(catalog: Catalog) -> None:
    # Given a question with one weak reasoning clue
    request = JobRequest(prompt="Explain why the sky is blue")
    # When it is classified
    result = classify(request, catalog, RULES)
    # Then it is fast but less sure, and the near miss is explained
    assert result.tier is Tier.FAST
    assert 0.5 <= result.confidence < 0.9
    assert "weak reasoning signal: explanation 'Explain why'" in result.reasons


# --- the pipeline ------------------------------------------------------------------


def test_stages_can_be_replaced_and_the_first_decisive_one_wins(catalog: Catalog) -> None:
    # Given a pipeline whose first stage passes and whose second always decides
    def never(scan: Scan) -> Classification | None:
        return None

    def always_vision(scan: Scan) -> Classification | None:
        return Classification(Tier.VISION, 0.5, ("test stage",))

    def unreachable(scan: Scan) -> Classification | None:
        raise AssertionError("a later stage ran after a decisive one")

    # When a code prompt is classified with it
    request = JobRequest(prompt="Write a python function")
    result = classify(request, catalog, stages=[never, always_vision, unreachable])
    # Then the deciding stage's answer is returned
    assert result == Classification(Tier.VISION, 0.5, ("test stage",))


def test_classification_is_immutable(catalog: Catalog) -> None:
    # Given a classification
    result = classify(JobRequest(prompt="hi"), catalog, RULES)
    # When someone tries to change it, Then it refuses
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.tier = Tier.CODE  # type: ignore[misc]
