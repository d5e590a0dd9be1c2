"""Retraining the ``gain`` scorer on a user's own outcomes (``switchyard route train``).

Rows of the user's JSONL that carry ``weak_score`` and ``strong_score`` (0/1
correctness or any number where higher is better) beside ``prompt`` are
outcomes; rows without both are tier examples only and are skipped here. The
scorer is fitted on the user's rows alone, and its 5-fold cross-validation
figures (folds by prompt hash) are recorded beside the shipped scorer's and the
length baseline's on the same rows, so the user sees whether retraining paid.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.core.errors import ConfigError
from orchestrator.evaluation.data import Outcome, files
from orchestrator.evaluation.metrics import curve, summary
from orchestrator.routing.scorers import SCORERS
from orchestrator.routing.train import gain as training

MIN_ROWS = 100


def enough_rows(outcomes: Sequence[Outcome], scorer: str) -> None:
    """Refuse to retrain ``scorer`` on fewer than ``MIN_ROWS`` scored rows."""
    if len(outcomes) < MIN_ROWS:
        raise ConfigError(
            f"retraining the {scorer} scorer needs at least {MIN_ROWS} rows with weak_score"
            f" and strong_score; found {len(outcomes)}"
        )


def _score(row: dict[str, Any], key: str, where: str) -> float:
    value = row[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: '{key}' must be a number (or true/false), not {value!r}")
    return float(value)


def read_scored(paths: Sequence[Path]) -> list[Outcome]:
    """The rows of JSONL ``paths`` with a prompt and both scores (others are skipped)."""
    out = []
    for path in paths:
        for file in files(path, ".jsonl"):
            for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                where = f"{file}:{number}"
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    raise ConfigError(f"{where}: not JSON ({exc})") from exc
                if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
                    continue
                if "weak_score" in row and "strong_score" in row:
                    weak = _score(row, "weak_score", where)
                    strong = _score(row, "strong_score", where)
                    out.append(Outcome(row["prompt"], weak, strong, "user"))
    return out


def fit_user(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """A gain artefact fitted on ``outcomes``, with cross-validation figures on them."""
    enough_rows(outcomes, "gain")
    np = training._sklearn()[0]
    x = training.matrix([o.prompt for o in outcomes])
    y = training.labels(outcomes)
    weights = np.ones(len(outcomes))
    artefact = training.fit_gain(x, y)
    held = training.cross_validate(outcomes, x, weights)
    weak, strong = [o.weak for o in outcomes], [o.strong for o in outcomes]
    figures = {"retrained gain (5-fold cv)": summary(curve(held, weak, strong))}
    for name in ("gain", "length"):
        scorer = SCORERS[name]()
        figures[name] = summary(
            curve([scorer.score(o.prompt).value for o in outcomes], weak, strong)
        )
    artefact["training"] = {
        "data": "user outcomes (switchyard route train)",
        "rows": len(outcomes),
        "C": training.C,
        "development": figures,
    }
    return artefact
