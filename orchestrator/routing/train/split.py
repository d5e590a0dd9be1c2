"""The data split behind the shipped scorers, as rules anyone can re-run.

MMLU (``mmlu/mmlu_<subject>.csv``), split by subject so that no evaluation
subject is seen in training:

    evaluation subject  <=>  int(sha256(subject)[:8], 16) % 5 == 0     (15 of 57)

``high_school_mathematics`` stays in the training split but is not fitted on:
its strong-model column says 3% correct, below chance on four options, which is
an answer-extraction failure, not the model's skill (kept in ``held_in`` anyway,
since we looked at it).

GSM8K: the half whose ``sha256(prompt)`` starts with an even hex digit was used
to choose the ``rules`` weights (development); the other half was not looked at
until evaluation. ``gain`` and the word-problem model of ``blend``/``tiered`` are fitted
on the development half (their figures there are cross-validated over hash slices);
``describe()`` keeps its older wording, because the shipped artefacts record it.

Contaminated prompts (RouteLLM's lists) are dropped before anything else.
"""

from __future__ import annotations

import hashlib

SUBJECT_MODULUS = 5
NOT_FITTED = frozenset({"high_school_mathematics"})


def is_eval_subject(subject: str) -> bool:
    digest = hashlib.sha256(subject.encode("utf-8")).hexdigest()
    return int(digest[:8], 16) % SUBJECT_MODULUS == 0


def subject_of(source: str) -> str:
    """``mmlu_anatomy`` -> ``anatomy`` (the file stem of a RouteLLM MMLU file)."""
    return source.removeprefix("mmlu_")


def is_gsm8k_development(prompt: str) -> bool:
    return int(hashlib.sha256(prompt.encode("utf-8")).hexdigest()[0], 16) % 2 == 0


def describe() -> dict[str, str]:
    """The split, as recorded in the artifact."""
    return {
        "mmlu": "evaluation subject iff int(sha256(subject)[:8], 16) % 5 == 0; others train",
        "mmlu_not_fitted": ", ".join(sorted(NOT_FITTED)) + " (strong column below chance)",
        "gsm8k": "development half: sha256(prompt) starts with an even hex digit; never trained",
        "contaminated": "RouteLLM's contaminated prompts dropped first",
    }
