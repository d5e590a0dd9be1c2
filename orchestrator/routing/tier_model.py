"""The learned tier classifier at run time: a linear model over the shared encoder's features.

    model = TierModel.load(path | None)     the shipped ``models/tiers.json``, or a user's file
    found = model.predict(text)             TierPrediction(tier, probabilities, reasons)
    current()                               the model ``SWITCHYARD_ROUTER_MODEL_PATH`` names
                                            (default: the shipped one), loaded once

    logits[t] = intercept[t] + scale * emb . E[t] + grams . G[t]       softmax -> P(t)

``emb`` is ``encoder.embed(text)`` (256-d) and ``grams`` the hashed char n-grams
(``encoder.ngrams``). Run time needs numpy and the encoder only; training
(scikit-learn) lives in ``orchestrator.routing.train.tiers``. The artefact is one
JSON file: the weights as base64 of zlib-compressed little-endian float16, the
encoder settings it was trained with (a mismatch is refused), and how it was
trained.

Reasons name what pushed the chosen tier over the runner-up: the share that came
from the embedding (meaning) and from n-grams (surface), and the prompt's words
whose n-grams pushed hardest.
"""

from __future__ import annotations

import base64
import json
import threading
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from orchestrator.core.errors import ConfigError
from orchestrator.core.tiers import Tier
from orchestrator.routing import encoder

FORMAT = "switchyard-tier-model/1"
ARTIFACT = "tiers.json"
TOP_WORDS = 3
CANDIDATE_GRAMS = 40
SHOWN_CHARS = 30

Matrix = npt.NDArray[np.float32]


def pack(matrix: npt.NDArray[Any]) -> str:
    """A matrix as base64(zlib(float16 little-endian bytes)), as the artefact stores it."""
    raw = np.ascontiguousarray(matrix, dtype="<f2").tobytes()
    return base64.b64encode(zlib.compress(raw, 9)).decode("ascii")


def unpack(text: str, shape: tuple[int, ...]) -> Matrix:
    raw = zlib.decompress(base64.b64decode(text))
    return np.frombuffer(raw, dtype="<f2").astype(np.float32).reshape(shape)


def _softmax(logits: Matrix) -> Matrix:
    exp = np.exp(logits - logits.max())
    out: Matrix = (exp / exp.sum()).astype(np.float32)
    return out


@dataclass(frozen=True)
class TierPrediction:
    """The model's tier for a prompt, every tier's probability, and why."""

    tier: Tier
    probabilities: dict[str, float]
    reasons: tuple[str, ...]


