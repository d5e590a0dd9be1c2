"""Labelled prompts for the tier classifier: reading, the held-out split, and row weights.

Rows are JSONL with ``prompt`` (or ``messages``: the last user turn) and ``tier``
(``fast``, ``reasoning`` or ``code``); ``source`` is optional. Rows labelled
``vision`` are skipped (images decide vision, by rule), and so are rows without
a prompt (label records kept beside the corpus); both are counted.

Held-out split, a rule anyone can re-run:

    held out  <=>  int(sha256(prompt)[:8], 16) % 10 == 0        (about 10%)

Weights: a source that gives many rows of one tier (translated word problems,
one benchmark's template) must not teach "this style means this tier". Each
(source, tier) group of n rows counts like min(n, sqrt(n * GROUP_ROWS)) rows,
except rows written for this corpus (``authored:...``), which were written to
vary and count fully; then tiers are balanced so each weighs the same in total.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.core.errors import ConfigError
from orchestrator.core.tiers import Tier

TIERS = (Tier.FAST, Tier.REASONING, Tier.CODE)
HELD_OUT_MODULUS = 10
GROUP_ROWS = 200
AUTHORED = "authored"
CORPUS = Path(__file__).resolve().parent / "corpus"


@dataclass(frozen=True)
class Labelled:
    """One prompt and the tier a person (or a recorded source rule) gave it."""

    prompt: str
    tier: Tier
    source: str


@dataclass
class Read:
    """What a read found: the rows kept, and how many were skipped and why."""

    rows: list[Labelled] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


def is_held_out(prompt: str) -> bool:
    digest = hashlib.sha256(prompt.encode("utf-8")).hexdigest()
    return int(digest[:8], 16) % HELD_OUT_MODULUS == 0


def _prompt(row: dict[str, Any]) -> str | None:
    if isinstance(row.get("prompt"), str):
        return str(row["prompt"])
    messages = row.get("messages")
    if isinstance(messages, list):
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        if users and isinstance(users[-1].get("content"), str):
            return str(users[-1]["content"])
    return None


def _row(row: Any, where: str, found: Read, default_source: str) -> None:
    if not isinstance(row, dict):
        raise ConfigError(f"{where}: each line must be a JSON object")
    prompt = _prompt(row)
    if prompt is None:
        found.skipped["no prompt"] += 1
        return
    try:
        tier = Tier(str(row.get("tier")))
    except ValueError as exc:
        raise ConfigError(f"{where}: tier must be fast, reasoning or code ({exc})") from exc
    if tier not in TIERS:
        found.skipped[f"tier {tier.value}"] += 1
        return
    found.rows.append(Labelled(prompt, tier, str(row.get("source") or default_source)))


def read_labelled(paths: Sequence[Path]) -> Read:
    """Rows of ``paths`` (JSONL files, or directories of them, in name order), deduplicated."""
    found = Read()
    for path in paths:
        files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
        if not files or not all(f.is_file() for f in files):
            raise ConfigError(f"no JSONL file at {path}")
        for file in files:
            with file.open(encoding="utf-8") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except ValueError as exc:
                        raise ConfigError(f"{file}:{number}: not JSON ({exc})") from exc
                    _row(row, f"{file}:{number}", found, f"file:{file.name}")
    found.rows = dedupe(found.rows, found.skipped)
    return found


def dedupe(rows: Iterable[Labelled], skipped: Counter[str]) -> list[Labelled]:
    """First row of each prompt; a prompt given two different tiers is dropped altogether."""
    tiers: dict[str, set[Tier]] = {}
    for row in rows:
        tiers.setdefault(row.prompt, set()).add(row.tier)
    out, seen = [], set()
    for row in rows:
        if row.prompt in seen:
            skipped["duplicate"] += 1
        elif len(tiers[row.prompt]) > 1:
            skipped["conflicting labels"] += 1
        else:
            out.append(row)
        seen.add(row.prompt)
    return out


def group_of(source: str) -> str:
    """``alpaca_eval/helpful_base`` -> ``alpaca_eval``; ``authored:x+cpython`` -> ``authored:x``."""
    return source.split("/", 1)[0].split("+", 1)[0].strip()


def weights(rows: Sequence[Labelled]) -> list[float]:
    """Per-row training weights (see the module docstring); they sum to ``len(rows)``."""
    if not rows:
        return []
    groups = Counter((group_of(r.source), r.tier) for r in rows)
    raw = [
        1.0
        if r.source.startswith(AUTHORED)
        else min(1.0, math.sqrt(GROUP_ROWS / groups[(group_of(r.source), r.tier)]))
        for r in rows
    ]
    per_tier: dict[Tier, float] = {}
    for row, w in zip(rows, raw, strict=True):
        per_tier[row.tier] = per_tier.get(row.tier, 0.0) + w
    present = len(per_tier)
    return [w * len(rows) / (present * per_tier[r.tier]) for r, w in zip(rows, raw, strict=True)]


def file_digests(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Name, size and sha256 of every JSONL file read, as the artefact records them."""
    out = []
    for path in paths:
        for file in sorted(path.glob("*.jsonl")) if path.is_dir() else [path]:
            data = file.read_bytes()
            out.append({"file": file.name, "sha256": hashlib.sha256(data).hexdigest()})
    return out
