"""``python -m orchestrator.routing.train``: fit, record the split, calibrate, write artifacts."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.evaluation.data import Outcome, read_excludes, read_outcomes
from orchestrator.evaluation.metrics import curve, summary
from orchestrator.routing import calibration
from orchestrator.routing.calibration import Calibration
from orchestrator.routing.learned import LearnedScorer
from orchestrator.routing.scorer_base import HELD_IN_FILE, Scorer, prompt_key
from orchestrator.routing.scorers import SCORERS
from orchestrator.routing.train import split
from orchestrator.routing.train.fit import fit_artifact, grouped_cv

MODELS = Path(__file__).resolve().parents[1] / "models"


def _load(data: Path) -> tuple[list[Outcome], list[Outcome]]:
    """MMLU and GSM8K outcomes, contaminated prompts removed."""
    mmlu_bad = read_excludes([data / "mmlu_contaminated_prompts.jsonl"])
    gsm_bad = read_excludes([data / "gsm8k_contaminated_prompts.jsonl"])
    mmlu = [o for o in read_outcomes([data / "mmlu"], "routellm-csv") if o.prompt not in mmlu_bad]
    gsm8k = read_outcomes([data / "gsm8k_responses.csv"], "routellm-csv")
    return mmlu, [o for o in gsm8k if o.prompt not in gsm_bad]


def _dev_figures(outcomes: Sequence[Outcome], scorers: Sequence[Scorer]) -> dict[str, Any]:
    weak, strong = [o.weak for o in outcomes], [o.strong for o in outcomes]
    return {
        s.name: summary(curve([s.score(o.prompt).value for o in outcomes], weak, strong))
        for s in scorers
    }


def _calibrations(prompts: Sequence[str], learned: LearnedScorer) -> dict[str, Any]:
    tables = []
    for name, factory in SCORERS.items():
        scorer = learned if name == "learned" else factory()
        scores = [scorer.score(p).value for p in prompts]
        source = f"MMLU training-subject prompts (n={len(prompts)})"
        tables.append(Calibration.from_scores(name, scores, source).to_json())
    return {"calibrations": tables}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.routing.train")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/routing"))
    parser.add_argument("--out", type=Path, default=MODELS)
    args = parser.parse_args(argv)
    mmlu, gsm8k = _load(args.data)
    train = [o for o in mmlu if not split.is_eval_subject(split.subject_of(o.source))]
    fitted = [o for o in train if split.subject_of(o.source) not in split.NOT_FITTED]
    gsm_dev = [o for o in gsm8k if split.is_gsm8k_development(o.prompt)]
    artifact = fit_artifact(fitted)
    learned = LearnedScorer(artifact)
    baselines = [SCORERS[n]() for n in ("rules", "length", "random")]
    artifact["split"] = split.describe()
    artifact["training"] = {
        "fitted_prompts": len(fitted),
        "train_subjects": sorted({split.subject_of(o.source) for o in train}),
        "eval_subjects": sorted(
            {split.subject_of(o.source) for o in mmlu} - {split.subject_of(o.source) for o in train}
        ),
        "development": {
            "mmlu_train_grouped_cv": grouped_cv(fitted, [o.source for o in fitted]),
            "mmlu_train_in_sample": _dev_figures(fitted, [learned, *baselines]),
            "gsm8k_development_half": _dev_figures(gsm_dev, [learned, *baselines]),
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "learned.json").write_text(json.dumps(artifact, indent=1) + "\n", "utf-8")
    keys = sorted({prompt_key(o.prompt) for o in [*train, *gsm_dev]})
    header = "# sha256(prompt)[:12] of every prompt used to fit or tune a shipped scorer\n"
    (args.out / HELD_IN_FILE).write_text(header + "\n".join(keys) + "\n", "utf-8")
    tables = _calibrations([o.prompt for o in train], learned)
    (args.out / calibration.BUILTIN).write_text(json.dumps(tables, indent=1) + "\n", "utf-8")
    print(json.dumps(artifact["training"]["development"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
