"""Validate the labelled tier corpus and keep the counts table in ``corpus/README.md`` true.

``python -m orchestrator.routing.train.corpus_check [--readme]``

Every ``corpus/*.jsonl`` row must be a JSON object with a non-empty ``prompt``, a
``tier`` in {fast, reasoning, code} and non-empty ``source``, ``licence`` and ``how``;
no prompt may appear twice in the folder, nor quote an MT-Bench question (a
development set only). ``--readme`` rewrites the table between the count markers.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent / "corpus"
README = CORPUS / "README.md"
TIERS = ("fast", "reasoning", "code")
FIELDS = ("prompt", "tier", "source", "licence", "how")
START, END = "<!-- counts:start -->", "<!-- counts:end -->"
MT_BENCH = Path("../shared/data/routing/mt_bench_questions.jsonl")


def read_folder(folder: Path = CORPUS) -> dict[str, list[str]]:
    """File name -> its raw non-empty lines, for every JSONL file in the folder."""
    out = {}
    for path in sorted(folder.glob("*.jsonl")):
        out[path.name] = [line for line in path.read_text(encoding="utf-8").splitlines() if line]
    return out


def row_problems(name: str, number: int, line: str) -> tuple[list[str], dict[str, Any] | None]:
    where = f"{name}:{number}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        return [f"{where}: not JSON ({exc.msg})"], None
    if not isinstance(row, dict):
        return [f"{where}: not a JSON object"], None
    found = [f"{where}: field {f!r} missing or empty" for f in FIELDS if not _text(row.get(f))]
    if row.get("tier") not in TIERS:
        found.append(f"{where}: tier {row.get('tier')!r} not in {TIERS}")
    return found, row


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def problems(files: dict[str, list[str]], forbidden: Iterable[str] = ()) -> list[str]:
    """Every problem in the folder: bad rows, duplicate prompts, quoted development prompts."""
    found: list[str] = []
    first_seen: dict[str, str] = {}
    banned = {p.strip() for p in forbidden}
    for name, lines in files.items():
        for number, line in enumerate(lines, 1):
            errors, row = row_problems(name, number, line)
            found += errors
            if row is None or not _text(row.get("prompt")):
                continue
            prompt = row["prompt"].strip()
            if prompt in first_seen:
                found.append(f"{name}:{number}: duplicate of {first_seen[prompt]}")
            first_seen.setdefault(prompt, f"{name}:{number}")
            if prompt in banned:
                found.append(f"{name}:{number}: quotes an MT-Bench question")
    return found


def tier_counts(files: dict[str, list[str]]) -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = {}
    for name, lines in files.items():
        counts[name] = Counter()
        for line in lines:
            try:
                counts[name][json.loads(line).get("tier", "?")] += 1
            except (json.JSONDecodeError, AttributeError):
                counts[name]["?"] += 1
    return counts


def counts_table(counts: dict[str, Counter[str]]) -> str:
    lines = ["| file | fast | reasoning | code | total |", "| --- | ---: | ---: | ---: | ---: |"]
    total: Counter[str] = Counter()
    for name, c in counts.items():
        total.update(c)
        cells = " | ".join(str(c[t]) for t in TIERS)
        lines.append(f"| `{name}` | {cells} | {sum(c.values())} |")
    cells = " | ".join(str(total[t]) for t in TIERS)
    lines.append(f"| **all** | {cells} | {sum(total.values())} |")
    return "\n".join(lines)


def readme_counts(text: str) -> dict[str, Counter[str]]:
    """The per-file counts the README's table claims."""
    inside = text.split(START, 1)[1].split(END, 1)[0]
    out = {}
    for m in re.finditer(r"^\| `([^`]+)` \| (\d+) \| (\d+) \| (\d+) \| \d+ \|$", inside, re.M):
        out[m[1]] = Counter({t: int(v) for t, v in zip(TIERS, m.groups()[1:], strict=True) if v})
    return out


def write_readme_table(counts: dict[str, Counter[str]], readme: Path = README) -> None:
    text = readme.read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    readme.write_text(f"{head}{START}\n{counts_table(counts)}\n{END}{tail}", encoding="utf-8")


def mt_bench_prompts(path: Path = MT_BENCH) -> list[str]:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [turn for row in rows for turn in row.get("turns", [])]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.routing.train.corpus_check")
    parser.add_argument("--readme", action="store_true", help="rewrite the README counts table")
    args = parser.parse_args(argv)
    files = read_folder()
    found = problems(files, mt_bench_prompts())
    for problem in found:
        print(problem)
    counts = tier_counts(files)
    if args.readme:
        write_readme_table(counts)
    print(counts_table(counts))
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
