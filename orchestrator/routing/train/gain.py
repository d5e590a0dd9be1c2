"""Fitting the ``gain`` scorer: numpy and scikit-learn, imported only here.

    python -m orchestrator.routing.train.gain --data ../shared/data/routing

writes ``orchestrator/routing/models/gain.json`` from the MMLU training subjects and
the GSM8K development half (the split in ``split.py``), with grouped
cross-validation figures beside the ``rules``, ``learned`` and ``length`` scorers.
Fitting is deterministic (L-BFGS from zero, no random step, OpenBLAS's kernels pinned
by ``tier_fit.run_pinned``): the same data gives the same file on any x86-64 machine,
which a test checks (``--check``: rebuild, compare, write nothing). ``fit_gain`` also
retrains the scorer on a user's own outcomes (``switchyard route train --data FILE.jsonl``
with scores).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from orchestrator.core.errors import ConfigError
from orchestrator.evaluation.data import Outcome, read_excludes, read_outcomes
from orchestrator.evaluation.metrics import curve, summary
from orchestrator.routing import encoder
from orchestrator.routing.gain import (
    ARTIFACT,
    CLASSES,
    COUNTS,
    FORMAT,
    GainScorer,
    count_vector,
    encoder_settings,
)
from orchestrator.routing.scorers import SCORERS
from orchestrator.routing.train import split
from orchestrator.routing.train.tier_fit import check_rebuilt, run_pinned

C = 0.01
FOLDS = 5
GSM8K_WEIGHT = 2.5
DIGITS = 6
MODELS = Path(__file__).resolve().parents[1] / "models"


def _sklearn() -> tuple[Any, Any, Any]:
    try:
        import numpy as np
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GroupKFold
    except ImportError as exc:
        raise ConfigError("training needs: pip install 'switchyard-llm[learned]'") from exc
    return np, LogisticRegression, GroupKFold


def matrix(prompts: Sequence[str]) -> Any:
    """Counts then embedding, one row a prompt (float64)."""
    np, _, _ = _sklearn()
    counts = [count_vector(p)[0] for p in prompts]
    left = np.array([[row[n] for n in COUNTS] for row in counts], dtype=np.float64)
    return np.hstack([left, encoder.embed_many(list(prompts)).astype(np.float64)])


def labels(outcomes: Sequence[Outcome]) -> list[int]:
    """0 weak better, 1 tie, 2 strong better (scores compared; 0/1 or any number)."""
    return [1 if o.strong == o.weak else 2 if o.strong > o.weak else 0 for o in outcomes]


def _round(values: Any) -> Any:
    return [round(float(v), DIGITS) for v in values]


def fit_gain(x: Any, y: Sequence[int], weights: Sequence[float] | None = None) -> dict[str, Any]:
    """The artefact fitted on rows ``x`` (``matrix``) and labels ``y`` (``labels``)."""
    np, logistic, _ = _sklearn()
    if len(set(y)) < len(CLASSES):
        raise ConfigError("training needs prompts where each model beat the other, and ties")
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    model = logistic(C=C, max_iter=5000, tol=1e-8)
    model.fit((x - mean) / scale, np.asarray(y), sample_weight=weights)
    k = len(COUNTS)
    weights_all = model.coef_ / scale  # the embedding's standardization folded into its weights
    intercept = model.intercept_ - weights_all[:, k:] @ mean[k:]
    return {
        "format": FORMAT,
        "encoder": encoder_settings(),
        "classes": list(CLASSES),
        "counts": list(COUNTS),
        "mean": _round(mean[:k]),
        "scale": _round(scale[:k]),
        "intercept": _round(intercept),
        "count_weights": [_round(row) for row in model.coef_[:, :k]],
        "embedding_weights": [_round(row) for row in weights_all[:, k:]],
    }


def scores_of(artefact: dict[str, Any], x: Any) -> Any:
    """``GainScorer`` values for the rows of ``x``, vectorised (same numbers as ``score``)."""
    np, _, _ = _sklearn()
    scorer = GainScorer(artefact, "in training")
    k = len(COUNTS)
    z = (x[:, :k] - scorer.mean) / scorer.scale
    logits = scorer.intercept + z @ scorer.w_counts.T + x[:, k:] @ scorer.w_embedding.T
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = exp / exp.sum(axis=1, keepdims=True)
    return np.round((p[:, 2] - p[:, 0] + 1.0) / 2.0, 4)


def group_of(outcome: Outcome) -> str:
    """Cross-validation groups: an MMLU subject, or one of five hash slices of the rest."""
    if outcome.source.startswith("mmlu_"):
        return outcome.source
    digest = hashlib.sha256(outcome.prompt.encode("utf-8")).hexdigest()
    return f"{outcome.source}-{int(digest[1], 16) % FOLDS}"


def cross_validate(outcomes: Sequence[Outcome], x: Any, weights: Any) -> list[float]:
    """Out-of-fold scores, folds grouped by ``group_of`` (no subject both sides)."""
    np, _, group_kfold = _sklearn()
    y = np.asarray(labels(outcomes))
    groups = [group_of(o) for o in outcomes]
    out = np.zeros(len(outcomes))
    for train, held in group_kfold(n_splits=FOLDS).split(x, groups=groups):
        artefact = fit_gain(x[train], list(y[train]), list(weights[train]))
        out[held] = scores_of(artefact, x[held])
    return [float(v) for v in out]


def shared_outcomes(data: Path) -> list[Outcome]:
    """The fitted prompts: MMLU training subjects (not ``NOT_FITTED``) and GSM8K's development half.

    Sources are ``mmlu_<subject>`` and ``gsm8k``; contaminated prompts are dropped first.
    """
    bad = read_excludes([data / "mmlu_contaminated_prompts.jsonl"])
    bad |= read_excludes([data / "gsm8k_contaminated_prompts.jsonl"])
    mmlu = read_outcomes([data / "mmlu"], "routellm-csv")
    gsm8k = read_outcomes([data / "gsm8k_responses.csv"], "routellm-csv")
    kept = [
        o
        for o in mmlu
        if not split.is_eval_subject(split.subject_of(o.source))
        and split.subject_of(o.source) not in split.NOT_FITTED
    ]
    kept += [replace(o, source="gsm8k") for o in gsm8k if split.is_gsm8k_development(o.prompt)]
    return [o for o in kept if o.prompt not in bad]


def figures_by_part(
    outcomes: Sequence[Outcome], scored: Mapping[str, Sequence[float]]
) -> dict[str, Any]:
    """APGR and CPT per data set (MMLU, GSM8K): of each named list of scores (one per
    outcome), then of the ``rules``, ``learned`` and ``length`` scorers as shipped."""
    out: dict[str, Any] = {}
    for part in ("mmlu", "gsm8k"):
        rows = [i for i, o in enumerate(outcomes) if o.source.startswith(part)]
        weak = [outcomes[i].weak for i in rows]
        strong = [outcomes[i].strong for i in rows]
        found: dict[str, Any] = {"n": len(rows)}
        for name, values in scored.items():
            found[name] = summary(curve([values[i] for i in rows], weak, strong))
        for name in ("rules", "learned", "length"):
            scorer = SCORERS[name]()
            baseline = [scorer.score(outcomes[i].prompt).value for i in rows]
            found[name] = summary(curve(baseline, weak, strong))
        out[part] = found
    return out


def figures(outcomes: Sequence[Outcome], scores: Sequence[float]) -> dict[str, Any]:
    """APGR and CPT of the out-of-fold scores and of the other scorers, per data set."""
    return figures_by_part(outcomes, {"gain (grouped cv)": scores})


def row_weights(outcomes: Sequence[Outcome]) -> list[float]:
    """1 for an MMLU row, ``GSM8K_WEIGHT`` for a GSM8K row (its 630 rows against 10,000)."""
    return [GSM8K_WEIGHT if o.source == "gsm8k" else 1.0 for o in outcomes]


def build(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The shipped artefact: fitted on every row, with its cross-validation figures."""
    np, _, _ = _sklearn()
    x = matrix([o.prompt for o in outcomes])
    weights = np.array(row_weights(outcomes))
    artefact = fit_gain(x, labels(outcomes), list(weights))
    artefact["training"] = {
        "data": "RouteLLM MMLU training subjects and GSM8K development half (split.py)",
        "split": split.describe(),
        "rows": len(outcomes),
        "C": C,
        "gsm8k_weight": GSM8K_WEIGHT,
        "development": figures(outcomes, cross_validate(outcomes, x, weights)),
        "development_note": "gain: 5-fold CV grouped by MMLU subject (GSM8K in 5 hash slices);"
        " rules and learned were tuned or fitted on these prompts (in sample)",
    }
    return artefact


def main(argv: Sequence[str] | None = None) -> int:
    run_pinned("orchestrator.routing.train.gain", argv)
    parser = argparse.ArgumentParser(prog="python -m orchestrator.routing.train.gain")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/routing"))
    parser.add_argument("--out", type=Path, default=MODELS / ARTIFACT)
    parser.add_argument("--check", action="store_true", help="rebuild and compare, write nothing")
    args = parser.parse_args(argv)
    artefact = build(shared_outcomes(args.data))
    text = json.dumps(artefact, indent=1) + "\n"
    if args.check:
        return check_rebuilt(args.out, text)
    args.out.write_text(text, encoding="utf-8")
    print(json.dumps(artefact["training"]["development"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
