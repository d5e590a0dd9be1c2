"""The simulator's knobs: config profiles, limits, statistics, control endpoints, Gemini."""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.simulator import Profile, SimulatorConfig, load_config
from orchestrator.simulator.config import ERROR_KINDS
from orchestrator.simulator.limiter import RateLimiter
from orchestrator.simulator.window import SlidingWindow

HELLO: list[Any] = [{"role": "user", "content": "Say hello."}]
GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": "Say hello."}]}]}


def chat(root: str, model: str = "gpt-4o-mini", key: str = "k1", **body: Any) -> httpx.Response:
    payload = {"model": model, "messages": HELLO, **body}
    headers = {"authorization": f"Bearer {key}"}
    return httpx.post(f"{root}/v1/chat/completions", json=payload, headers=headers)


def stats(root: str) -> dict[str, Any]:
    data: dict[str, Any] = httpx.get(f"{root}/_sim/stats").json()
    return data


# --- sliding windows and the limiter (explicit clock) -----------------------------------


def test_window_forgets_what_is_older_than_a_minute() -> None:
    # Given 5 events at t=0 and 3 at t=30
    window = SlidingWindow()
    window.add(5, 1000.0)
    window.add(3, 1030.0)
    # Then the total is 8 until t=60, 3 after, and the peak stays 8
    assert window.current(1059.9) == 8
    assert window.current(1060.0) == 3
    assert window.current(1200.0) == 0
    assert window.max_total == 8


def test_window_says_when_room_frees_up() -> None:
    window = SlidingWindow()
    window.add(5, 1000.0)
    window.add(3, 1030.0)
    # Below 8 once the t=0 bucket expires (t=60): 30 s from t=30
    assert window.seconds_until_below(8, 1030.0) == pytest.approx(30.0)
    # Below 1 once everything expired (t=90)
    assert window.seconds_until_below(1, 1030.0) == pytest.approx(60.0)
    assert window.seconds_until_below(100, 1030.0) == 0.0


def test_limiter_counts_per_key_and_model() -> None:
    # Given 2 requests per minute
    limiter, profile = RateLimiter(), Profile(rpm_limit=2)
    assert limiter.admit("a", "m", 10, profile, 0.0).admitted
    assert limiter.admit("a", "m", 10, profile, 1.0).admitted
    # When a third comes from the same key for the same model; Then it waits for t=60
    refused = limiter.admit("a", "m", 10, profile, 2.0)
    assert not refused.admitted and refused.exceeded == "requests"
    assert refused.retry_after_s == pytest.approx(58.0)
    # But another key, or another model, has its own budget
    assert limiter.admit("b", "m", 10, profile, 2.0).admitted
    assert limiter.admit("a", "other", 10, profile, 2.0).admitted
    # And the first key gets room back after the minute
    assert limiter.admit("a", "m", 10, profile, 60.5).admitted


def test_limiter_counts_tokens() -> None:
    limiter, profile = RateLimiter(), Profile(tpm_limit=100)
    first = limiter.admit("a", "m", 60, profile, 0.0)
    assert first.admitted and first.tokens is not None and first.tokens.remaining == 40
    refused = limiter.admit("a", "m", 60, profile, 10.0)
    assert not refused.admitted and refused.exceeded == "tokens"
    assert limiter.admit("a", "m", 40, profile, 10.0).admitted


def test_latency_is_lognormal_fitted_to_p50_and_p99() -> None:
    # Given p50 = 100 ms and p99 = 1,000 ms; When 20,000 draws are made
    profile = Profile(latency_p50_ms=100, latency_p99_ms=1000)
    rng = random.Random(7)
    draws = sorted(profile.sample_latency_ms(rng) for _ in range(20_000))
    # Then the median and the 99th percentile are close to those
    assert statistics.median(draws) == pytest.approx(100, rel=0.05)
    assert draws[int(0.99 * len(draws))] == pytest.approx(1000, rel=0.15)
    # And p99 <= p50 means a fixed latency
    assert Profile(latency_p50_ms=50, latency_p99_ms=10).sample_latency_ms(rng) == 50


def test_config_reads_yaml_and_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "sim.yaml"
    yaml_file.write_text(
        "default: {latency_p50_ms: 20}\n"
        "models:\n  gpt-4o: {rpm_limit: 60, error_rates: {'429': 0.1, timeout: 0.01}}\n"
    )
    json_file = tmp_path / "sim.json"
    json_file.write_text(json.dumps({"models": {"o3": {"context_window": 1000}}}))
    config = load_config(yaml_file)
    assert config.profile("gpt-4o").rpm_limit == 60
    assert config.profile("gpt-4o").error_rates == {"429": 0.1, "timeout": 0.01}
    assert config.profile("other").latency_p50_ms == 20
    assert load_config(json_file).profile("o3").context_window == 1000
    with pytest.raises(ValueError, match="error_rates"):
        SimulatorConfig.model_validate({"default": {"error_rates": {"500": 2}}})
    assert {"429", "500", "503", "529", "timeout", "malformed"} <= set(ERROR_KINDS)


# --- over HTTP --------------------------------------------------------------------------


