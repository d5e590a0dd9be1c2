"""``switchyard up --demo``: send a mixed batch, follow it, and show where each job went."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from orchestrator.core.tiers import ALL_TIERS
from orchestrator.costs.pricing import format_usd
from orchestrator.wire.batch_objects import BatchStatus

DEMO_BATCH = Path(__file__).with_name("demo_batch.jsonl")  # package data (examples/ links it)


def run_demo(
    api_url: str, api_key: str, path: Path, console: Console, timeout_s: float = 120.0
) -> bool:
    """Submit ``path`` as a batch, wait for it, print the results; True if all tiers served."""
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=api_url, headers=headers, timeout=30.0) as client:
        response = client.post(
            "/v1/batches",
            content=path.read_bytes(),
            headers={"Content-Type": "application/x-ndjson"},
        )
        response.raise_for_status()
        batch = response.json()
        console.print(
            f"submitted batch [bold]{batch['id']}[/] with {batch['counts']['total']} jobs"
        )
        batch = _wait(client, batch, console, timeout_s)
        results = [
            json.loads(line)
            for line in client.get(f"/v1/batches/{batch['id']}/results").text.splitlines()
        ]
    console.print(results_table(results))
    console.print(tier_summary(results))
    served = {r["tier"] for r in results if r["status"] == "succeeded" and r["cost_micro_usd"] > 0}
    ok = all(r["status"] == "succeeded" for r in results) and served >= set(ALL_TIERS)
    console.print("[green]demo ok[/]" if ok else "[red]demo failed[/]")
    return ok


def _wait(
    client: httpx.Client, batch: dict[str, Any], console: Console, timeout_s: float
) -> dict[str, Any]:
    total = batch["counts"]["total"]
    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    deadline = time.monotonic() + timeout_s
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("jobs finished", total=total)
        while not BatchStatus(batch["status"]).final:
            if time.monotonic() > deadline:
                raise TimeoutError(f"batch {batch['id']} not done after {timeout_s}s")
            time.sleep(0.2)
            batch = client.get(f"/v1/batches/{batch['id']}").json()
            progress.update(
                task,
                completed=batch["request_counts"]["completed"] + batch["request_counts"]["failed"],
            )
    return batch


def results_table(results: list[dict[str, Any]]) -> Table:
    table = Table(title="demo batch")
    for name in ("job", "tier", "provider/model", "status", "latency", "tokens in/out", "cost"):
        table.add_column(name, justify="right" if name in ("latency", "cost") else "left")
    for r in results:
        usage = r["usage"]
        table.add_row(
            r["custom_id"] or r["job_id"],
            r["tier"],
            f"{r['provider']}/{r['model']}",
            "ok" if r["status"] == "succeeded" else r["status"],
            f"{r['latency_ms']} ms" if r["latency_ms"] is not None else "-",
            f"{usage['input_tokens']}/{usage['output_tokens']}",
            format_usd(r["cost_micro_usd"]),
        )
    return table


def tier_summary(results: list[dict[str, Any]]) -> Table:
    jobs: dict[str, int] = defaultdict(int)
    spend: dict[str, int] = defaultdict(int)
    for r in results:
        jobs[r["tier"]] += 1
        spend[r["tier"]] += r["cost_micro_usd"]
    table = Table(title="cost by tier")
    table.add_column("tier")
    table.add_column("jobs", justify="right")
    table.add_column("cost", justify="right")
    for tier in ALL_TIERS:
        table.add_row(tier.value, str(jobs[tier.value]), format_usd(spend[tier.value]))
    table.add_row("total", str(sum(jobs.values())), format_usd(sum(spend.values())), style="bold")
    return table
