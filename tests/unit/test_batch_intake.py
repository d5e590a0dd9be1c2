"""OpenAI batch input lines: good ones become jobs, each bad one is refused alone."""

from __future__ import annotations

import json

from orchestrator.admission.batch_intake import parse_file

URL = "/v1/chat/completions"


def line(custom_id: str, body: object, url: str = URL) -> str:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body})


def test_each_bad_line_is_refused_alone_with_its_custom_id() -> None:
    # Given a file with good lines and one of each kind of bad line (and a blank line)
    good = {
        "model": "tier:code",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": "hi"},
        ],
    }
    text = "\n".join(
        [
            line("a", good),
            '{"custom_id": "broken", "body": {',
            line("b", {"model": "auto"}),
            line("a", good),
            line("c", good, url="/v1/embeddings"),
            "",
            json.dumps({"method": "POST", "url": URL, "body": good}),
            "[1, 2]",
            line("d", {**good, "max_tokens": 50}),
        ]
    )
    # When it is parsed
    jobs, refused = parse_file(text.encode(), URL)
    # Then the good lines keep their line index, and the request maps to a canonical job
    assert [(i, r.custom_id) for i, r in jobs] == [(0, "a"), (8, "d")]
    assert jobs[0][1].tier == "code" and jobs[0][1].system_prompt() == "be brief"
    assert jobs[1][1].max_tokens == 50
    # And every bad line is refused with its line number, code and (where known) custom_id
    assert [(r["line"], r["custom_id"], r["code"]) for r in refused] == [
        (2, "broken", "invalid_json"),
        (3, "b", "invalid_request"),
        (4, "a", "duplicate_custom_id"),
        (5, "c", "invalid_url"),
        (7, None, "missing_custom_id"),
        (8, None, "invalid_request"),
    ]
    assert "body.messages" in refused[1]["message"]
