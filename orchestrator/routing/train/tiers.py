"""``python -m orchestrator.routing.train.tiers``: fit the tier classifier, write its artefact.

    python -m orchestrator.routing.train.tiers                  # corpus/ -> models/tiers.json
    python -m orchestrator.routing.train.tiers --check          # rebuild, compare, write nothing

Reads every ``corpus/*.jsonl`` (``tier_data``), keeps the held-out tenth aside,
fits on the rest (``tier_fit``), and records in the artefact the corpus files and
their sha256, the split, the seed, and the model's figures on the held-out rows.
The same files and seed give the same bytes (a test rebuilds the shipped artefact),
on any x86-64 machine: the command runs with OpenBLAS's kernels pinned
(``tier_fit.run_pinned``).
Prints the figures; with ``--dev FILE`` (MT-Bench questions) also those on a
development set, beside the rules classifier's.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.core.schemas import JobRequest
from orchestrator.evaluation.data import TierExample, read_tier_examples
from orchestrator.routing.tier_model import ARTIFACT, TierModel
from orchestrator.routing.train.tier_data import (
    CORPUS,
    HELD_OUT_MODULUS,
    Labelled,
    Read,
    file_digests,
    is_held_out,
    read_labelled,
)
from orchestrator.routing.train.tier_fit import (
    SEED,
    Progress,
    _quiet,
    check_rebuilt,
    fit,
    run_pinned,
    scores,
)

MIN_ROWS_TO_HOLD_OUT = 100
MODELS = Path(__file__).resolve().parents[1] / "models"
SPLIT = f"held out iff int(sha256(prompt)[:8], 16) % {HELD_OUT_MODULUS} == 0; the rest trains"


def build(
    paths: Sequence[Path], *, seed: int = SEED, hold_out: bool = True, progress: Progress = _quiet
) -> tuple[dict[str, Any], list[Labelled]]:
    """The artefact fitted on ``paths`` (less the held-out rows), and the held-out rows."""
    found = read_labelled(paths)
    return build_from(found, file_digests(paths), seed=seed, hold_out=hold_out, progress=progress)


def build_from(
    found: Read,
    files: list[dict[str, Any]],
    *,
    seed: int = SEED,
    hold_out: bool = True,
    progress: Progress = _quiet,
) -> tuple[dict[str, Any], list[Labelled]]:
    """``build`` for rows already read (``files`` names where they came from).

    Fewer than ``MIN_ROWS_TO_HOLD_OUT`` rows all train (a tenth of a few is no figure).
    """
    hold_out = hold_out and len(found.rows) >= MIN_ROWS_TO_HOLD_OUT
    held = [r for r in found.rows if hold_out and is_held_out(r.prompt)]
    train = [r for r in found.rows if not (hold_out and is_held_out(r.prompt))]
    artefact = fit(train, seed=seed, progress=progress)
    artefact["training"].update(
        {
            "files": files,
            "split": SPLIT if hold_out else "none: every row trains",
            "skipped": dict(sorted(found.skipped.items())),
        }
    )
    if held:
        model = TierModel(artefact, "(being built)")
        artefact["training"]["held_out"] = scores(model, held)
    return artefact, held


def example(row: Labelled) -> TierExample:
    return TierExample(JobRequest(prompt=row.prompt), row.tier, row.source)


def dumps(artefact: dict[str, Any]) -> str:
    """The artefact's bytes on disk."""
    return json.dumps(artefact, indent=1, ensure_ascii=False) + "\n"


def compare(model: TierModel, examples: Sequence[TierExample]) -> dict[str, Any]:
    """Accuracy, macro-F1 and confusion of ``model`` and of the rules on labelled examples."""
    from orchestrator.core.catalog import load_catalog
    from orchestrator.core.config import Settings
    from orchestrator.evaluation.tiers import evaluate_tiers
    from orchestrator.routing.classify import (
        CLASSIFIERS,
        ModelStage,
        Stage,
        explicit_override,
        modality,
    )

    catalog = load_catalog(Settings())
    stages: dict[str, list[Stage]] = {
        "model": [explicit_override, modality, ModelStage(model)],
        "rules": CLASSIFIERS["rules"],
    }
    out = {}
    for name, pipeline in stages.items():
        found = evaluate_tiers(examples, catalog, stages=pipeline)
        out[name] = {k: found[k] for k in ("n", "accuracy", "macro_f1", "confusion")}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    run_pinned("orchestrator.routing.train.tiers", argv)
    parser = argparse.ArgumentParser(prog="python -m orchestrator.routing.train.tiers")
    parser.add_argument("--corpus", type=Path, action="append", help=f"default: {CORPUS}")
    parser.add_argument("--out", type=Path, default=MODELS / ARTIFACT)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--dev", type=Path, help="MT-Bench questions (development figures)")
    parser.add_argument("--check", action="store_true", help="compare with --out, write nothing")
    args = parser.parse_args(argv)
    artefact, held = build(args.corpus or [CORPUS], seed=args.seed)
    text = dumps(artefact)
    if args.check:
        return check_rebuilt(args.out, text)
    args.out.write_text(text, encoding="utf-8")
    model = TierModel(artefact, str(args.out))
    report: dict[str, Any] = {"held_out": compare(model, [example(r) for r in held])}
    if args.dev is not None:
        report["mt_bench"] = compare(model, read_tier_examples([args.dev], "mt-bench"))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
