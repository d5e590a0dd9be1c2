"""Label the shared real prompts (``../shared/data/routing/train``) into the tier corpus.

``python -m orchestrator.routing.train.label_shared [--data DIR] [--out FILE]``

Homogeneous sources get a source rule (every row was spot-read before the rule
was written); the mixed sources (alpaca_eval, vicuna_bench) get the tier a
person decided by reading each prompt, kept in
``reading_labels/alpaca_vicuna_labels.jsonl`` keyed by :func:`prompt_key` (outside
``corpus/``, which holds training rows only). A label with ``exclude`` (a close
variant of an MT-Bench development question) keeps its prompt out. Big sources
are sampled by hash, so the output is the same on every run and every machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent / "corpus"
LABELS = Path(__file__).resolve().parent / "reading_labels" / "alpaca_vicuna_labels.jsonl"
GSM8K_ROWS = 1200
MGSM_ROWS_PER_LANGUAGE = 100
# mgsm.jsonl holds 250 questions per language, in this order (checked by reading).
MGSM_LANGUAGES = ("bn", "de", "es", "fr", "ja", "ru", "sw", "te", "th", "zh")
MGSM_BLOCK = 250

GSM8K_HOW = "source rule: every gsm8k-train row is a maths word problem (spot-read 60 of 60)"
MGSM_HOW = "source rule: every mgsm row is a maths word problem (spot-read 5 per language)"
HUMANEVAL_HOW = "source rule: every humaneval row is a Python function to complete (read 40/40)"


def prompt_key(prompt: str) -> str:
    """The key the reading labels are stored under: sha256 of the stripped prompt, 16 hex digits."""
    return hashlib.sha256(prompt.strip().encode("utf-8")).hexdigest()[:16]


def _read(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _sample(rows: Sequence[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The ``n`` rows with the smallest prompt hash, in their original order."""
    chosen = set(sorted(range(len(rows)), key=lambda i: prompt_key(rows[i]["prompt"]))[:n])
    return [row for i, row in enumerate(rows) if i in chosen]


def _row(prompt: str, tier: str, source: str, licence: str, how: str) -> dict[str, str]:
    return {"prompt": prompt, "tier": tier, "source": source, "licence": licence, "how": how}


def gsm8k_rows(data: Path) -> list[dict[str, str]]:
    rows = _sample(_read(data / "gsm8k_train.jsonl"), GSM8K_ROWS)
    return [_row(r["prompt"], "reasoning", "gsm8k-train", "MIT", GSM8K_HOW) for r in rows]


def mgsm_rows(data: Path) -> list[dict[str, str]]:
    rows = _read(data / "mgsm.jsonl")
    out: list[dict[str, str]] = []
    for block, language in enumerate(MGSM_LANGUAGES):
        part = rows[block * MGSM_BLOCK : (block + 1) * MGSM_BLOCK]
        for r in _sample(part, MGSM_ROWS_PER_LANGUAGE):
            out.append(_row(r["prompt"], "reasoning", f"mgsm/{language}", "CC-BY-4.0", MGSM_HOW))
    return out


def humaneval_rows(data: Path) -> list[dict[str, str]]:
    rows = _read(data / "humaneval.jsonl")
    return [_row(r["prompt"], "code", "humaneval", "MIT", HUMANEVAL_HOW) for r in rows]


def read_labels(path: Path = LABELS) -> dict[str, dict[str, Any]]:
    return {row["key"]: row for row in _read(path)}


def reading_rows(data: Path, labels: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    """alpaca_eval and vicuna_bench joined with the reading labels; a shared prompt is kept once."""
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    vicuna = [
        dict(r, source=f"vicuna_bench/{r['category']}") for r in _read(data / "vicuna_bench.jsonl")
    ]
    for r in vicuna + _read(data / "alpaca_eval.jsonl"):
        key = prompt_key(r["prompt"])
        if key in seen:
            continue
        seen.add(key)
        if key not in labels:
            raise SystemExit(f"unlabelled {r['source']} {key}: {r['prompt'][:60]!r}")
        label = labels[key]
        if label.get("exclude"):
            continue
        how = f"read: {label['reason']}"
        out.append(_row(r["prompt"], label["tier"], r["source"], "Apache-2.0", how))
    return out


def build(data: Path, labels: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    return gsm8k_rows(data) + mgsm_rows(data) + humaneval_rows(data) + reading_rows(data, labels)


def write_jsonl(rows: Iterable[dict[str, Any]], path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.routing.train.label_shared")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/routing/train"))
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--out", type=Path, default=CORPUS / "shared_labelled.jsonl")
    args = parser.parse_args(argv)
    rows = build(args.data, read_labels(args.labels))
    write_jsonl(rows, args.out)
    print(f"wrote {len(rows)} rows to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