def test_stats_count_received_served_limited_errors_and_tokens(fresh_simulator: str) -> None:
    # Given gpt-4o limited to 3 requests per minute and o3 always failing with 500
    root = fresh_simulator
    config = {"models": {"gpt-4o": {"rpm_limit": 3}, "o3": {"error_rates": {"500": 1.0}}}}
    assert httpx.put(f"{root}/_sim/config", json=config).status_code == 200
    # When 5 requests go to gpt-4o and 2 to o3
    codes = [chat(root, "gpt-4o").status_code for _ in range(5)]
    assert [chat(root, "o3").status_code for _ in range(2)] == [500, 500]
    # Then 3 were served, 2 limited, and the counts say so, per model and in total
    assert codes == [200, 200, 200, 429, 429]
    data = stats(root)
    gpt = data["models"]["gpt-4o"]
    assert (gpt["received"], gpt["served"], gpt["rate_limited"]) == (5, 3, 2)
    assert gpt["errors"] == {"429": 2}
    assert gpt["max_received_per_60s"] == 5 and gpt["max_served_per_60s"] == 3
    assert gpt["input_tokens"] > 0 and gpt["output_tokens"] >= 3 * 20
    assert data["models"]["o3"]["errors"] == {"500": 2}
    total = data["total"]
    assert (total["received"], total["served"], total["rate_limited"]) == (7, 3, 2)
    assert total["errors"] == {"429": 2, "500": 2}
    # When reset; Then counters and the limiter start over
    httpx.post(f"{root}/_sim/reset").raise_for_status()
    assert stats(root)["total"]["received"] == 0
    assert chat(root, "gpt-4o").status_code == 200


def test_limits_are_per_api_key(fresh_simulator: str) -> None:
    root = fresh_simulator
    httpx.put(f"{root}/_sim/config", json={"default": {"rpm_limit": 1}}).raise_for_status()
    assert chat(root, key="a").status_code == 200
    assert chat(root, key="a").status_code == 429
    assert chat(root, key="b").status_code == 200


def test_bad_config_is_refused(fresh_simulator: str) -> None:
    response = httpx.put(f"{fresh_simulator}/_sim/config", json={"default": {"rpm_limit": 0}})
    assert response.status_code == 400
    assert httpx.get(f"{fresh_simulator}/_sim/config").json()["default"]["rpm_limit"] is None


def test_recent_requests_are_kept_per_model(fresh_simulator: str) -> None:
    chat(fresh_simulator, "gpt-4.1", temperature=0.5)
    data = httpx.get(f"{fresh_simulator}/_sim/requests", params={"model": "gpt-4.1"}).json()
    [recent] = data["requests"]
    assert recent["format"] == "openai" and recent["body"]["temperature"] == 0.5


def test_the_header_knobs_work_on_every_format(fresh_simulator: str) -> None:
    root, fail = fresh_simulator, {"x-simulator-fail": "503"}
    anthropic_body = {"model": "claude-sonnet-4", "max_tokens": 10, "messages": HELLO}
    responses = [
        httpx.post(
            f"{root}/v1/chat/completions", json={"model": "m", "messages": HELLO}, headers=fail
        ),
        httpx.post(f"{root}/v1/messages", json=anthropic_body, headers=fail),
        httpx.post(
            f"{root}/v1beta/models/gemini-2.5-flash:generateContent", json=GEMINI_BODY, headers=fail
        ),
    ]
    assert [r.status_code for r in responses] == [503, 503, 503]
    assert responses[1].json()["error"]["type"] == "overloaded_error"
    assert responses[2].json()["error"]["status"] == "UNAVAILABLE"


def test_gemini_answers_in_its_own_shape(fresh_simulator: str) -> None:
    # Given a thinking model asked with a system instruction
    body = {**GEMINI_BODY, "systemInstruction": {"parts": [{"text": "Be brief."}]}}
    response = httpx.post(
        f"{fresh_simulator}/v1beta/models/gemini-2.5-pro:generateContent", json=body
    )
    # Then the answer is a GenerateContentResponse with thinking tokens reported apart
    data = response.json()
    assert data["candidates"][0]["content"]["role"] == "model"
    assert data["candidates"][0]["finishReason"] in ("STOP", "MAX_TOKENS")
    usage = data["usageMetadata"]
    assert usage["thoughtsTokenCount"] > 0
    assert usage["totalTokenCount"] == (
        usage["promptTokenCount"] + usage["candidatesTokenCount"] + usage["thoughtsTokenCount"]
    )


def test_gemini_429_carries_retry_info(fresh_simulator: str) -> None:
    root = fresh_simulator
    httpx.put(f"{root}/_sim/config", json={"default": {"rpm_limit": 1}}).raise_for_status()
    url = f"{root}/v1beta/models/gemini-2.5-flash:generateContent"
    assert httpx.post(url, json=GEMINI_BODY, headers={"x-goog-api-key": "g"}).status_code == 200
    limited = httpx.post(url, json=GEMINI_BODY, headers={"x-goog-api-key": "g"})
    error = limited.json()["error"]
    assert (limited.status_code, error["status"]) == (429, "RESOURCE_EXHAUSTED")
    assert error["details"][0]["retryDelay"].endswith("s")


def test_gemini_context_window_is_enforced(fresh_simulator: str) -> None:
    root = fresh_simulator
    config = {"models": {"gemini-2.5-flash": {"context_window": 100}}}
    httpx.put(f"{root}/_sim/config", json=config).raise_for_status()
    body = {"contents": [{"role": "user", "parts": [{"text": "word " * 200}]}]}
    response = httpx.post(f"{root}/v1beta/models/gemini-2.5-flash:generateContent", json=body)
    assert response.status_code == 400
    assert "exceeds the maximum number of tokens" in response.json()["error"]["message"]
    assert stats(root)["total"]["errors"] == {"context_length": 1}


def test_unknown_gemini_action_is_404(fresh_simulator: str) -> None:
    response = httpx.post(
        f"{fresh_simulator}/v1beta/models/gemini-2.5-flash:countTokens", json=GEMINI_BODY
    )
    assert response.status_code == 404 and response.json()["error"]["status"] == "NOT_FOUND"
