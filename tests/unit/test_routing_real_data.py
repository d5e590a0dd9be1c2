"""The acceptance figures on the real data in ../shared/data/routing (skipped if absent).

Each figure is measured on prompts no shipped scorer was fitted or tuned on: the
evaluation drops held-in prompts, which these tests check as well.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.core.catalog import load_catalog
from orchestrator.core.config import Settings
from orchestrator.evaluation.data import read_excludes, read_outcomes, read_tier_examples
from orchestrator.evaluation.router import evaluate_router
from orchestrator.evaluation.tiers import evaluate_tiers
from orchestrator.routing.classify import stages_of
from orchestrator.routing.train import split

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "routing"
pytestmark = pytest.mark.skipif(
    not (DATA / "README.md").is_file(), reason=f"routing data not found at {DATA}"
)


def test_default_router_beats_prompt_length_on_unseen_gsm8k() -> None:
    # Given GSM8K without its contaminated prompts
    outcomes = read_outcomes([DATA / "gsm8k_responses.csv"], "routellm-csv")
    excludes = read_excludes([DATA / "gsm8k_contaminated_prompts.jsonl"])
    # When the default scorer is evaluated with the baselines in the same run
    report = evaluate_router(outcomes, ["rules"], excludes=excludes).as_json()
    # Then only the half never used in development is scored
    assert report["excluded"] == {"excluded": 12, "held_in": 630}
    assert report["n"] == 677
    # And the default router's APGR beats the prompt-length router's
    assert report["apgr"] > report["scorers"]["length"]["apgr"]


def test_default_router_beats_prompt_length_on_held_out_mmlu_subjects() -> None:
    # Given all of MMLU without its contaminated prompts
    outcomes = read_outcomes([DATA / "mmlu"], "routellm-csv")
    excludes = read_excludes([DATA / "mmlu_contaminated_prompts.jsonl"])
    kept_subjects = {
        split.subject_of(o.source)
        for o in outcomes
        if split.is_eval_subject(split.subject_of(o.source))
    }
    # When the default and learned scorers are evaluated
    report = evaluate_router(outcomes, ["rules", "learned"], excludes=excludes).as_json()
    # Then exactly the evaluation subjects' prompts were scored (training subjects dropped)
    expected = sum(
        1
        for o in outcomes
        if split.subject_of(o.source) in kept_subjects and o.prompt not in excludes
    )
    assert report["n"] == expected and len(kept_subjects) == 15
    # And the default router's APGR beats the prompt-length router's
    assert report["apgr"] > report["scorers"]["length"]["apgr"]


@pytest.mark.parametrize("classifier", ["model", "rules"])
def test_tier_classifiers_on_mt_bench(classifier: str) -> None:
    # Given MT-Bench's 80 questions mapped as in the data README (a development set:
    # no training row and no rule quotes them)
    examples = read_tier_examples([DATA / "mt_bench_questions.jsonl"], "mt-bench")
    # When they are classified by the learned model and by the old rules
    found = evaluate_tiers(examples, load_catalog(Settings()), stages_of(classifier))
    # Then the model keeps its development figure (ROUTING.md), and every one of them
    # sent with an image went to vision, whichever classifier decided
    assert found["n"] == 80
    if classifier == "model":
        assert found["accuracy"] >= 0.8, found["mistakes"]
    assert found["image_check"] == {"n": 80, "not_vision": 0}
