"""Evaluation inputs: JSONL, RouteLLM's CSV, MT-Bench, directories and exclusion lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.core.errors import ConfigError
from orchestrator.core.tiers import Tier
from orchestrator.evaluation.data import (
    read_excludes,
    read_outcomes,
    read_prompts,
    read_tier_examples,
)


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_router_jsonl_reads_scores_as_numbers(tmp_path: Path) -> None:
    # Given JSONL with 0/1, boolean and numeric scores
    path = write_jsonl(
        tmp_path / "set.jsonl",
        [
            {"prompt": "a", "weak_score": 0, "strong_score": 1},
            {"prompt": "b", "weak_score": True, "strong_score": "false"},
            {"prompt": "c", "weak_score": 6.5, "strong_score": 9},
        ],
    )
    # When it is read; Then every score is a float and the file names the source
    found = read_outcomes([path])
    assert [(o.weak, o.strong) for o in found] == [(0.0, 1.0), (1.0, 0.0), (6.5, 9.0)]
    assert {o.source for o in found} == {"set"}


def test_a_bad_router_line_names_the_file_and_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "a", "weak_score": "x"}])
    with pytest.raises(ConfigError, match=r"bad.jsonl:1 weak_score"):
        read_outcomes([path])


def test_routellm_csv_directories_are_read_in_name_order(tmp_path: Path) -> None:
    # Given a directory of two RouteLLM-layout CSV files with custom model columns
    header = "prompt,small,big\n"
    (tmp_path / "b.csv").write_text(header + '"two, with comma",False,True\n')
    (tmp_path / "a.csv").write_text(header + "one,True,True\n")
    # When it is read naming the columns
    found = read_outcomes([tmp_path], "routellm-csv", strong="big", weak="small")
    # Then both files are read, in name order, with the right columns
    assert [(o.prompt, o.weak, o.strong, o.source) for o in found] == [
        ("one", 1.0, 1.0, "a"),
        ("two, with comma", 0.0, 1.0, "b"),
    ]


def test_a_missing_csv_column_is_named(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("prompt,small\nq,True\n")
    with pytest.raises(ConfigError, match="missing column"):
        read_outcomes([tmp_path / "x.csv"], "routellm-csv", strong="big", weak="small")


def test_excludes_read_eval_prompt_or_prompt(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "x.jsonl", [{"eval_prompt": "a", "train_prompt": "z"}, {"prompt": "b"}]
    )
    assert read_excludes([path]) == frozenset({"a", "b"})


def test_mt_bench_rows_map_categories_to_tiers(tmp_path: Path) -> None:
    # Given MT-Bench rows of several categories
    rows = [
        {"question_id": 1, "category": "coding", "turns": ["Write a function", "now faster"]},
        {"question_id": 2, "category": "math", "turns": ["1+1?"]},
        {"question_id": 3, "category": "roleplay", "turns": ["Be a pirate"]},
    ]
    path = write_jsonl(tmp_path / "mt.jsonl", rows)
    # When they are read as MT-Bench; Then the first turn is the prompt, mapped as documented
    found = read_tier_examples([path], "mt-bench")
    assert [(e.request.prompt, e.tier) for e in found] == [
        ("Write a function", Tier.CODE),
        ("1+1?", Tier.REASONING),
        ("Be a pirate", Tier.FAST),
    ]


def test_tier_jsonl_accepts_messages_and_rejects_unknown_tiers(tmp_path: Path) -> None:
    good = [{"messages": [{"role": "user", "content": "hi"}], "tier": "fast"}]
    assert read_tier_examples([write_jsonl(tmp_path / "g.jsonl", good)])[0].tier is Tier.FAST
    bad = write_jsonl(tmp_path / "b.jsonl", [{"prompt": "hi", "tier": "gold"}])
    with pytest.raises(ConfigError, match=r"b\.jsonl:1"):
        read_tier_examples([bad])


def test_prompts_for_calibration_come_from_any_known_field(tmp_path: Path) -> None:
    rows = [
        {"prompt": "p"},
        {"turns": ["t1", "t2"]},
        {"messages": [{"role": "user", "content": "old"}, {"role": "user", "content": "m"}]},
    ]
    assert read_prompts([write_jsonl(tmp_path / "p.jsonl", rows)]) == ["p", "t1", "m"]
