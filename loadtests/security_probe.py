"""Probe a running cluster as a tenant with one valid key who wants more than its share.

Run it against ``switchyard up`` started with an admin key, on loopback only::

    SWITCHYARD_ADMIN_API_KEY=$ADMIN switchyard up --api-port 8300 --simulator-port 8310 &
    switchyard bench security_probe --api http://127.0.0.1:8300 --admin-key $ADMIN

Every request goes to the API under test or to a listener this probe opens on
127.0.0.1 (the ``$ref`` target that must never be fetched); nothing else is
contacted. It prints one JSON object: each check with what it saw and ``ok``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

BUDGET_USD = 0.05
BUDGET_MICRO = 50_000


class _Counter(BaseHTTPRequestHandler):
    """Counts every request; answers a schema that would make validation fail."""

    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        body = b'{"type": "integer"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/schema+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return


@contextmanager
def listener() -> Iterator[tuple[str, type[_Counter]]]:
    """A loopback HTTP server on a free port that counts the requests it receives."""
    handler = type("Counter", (_Counter,), {"hits": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def _loopback(url: str) -> str:
    host = urlsplit(url).hostname or ""
    if host not in {"127.0.0.1", "localhost", "::1"} and not host.startswith("127."):
        raise SystemExit(f"refusing to probe {host!r}: loopback addresses only")
    return url.rstrip("/")


def _status(call: Callable[[], httpx.Response]) -> int | str:
    try:
        return call().status_code
    except httpx.HTTPError as exc:  # a reset or a timeout is a finding, not a crash
        return type(exc).__name__


def _is_4xx(code: int | str) -> bool:
    return isinstance(code, int) and 400 <= code < 500


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _schema_bodies(ref_url: str) -> dict[str, dict[str, Any]]:
    def job(schema: dict[str, Any]) -> dict[str, Any]:
        rf = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
        return {"prompt": "Give me a JSON object.", "response_format": rf}

    def steps(schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "prompt": "hi",
            "steps": [{"prompt": "{input}"}, {"prompt": "again {input}", "json_schema": schema}],
        }

    remote = {"$ref": f"{ref_url}/x.json"}
    return {
        "job_remote_ref": job(remote),
        "step_remote_ref": steps(remote),
        "job_nested_remote_ref": job({"type": "object", "properties": {"a": remote}}),
        "job_file_ref": job({"$ref": "file:///etc/passwd"}),
        "job_self_ref": job({"$ref": "#"}),
        "step_self_ref": steps({"$ref": "#"}),
        "job_bad_type": job({"type": 12}),
        "step_bad_type": steps({"type": 12}),
    }


def probe_schemas(api: httpx.Client) -> dict[str, Any]:
    """Remote, self-referencing and malformed schemas: 4xx, and no fetch ever."""
    with listener() as (ref_url, counter):
        codes: dict[str, int | str] = {}
        for name, body in _schema_bodies(ref_url).items():
            codes[name] = _status(partial(api.post, "/v1/jobs", json=body))
        chat = {
            "model": "auto",
            "messages": [{"role": "user", "content": "json please"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"$ref": f"{ref_url}/y.json"}},
            },
        }
        codes["chat_remote_ref"] = _status(lambda: api.post("/v1/chat/completions", json=chat))
        time.sleep(3.0)  # leave workers time to fetch, if anything got through
        hits = counter.hits
    return {
        "codes": codes,
        "listener_hits": hits,
        "ok": hits == 0 and all(_is_4xx(c) for c in codes.values()),
    }


def probe_bodies(api: httpx.Client, admin: httpx.Client | None) -> dict[str, Any]:
    """Deep nesting, huge integers, non-finite budgets: 4xx, never 5xx or a reset."""
    ndjson = {"Content-Type": "application/x-ndjson"}
    deep = '{"type": "object", "properties": {"a": ' * 1000 + "{}" + "}}" * 1000
    tool_body = (
        '{"prompt": "hi", "tools": [{"type": "function", "function": '
        '{"name": "f", "parameters": ' + deep + "}}]}"
    )
    json_type = {"Content-Type": "application/json"}
    codes: dict[str, int | str] = {
        "batch_nested_5000": _status(
            lambda: api.post("/v1/batches", content=_nested(5000), headers=json_type)
        ),
        "batch_line_huge_int": _status(
            lambda: api.post(
                "/v1/batches",
                content='{"prompt": "hi", "max_tokens": ' + "9" * 5000 + "}\n",
                headers=ndjson,
            )
        ),
        "job_tool_nested_1000": _status(
            lambda: api.post("/v1/jobs", content=tool_body, headers=json_type)
        ),
    }
    if admin is not None:
        codes["budget_infinity"] = _status(
            lambda: admin.put(
                "/admin/tenants/nobody/budget",
                content='{"daily_usd": Infinity}',
                headers={"Content-Type": "application/json"},
            )
        )
    return {"codes": codes, "ok": all(_is_4xx(c) for c in codes.values())}


def probe_stall(api: httpx.Client, base: str, steps: int) -> dict[str, Any]:
    """A body of many pipeline steps: 4xx, while /healthz keeps answering fast."""
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    body = json.dumps(
        {
            "prompt": "hi",
            "steps": [
                {"prompt": f"step {i} {{input}}", "json_schema": schema} for i in range(steps)
            ],
        }
    )
    result: dict[str, Any] = {}

    def send() -> None:
        result["code"] = _status(
            lambda: api.post("/v1/jobs", content=body, headers={"Content-Type": "application/json"})
        )

    sender = threading.Thread(target=send)
    worst_ms = 0.0
    with httpx.Client(base_url=base, timeout=10.0) as health:
        sender.start()
        while sender.is_alive():
            started = time.perf_counter()
            health.get("/healthz")
            worst_ms = max(worst_ms, (time.perf_counter() - started) * 1000)
            time.sleep(0.02)
    sender.join()
    code = result.get("code", "none")
    return {
        "steps": steps,
        "code": code,
        "healthz_worst_ms": round(worst_ms, 1),
        "ok": _is_4xx(code) and worst_ms < 500,
    }


def _budget_tenant(admin: httpx.Client) -> str:
    name = f"probe-{secrets.token_hex(4)}"
    tenant = admin.post("/admin/tenants", json={"name": name}).raise_for_status().json()
    admin.put(
        f"/admin/tenants/{tenant['id']}/budget", json={"daily_usd": BUDGET_USD}
    ).raise_for_status()
    return str(tenant["api_key"])


def _wait_idle(client: httpx.Client, job_ids: list[str], timeout_s: float) -> None:
    final = {"succeeded", "failed", "cancelled", "expired"}
    deadline = time.monotonic() + timeout_s
    pending = list(job_ids)
    while pending and time.monotonic() < deadline:
        pending = [
            j for j in pending if client.get(f"/v1/jobs/{j}").json().get("status") not in final
        ]
        time.sleep(0.5)


def probe_budget(base: str, admin: httpx.Client, rounds: int) -> dict[str, Any]:
    """A $0.05/day tenant submits costly pipelines and redrives until refused."""
    key = _budget_tenant(admin)
    codes: list[int | str] = []
    accepted: list[str] = []
    with httpx.Client(
        base_url=base, timeout=30.0, headers={"Authorization": f"Bearer {key}"}
    ) as api:
        text = "Rivers shape valleys, carry silt and feed deltas. " * 20
        pipelines = [
            {
                "prompt": text,
                "steps": [
                    {"prompt": "Summarise: {input}", "max_tokens": 2000},
                    {"prompt": "{input} " * 200, "max_tokens": 4000},
                ],
            },
            {
                "prompt": text,
                "steps": [
                    {"prompt": "{input} " * 50, "tier": "reasoning"},
                    {"prompt": "{steps.step0.output} " * 100},
                ],
            },
            {"prompt": "Write a long story.", "max_tokens": 16000},
            {
                "prompt": text,
                "steps": [
                    {"prompt": "Summarise: {input}", "max_tokens": 300},
                    {"prompt": "{steps.step0.output} {input}", "max_tokens": 300},
                ],
            },
            {
                "prompt": "Prove that there are infinitely many primes.",
                "tier": "reasoning",
                "max_tokens": 1500,
            },
        ]
        for _ in range(rounds):
            for body in pipelines:
                response = api.post("/v1/jobs", json=body)
                codes.append(response.status_code)
                if response.status_code == 202:
                    accepted.append(response.json()["id"])
        _wait_idle(api, accepted, timeout_s=120)
        for job_id in accepted:  # redrive whatever can be, to spend again
            codes.append(api.post(f"/v1/jobs/{job_id}/redrive").status_code)
        _wait_idle(api, accepted, timeout_s=120)
        spent = int(api.get("/v1/usage").json()["total"].get("cost_micro_usd", 0))
    return {
        "accepted": len(accepted),
        "codes": sorted(set(map(str, codes))),
        "spent_micro_usd": spent,
        "budget_micro_usd": BUDGET_MICRO,
        "ok": spent <= BUDGET_MICRO,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--key", help="a tenant key (default: .switchyard/demo.key)")
    parser.add_argument("--admin-key", help="the cluster's SWITCHYARD_ADMIN_API_KEY")
    parser.add_argument("--steps", type=int, nargs="*", default=[3000, 5000])
    parser.add_argument("--budget-rounds", type=int, default=5)
    args = parser.parse_args(argv)
    base = _loopback(args.api)
    key = args.key or Path(".switchyard/demo.key").read_text().strip()
    report: dict[str, Any] = {}
    with httpx.Client(
        base_url=base, timeout=60.0, headers={"Authorization": f"Bearer {key}"}
    ) as api:
        admin = (
            httpx.Client(
                base_url=base, timeout=30.0, headers={"Authorization": f"Bearer {args.admin_key}"}
            )
            if args.admin_key
            else None
        )
        report["schemas"] = probe_schemas(api)
        report["bodies"] = probe_bodies(api, admin)
        report["stall"] = [probe_stall(api, base, n) for n in args.steps]
        if admin is not None:
            report["budget"] = probe_budget(base, admin, args.budget_rounds)
    checks = [report["schemas"], report["bodies"], *report["stall"]] + (
        [report["budget"]] if "budget" in report else []
    )
    report["ok"] = all(check["ok"] for check in checks)
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
