"""The strong/weak decision inside a tier, and what a routing decision records."""

from __future__ import annotations

import pytest

from orchestrator.core.catalog import Catalog, load_catalog
from orchestrator.core.config import Settings
from orchestrator.core.schemas import JobRequest
from orchestrator.core.tiers import Tier
from orchestrator.routing import StrengthPolicy, get_scorer, route
from orchestrator.routing.calibration import Calibration
from orchestrator.routing.scorer_base import Scored, Scorer

PROBLEM = (
    "Some people got on a bus at the terminal. At the first stop, half of them got off and 4 "
    "more got on. At the second stop, 6 got off and 8 more got on. If 25 people rode to the "
    "third stop, how many got on at the terminal? Show your work step by step."
)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(Settings())


@pytest.fixture(scope="module")
def policy() -> StrengthPolicy:
    # A calibration where half of the reference prompts scored below 0.5
    table = Calibration.from_scores("rules", [i / 100 for i in range(101)], "test")
    return StrengthPolicy(get_scorer("rules"), table, quality=0.3)


@pytest.mark.parametrize(("quality", "choice"), [(0.0, "weak"), (1.0, "strong")])
def test_quality_zero_is_always_weak_and_one_always_strong(
    policy: StrengthPolicy, quality: float, choice: str
) -> None:
    # Given the same request at the two ends of the quality knob
    for text in ("hi", PROBLEM):
        request = JobRequest(prompt=text, quality=quality)
        # When the decision is made; Then the knob wins over the score
        assert policy.decide(request).choice == choice


def test_the_score_is_compared_with_the_calibrated_threshold(policy: StrengthPolicy) -> None:
    # Given quality 0.3: the threshold is the 70th percentile of the calibration
    decided = policy.decide(JobRequest(prompt=PROBLEM))
    # Then the decision carries the scorer, its score, the threshold and the quality
    assert decided.scorer == "rules"
    assert decided.threshold == pytest.approx(0.7)
    assert decided.quality == 0.3
    assert decided.score is not None
    assert decided.strong == (decided.score >= 0.7)
    assert decided.reasons[0].startswith(f"score {decided.score:.3f}")


def test_a_per_request_quality_overrides_the_policy(policy: StrengthPolicy) -> None:
    # Given a low-scoring request
    request = JobRequest(prompt="hi")
    # When it asks for quality 0.99 it goes strong, with the policy's 0.3 it stays weak
    assert policy.decide(request.model_copy(update={"quality": 0.99})).strong
    assert not policy.decide(request).strong


def test_a_named_model_is_pinned_not_scored(policy: StrengthPolicy) -> None:
    # Given a request naming a model
    decided = policy.decide(JobRequest(prompt=PROBLEM, model="o3"))
    # Then no score is computed and the decision says why
    assert decided.choice == "pinned"
    assert decided.score is None and decided.threshold is None
    assert "model 'o3' requested" in decided.reasons[0]


def test_a_strong_decision_puts_the_strongest_deployment_first(
    catalog: Catalog, policy: StrengthPolicy
) -> None:
    # Given the same reasoning problem at quality 1 and at quality 0
    strong = route(JobRequest(prompt=PROBLEM, quality=1.0), catalog, policy)
    weak = route(JobRequest(prompt=PROBLEM, quality=0.0), catalog, policy)
    # Then both are reasoning, with the same deployments in a different order
    assert strong.tier is weak.tier is Tier.REASONING
    assert sorted(d.name for d in strong.plan) == sorted(d.name for d in weak.plan)
    # Strong starts with the strongest deployment, weak with the cheapest
    assert [d.strength for d in strong.plan] == sorted(
        (d.strength for d in strong.plan), reverse=True
    )
    assert weak.plan[0].input_usd_per_mtok == min(d.input_usd_per_mtok for d in weak.plan)
    assert strong.plan[0].strength > weak.plan[0].strength


def test_the_record_holds_every_decision_with_scorer_score_threshold_and_reasons(
    catalog: Catalog, policy: StrengthPolicy
) -> None:
    # Given a routed request
    decision = route(JobRequest(prompt=PROBLEM), catalog, policy)
    # When its record is taken (as stored with the job)
    tier, strength = decision.record()
    # Then the tier step and the strength step each say what decided them and why
    assert tier["step"] == "tier" and tier["choice"] == "reasoning"
    assert tier["scorer"] == "tier-model" and tier["score"] == decision.confidence
    assert tier["reasons"] == list(decision.reasons)
    assert set(tier["probabilities"]) == {"fast", "reasoning", "code"}
    assert tier["probabilities"]["reasoning"] == decision.confidence
    assert strength["step"] == "strength" and strength["choice"] in ("strong", "weak")
    assert strength["scorer"] == "rules"
    assert strength["threshold"] == pytest.approx(0.7)
    assert strength["reasons"] and isinstance(strength["score"], float)


def test_the_policy_comes_from_the_settings() -> None:
    # Given settings naming the learned scorer and quality 0.6
    settings = Settings(router_scorer="learned", router_quality=0.6)
    # When the policy is built; Then it uses that scorer, its calibration and quality
    policy = StrengthPolicy.from_settings(settings)
    assert policy.scorer.name == "learned"
    assert policy.calibration.scorer == "learned"
    assert policy.quality == 0.6


class _Refusing(Scorer):
    """A scorer that fails the test if it is asked."""

    name = "refusing"

    def score(self, text: str) -> Scored:
        raise AssertionError(f"scored {text!r}")


def test_a_tier_with_one_deployment_is_not_scored(catalog: Catalog) -> None:
    # Given a catalog whose vision tier has a single deployment, and a policy whose scorer
    # fails if it is asked
    vision = [d for d in catalog.deployments if Tier.VISION in d.tiers][:1]
    others = [d for d in catalog.deployments if Tier.VISION not in d.tiers]
    narrow = Catalog(deployments=(*vision, *others))
    table = Calibration.from_scores("refusing", [i / 100 for i in range(101)], "test")
    refusing = StrengthPolicy(_Refusing(), table, quality=1.0)
    # When a request for that tier is routed
    decision = route(JobRequest(prompt=PROBLEM, tier=Tier.VISION), narrow, refusing)
    # Then nothing is scored and the record says why: the plan has one order only
    assert decision.strength.choice == "only" and not decision.strength.strong
    assert decision.strength.score is None and decision.strength.threshold is None
    assert "one deployment serves the tier" in decision.strength.reasons[0]
    assert [d.name for d in decision.plan] == [vision[0].name]
    # And a tier with two deployments still asks the scorer
    assert len(narrow.for_tier(Tier.REASONING)) >= 2
    with pytest.raises(AssertionError, match="scored"):
        route(JobRequest(prompt=PROBLEM, tier=Tier.REASONING), narrow, refusing)
