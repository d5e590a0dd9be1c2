"""Strong/weak scorers: the registry, the rules and learned scorers, and the baselines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.core.errors import ConfigError
from orchestrator.routing import SCORERS, Scored, get_scorer
from orchestrator.routing.complexity import Complexity
from orchestrator.routing.scorer_base import held_in_keys, prompt_key

REPO = Path(__file__).resolve().parents[2]
SHORT = "What is the capital of Peru?"
HARD = (
    "A store sells pens at 3 for $2 and notebooks at $4.50 each. Maria buys two thirds as many "
    "notebooks as pens and spends $61 in total. If the ratio of red pens to blue pens is 2/3, "
    "how many red pens did she buy? Prove that your answer is the only one, step by step."
)


def test_every_registered_scorer_scores_in_the_unit_interval() -> None:
    # Given every scorer in the registry
    for name in SCORERS:
        scorer = get_scorer(name)
        # When it scores a short and a hard prompt
        for text in (SHORT, HARD):
            result = scorer.score(text)
            # Then the value is in [0, 1] and comes with reasons
            assert isinstance(result, Scored)
            assert 0.0 <= result.value <= 1.0, (name, result)
            assert result.reasons, name
        assert scorer.name == name


def test_an_unknown_scorer_is_a_config_error_naming_the_choices() -> None:
    # When a scorer that does not exist is asked for; Then the error lists the real ones
    with pytest.raises(ConfigError, match="rules"):
        get_scorer("oracle")


def test_rules_scores_a_multi_step_problem_above_a_short_question() -> None:
    # Given a one-line question and a multi-step word problem with fractions
    rules = get_scorer("rules")
    # When both are scored
    easy, hard = rules.score(SHORT), rules.score(HARD)
    # Then the problem scores higher, and the reasons name what made it hard
    assert hard.value > easy.value
    assert any("fractions" in r for r in hard.reasons)
    assert any("step-by-step" in r for r in hard.reasons)
    assert any("numbers" in r for r in hard.reasons)


def test_complexity_reads_only_a_bounded_window_but_estimates_all_words() -> None:
    # Given a 400,000-character prompt
    text = "word " * 80_000
    # When its complexity is measured
    found = Complexity.of(text)
    # Then the word count is estimated for the whole text
    assert 75_000 <= found.words <= 85_000
    assert found.chars == len(text)


def test_baselines_are_deterministic_and_length_is_monotonic() -> None:
    # Given the random and length baselines
    random, length = get_scorer("random"), get_scorer("length")
    # When the same prompt is scored twice, Then random gives the same value
    assert random.score(HARD) == random.score(HARD)
    # And a longer prompt never scores lower on length
    assert length.score(SHORT).value < length.score(HARD).value


def test_learned_scorer_reports_both_probabilities() -> None:
    # Given the shipped learned scorer
    learned = get_scorer("learned")
    # When it scores a prompt; Then its reasons give both fitted probabilities
    result = learned.score(HARD)
    assert result.reasons[0].startswith("P(strong right)")
    assert result.reasons[1].startswith("P(weak right)")


def test_shipped_scorers_know_which_prompts_shaped_them(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the held-in list shipped with the scorers
    keys = held_in_keys()
    assert len(keys) > 10_000
    assert all(len(k) == 12 for k in list(keys)[:100])
    # When a prompt's key is on it (here: made to be)
    prompt = "a prompt the scorers were tuned on"
    monkeypatch.setattr(
        "orchestrator.routing.scorer_base.held_in_keys", lambda: keys | {prompt_key(prompt)}
    )
    # Then the scorers developed on that list claim it, the baselines do not
    assert get_scorer("rules").held_in(prompt) and get_scorer("learned").held_in(prompt)
    assert not get_scorer("length").held_in(prompt)
    assert not get_scorer("rules").held_in("never seen before, surely")


def test_the_default_routing_path_imports_no_heavy_library() -> None:
    # Given a fresh interpreter
    code = (
        "import sys\n"
        "from orchestrator.core.catalog import load_catalog\n"
        "from orchestrator.core.config import Settings\n"
        "from orchestrator.routing import route, get_scorer\n"
        "from orchestrator.core.schemas import JobRequest\n"
        "route(JobRequest(prompt='Prove that 17 is prime'), load_catalog(Settings()))\n"
        "get_scorer('learned').score('hello')\n"
        "heavy = {'sklearn', 'scipy', 'matplotlib', 'torch', 'wordllama'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    # When it routes a request with the rules scorer and scores one with the learned one
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    # Then none of the heavy libraries was imported (numpy is the tier model's, by design)
    assert done.stdout.strip() == "[]", done.stderr
