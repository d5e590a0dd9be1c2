"""Fitting the ``blend`` and ``tiered`` scorers: numpy and scikit-learn, imported only here.

    python -m orchestrator.routing.train.blend --data ../shared/data/routing
    python -m orchestrator.routing.train.blend --check    # exit 0 iff the rebuild is byte-identical

writes ``orchestrator/routing/models/blend.json``. The word-problem model (a
three-outcome logistic regression over the ``problem`` counts, C = 0.03) is fitted
on GSM8K's development half only; the standardizations of its gain and of the
``rules`` logit are taken over all development prompts (MMLU training subjects and
GSM8K's development half, the split in ``split.py``). Development figures: GSM8K
5-fold cross-validation over hash slices (``gain.group_of``); on MMLU the model
fitted on all of GSM8K's development half, which never saw an MMLU prompt. Fitting
is deterministic (L-BFGS from zero, weights rounded): the same data gives the same
bytes, which a test checks.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.core.errors import ConfigError
from orchestrator.evaluation.data import Outcome
from orchestrator.evaluation.metrics import curve, summary
from orchestrator.routing import problem
from orchestrator.routing.blend import ARTIFACT, CLASSES, FORMAT, TIER_WEIGHT, BlendScorer
from orchestrator.routing.rules_scorer import RulesScorer
from orchestrator.routing.scorers import LengthScorer
from orchestrator.routing.tier_model import TierModel
from orchestrator.routing.train import split
from orchestrator.routing.train.gain import (
    FOLDS,
    _sklearn,
    figures_by_part,
    group_of,
    labels,
    shared_outcomes,
)
from orchestrator.routing.train.gain_user import enough_rows

C = 0.03
DIGITS = 6
MODELS = Path(__file__).resolve().parents[1] / "models"


def _round(values: Any) -> list[float]:
    return [round(float(v), DIGITS) for v in values]


def fit_problem(prompts: Sequence[str], y: Sequence[int]) -> dict[str, Any]:
    """The word-problem model's part of the artefact, fitted on ``prompts`` and ``y``."""
    np, logistic, _ = _sklearn()
    x = np.array([problem.vector(problem.counts(p)) for p in prompts], dtype=np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    model = logistic(C=C, max_iter=5000, tol=1e-8).fit((x - mean) / scale, np.asarray(y))
    if tuple(int(c) for c in model.classes_) != (0, 1, 2):
        raise ValueError("training needs prompts where each model beat the other, and ties")
    return {
        "format": FORMAT,
        "classes": list(CLASSES),
        "features": list(problem.NAMES),
        "mean": _round(mean),
        "scale": _round(scale),
        "intercept": _round(model.intercept_),
        "weights": [_round(row) for row in model.coef_],
    }


def _gains(part: dict[str, Any], prompts: Sequence[str]) -> list[float]:
    """The run-time gain (``BlendScorer.gain``) of each prompt under the fitted ``part``."""
    scorer = BlendScorer(
        {**part, "rules_logit": [0.0, 1.0], "problem_gain": [0.0, 1.0], "tier_weight": 0.0},
        "in training",
    )
    return [scorer.gain(p)[0] for p in prompts]


def _mean_scale(values: Sequence[float]) -> list[float]:
    np, _, _ = _sklearn()
    array = np.asarray(values, dtype=np.float64)
    return _round([array.mean(), array.std()])


def artefact_of(outcomes: Sequence[Outcome]) -> tuple[dict[str, Any], list[float], list[float]]:
    """The artefact without its figures, with every row's rules logit and gain."""
    gsm = [o for o in outcomes if o.source == "gsm8k"]
    part = fit_problem([o.prompt for o in gsm], labels(gsm))
    prompts = [o.prompt for o in outcomes]
    rules = RulesScorer()
    rules_z = [rules.logit(p)[0] for p in prompts]
    gains = _gains(part, prompts)
    artefact = {
        **part,
        "rules_logit": _mean_scale(rules_z),
        "problem_gain": _mean_scale(gains),
        "tier_weight": TIER_WEIGHT,
    }
    return artefact, rules_z, gains


def out_of_fold_gains(outcomes: Sequence[Outcome], gains: Sequence[float]) -> list[float]:
    """GSM8K rows: fitted without their hash slice; MMLU rows: ``gains`` (never fitted on)."""
    rows = [i for i, o in enumerate(outcomes) if o.source == "gsm8k"]
    return _refitted_out_of_fold(outcomes, rows, list(gains))


def _refitted_out_of_fold(
    outcomes: Sequence[Outcome], rows: Sequence[int], out: list[float]
) -> list[float]:
    """``out`` with the gain of each of ``rows`` from a model fitted without its fold."""
    np, _, group_kfold = _sklearn()
    groups = [group_of(outcomes[i]) for i in rows]
    for train, held in group_kfold(n_splits=FOLDS).split(np.zeros(len(rows)), groups=groups):
        fitted = [outcomes[rows[i]] for i in train]
        part = fit_problem([o.prompt for o in fitted], labels(fitted))
        values = _gains(part, [outcomes[rows[i]].prompt for i in held])
        for i, value in zip(held, values, strict=True):
            out[rows[i]] = value
    return out


def _tier_bumps(prompts: Sequence[str], tiers: TierModel | None = None) -> list[float]:
    tiers = tiers or TierModel.load()
    fast = [t.value for t in tiers.tiers].index("fast")
    return [0.0 if int(tiers.probabilities(p).argmax()) == fast else TIER_WEIGHT for p in prompts]


def _blend_and_tiered(
    artefact: dict[str, Any],
    rules_z: Sequence[float],
    gains: Sequence[float],
    prompts: Sequence[str],
    tiers: TierModel | None,
) -> tuple[list[float], list[float]]:
    """The ``blend`` and ``tiered`` logits of each prompt under ``artefact``'s scales."""
    (rm, rs), (gm, gs) = artefact["rules_logit"], artefact["problem_gain"]
    blend = [(r - rm) / rs + (g - gm) / gs for r, g in zip(rules_z, gains, strict=True)]
    bumps = _tier_bumps(prompts, tiers)
    return blend, [b + t for b, t in zip(blend, bumps, strict=True)]


def fit_user(outcomes: Sequence[Outcome], tiers: TierModel | None = None) -> dict[str, Any]:
    """The word-problem model and its scales refitted on a user's outcomes (``switchyard
    route train``), with 5-fold cross-validated figures on them beside the shipped
    ``tiered`` scorer's and length's; ``tiers`` gives the prior (the file's tier model)."""
    enough_rows(outcomes, "blend")
    prompts = [o.prompt for o in outcomes]
    try:
        part = fit_problem(prompts, labels(outcomes))
        oof = _refitted_out_of_fold(outcomes, range(len(outcomes)), [0.0] * len(outcomes))
    except ValueError as exc:  # a fold (or all) without one of the three outcomes
        raise ConfigError(f"retraining the blend scorer: {exc}") from exc
    rules = RulesScorer()
    rules_z = [rules.logit(p)[0] for p in prompts]
    artefact = {
        **part,
        "rules_logit": _mean_scale(rules_z),
        "problem_gain": _mean_scale(_gains(part, prompts)),
        "tier_weight": TIER_WEIGHT,
    }
    blend, tiered = _blend_and_tiered(artefact, rules_z, oof, prompts, tiers)
    weak, strong = [o.weak for o in outcomes], [o.strong for o in outcomes]
    scored = {
        "retrained blend (5-fold cv)": blend,
        "retrained tiered (5-fold cv)": tiered,
        "tiered": [BlendScorer.load(tiered=True).score(p).value for p in prompts],
        "length": [LengthScorer().score(p).value for p in prompts],
    }
    artefact["training"] = {
        "data": "user outcomes (switchyard route train)",
        "rows": len(outcomes),
        "C": C,
        "development": {k: summary(curve(v, weak, strong)) for k, v in scored.items()},
        "development_note": "retrained: 5-fold CV over hash slices of the rows (scales over"
        " all of them); tiered and length: as shipped, on the same rows",
    }
    return artefact


def figures(
    outcomes: Sequence[Outcome], artefact: dict[str, Any], rules_z: Sequence[float],
    gains: Sequence[float],
) -> dict[str, Any]:  # fmt: skip
    """APGR and CPT per development set: the new scorers out of fold, the others as shipped."""
    oof = out_of_fold_gains(outcomes, gains)
    prompts = [o.prompt for o in outcomes]
    blend, tiered = _blend_and_tiered(artefact, rules_z, oof, prompts, None)
    scored = {"blend": blend, "tiered": tiered, "problem model alone": oof}
    return figures_by_part(outcomes, scored)


def build(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The shipped artefact: the fitted model, its standardizations and its figures."""
    artefact, rules_z, gains = artefact_of(outcomes)
    gsm = sum(1 for o in outcomes if o.source == "gsm8k")
    artefact["training"] = {
        "data": "RouteLLM GSM8K development half (fitted); MMLU training subjects (scales only)",
        "split": split.describe(),
        "fitted_rows": gsm,
        "scaled_rows": len(outcomes),
        "C": C,
        "development": figures(outcomes, artefact, rules_z, gains),
        "development_note": "blend, tiered, problem model: GSM8K 5-fold CV over hash slices;"
        " MMLU scored by the model fitted on GSM8K only. rules was tuned and learned fitted"
        " on these prompts (in sample)",
    }
    return artefact


def render(artefact: dict[str, Any]) -> str:
    return json.dumps(artefact, indent=1) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.routing.train.blend")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/routing"))
    parser.add_argument("--out", type=Path, default=MODELS / ARTIFACT)
    parser.add_argument("--check", action="store_true", help="rebuild and compare, write nothing")
    args = parser.parse_args(argv)
    text = render(build(shared_outcomes(args.data)))
    if args.check:
        same = args.out.read_text(encoding="utf-8") == text
        print("identical" if same else f"differs from {args.out}")
        return 0 if same else 1
    args.out.write_text(text, encoding="utf-8")
    print(json.dumps(json.loads(text)["training"]["development"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
