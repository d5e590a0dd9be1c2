"""The labelled tier corpus: well-formed rows, no prompt twice, README counts true, rebuildable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.routing.train import corpus_check, label_shared

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "routing"


def test_every_corpus_row_is_well_formed_and_unique_across_files() -> None:
    # Given every JSONL file in the corpus folder
    files = corpus_check.read_folder()
    assert "shared_labelled.jsonl" in files

    # When the checker reads them, with the MT-Bench development questions as forbidden text
    found = corpus_check.problems(
        files, corpus_check.mt_bench_prompts(DATA / "mt_bench_questions.jsonl")
    )

    # Then no row lacks a field, has another tier, repeats a prompt or quotes MT-Bench
    assert found == []


def test_readme_counts_match_the_files() -> None:
    # Given the counts table in corpus/README.md
    claimed = corpus_check.readme_counts(corpus_check.README.read_text(encoding="utf-8"))

    # When the rows of each file are counted per tier
    actual = corpus_check.tier_counts(corpus_check.read_folder())

    # Then the README lists every file with its true counts
    assert claimed == actual


def test_checker_reports_bad_rows_and_cross_file_duplicates(tmp_path: Path) -> None:
    # Given a folder with a bad tier, a missing field, broken JSON and a prompt in two files
    good = {"prompt": "hi", "tier": "fast", "source": "s", "licence": "l", "how": "h"}
    (tmp_path / "a.jsonl").write_text(
        json.dumps(good) + "\n" + json.dumps({**good, "prompt": "x", "tier": "vision"}) + "\n"
    )
    (tmp_path / "b.jsonl").write_text(
        json.dumps(good) + "\n" + json.dumps({**good, "prompt": "y", "how": ""}) + "\n{oops\n"
    )

    # When the checker reads the folder
    found = corpus_check.problems(corpus_check.read_folder(tmp_path), forbidden=["y"])

    # Then each problem is named with its file and line
    assert found == [
        "a.jsonl:2: tier 'vision' not in ('fast', 'reasoning', 'code')",
        "b.jsonl:1: duplicate of a.jsonl:1",
        "b.jsonl:2: field 'how' missing or empty",
        "b.jsonl:2: quotes an MT-Bench question",
        "b.jsonl:3: not JSON (Expecting property name enclosed in double quotes)",
    ]


def test_readme_table_is_rewritten_between_markers(tmp_path: Path) -> None:
    # Given a README with stale counts between the markers
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{corpus_check.START}\nstale\n{corpus_check.END}\nafter\n")
    counts = corpus_check.tier_counts({"f.jsonl": ['{"tier": "code"}', '{"tier": "fast"}']})

    # When the table is written
    corpus_check.write_readme_table(counts, readme)

    # Then the text around it stays and the table reads back as the counts
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("after\n") and "stale" not in text
    assert corpus_check.readme_counts(text) == counts


@pytest.mark.skipif(not (DATA / "train" / "README.md").is_file(), reason="shared data absent")
def test_label_shared_rebuilds_the_shared_file_exactly(tmp_path: Path) -> None:
    # Given the shared real prompts and the reading labels
    out = tmp_path / "shared.jsonl"

    # When the labelling script runs
    label_shared.main(["--data", str(DATA / "train"), "--out", str(out)])

    # Then it writes the committed file byte for byte
    committed = corpus_check.CORPUS / "shared_labelled.jsonl"
    assert out.read_bytes() == committed.read_bytes()