class TierModel:
    """A loaded artefact: weights in memory, ready to score prompts (thread-safe, read-only)."""

    def __init__(self, artefact: dict[str, Any], origin: str) -> None:
        try:
            if artefact["format"] != FORMAT:
                raise ValueError(f"format {artefact['format']!r}, expected {FORMAT!r}")
            self.tiers = tuple(Tier(t) for t in artefact["tiers"])
            settings = artefact["encoder"]
            if settings != encoder.encoder_info() | {"gram_buckets": settings["gram_buckets"]}:
                raise ValueError(f"trained with encoder {settings}, not {encoder.encoder_info()}")
            self.buckets = int(settings["gram_buckets"])
            self.scale = float(artefact["embedding_scale"])
            k = len(self.tiers)
            self.intercept = np.asarray(artefact["intercept"], dtype=np.float32)
            self.embedding = unpack(artefact["embedding_weights"], (k, encoder.DIM)) * self.scale
            self.grams = np.ascontiguousarray(unpack(artefact["gram_weights"], (k, self.buckets)).T)
        except (KeyError, TypeError, ValueError, zlib.error) as exc:
            raise ConfigError(f"invalid tier model {origin}: {exc}") from exc
        self.origin = origin
        self.training: dict[str, Any] = dict(artefact.get("training", {}))

    @classmethod
    def load(cls, path: Path | str | None = None) -> TierModel:
        """The shipped model, or the artefact at ``path`` (as ``switchyard route train`` writes)."""
        if path is None:
            source = resources.files("orchestrator.routing").joinpath("models", ARTIFACT)
            return cls(json.loads(source.read_text(encoding="utf-8")), f"(shipped {ARTIFACT})")
        try:
            text = Path(path).read_text(encoding="utf-8")
            return cls(json.loads(text), str(path))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read tier model {path}: {exc}") from exc

    def logits(self, text: str) -> tuple[Matrix, Matrix, Matrix, encoder.Grams]:
        """Per-tier logits and their two parts (embedding, n-grams), with the n-grams read."""
        emb = encoder.embed(text)
        grams = encoder.ngrams(text, self.buckets)
        from_emb: Matrix = (self.embedding @ emb).astype(np.float32, copy=False)
        from_grams: Matrix = (grams.values @ self.grams[grams.ids]).astype(np.float32, copy=False)
        return self.intercept + from_emb + from_grams, from_emb, from_grams, grams

    def probabilities(self, text: str) -> Matrix:
        return _softmax(self.logits(text)[0])

    def predict(self, text: str) -> TierPrediction:
        logits, from_emb, from_grams, grams = self.logits(text)
        probs = _softmax(logits)
        order = np.argsort(-probs, kind="stable")
        best, second = int(order[0]), int(order[1])
        shown = {self.tiers[i].value: round(float(probs[i]), 3) for i in order}
        reasons = [
            "P " + ", ".join(f"{tier} {p:.2f}" for tier, p in shown.items()),
            self._margin(best, second, from_emb, from_grams),
        ]
        strongest = self._strongest(text, best, second, grams)
        if strongest:
            reasons.append(f"words that pushed {self.tiers[best].value} most: {strongest}")
        return TierPrediction(self.tiers[best], shown, tuple(reasons))

    def _margin(self, best: int, second: int, from_emb: Matrix, from_grams: Matrix) -> str:
        emb = float(from_emb[best] - from_emb[second])
        grams = float(from_grams[best] - from_grams[second])
        bias = float(self.intercept[best] - self.intercept[second])
        return (
            f"{self.tiers[best].value} over {self.tiers[second].value}: "
            f"meaning (embedding) {emb:+.2f}, n-grams {grams:+.2f}, prior {bias:+.2f}"
        )

    def _strongest(self, text: str, best: int, second: int, grams: encoder.Grams) -> str:
        """The prompt's words whose n-grams pushed ``best`` over ``second`` hardest."""
        weights = self.grams[grams.ids]
        push = grams.values * (weights[:, best] - weights[:, second])
        top = np.flatnonzero(push > 0)
        if top.size > CANDIDATE_GRAMS:  # the strongest few, without sorting them all
            top = top[np.argpartition(-push[top], CANDIDATE_GRAMS)[:CANDIDATE_GRAMS]]
        if not top.size:
            return ""
        order = np.argsort(grams.ids[top])
        ids, pushes = grams.ids[top][order], push[top][order]
        squeezed, found, middles, spaces = encoder.gram_spans(text, self.buckets, ids)
        slot = np.searchsorted(ids, found)
        share = pushes[slot] / np.bincount(slot, minlength=len(ids))[slot]  # split over repeats
        word = np.searchsorted(spaces, middles)
        inside = (word > 0) & (word < len(spaces))
        totals = np.bincount(word[inside], weights=share[inside], minlength=len(spaces))
        shown: dict[str, float] = {}
        for at in np.argsort(-totals, kind="stable")[: 3 * TOP_WORDS]:
            name = squeezed[spaces[at - 1] + 1 : spaces[at]][:SHOWN_CHARS]
            if totals[at] >= 0.01 and name not in shown and len(shown) < TOP_WORDS:
                shown[name] = float(totals[at])
        return ", ".join(f"{w!r} {p:+.2f}" for w, p in shown.items())


_lock = threading.Lock()
_models: dict[str, TierModel] = {}


def current(path: Path | str | None = None) -> TierModel:
    """The model at ``path``, else at ``SWITCHYARD_ROUTER_MODEL_PATH``, else the shipped one.

    Loaded once per path and process, with the encoder, so the first request pays nothing.
    """
    if path is None:
        from orchestrator.core.config import get_settings

        path = get_settings().router_model_path
    key = "" if path is None else str(path)
    found = _models.get(key)
    if found is None:
        with _lock:
            found = _models.get(key)
            if found is None:
                found = TierModel.load(path)
                encoder.load()
                _models[key] = found
    return found
