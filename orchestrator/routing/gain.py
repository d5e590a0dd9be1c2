"""The ``gain`` scorer: how likely the strong model beats the weak one, from the encoder's features.

One multinomial logistic regression over three outcomes of a prompt, learned from
per-prompt correctness of both models (RouteLLM's MMLU and GSM8K data, train splits):

    weak_better   the weak model right, the strong one wrong
    tie           both right or both wrong
    strong_better the strong model right, the weak one wrong

    logits = intercept + W_counts . z(counts) + W_embedding . embedding
    gain   = (P(strong_better) - P(weak_better) + 1) / 2       the expected gain, in [0, 1]
    value  = (gain + [the tier model's call is reasoning or code]) / 2

The second half is a prior, set by hand, not fitted: the strong model's advantage
is largest on maths, reasoning and code (RouteLLM's MT-Bench results), and a
model fitted on MMLU and GSM8K alone does not learn it for chat-like prompts (on
the shared Vicuna-bench prompts it ranked maths and coding below chit-chat). So
the tier model (``tier_model.current()``, the one the router uses) puts a prompt
in the upper or the lower half, and the fitted gain orders prompts inside it.

``counts`` are readable: the ``complexity`` features and the ``quantities`` counts,
standardized with the training mean and scale. ``embedding`` is the shared
encoder's 256-d vector (``encoder.embed``): it carries the topic, and the strong
model's advantage is largest on maths, reasoning and code. Run time needs numpy
and the encoder only; fitting (scikit-learn) lives in ``train/gain.py``. The
artefact is one small JSON file (``models/gain.json``).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from orchestrator.core.errors import ConfigError
from orchestrator.routing import encoder, quantities, tier_model
from orchestrator.routing.complexity import FEATURES, Complexity
from orchestrator.routing.scorer_base import Scored, Scorer, trained_part

FORMAT = "switchyard-gain-model/1"
ARTIFACT = "gain.json"
CLASSES = ("weak_better", "tie", "strong_better")
COUNTS: tuple[str, ...] = (*FEATURES, *quantities.NAMES)
SHOWN_COUNTS = 2
TIER_WEIGHT = 0.5  # the share of the value that the tier prior decides

Vector = npt.NDArray[np.float64]


def encoder_settings() -> dict[str, Any]:
    """The encoder settings an embedding depends on (n-gram settings do not matter here)."""
    info = encoder.encoder_info()
    return {"encoder": info["encoder"], "dim": info["dim"], "window": info["window"]}


def count_vector(text: str) -> tuple[dict[str, float], dict[str, int]]:
    """The named count features of ``text`` and the raw counts that explain them."""
    found = Complexity.of(text)
    raw = quantities.counts(text)
    values = {**found.vector(), **quantities.vector(raw)}
    shown = {"size": found.words, "numbers": found.numbers, "chars": found.chars, **raw}
    return values, shown


def tier_prior(tiers: tier_model.TierModel, text: str) -> tuple[float, str]:
    """1 if the tier model calls ``text`` reasoning or code, else 0; and the reason."""
    probabilities = tiers.probabilities(text)
    best = tiers.tiers[int(np.argmax(probabilities))].value
    prior = 0.0 if best == "fast" else 1.0
    share = TIER_WEIGHT * prior
    return prior, f"tier model: {best} ({float(probabilities.max()):.2f}, +{share:.2f})"


class GainScorer(Scorer):
    """Scores by the tier prior and the fitted expected gain; see the module docstring."""

    name = "gain"
    uses_held_in = True

    def __init__(
        self, artefact: dict[str, Any], origin: str, tiers: tier_model.TierModel | None = None
    ) -> None:
        self.tiers = tiers  # None: no tier prior (the fitted gain alone, as in training)
        self.name = "gain" if tiers is not None else "gain-fitted"
        try:
            if artefact["format"] != FORMAT:
                raise ValueError(f"format {artefact['format']!r}, expected {FORMAT!r}")
            if artefact["encoder"] != encoder_settings():
                raise ValueError(f"trained with encoder {artefact['encoder']}")
            self.counts = tuple(str(n) for n in artefact["counts"])
            unknown = set(self.counts) - set(COUNTS)
            if unknown:
                raise ValueError(f"unknown count features {sorted(unknown)}")
            self.mean = np.asarray(artefact["mean"], dtype=np.float64)
            self.scale = np.asarray(artefact["scale"], dtype=np.float64)
            self.intercept = np.asarray(artefact["intercept"], dtype=np.float64)
            self.w_counts = np.asarray(artefact["count_weights"], dtype=np.float64)
            self.w_embedding = np.asarray(artefact["embedding_weights"], dtype=np.float64)
            shapes = (self.intercept.shape, self.w_counts.shape, self.w_embedding.shape)
            k = len(CLASSES)
            if shapes != ((k,), (k, len(self.counts)), (k, encoder.DIM)):
                raise ValueError(f"weights of shapes {shapes}")
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"invalid gain model {origin}: {exc}") from exc
        self.origin = origin
        self.training: dict[str, Any] = dict(artefact.get("training", {}))

    @classmethod
    def load(
        cls, path: Path | str | None = None, tiers: tier_model.TierModel | None = None
    ) -> GainScorer:
        """The shipped model, or the artefact at ``path``; ``tiers`` gives the tier prior."""
        if path is None:
            source = resources.files("orchestrator.routing").joinpath("models", ARTIFACT)
            document = json.loads(source.read_text(encoding="utf-8"))
            return cls(document, f"(shipped {ARTIFACT})", tiers)
        try:
            return cls(json.loads(Path(path).read_text(encoding="utf-8")), str(path), tiers)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read gain model {path}: {exc}") from exc

    @classmethod
    def configured(cls, model_path: Path | None, *, prior: bool = True) -> GainScorer:
        """The ``gain`` part of a ``route train`` model file, if it has one; else the shipped one.

        ``model_path`` is ``SWITCHYARD_ROUTER_MODEL_PATH``: the file that also holds the
        tier model, and a retrained gain scorer when the training rows carried scores.
        ``prior``: add the tier model's call (the ``gain`` scorer), else the fitted gain
        alone (``gain-fitted``).
        """
        tiers = tier_model.current(model_path) if prior else None
        found = trained_part(model_path, "gain")
        return cls.load(tiers=tiers) if found is None else cls(*found, tiers)

    def probabilities(self, z: Vector, embedding: Vector) -> Vector:
        logits = self.intercept + self.w_counts @ z + self.w_embedding @ embedding
        exp = np.exp(logits - logits.max())
        out: Vector = exp / exp.sum()
        return out

    def score(self, text: str) -> Scored:
        values, shown = count_vector(text)
        z = (np.array([values[n] for n in self.counts]) - self.mean) / self.scale
        embedding = encoder.embed(text).astype(np.float64)
        p_weak, _, p_strong = self.probabilities(z, embedding)
        value = float(p_strong - p_weak + 1.0) / 2.0
        reasons = [f"P(strong better) {p_strong:.2f}, P(weak better) {p_weak:.2f}"]
        if self.tiers is not None:
            prior, why = tier_prior(self.tiers, text)
            value = (1.0 - TIER_WEIGHT) * value + TIER_WEIGHT * prior
            reasons.append(why)
        reasons.extend(self._why(z, embedding, shown))
        return Scored(round(value, 4), tuple(reasons))

    def _why(self, z: Vector, embedding: Vector, shown: dict[str, int]) -> list[str]:
        """What pushed towards strong (or weak): the topic, then the strongest counts."""
        strong, weak = CLASSES.index("strong_better"), CLASSES.index("weak_better")
        topic = float((self.w_embedding[strong] - self.w_embedding[weak]) @ embedding)
        pushes = (self.w_counts[strong] - self.w_counts[weak]) * z
        reasons = [f"topic (embedding) {topic:+.2f}"]
        for i in np.argsort(-np.abs(pushes), kind="stable")[:SHOWN_COUNTS]:
            name = self.counts[i]
            label = f"{shown[name]:,} {name}" if name in shown else name
            reasons.append(f"{label} ({float(pushes[i]):+.2f})")
        return reasons
