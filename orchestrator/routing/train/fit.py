"""Fitting the ``learned`` scorer: numpy and scikit-learn, imported only here.

Two L2-regularised logistic regressions over the standardized ``complexity``
features: one for "the weak model answered correctly", one for the strong
model. Cross-validation is grouped by subject (5 folds), so the development
figures, like the evaluation split, never score a subject the model was fitted on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestrator.core.errors import ConfigError
from orchestrator.evaluation.data import Outcome
from orchestrator.evaluation.metrics import curve, summary
from orchestrator.routing.complexity import FEATURES, Complexity
from orchestrator.routing.learned import LearnedScorer

C = 1.0
FOLDS = 5


def _imports() -> tuple[Any, Any, Any]:
    try:
        import numpy as np
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GroupKFold
    except ImportError as exc:
        raise ConfigError("training needs: pip install 'switchyard-llm[learned]'") from exc
    return np, LogisticRegression, GroupKFold


def _matrix(outcomes: Sequence[Outcome]) -> Any:
    np, _, _ = _imports()
    rows = [Complexity.of(o.prompt).vector() for o in outcomes]
    return np.array([[row[f] for f in FEATURES] for row in rows], dtype=float)


def fit_artifact(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The artifact (features, standardization, both models) fitted on ``outcomes``."""
    np, logistic, _ = _imports()
    x = _matrix(outcomes)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    models = {}
    for key, labels in (
        ("weak_correct", [o.weak >= 0.5 for o in outcomes]),
        ("strong_correct", [o.strong >= 0.5 for o in outcomes]),
    ):
        model = logistic(C=C, max_iter=1000).fit(z, np.array(labels, dtype=int))
        coef = {f: round(float(w), 6) for f, w in zip(FEATURES, model.coef_[0], strict=True)}
        models[key] = {"intercept": round(float(model.intercept_[0]), 6), "coef": coef}
    return {
        "format": 1,
        "features": list(FEATURES),
        "mean": {f: round(float(m), 6) for f, m in zip(FEATURES, mean, strict=True)},
        "scale": {f: round(float(s), 6) for f, s in zip(FEATURES, scale, strict=True)},
        **models,
    }


def grouped_cv(outcomes: Sequence[Outcome], groups: Sequence[str]) -> dict[str, Any]:
    """Out-of-fold APGR of the learned scorer, pooled over folds split by ``groups``."""
    np, _, group_kfold = _imports()
    scores = [0.0] * len(outcomes)
    indices = np.arange(len(outcomes))
    for train, held in group_kfold(n_splits=FOLDS).split(indices, groups=groups):
        scorer = LearnedScorer(fit_artifact([outcomes[i] for i in train]))
        for i in held:
            scores[i] = scorer.score(outcomes[i].prompt).value
    found = curve(scores, [o.weak for o in outcomes], [o.strong for o in outcomes])
    return {"folds": FOLDS, "grouped_by": "subject", "n": len(outcomes), **summary(found)}
