"""What ``switchyard route train`` and ``switchyard eval tiers`` do; imported when they run.

``route train`` fits a tier model on a user's labelled prompts (a JSONL file, the
cluster's own jobs, or both), by default together with the shipped corpus, and
writes one model file; ``SWITCHYARD_ROUTER_MODEL_PATH`` then loads it in the API
and the workers. ``eval tiers`` measures the configured classifier, or compares
several (``--model FILE``, ``--classifier rules``) on the same labelled file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import track
from rich.table import Table

from orchestrator.core.catalog import load_catalog
from orchestrator.core.config import get_settings
from orchestrator.core.errors import ConfigError
from orchestrator.evaluation.data import read_tier_examples
from orchestrator.evaluation.tiers import evaluate_tiers
from orchestrator.routing.classify import (
    ModelStage,
    Stage,
    explicit_override,
    modality,
    stages_of,
)
from orchestrator.routing.tier_model import TierModel

progress_console = Console(stderr=True)


def _progress(items: Iterable[Any], what: str) -> Iterable[Any]:
    listed = list(items)
    return track(listed, description=f"{what} ({len(listed)})", console=progress_console)


def _read_rows(data: Sequence[Path], from_jobs: bool, tenant: str | None, corpus: bool) -> Any:
    from orchestrator.routing.train.tier_data import (
        CORPUS,
        Read,
        dedupe,
        file_digests,
        read_labelled,
    )

    paths = [*data, *([CORPUS] if corpus else [])]
    found = read_labelled(paths) if paths else Read()
    files = file_digests(paths)
    if from_jobs:
        from orchestrator.routing.train.from_jobs import read_jobs
        from orchestrator.store.db import get_engine

        jobs = read_jobs(get_engine(get_settings().effective_database_url), tenant=tenant)
        found.rows = dedupe([*jobs.rows, *found.rows], found.skipped)
        found.skipped.update(jobs.skipped)
        files.append({"file": "jobs", "rows": len(jobs.rows), "tenant": tenant})
    if not found.rows:
        raise ConfigError("no labelled prompts: give --data FILE and/or --from-jobs")
    return found, files


def run_train(
    console: Console,
    data: Sequence[Path],
    out: Path,
    *,
    from_jobs: bool,
    tenant: str | None,
    corpus: bool,
    seed: int,
    as_json: bool,
) -> None:
    """Read, fit (held-out tenth aside), write ``out``, and print what was learned."""
    from orchestrator.routing.train.tiers import build_from, dumps

    found, files = _read_rows(data, from_jobs, tenant, corpus)
    artefact, _ = build_from(found, files, seed=seed, progress=_progress)
    scored, blended = _scorer_parts(data, artefact, out)
    if scored is not None:  # rows with weak_score/strong_score: the gain and blend scorers too
        artefact["gain"], artefact["blend"] = scored, blended
    out.write_text(dumps(artefact), encoding="utf-8")
    training = artefact["training"]
    summary = {
        "model": str(out),
        "rows": training["rows"],
        "skipped": training["skipped"],
        "held_out": training.get("held_out"),
        "gain": scored["training"] if scored else None,
        "blend": blended["training"] if blended else None,
    }
    if as_json:
        print(json.dumps(summary, indent=1))
        return
    console.print(f"wrote [bold]{out}[/]: trained on {training['rows']}")
    if summary["held_out"]:
        held = summary["held_out"]
        console.print(f"  held out {held['n']}: accuracy {held['accuracy']}, F1 {held['macro_f1']}")
    if training["skipped"]:
        console.print(f"  skipped: {training['skipped']}")
    if scored and blended:
        console.print(f"  gain scorer retrained: {scored['training']['development']}")
        console.print(f"  blend/tiered retrained: {blended['training']['development']}")
    console.print(f"  use it: SWITCHYARD_ROUTER_MODEL_PATH={out.resolve()}")


def _scorer_parts(
    data: Sequence[Path], tier_artefact: dict[str, Any], out: Path
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The gain scorer and the blend scorer's word-problem model (the default ``tiered``
    scorer's, with the tier model just fitted as its prior) fitted on the rows of
    ``data`` that carry both scores, if any do."""
    from orchestrator.routing.train import blend
    from orchestrator.routing.train.gain_user import fit_user, read_scored

    scored = read_scored(data)
    if not scored:
        return None, None
    return fit_user(scored), blend.fit_user(scored, TierModel(tier_artefact, str(out)))


def _pipelines(models: Sequence[Path], classifiers: Sequence[str]) -> dict[str, list[Stage]]:
    found: dict[str, list[Stage]] = {}
    for path in models:
        found[str(path)] = [explicit_override, modality, ModelStage(TierModel.load(path))]
    for name in classifiers:
        found[name] = stages_of(name)
    if not found:
        found[get_settings().router_tier_classifier] = stages_of(
            get_settings().router_tier_classifier
        )
    return found


def run_eval_tiers(
    console: Console,
    data: Sequence[Path],
    fmt: str,
    as_json: bool,
    models: Sequence[Path] = (),
    classifiers: Sequence[str] = (),
) -> None:
    """Classify labelled requests with each classifier; the first one's figures lead."""
    examples = read_tier_examples(data, fmt)
    catalog = load_catalog(get_settings())
    results = {
        name: evaluate_tiers(examples, catalog, stages)
        for name, stages in _pipelines(models, classifiers).items()
    }
    main_name, result = next(iter(results.items()))
    result = {"classifier": main_name, **result}
    if len(results) > 1:
        result["compared"] = {
            name: {k: found[k] for k in ("accuracy", "macro_f1", "per_tier")}
            for name, found in results.items()
        }
    if as_json:
        print(json.dumps(result, indent=1))
        return
    _print_result(console, main_name, result)
    for name, found in list(results.items())[1:]:
        console.print(f"{name}: accuracy {found['accuracy']} macro-F1 {found['macro_f1']}")


def _print_result(console: Console, name: str, result: dict[str, Any]) -> None:
    console.print(
        f"{name}: n={result['n']} accuracy {result['accuracy']} macro-F1 {result['macro_f1']}"
    )
    table = Table(title="per tier")
    for column in ("tier", "precision", "recall", "f1", "support"):
        table.add_column(column)
    for tier, row in result["per_tier"].items():
        table.add_row(tier, *(str(row[k]) for k in ("precision", "recall", "f1", "support")))
    console.print(table)
    console.print(f"confusion (want -> got): {result['confusion']}")
    console.print(f"image jobs not sent to vision: {result['image_check']['not_vision']}")
