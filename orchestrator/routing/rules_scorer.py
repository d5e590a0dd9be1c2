"""The ``rules`` strong/weak scorer: a few readable signs of multi-step work, weighed by hand.

Registered in ``routing.scorers``; ``routing.blend`` builds on its logit.
"""

from __future__ import annotations

from orchestrator.routing.complexity import Complexity
from orchestrator.routing.scorer_base import Scored, Scorer, sigmoid


class RulesScorer(Scorer):
    """The default: a few readable signs of multi-step work, weighed by hand.

    z = (size - 4.0) + 0.5 fractions + 0.5 parts + 0.1 numbers + 0.5 asks_work;
    value = sigmoid(z). The weights were chosen on the development prompts
    (MMLU training subjects, half of GSM8K), listed in ``models/held_in.txt``.
    """

    name = "rules"
    uses_held_in = True
    SIZE_PIVOT = 4.0  # log(1 + 54 words): a prompt of about 54 words scores 0.5 on size alone
    BONUS: tuple[tuple[str, float, str], ...] = (
        ("fractions", 0.5, "fractions or ratios"),
        ("parts", 0.5, "several statements judged together"),
        ("asks_work", 0.5, "asks for a proof, derivation or step-by-step work"),
    )
    NUMBERS_WEIGHT = 0.1

    def logit(self, text: str) -> tuple[float, list[str]]:
        """``z`` before the sigmoid, and its reasons (the ``blend`` scorer reads it too)."""
        found = Complexity.of(text)
        features = found.vector()
        z = features["size"] - self.SIZE_PIVOT
        reasons = [f"~{found.words} words ({z:+.2f})"]
        for feature, weight, label in self.BONUS:
            if features[feature]:
                z += weight
                reasons.append(f"{label} (+{weight:.2f})")
        if found.numbers:
            bump = self.NUMBERS_WEIGHT * features["numbers"]
            z += bump
            reasons.append(f"{found.numbers} numbers (+{bump:.2f})")
        return z, reasons

    def score(self, text: str) -> Scored:
        z, reasons = self.logit(text)
        return Scored(round(sigmoid(z), 4), tuple(reasons))
