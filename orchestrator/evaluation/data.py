"""Evaluation inputs: per-prompt outcomes of a weak and a strong model, and tier labels.

Router data (``switchyard eval router``), one record per prompt:

    jsonl          {"prompt": "...", "weak_score": 0, "strong_score": 1}
                   scores are 0/1 correctness or any number where higher is better
    routellm-csv   RouteLLM's layout: a ``prompt`` column and one column per model
                   (True/False or numbers); ``strong``/``weak`` name the two columns

Tier data (``switchyard eval tiers``):

    jsonl          {"prompt": "..." | "messages": [...], "tier": "code"}
    mt-bench       MT-Bench's question file: first turn, category mapped to a tier
                   (coding -> code, math and reasoning -> reasoning, others -> fast)

Prompts alone (``switchyard route calibrate --data``): any JSONL whose lines have
``prompt``, ``messages`` (the last user turn is read) or ``turns`` (the first),
or a routellm-csv file.

A path may be a directory: every ``*.csv`` (routellm-csv) or ``*.jsonl`` file in
it, in name order. Exclusion files are JSONL with ``eval_prompt`` (RouteLLM's
contaminated-prompt lists) or ``prompt``.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.core.errors import ConfigError
from orchestrator.core.schemas import JobRequest
from orchestrator.core.tiers import Tier

ROUTELLM_STRONG = "gpt-4-1106-preview"
ROUTELLM_WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
MT_BENCH_TIERS = {"coding": Tier.CODE, "math": Tier.REASONING, "reasoning": Tier.REASONING}
ROUTER_FORMATS = ("jsonl", "routellm-csv")
TIER_FORMATS = ("jsonl", "mt-bench")


@dataclass(frozen=True)
class Outcome:
    """How well the weak and the strong model did on one prompt (higher is better)."""

    prompt: str
    weak: float
    strong: float
    source: str


@dataclass(frozen=True)
class TierExample:
    """A request and the tier a person says it belongs to."""

    request: JobRequest
    tier: Tier
    source: str


def files(path: Path, suffix: str) -> list[Path]:
    """``path`` itself, or the files ending in ``suffix`` inside it (sorted)."""
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.name.endswith(suffix))
        if not found:
            raise ConfigError(f"no *{suffix} files in {path}")
        return found
    if not path.is_file():
        raise ConfigError(f"no such file: {path}")
    return [path]


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except ValueError as exc:
                    raise ConfigError(f"{path}:{number}: not JSON ({exc})") from exc


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return float(value.strip().lower() == "true")
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {value!r} is not a score") from exc


def read_excludes(paths: Sequence[Path]) -> frozenset[str]:
    """Prompts to drop before evaluating (``eval_prompt`` or ``prompt`` of each line)."""
    dropped: set[str] = set()
    for path in paths:
        for number, row in _json_lines(path):
            text = row.get("eval_prompt", row.get("prompt"))
            if not isinstance(text, str):
                raise ConfigError(f"{path}:{number}: needs 'eval_prompt' or 'prompt'")
            dropped.add(text)
    return frozenset(dropped)


def _outcomes_jsonl(path: Path) -> Iterator[Outcome]:
    for number, row in _json_lines(path):
        where = f"{path}:{number}"
        if not isinstance(row.get("prompt"), str):
            raise ConfigError(f"{where}: needs a 'prompt' string")
        weak = _number(row.get("weak_score"), f"{where} weak_score")
        strong = _number(row.get("strong_score"), f"{where} strong_score")
        yield Outcome(row["prompt"], weak, strong, path.stem)


def _outcomes_csv(path: Path, strong: str, weak: str) -> Iterator[Outcome]:
    csv.field_size_limit(sys.maxsize)
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"prompt", strong, weak} - set(reader.fieldnames or ())
        if missing:
            raise ConfigError(f"{path}: missing column(s) {sorted(missing)}")
        for number, row in enumerate(reader, start=2):
            where = f"{path}:{number}"
            yield Outcome(
                row["prompt"],
                _number(row[weak], f"{where} {weak}"),
                _number(row[strong], f"{where} {strong}"),
                path.stem,
            )


def read_outcomes(
    paths: Sequence[Path],
    fmt: str = "jsonl",
    *,
    strong: str = ROUTELLM_STRONG,
    weak: str = ROUTELLM_WEAK,
) -> list[Outcome]:
    """Every outcome in ``paths`` (files or directories) in the given format."""
    if fmt not in ROUTER_FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; expected one of {ROUTER_FORMATS}")
    out: list[Outcome] = []
    for path in paths:
        if fmt == "jsonl":
            for file in files(path, ".jsonl"):
                out.extend(_outcomes_jsonl(file))
        else:
            for file in files(path, ".csv"):
                out.extend(_outcomes_csv(file, strong, weak))
    return out


def _tier_example(row: dict[str, Any], fmt: str, where: str) -> TierExample:
    if fmt == "mt-bench":
        turns, category = row.get("turns"), row.get("category")
        if not isinstance(turns, list) or not turns or not isinstance(category, str):
            raise ConfigError(f"{where}: MT-Bench rows need 'turns' and 'category'")
        tier = MT_BENCH_TIERS.get(category, Tier.FAST)
        return TierExample(JobRequest(prompt=turns[0]), tier, category)
    try:
        tier = Tier(str(row.get("tier")))
        fields = {k: row[k] for k in ("prompt", "messages") if k in row}
        return TierExample(JobRequest.model_validate(fields), tier, str(row.get("source", "")))
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def read_tier_examples(paths: Sequence[Path], fmt: str = "jsonl") -> list[TierExample]:
    """Every labelled request in ``paths`` (JSONL files or directories of them)."""
    if fmt not in TIER_FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; expected one of {TIER_FORMATS}")
    out: list[TierExample] = []
    for path in paths:
        for file in files(path, ".jsonl"):
            out.extend(_tier_example(row, fmt, f"{file}:{n}") for n, row in _json_lines(file))
    return out


def _prompt_of(row: dict[str, Any], where: str) -> str:
    if isinstance(row.get("prompt"), str):
        return str(row["prompt"])
    if isinstance(row.get("turns"), list) and row["turns"]:
        return str(row["turns"][0])
    if isinstance(row.get("messages"), list):
        users = [m for m in row["messages"] if isinstance(m, dict) and m.get("role") == "user"]
        if users:
            request = JobRequest.model_validate({"messages": users[-1:]})
            return request.prompt_text()
    raise ConfigError(f"{where}: needs 'prompt', 'messages' or 'turns'")


def read_prompts(paths: Sequence[Path], fmt: str = "jsonl") -> list[str]:
    """Prompts only, for calibration: JSONL (prompt/messages/turns) or routellm-csv."""
    if fmt == "routellm-csv":
        csv.field_size_limit(sys.maxsize)
        out: list[str] = []
        for path in paths:
            for file in files(path, ".csv"):
                with file.open(encoding="utf-8", newline="") as handle:
                    out.extend(row["prompt"] for row in csv.DictReader(handle))
        return out
    return [
        _prompt_of(row, f"{file}:{n}")
        for path in paths
        for file in files(path, ".jsonl")
        for n, row in _json_lines(file)
    ]
