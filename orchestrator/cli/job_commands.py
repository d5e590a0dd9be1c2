"""Client commands: ``switchyard submit``, ``switchyard jobs ...``, ``switchyard batches ...``.

They talk to the API through the SDK (``orchestrator.client.sdk``): the URL is
``--api-url``, ``SWITCHYARD_API_URL`` or ``http://127.0.0.1:<api_port>``; the key is
``--api-key``, ``SWITCHYARD_API_KEY`` or the one ``switchyard up`` saved. A file
in OpenAI's batch format (lines with ``custom_id`` and ``body``) is accepted too.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from orchestrator.client.sdk import Switchyard
from orchestrator.core.config import get_settings
from orchestrator.wire.batch_objects import BatchView
from orchestrator.wire.openai_schemas import ChatCompletionRequest

jobs_app = typer.Typer(help="Read jobs.", no_args_is_help=True)
batches_app = typer.Typer(help="List, follow, read and cancel batches.", no_args_is_help=True)
console = Console(stderr=True)
ApiUrl = Annotated[str | None, typer.Option("--api-url", help="The API (default: settings).")]
ApiKey = Annotated[str | None, typer.Option("--api-key", help="A tenant key (default: settings).")]
COLUMNS = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())


def client(api_url: str | None, api_key: str | None) -> Switchyard:
    settings = get_settings()
    update: dict[str, Any] = {}
    if api_url:
        update["api_url"] = api_url
    if api_key:
        update["api_key"] = SecretStr(api_key)
    return Switchyard.from_settings(settings.model_copy(update=update))


def _job(line: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(line)
    if "body" in data and "custom_id" in data:  # OpenAI's batch line
        chat = ChatCompletionRequest.model_validate(data["body"])
        return chat.job_payload(custom_id=str(data["custom_id"]))
    return data


def _lines(path: Path, progress: Progress, task: Any) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                progress.advance(task)
                yield _job(line)


def wait_with_bar(sy: Switchyard, batch: BatchView) -> BatchView:
    """Follow a batch to its end with a progress bar of finished requests."""
    with Progress(*COLUMNS, console=console, transient=True) as progress:
        task = progress.add_task("requests finished", total=batch.counts.total)

        def show(view: BatchView) -> None:
            done = view.request_counts.completed + view.request_counts.failed
            progress.update(task, completed=done)

        return sy.wait_batch(batch.id, timeout_s=86_400, poll_s=0.5, on_progress=show)


def write_results(sy: Switchyard, batch_id: str, out: Path | None) -> int:
    sink = out.open("w", encoding="utf-8") if out is not None else sys.stdout
    count = 0
    try:
        for line in sy.iter_results(batch_id):
            sink.write(line.model_dump_json() + "\n")
            count += 1
    finally:
        if out is not None:
            sink.close()
    return count


def submit(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSON Lines of jobs.")],
    wait: Annotated[bool, typer.Option(help="Wait until every job is final.")] = False,
    out: Annotated[
        Path | None, typer.Option(help="Write the results here (implies --wait).")
    ] = None,
    callback_url: Annotated[str | None, typer.Option(help="Webhook for the batch's end.")] = None,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Submit a JSONL file as one batch; with --wait, follow it; with --out, save results."""
    total = sum(1 for line in file.open(encoding="utf-8") if line.strip())
    with client(api_url, api_key) as sy:
        with Progress(*COLUMNS, console=console, transient=True) as progress:
            task = progress.add_task("uploading", total=total)
            batch = sy.submit_batch(_lines(file, progress, task), callback_url=callback_url)
        console.print(f"batch [bold]{batch.id}[/] with {batch.counts.total} jobs")
        print(batch.id)
        if not (wait or out):
            return
        batch = wait_with_bar(sy, batch)
        counts = batch.request_counts
        console.print(f"{batch.status}: {counts.completed} succeeded, {counts.failed} did not")
        if out is not None:
            console.print(f"{write_results(sy, batch.id, out)} results in {out}")


@jobs_app.command("get")
def jobs_get(job_id: str, api_url: ApiUrl = None, api_key: ApiKey = None) -> None:
    """One job, as JSON."""
    with client(api_url, api_key) as sy:
        print(sy.get_job(job_id).model_dump_json(indent=2))


@batches_app.command("list")
def batches_list(
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    after: Annotated[str | None, typer.Option(help="Page after this batch id.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Your batches, newest first."""
    with client(api_url, api_key) as sy:
        page = sy.list_batches(limit=limit, after=after)
    if as_json:
        for b in page.data:
            print(b.model_dump_json())
        return
    table = Table()
    for name in ("id", "status", "total", "succeeded", "failed", "cost (µUSD)", "created"):
        table.add_column(name, no_wrap=True)
    for b in page.data:
        counts = b.request_counts
        created = datetime.fromtimestamp(b.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            b.id,
            b.status,
            str(counts.total),
            str(counts.completed),
            str(counts.failed),
            str(b.cost_micro_usd),
            created,
        )
    out = Console()
    (out if out.is_terminal else Console(width=200)).print(table)  # never cut when piped


@batches_app.command("get")
def batches_get(batch_id: str, api_url: ApiUrl = None, api_key: ApiKey = None) -> None:
    """One batch, as JSON."""
    with client(api_url, api_key) as sy:
        print(sy.get_batch(batch_id).model_dump_json(indent=2))


@batches_app.command("results")
def batches_results(
    batch_id: str,
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """The batch's results as JSON Lines, in submission order."""
    with client(api_url, api_key) as sy:
        count = write_results(sy, batch_id, out)
    if out is not None:
        console.print(f"{count} results in {out}")


@batches_app.command("cancel")
def batches_cancel(batch_id: str, api_url: ApiUrl = None, api_key: ApiKey = None) -> None:
    """Cancel the batch's jobs that are not final yet."""
    with client(api_url, api_key) as sy:
        print(sy.cancel_batch(batch_id).model_dump_json(indent=2))
