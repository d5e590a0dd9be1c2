"""Training the learned scorer (needs the `learned` extra) and the recorded split."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from orchestrator.evaluation.data import Outcome
from orchestrator.routing.learned import LearnedScorer
from orchestrator.routing.train import split


def synthetic(n: int) -> list[Outcome]:
    """Long prompts with fractions defeat the weak model; short ones do not."""
    out = []
    for i in range(n):
        hard = i % 2 == 0
        text = f"item {i}: " + (
            "a third of the 12 boxes and half of 30 crates " * 6 if hard else "hi"
        )
        strong = 0.0 if i % 7 == 1 else 1.0  # the strong model misses a few easy ones
        out.append(Outcome(text, 0.0 if hard else 1.0, strong, f"subject{i % 5}"))
    return out


def test_a_fitted_artifact_loads_and_ranks_what_it_learned() -> None:
    pytest.importorskip("sklearn")
    from orchestrator.routing.train.fit import fit_artifact, grouped_cv

    # Given outcomes where hard prompts need the strong model
    outcomes = synthetic(80)
    # When the two models are fitted and loaded as a scorer
    artifact = fit_artifact(outcomes)
    scorer = LearnedScorer(json.loads(json.dumps(artifact)))  # survives a JSON round trip
    # Then hard prompts score above easy ones
    assert scorer.score(outcomes[0].prompt).value > scorer.score(outcomes[1].prompt).value
    # And grouped cross-validation reports the RouteLLM figures
    cv = grouped_cv(outcomes, [o.source for o in outcomes])
    assert cv["grouped_by"] == "subject" and cv["apgr"] is not None and cv["apgr"] > 0.5


def test_the_shipped_artifact_records_its_split() -> None:
    # Given the shipped learned model
    text = resources.files("orchestrator.routing").joinpath("models", "learned.json").read_text()
    artifact = json.loads(text)
    training = artifact["training"]
    # Then it names its split rule, and no evaluation subject is among its training subjects
    assert artifact["split"] == split.describe()
    assert len(training["eval_subjects"]) == 15
    assert not set(training["eval_subjects"]) & set(training["train_subjects"])
    assert all(split.is_eval_subject(s) for s in training["eval_subjects"])
    assert not any(split.is_eval_subject(s) for s in training["train_subjects"])
    assert training["development"]["mmlu_train_grouped_cv"]["grouped_by"] == "subject"
