"""``switchyard eval tiers``: accuracy, macro-F1, per-tier precision/recall, confusion.

Each labelled request is classified as the dispatcher would (no tier or model
pinned). The same request is then classified again with an image part added:
whatever its text, the classifier must send it to ``vision``; the report counts
the image jobs that went anywhere else (``image_check``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestrator.core.catalog import Catalog
from orchestrator.core.schemas import ImagePart, ImageURL, JobRequest, Message, TextPart
from orchestrator.core.tiers import Tier
from orchestrator.evaluation.data import TierExample
from orchestrator.routing import Stage, classify

IMAGE_URL = "https://example.com/eval.png"
SNIPPET_CHARS = 100


def with_image(request: JobRequest) -> JobRequest:
    """The request with one image part added to its last message."""
    messages = [m.model_copy() for m in request.canonical_messages()]
    last = messages[-1]
    parts: list[Any] = (
        [TextPart(text=last.content)] if isinstance(last.content, str) else list(last.content or [])
    )
    parts.append(ImagePart(image_url=ImageURL(url=IMAGE_URL)))
    messages[-1] = Message(role=last.role, content=parts)
    return request.model_copy(update={"messages": messages, "prompt": None, "system": None})


def _table(pairs: Sequence[tuple[Tier, Tier]]) -> dict[str, dict[str, float | int]]:
    table: dict[str, dict[str, float | int]] = {}
    for tier in Tier:
        tp = sum(1 for want, got in pairs if want is tier and got is tier)
        predicted = sum(1 for _, got in pairs if got is tier)
        support = sum(1 for want, _ in pairs if want is tier)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        table[tier.value] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": support,
        }
    return table


def evaluate_tiers(
    examples: Sequence[TierExample], catalog: Catalog, stages: Sequence[Stage] | None = None
) -> dict[str, Any]:
    """Classify every example (and its image twin) and summarise the agreement.

    ``stages``: the classifier to measure (default: the one the settings name).
    """
    if not examples:
        raise ValueError("no examples to evaluate")
    pairs: list[tuple[Tier, Tier]] = []
    mistakes = []
    for example in examples:
        got = classify(example.request, catalog, stages)
        pairs.append((example.tier, got.tier))
        if got.tier is not example.tier:
            text = " ".join(example.request.prompt_text().split())[:SNIPPET_CHARS]
            mistakes.append(
                {
                    "want": example.tier.value,
                    "got": got.tier.value,
                    "prompt": text,
                    "reasons": list(got.reasons),
                }
            )
    table = _table(pairs)
    labelled = [t for t in Tier if table[t.value]["support"] or any(g is t for _, g in pairs)]
    confusion = {
        want.value: {got.value: sum(1 for p in pairs if p == (want, got)) for got in Tier}
        for want in Tier
    }
    not_vision = sum(
        1
        for e in examples
        if classify(with_image(e.request), catalog, stages).tier is not Tier.VISION
    )
    return {
        "n": len(pairs),
        "accuracy": round(sum(1 for want, got in pairs if want is got) / len(pairs), 4),
        "macro_f1": round(sum(float(table[t.value]["f1"]) for t in labelled) / len(labelled), 4),
        "per_tier": table,
        "confusion": confusion,
        "image_check": {"n": len(examples), "not_vision": not_vision},
        "mistakes": mistakes,
    }
