"""Generate ``corpus/authored_code_generated.jsonl``: hand-written framings around real code.

``python -m orchestrator.routing.train.gen_code_prompts [--capture]``

Framings (``codegen/framings.txt``) are written by the team; the code they wrap is
real: functions from CPython's standard library and permissively licensed packages
installed here, and broken programs (``codegen/broken_snippets.txt``) with the error
output Python, node, rustc, gcc and java really printed for them (``--capture``
re-runs them into ``codegen/captured_errors.jsonl``). A fixed seed makes the output
the same on every run with the same installed sources.
"""

from __future__ import annotations

import argparse
import json
import random
import sysconfig
from collections.abc import Sequence
from pathlib import Path

from orchestrator.routing.train import code_sources
from orchestrator.routing.train.code_sources import Snippet
from orchestrator.routing.train.label_shared import CORPUS, write_jsonl

CODEGEN = Path(__file__).resolve().parent / "codegen"
SEED = 21
AUTHORED = "CC0-1.0 (authored by the Switchyard team)"
SNIPPET_ROWS = {"python-stdlib": 95, "python-packages": 40, "javascript": 40, "c": 20}
LONG_ROWS = 24
ERROR_FRAMINGS_PER_PROGRAM = 2


def read_framings(path: Path = CODEGEN / "framings.txt") -> dict[str, list[str]]:
    """Section name -> framings; sections start with ``=== name``, framings split on ``---``."""
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            continue
        if line.startswith("=== "):
            current = [""]
            sections[line[4:].strip()] = current
        elif line == "---":
            current.append("")
        else:
            current[-1] += line + "\n"
    return {name: [f.strip("\n") for f in items] for name, items in sections.items()}


def fill(framing: str, code: str, lang: str, file: str, err: str = "") -> str:
    """Placeholders are replaced literally, so braces in code never matter."""
    out = framing.replace("{LANG}", lang).replace("{FILE}", file).replace("{ERR}", err)
    return out.replace("{CODE}", code)


def _row(prompt: str, source: str, licence: str, how: str) -> dict[str, str]:
    return {"prompt": prompt, "tier": "code", "source": source, "licence": licence, "how": how}


def snippet_rows(
    rng: random.Random, pools: dict[str, list[Snippet]], framings: Sequence[str]
) -> list[dict[str, str]]:
    rows = []
    for pool, n in SNIPPET_ROWS.items():
        for snip in rng.sample(pools[pool], min(n, len(pools[pool]))):
            i = rng.randrange(len(framings))
            prompt = fill(framings[i], snip.code, snip.lang, snip.file.rsplit("/", 1)[-1])
            how = f"generated: framing snippet/{i} asks to explain, review, test or port real code"
            rows.append(_row(prompt, snip.source, f"{snip.licence} (code); {AUTHORED}", how))
    return rows


def long_rows(
    rng: random.Random, files: list[Snippet], framings: Sequence[str]
) -> list[dict[str, str]]:
    rows = []
    for snip in rng.sample(files, min(LONG_ROWS, len(files))):
        i = rng.randrange(len(framings))
        prompt = fill(framings[i], snip.code, snip.lang, snip.file)
        how = f"generated: framing long/{i} asks for an overview or review of a pasted file"
        rows.append(_row(prompt, snip.source, f"{snip.licence} (code); {AUTHORED}", how))
    return rows


def error_rows(rng: random.Random, framings: Sequence[str]) -> list[dict[str, str]]:
    rows = []
    captured = [json.loads(line) for line in (CODEGEN / "captured_errors.jsonl").open()]
    for case in captured:
        for i in rng.sample(range(len(framings)), ERROR_FRAMINGS_PER_PROGRAM):
            prompt = fill(framings[i], case["code"], case["lang"], case["file"], case["error"])
            how = f"generated: framing error/{i} asks why a program fails, with its real error"
            source = f"authored:switchyard (broken program, real {case['tool']} output)"
            rows.append(_row(prompt, source, AUTHORED, how))
    return rows


def build() -> list[dict[str, str]]:
    rng = random.Random(SEED)
    framings = read_framings()
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    pools = code_sources.snippet_pools(stdlib)
    rows = snippet_rows(rng, pools, framings["snippet"])
    rows += long_rows(rng, code_sources.long_files(stdlib), framings["long"])
    rows += error_rows(rng, framings["error"])
    unique: dict[str, dict[str, str]] = {}
    for row in rows:
        unique.setdefault(row["prompt"], row)
    return list(unique.values())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.routing.train.gen_code_prompts")
    parser.add_argument("--capture", action="store_true", help="re-run the broken programs first")
    parser.add_argument("--out", type=Path, default=CORPUS / "authored_code_generated.jsonl")
    args = parser.parse_args(argv)
    if args.capture:
        cases = code_sources.capture_errors(CODEGEN / "broken_snippets.txt")
        write_jsonl(cases, CODEGEN / "captured_errors.jsonl")
    rows = build()
    write_jsonl(rows, args.out)
    print(f"wrote {len(rows)} rows to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
